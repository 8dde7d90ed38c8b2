//! The plan as GitHub-flavoured Markdown, for a pull-request comment
//! (`--output markdown`): the summary line first, then per service a table
//! of its changes, and the diffs in collapsible `<details>` blocks. Pure and
//! deterministic: the same plan gives the same bytes.
//!
//! Every value that comes from the file or the engine is escaped for the
//! place it lands in (a table cell, HTML, a fenced block), so that a value
//! cannot close a table, a tag or a fence.

use std::fmt::Write as _;

use crate::config::plural;
use crate::plan::{Action, Change, FieldChange, Plan, ServicePlan};
use crate::render::{holds_suffix, quote, summary_line};

/// The marker of an action, as in the text plan.
fn marker(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Remove => "-",
        Action::Recreate | Action::Update | Action::Scale => "~",
        Action::Start => ">",
    }
}

/// Text for Markdown prose or a table cell: nothing in it is markup.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("&#124;"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text inside HTML (`<summary>`, `<code>`).
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "&#124;")
}

/// A name in a code span. Names come from the engine's labels too, where
/// anything goes: one with other characters than a name's is HTML-escaped.
fn code(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-:/@".contains(c))
    {
        format!("`{name}`")
    } else {
        format!("<code>{}</code>", escape_html(name))
    }
}

/// A fence longer than any run of backticks in `body`, so that the body
/// cannot end the block.
fn fence(body: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

/// The lines of a `diff` block for one unit's settings.
fn diff_lines(diff: &[FieldChange]) -> String {
    let mut out = String::new();
    for d in diff {
        if let Some(line) =
            crate::config::sensitive::masked_change(&d.path, d.from.as_deref(), d.to.as_deref())
        {
            let _ = writeln!(out, "~ {line}");
            continue;
        }
        let multi_line = d.from.as_deref().is_some_and(|v| v.contains('\n'))
            || d.to.as_deref().is_some_and(|v| v.contains('\n'));
        if multi_line {
            let _ = writeln!(out, "~ {}", d.path);
            let old = d.from.clone().unwrap_or_default();
            let new = d.to.clone().unwrap_or_default();
            let text = similar::TextDiff::from_lines(&old, &new);
            for line in text.unified_diff().context_radius(2).to_string().lines() {
                let _ = writeln!(out, "{line}");
            }
            continue;
        }
        if let Some(v) = &d.from {
            let _ = writeln!(out, "- {} = {}", d.path, quote(v));
        }
        if let Some(v) = &d.to {
            let _ = writeln!(out, "+ {} = {}", d.path, quote(v));
        }
    }
    out
}

/// What the heading says of a service, as the text plan's header does.
fn what(sp: &ServicePlan) -> String {
    if sp.service.is_none() {
        return format!(
            "orphan, {}, removed (--prune)",
            plural(sp.changes.len(), "container")
        );
    }
    let mut what = vec![if sp.from != sp.to {
        format!("{} → {}", sp.from, sp.to)
    } else {
        plural(sp.to as usize, "container")
    }];
    if sp.config_changed {
        what.push("config changed".into());
    }
    format!("{}, {}", sp.mode().as_str(), what.join(", "))
}

/// One service: its heading, a table of its changes, its diffs.
fn service(out: &mut String, sp: &ServicePlan) {
    let _ = writeln!(out, "#### {}: {}", code(&sp.name), escape(&what(sp)));
    let _ = writeln!(out);
    let _ = writeln!(out, "| | unit | action | reason |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for c in &sp.changes {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            marker(c.action),
            code(&c.unit),
            c.action.as_str(),
            escape(&c.reason.to_string())
        );
    }
    let _ = writeln!(out);
    // Units with the same diff share one block (a config change usually
    // touches every container of a service alike).
    let mut groups: Vec<(Vec<&Change>, &[FieldChange])> = Vec::new();
    for c in sp.changes.iter().filter(|c| !c.diff.is_empty()) {
        match groups.iter_mut().find(|(_, d)| *d == c.diff.as_slice()) {
            Some((units, _)) => units.push(c),
            None => groups.push((vec![c], &c.diff)),
        }
    }
    for (units, diff) in groups {
        let names: Vec<String> = units
            .iter()
            .map(|c| format!("<code>{}</code>", escape_html(&c.unit)))
            .collect();
        let body = diff_lines(diff);
        let fence = fence(&body);
        let _ = writeln!(
            out,
            "<details><summary>Diff of {} ({})</summary>",
            names.join(", "),
            plural(diff.len(), "setting")
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "{fence}diff");
        out.push_str(&body);
        let _ = writeln!(out, "{fence}");
        let _ = writeln!(out);
        let _ = writeln!(out, "</details>");
        let _ = writeln!(out);
    }
}

/// The plan for a pull-request comment.
pub fn plan_markdown(plan: &Plan, endpoint: impl std::fmt::Display) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "**{}**", escape(&summary_line(plan)));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Project {} on {}",
        code(&plan.project),
        escape(&endpoint.to_string())
    );
    let _ = writeln!(out);
    for image in &plan.missing_images {
        let _ = writeln!(
            out,
            "- image {} is not on the engine; apply pulls it first",
            escape(image)
        );
    }
    if !plan.missing_images.is_empty() {
        let _ = writeln!(out);
    }
    for sp in plan.services.iter().filter(|s| !s.changes.is_empty()) {
        service(&mut out, sp);
    }
    let orphans: Vec<_> = plan.orphans.iter().filter(|_| !plan.pruned).collect();
    for o in &orphans {
        let holds = holds_suffix(o);
        let _ = writeln!(
            out,
            "- orphan {}: {} (use `--prune` to remove){holds}",
            code(&o.service),
            plural(o.containers.len(), "container")
        );
    }
    if !orphans.is_empty() {
        let _ = writeln!(out);
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    // Control characters and bidi overrides of the file's values and the
    // engine's names, shown as escapes, as the text plan shows them.
    crate::sanitize::lines(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_cannot_break_a_table_or_a_tag() {
        assert_eq!(
            escape("a|b `c` <x> & *y*\nz"),
            "a&#124;b \\`c\\` &lt;x&gt; &amp; \\*y\\*<br>z"
        );
        assert_eq!(escape_html("</summary>|"), "&lt;/summary&gt;&#124;");
        assert_eq!(code("shop-web-1"), "`shop-web-1`");
        assert_eq!(code("a`|<b>"), "<code>a`&#124;&lt;b&gt;</code>");
    }

    #[test]
    fn a_fence_is_longer_than_any_backtick_run_inside() {
        assert_eq!(fence("plain"), "```");
        assert_eq!(fence("a ```` b ` c"), "`````");
    }
}
