//! The status page: the daemon's [`View`] rendered as HTML on the server,
//! so that it reads without script; `page.js` only moves the sliders,
//! sends Apply and swaps in a fresh render when the daemon reports a
//! change. No I/O. Every value shown is escaped: container names, statuses
//! and error texts come from the engine and may be hostile.

use std::fmt::Write;

use serde_json::Value;

use super::state::View;
use crate::render::PsService;

pub const CSS: &str = include_str!("page.css");
pub const JS: &str = include_str!("page.js");

/// The most a slider goes to: twice the count, at least 10 (SPEC §11).
pub fn slider_max(count: u32) -> u32 {
    count.saturating_mul(2).max(10)
}

/// `text` safe inside HTML text and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn render(view: &View, csrf: &str) -> String {
    let project = view.project.as_deref().unwrap_or("(no valid file yet)");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"muster-csrf\" content=\"{}\">\
         <title>muster · {}</title>\
         <link rel=\"stylesheet\" href=\"/assets/page.css\">\
         <script src=\"/assets/page.js\" defer></script></head>\n<body>\
         <header class=\"top\"><h1>muster <span class=\"project\">{}</span></h1>\
         <p id=\"live-status\" class=\"live\">live updates need script</p></header>",
        escape(csrf),
        escape(project),
        escape(project),
    );
    out.push_str("<main id=\"live\">\n");
    meta(&mut out, view);
    if let Some(problems) = &view.file.problems {
        let _ = writeln!(
            out,
            "<section class=\"banner bad\" id=\"file-invalid\"><h2>{} is invalid</h2>\
             <p>The daemon keeps the last good configuration and changes nothing; \
             scaling is refused until the file is fixed.</p><pre>{}</pre></section>",
            escape(&view.file.path),
            escape(problems)
        );
    }
    out.push_str("<section id=\"services\">\n");
    if view.services.is_empty() {
        out.push_str("<p class=\"empty\">Nothing observed yet.</p>\n");
    }
    for s in &view.services {
        service(&mut out, s, view.file.valid);
    }
    for o in &view.orphans {
        let _ = writeln!(
            out,
            "<article class=\"service orphan\"><h2>{}</h2><p>orphan: not in the file \
             (removed by <code>--prune</code>): {}</p></article>",
            escape(&o.service),
            escape(&o.containers.join(", "))
        );
    }
    out.push_str("</section>\n");
    last(&mut out, view);
    events(&mut out, &view.events);
    out.push_str("</main>\n</body></html>\n");
    out
}

fn meta(out: &mut String, view: &View) {
    let engine = match (&view.engine.endpoint, view.engine.connected) {
        (Some(e), true) => format!("<span class=\"ok\">connected</span> to {}", escape(e)),
        _ => "<span class=\"bad\">not connected</span> to the engine".to_string(),
    };
    let _ = writeln!(
        out,
        "<p class=\"meta\">file <code>{}</code> · {engine} · observed {}</p>",
        escape(&view.file.path),
        escape(view.observed_at.as_deref().unwrap_or("never")),
    );
}

fn service(out: &mut String, s: &PsService, file_valid: bool) {
    // The daemon's view always has a file.
    let desired = s.desired.unwrap_or_default();
    let settled = s.running == desired as usize && s.containers.len() == desired as usize;
    let name = escape(&s.service);
    let _ = writeln!(
        out,
        "<article class=\"service\" data-service=\"{name}\">\
         <header><h2>{name}</h2><span class=\"mode\">{}</span>\
         <span class=\"count {}\" data-role=\"count\">{}/{} running</span></header>",
        escape(s.mode),
        if settled { "ok" } else { "warn" },
        s.running,
        desired,
    );
    let disabled = if file_valid { "" } else { " disabled" };
    let _ = writeln!(
        out,
        "<form class=\"scale\" data-service=\"{name}\">\
         <label>Number of containers <output data-role=\"target\">{desired}</output>\
         <input type=\"range\" name=\"count\" min=\"0\" max=\"{max}\" value=\"{desired}\"{disabled}></label>\
         <button type=\"submit\"{disabled}>Apply</button>\
         <span class=\"result\" data-role=\"result\" role=\"status\"></span></form>",
        max = slider_max(desired),
    );
    if s.containers.is_empty() {
        out.push_str("<p class=\"empty\">no containers</p>\n");
    } else {
        out.push_str(
            "<table class=\"containers\"><thead><tr><th>container</th><th>state</th>\
             <th>health</th><th>ports</th><th>back-off</th><th>status</th></tr></thead><tbody>\n",
        );
        for c in &s.containers {
            let backoff = match &c.backoff {
                Some(b) => format!(
                    "<span class=\"bad\">crash-looping: {} failures, next restart {}</span>",
                    b.failures,
                    escape(&unix_time(b.next_restart))
                ),
                None => c.needs.as_ref().map_or_else(String::new, |needs| {
                    format!(
                        "<span class=\"warn\">needs {}</span>",
                        escape(&needs.to_string())
                    )
                }),
            };
            // A swarm service says how many of its replicas run, as `ps` does.
            let state = c.state_text();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"state-{}\">{}</td><td>{}</td><td>{}</td><td>{backoff}</td><td>{}</td></tr>",
                escape(&c.name),
                c.state.as_str(),
                escape(&state),
                c.health.map_or("", |h| h.as_str()),
                escape(&ports(c.ports.iter())),
                escape(&c.status),
            );
            // Its tasks, one row each: slot and node, the swarm's state, the
            // ports published on the node, and why it failed.
            for t in &c.tasks {
                let slot = t.slot.map_or_else(String::new, |s| format!("slot {s} on "));
                let _ = writeln!(
                    out,
                    "<tr class=\"task\"><td>↳ {}</td><td class=\"state-{}\">{}</td><td></td><td>{}</td><td></td><td class=\"bad\">{}</td></tr>",
                    escape(&format!("{slot}{}", t.node)),
                    escape(&t.state),
                    escape(&t.state),
                    escape(&ports(t.ports.iter())),
                    escape(&t.error),
                );
            }
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</article>\n");
}

/// `32768→80/tcp, …`: each host port once (the engine lists a port once
/// per address family it binds), with its address only when it is one.
fn ports<'p>(all: impl Iterator<Item = &'p crate::engine::Published>) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in all {
        let ip = match p.host_ip.as_str() {
            "" | "0.0.0.0" | "::" => String::new(),
            ip => format!("{ip}:"),
        };
        let text = format!("{ip}{}→{}/{}", p.host_port, p.container_port, p.proto);
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out.join(", ")
}

fn last(out: &mut String, view: &View) {
    out.push_str("<section id=\"last\"><h2>Last pass</h2>\n");
    match &view.last_pass {
        Some(p) => {
            let class = match p.outcome {
                "failed" => "bad",
                "interrupted" => "warn",
                _ => "ok",
            };
            let _ = writeln!(
                out,
                "<p><time>{}</time> <span class=\"{class}\">{}</span> ({}, {:.2}s): {}</p>",
                escape(&p.time),
                escape(p.outcome),
                escape(&p.trigger),
                p.seconds,
                escape(&p.message),
            );
        }
        None => out.push_str("<p class=\"empty\">no pass has ended yet</p>\n"),
    }
    out.push_str("<h2>Last plan</h2>\n");
    match &view.last_plan {
        Some(plan) => plan_list(out, plan),
        None => out.push_str("<p class=\"empty\">no changes planned since the start</p>\n"),
    }
    out.push_str("</section>\n");
}

fn plan_list(out: &mut String, plan: &Value) {
    out.push_str("<ul class=\"plan\">\n");
    for c in plan
        .get("changes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(
            out,
            "<li><span class=\"action {}\">{}</span> {} <span class=\"reason\">{}</span></li>",
            escape(field("action")),
            escape(field("action")),
            escape(field("container")),
            escape(field("reason")),
        );
    }
    out.push_str("</ul>\n");
}

fn events(out: &mut String, events: &[Value]) {
    out.push_str("<section id=\"events\"><h2>Recent events</h2><ol class=\"timeline\">\n");
    for e in events.iter().rev() {
        let kind = e.get("event").and_then(Value::as_str).unwrap_or("");
        let time = e.get("time").and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(
            out,
            "<li class=\"ev-{}\"><time>{}</time> <span class=\"kind\">{}</span> {}</li>",
            escape(kind),
            escape(time),
            escape(kind),
            escape(&event_text(e)),
        );
    }
    out.push_str("</ol></section>\n");
}

/// One line for a daemon event of `--output json`.
pub fn event_text(e: &Value) -> String {
    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match e.get("event").and_then(Value::as_str) {
        Some("plan") => {
            let summary = e.pointer("/plan/summary");
            let n = |k: &str| {
                summary
                    .and_then(|v| v.get(k))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            format!(
                "{} to create, {} to recreate, {} to start, {} to remove",
                n("create"),
                n("recreate"),
                n("start"),
                n("remove")
            )
        }
        Some("step") => match e.get("error").and_then(Value::as_str) {
            Some(err) => format!("{} {} failed: {err}", s("container"), s("action")),
            None => format!("{} {}", s("container"), s("action")),
        },
        Some("invalid_file") => {
            let n = e
                .get("problems")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            format!(
                "{} is invalid ({})",
                s("file"),
                crate::config::plural(n, "problem")
            )
        }
        _ => s("message"),
    }
}

/// Unix seconds as `HH:MM:SS` UTC, for a back-off's next restart.
fn unix_time(secs: u64) -> String {
    let rem = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::PsContainer;

    fn view_with(name: &str, status: &str, problems: Option<&str>) -> View {
        View {
            project: Some("p<roj".into()),
            file: super::super::state::FileView {
                path: "services.toml".into(),
                valid: problems.is_none(),
                problems: problems.map(String::from),
            },
            engine: super::super::state::EngineView {
                connected: true,
                endpoint: Some("unix:///x".into()),
            },
            ready: true,
            services: vec![PsService {
                service: "web".into(),
                mode: "parallel",
                desired: Some(3),
                running: 1,
                containers: vec![PsContainer {
                    name: name.into(),
                    ordinal: Some(1),
                    state: crate::engine::State::Running,
                    health: None,
                    status: status.into(),
                    up_to_date: Some(true),
                    needs: None,
                    ports: Vec::new(),
                    backoff: None,
                    replicas: None,
                    tasks: Vec::new(),
                }],
            }],
            orphans: Vec::new(),
            observed_at: None,
            pending: None,
            last_plan: None,
            last_pass: None,
            events: vec![
                serde_json::json!({"event": "error", "message": "<img src=x onerror=alert(1)>"}),
            ],
        }
    }

    #[test]
    fn hostile_engine_text_is_escaped() {
        let html = render(
            &view_with(
                "<script>alert(1)</script>",
                "Up \"1\" & 'x'",
                Some("bad <b>"),
            ),
            "tok",
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("Up &quot;1&quot; &amp; &#39;x&#39;"));
        assert!(html.contains("p&lt;roj"));
    }

    #[test]
    fn a_swarm_service_row_shows_its_replicas_and_a_row_per_task() {
        let port = |host_port, container_port| crate::engine::Published {
            host_ip: String::new(),
            host_port,
            container_port,
            proto: "tcp".into(),
        };
        let mut view = view_with("web", "", None);
        let c = &mut view.services[0].containers[0];
        c.ports = vec![port(8080, 80)];
        c.tasks = vec![crate::engine::Task {
            slot: Some(1),
            node: "n".into(),
            state: "running".into(),
            error: String::new(),
            ports: vec![port(32768, 9000)],
        }];
        c.replicas = Some(crate::engine::Replicas {
            running: 1,
            desired: 2,
        });
        let html = render(&view, "tok");
        assert!(html.contains(">1/2 replicas running</td>"), "{html}");
        assert!(
            html.contains(
                "<tr class=\"task\"><td>↳ slot 1 on n</td><td class=\"state-running\">running</td>\
                 <td></td><td>32768→9000/tcp</td>"
            ),
            "{html}"
        );
        assert!(html.contains("<td>8080→80/tcp</td>"), "{html}");
    }

    #[test]
    fn the_slider_goes_to_twice_the_count_or_ten() {
        assert_eq!(slider_max(0), 10);
        assert_eq!(slider_max(3), 10);
        assert_eq!(slider_max(7), 14);
        let html = render(&view_with("c", "", None), "tok");
        assert!(html.contains("min=\"0\" max=\"10\" value=\"3\""), "{html}");
        assert!(html.contains("1/3 running"), "{html}");
    }

    #[test]
    fn an_invalid_file_disables_apply_and_shows_why() {
        let html = render(&view_with("c", "", Some("error: x:1:1: boom")), "tok");
        assert!(html.contains("error: x:1:1: boom"));
        assert!(html.contains("<button type=\"submit\" disabled>"), "{html}");
    }
}
