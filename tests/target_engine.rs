//! `muster plan web` / `muster apply web api` on the real engine: only the
//! named services and what they depend on are planned and applied; the
//! others are left as they are and are not reported as orphans.

mod support;

use support::{Project, ids, muster_exits, muster_ok, sleeper_service};

fn file(web: u32, worker_command: &str, with_old: bool) -> String {
    let mut text = format!(
        "{}{}depends_on = [\"db\"]\n{}{}",
        sleeper_service("db", "{image}", 1),
        sleeper_service("web", "{image}", web),
        sleeper_service("worker", "{image}", 1).replace("\"3600\"", worker_command),
        if with_old {
            sleeper_service("old", "{image}", 1)
        } else {
            String::new()
        }
    );
    text.insert_str(0, "project = \"{project}\"\n");
    text
}

#[test]
fn targets_plan_and_apply_only_the_named_services_and_their_dependencies() {
    let project = Project::new("target");
    project.write(&file(1, "\"3600\"", true));
    muster_ok(&project, &["apply"]);
    let before = ids(&project);
    assert_eq!(before.len(), 4);

    // web scales, worker's command changes, old is gone from the file.
    project.write(&file(2, "\"3601\"", false));
    let plan = muster_exits(&project, &["plan", "web", "--detailed-exitcode"], 2);
    let name = |s: &str| format!("{}-{s}", project.name());
    assert!(plan.stdout.contains(&name("web-2")), "{plan}");
    for other in ["worker", "old"] {
        assert!(
            !plan.stdout.contains(&name(other)) && !plan.stdout.contains("orphan"),
            "plan web mentions {other}:\n{plan}"
        );
    }
    // The whole file still wants worker recreated.
    let whole = muster_exits(&project, &["plan", "--detailed-exitcode"], 2);
    assert!(whole.stdout.contains(&name("worker-1")), "{whole}");

    muster_ok(&project, &["apply", "web"]);
    let after = ids(&project);
    assert_eq!(after.len(), 5, "{after:?}");
    for kept in ["db-1", "web-1", "worker-1", "old-1"] {
        assert_eq!(
            after[&name(kept)],
            before[&name(kept)],
            "{kept} was touched"
        );
    }
    // Nothing left to do for web (and db), while worker still differs.
    muster_exits(&project, &["plan", "web", "--detailed-exitcode"], 0);
    muster_exits(&project, &["plan", "worker", "--detailed-exitcode"], 2);

    // A dependency with changes is applied with its dependent.
    let changed_db = file(2, "\"3601\"", false).replacen("\"3600\"", "\"3602\"", 1);
    assert!(changed_db.contains("\"3602\""), "{changed_db}");
    project.write(&changed_db);
    muster_ok(&project, &["apply", "web"]);
    let last = ids(&project);
    assert_ne!(
        last[&name("db-1")],
        after[&name("db-1")],
        "db was not recreated"
    );
    for kept in ["web-1", "web-2", "worker-1", "old-1"] {
        assert_eq!(last[&name(kept)], after[&name(kept)], "{kept} was touched");
    }
    muster_exits(&project, &["plan", "db", "--detailed-exitcode"], 0);

    let unknown = muster_exits(&project, &["plan", "wbe"], 64);
    assert!(
        unknown
            .stderr
            .contains("the file declares no service \"wbe\""),
        "{unknown}"
    );
    // `old` is an orphan: --prune with a target would leave it, silently.
    let prune = muster_exits(&project, &["apply", "db", "--prune"], 64);
    assert!(prune.stderr.contains("without SERVICE targets"), "{prune}");
    assert!(project.container_names().contains(&name("old-1")));
}

/// The health of a container as the engine reports it.
fn health(name: &str) -> String {
    support::inspect(name)
        .state
        .and_then(|s| s.health)
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

const SLOW_HEALTH: &str = r#"project = "{project}"

[services.web]
image = "{image}"
count = 2
command = ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 3600"]
init = true
stop_grace_period = "1s"
ready_timeout = "TIMEOUT"

[services.web.healthcheck]
test = ["CMD", "test", "-f", "/tmp/ready"]
interval = "1s"
timeout = "1s"
retries = 100
"#;

#[test]
fn apply_wait_returns_once_every_container_is_healthy() {
    let project = Project::new("wait");
    project.write(&SLOW_HEALTH.replace("TIMEOUT", "60s"));
    let out = muster_ok(&project, &["apply", "--wait"]);
    for o in 1..=2 {
        let name = format!("{}-web-{o}", project.name());
        assert_eq!(
            health(&name),
            "healthy",
            "{name} not healthy after --wait:\n{out}"
        );
    }
    assert!(
        out.stderr.contains("every container is ready")
            || out.stdout.contains("every container is ready"),
        "{out}"
    );
}

#[test]
fn apply_wait_fails_naming_a_container_that_does_not_become_healthy() {
    let project = Project::new("wait-bad");
    project.write(
        &SLOW_HEALTH
            .replace("TIMEOUT", "2s")
            .replace("sleep 3; touch /tmp/ready; ", ""),
    );
    let out = muster_exits(&project, &["apply", "--wait"], 1);
    assert!(
        out.stderr
            .contains("was not ready within ready_timeout (2s)")
            && out.stderr.contains(&format!("{}-web-", project.name())),
        "{out}"
    );
}

fn started_at(name: &str) -> String {
    support::inspect(name)
        .state
        .and_then(|s| s.started_at)
        .unwrap_or_default()
}

#[test]
fn restart_stops_and_starts_the_named_services_containers_only() {
    let project = Project::new("restart");
    project.write(&format!(
        "project = \"{{project}}\"\n{}{}",
        sleeper_service("web", "{image}", 2),
        sleeper_service("worker", "{image}", 1)
    ));
    muster_ok(&project, &["apply"]);
    let name = |s: &str| format!("{}-{s}", project.name());
    let before_ids = ids(&project);
    let before: Vec<String> = ["web-1", "web-2", "worker-1"]
        .iter()
        .map(|s| started_at(&name(s)))
        .collect();
    let out = muster_ok(&project, &["restart", "web"]);
    assert!(
        out.stderr.contains(&format!("restarted {}", name("web-1")))
            || out.stdout.contains(&format!("restarted {}", name("web-1"))),
        "{out}"
    );
    assert_eq!(ids(&project), before_ids, "restart replaced a container");
    assert_ne!(started_at(&name("web-1")), before[0], "web-1 not restarted");
    assert_ne!(started_at(&name("web-2")), before[1], "web-2 not restarted");
    assert_eq!(
        started_at(&name("worker-1")),
        before[2],
        "worker was restarted"
    );
    muster_exits(&project, &["plan", "--detailed-exitcode"], 0);
    muster_exits(&project, &["restart", "nope"], 64);
}
