//! Snapshots of the plan as users and scripts see it, for a fixed state
//! held by the in-memory engine.

use muster::config::{Desired, parse_str};
use muster::engine::memory::MemoryEngine;
use muster::engine::{State, container_name, container_spec};
use muster::markdown::plan_markdown;
use muster::plan::plan;
use muster::render::{PsView, plan_json, plan_text};

const IMG: &str = "shop/app:1";

fn desired(text: &str) -> Desired {
    parse_str("services.toml", text, std::path::Path::new("/srv/shop"))
        .unwrap_or_else(|e| panic!("{}", e.render_plain()))
}

const BEFORE: &str = r#"
project = "shop"
[services.web]
image = "shop/app:1"
count = 2
[services.api]
image = "shop/app:1"
mode = "sequential"
count = 2
env = { LOG_LEVEL = "info", RULES = "allow a\nallow b\ndeny c\n" }
[services.old]
image = "shop/app:1"
[services.worker]
image = "shop/app:1"
count = 2
"#;

const AFTER: &str = r#"
project = "shop"
[services.web]
image = "shop/app:1"
count = 4
depends_on = ["api"]
[services.api]
image = "shop/app:1"
mode = "sequential"
count = 2
env = { LOG_LEVEL = "debug", RULES = "allow a\nallow b2\ndeny c\n" }
command = """
serve
  --verbose
"""
[services.worker]
image = "shop/app:1"
count = 2
"#;

/// web 2 → 4, api recreated with a diff, old orphaned, worker-2 exited.
fn fixed_state() -> (Desired, MemoryEngine) {
    let before = desired(BEFORE);
    let engine = MemoryEngine::with_images(&[(IMG, "sha256:0123456789abcdef")]);
    for s in before.services.values() {
        for o in 1..=s.count {
            let state = if s.name == "worker" && o == 2 {
                State::Exited
            } else {
                State::Running
            };
            engine.insert(
                container_spec("shop", s, o, &container_name("shop", &s.name, o)),
                state,
            );
        }
    }
    (desired(AFTER), engine)
}

#[test]
fn text_plan_snapshot() {
    let (after, engine) = fixed_state();
    let p = plan(&after, &engine.snapshot("shop", &[IMG.into()]), false);
    insta::assert_snapshot!(plan_text(&p, "unix:///var/run/docker.sock", false));
}

#[test]
fn text_plan_with_prune_snapshot() {
    let (after, engine) = fixed_state();
    let p = plan(&after, &engine.snapshot("shop", &[IMG.into()]), true);
    insta::assert_snapshot!(plan_text(&p, "unix:///var/run/docker.sock", false));
}

#[test]
fn json_plan_snapshot() {
    let (after, engine) = fixed_state();
    let p = plan(&after, &engine.snapshot("shop", &[IMG.into()]), false);
    insta::assert_snapshot!(serde_json::to_string_pretty(&plan_json(&p)).unwrap());
}

#[test]
fn no_changes_snapshot() {
    let (after, engine) = fixed_state();
    let before = desired(BEFORE);
    let p = plan(&before, &engine.snapshot("shop", &[IMG.into()]), false);
    let started: Vec<String> = p.changes().map(|c| c.unit.clone()).collect();
    assert_eq!(started, ["shop-worker-2"]);
    engine.with(|s| s.containers.get_mut("shop-worker-2").unwrap().state = State::Running);
    let p = plan(&before, &engine.snapshot("shop", &[IMG.into()]), false);
    insta::assert_snapshot!(plan_text(&p, "unix:///var/run/docker.sock", false));
    drop(after);
}

#[test]
fn colour_only_when_asked() {
    let (after, engine) = fixed_state();
    let p = plan(&after, &engine.snapshot("shop", &[IMG.into()]), false);
    assert!(!plan_text(&p, "x", false).contains('\x1b'));
    let coloured = plan_text(&p, "x", true);
    assert!(coloured.contains("\x1b[32m+\x1b[0m"), "{coloured}");
    assert!(coloured.contains("\x1b[33m~\x1b[0m"));
}

#[test]
fn markdown_plan_snapshot() {
    let (after, engine) = fixed_state();
    let p = plan(&after, &engine.snapshot("shop", &[IMG.into()]), false);
    insta::assert_snapshot!(plan_markdown(&p, "unix:///var/run/docker.sock"));
}

#[test]
fn markdown_plan_with_prune_snapshot() {
    let (after, engine) = fixed_state();
    let p = plan(&after, &engine.snapshot("shop", &[IMG.into()]), true);
    insta::assert_snapshot!(plan_markdown(&p, "unix:///var/run/docker.sock"));
}

#[test]
fn markdown_no_changes_is_the_summary_line() {
    let (_, engine) = fixed_state();
    engine.with(|s| s.containers.get_mut("shop-worker-2").unwrap().state = State::Running);
    let before = desired(BEFORE);
    let p = plan(&before, &engine.snapshot("shop", &[IMG.into()]), false);
    assert_eq!(
        plan_markdown(&p, "unix:///var/run/docker.sock"),
        "**No changes. 4 services, 7 containers up to date.**\n\nProject `shop` on unix:///var/run/docker.sock\n"
    );
}

/// Values from the file cannot close the diff's fence, the `<details>`
/// block or a table cell.
#[test]
fn markdown_values_are_escaped_snapshot() {
    let (_, engine) = fixed_state();
    let hostile = AFTER.replace(
        r#"LOG_LEVEL = "debug""#,
        r#"LOG_LEVEL = "```\n</details>\n| x | <b>y</b>""#,
    );
    let p = plan(
        &desired(&hostile),
        &engine.snapshot("shop", &[IMG.into()]),
        false,
    );
    let md = plan_markdown(&p, "unix:///var/run/docker.sock");
    assert!(md.contains("\n````diff\n"), "{md}");
    assert_eq!(
        md.matches("</details>").count(),
        md.matches("<details>").count() + 1,
        "{md}"
    );
    insta::assert_snapshot!(md);
}

/// `ps` says of each container what the plan does to it: up to date,
/// start (worker-2 exited), recreate (api), remove (web scaled 2 → 1), and
/// the orphan with --prune.
#[test]
fn ps_text_snapshot() {
    let (_, engine) = fixed_state();
    let after = desired(&AFTER.replace("count = 4", "count = 1"));
    let actual = engine.snapshot("shop", &[IMG.into()]);
    let view = PsView::new(&after, &actual, &std::collections::BTreeMap::new());
    insta::assert_snapshot!(view.text(false));
}

/// With the project's record: web-2 vanished ("missing", not a scale-up),
/// worker applied at 0 and scaled up (`~`), cron never applied (`+`).
#[test]
fn text_plan_with_a_record_snapshot() {
    let before = desired(
        r#"
project = "shop"
[services.web]
image = "shop/app:1"
count = 1
"#,
    );
    let engine = MemoryEngine::with_images(&[(IMG, "sha256:0123456789abcdef")]);
    let web = &before.services["web"];
    engine.insert(
        container_spec("shop", web, 1, &container_name("shop", "web", 1)),
        State::Running,
    );
    engine.with(|s| {
        s.records.insert(
            "shop".into(),
            [("web".to_string(), 2), ("worker".to_string(), 0)].into(),
        )
    });
    let after = desired(
        r#"
project = "shop"
[services.web]
image = "shop/app:1"
count = 2
[services.worker]
image = "shop/app:1"
count = 2
[services.cron]
image = "shop/app:1"
"#,
    );
    let p = plan(&after, &engine.snapshot("shop", &[IMG.into()]), false);
    insta::assert_snapshot!(plan_text(&p, "unix:///var/run/docker.sock", false));
}

/// What apply prints while a step waits, one line per kind of wait.
#[test]
fn waiting_lines_snapshot() {
    use muster::render::waiting_line;
    use muster::waiting::Waiting;
    use std::time::Duration;
    let secs = Duration::from_secs;
    let lines = [
        ("shop-web-2", Waiting::Stop { grace: secs(10) }),
        ("shop-web-2", Waiting::Healthy { timeout: secs(60) }),
        ("shop-web-2", Waiting::Running { timeout: secs(60) }),
        (
            "web",
            Waiting::Settled {
                settle: Duration::from_millis(500),
            },
        ),
        (
            "web",
            Waiting::Dependency {
                service: "api".into(),
            },
        ),
    ]
    .map(|(who, what)| waiting_line(who, &what, false) + "\n")
    .concat();
    insta::assert_snapshot!(lines);
    assert!(waiting_line("shop-web-2", &Waiting::Stop { grace: secs(1) }, true).contains("\x1b["));
}
