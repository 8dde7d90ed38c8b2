//! Snapshots of the plan as users and scripts see it, for a fixed state
//! held by the in-memory engine.

use muster::config::{Desired, parse_str};
use muster::engine::memory::MemoryEngine;
use muster::engine::{State, container_name, container_spec};
use muster::plan::plan;
use muster::render::{plan_json, plan_text};

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
