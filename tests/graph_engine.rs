//! Services as a graph on the real engine, read from the engine's events:
//! a service waits only for what it depends on; services independent of
//! each other are applied side by side.

mod support;

use support::{Event, Project, Recorder, muster_ok};

/// `db` is sequential and slow to become healthy; `app` depends on it;
/// `web` depends on nothing.
fn file(project: &Project) -> String {
    format!(
        r#"project = "{p}"

[services.db]
image = "{image}"
count = 2
mode = "sequential"
command = ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 3600"]
init = true
stop_grace_period = "1s"
ready_timeout = "60s"

[services.db.healthcheck]
test = ["CMD", "test", "-f", "/tmp/ready"]
interval = "1s"
timeout = "1s"
retries = 60

[services.app]
image = "{image}"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
depends_on = ["db"]

[services.web]
image = "{image}"
count = 2
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#,
        p = project.name(),
        image = support::image(),
    )
}

fn at(events: &[Event], action: &str, name: &str) -> usize {
    events
        .iter()
        .position(|e| e.kind == "container" && e.action == action && e.name == name)
        .unwrap_or_else(|| panic!("no `{action}` of {name} in {events:#?}"))
}

#[test]
fn independent_services_start_side_by_side_and_dependents_wait_for_what_they_need() {
    let project = Project::new("graph");
    project.write(&file(&project));
    let recorder = Recorder::start(&project);
    muster_ok(&project, &["apply"]);
    let events = recorder.finish();
    let name = |s: &str| format!("{}-{s}", project.name());
    let db1_healthy = at(&events, "health_status: healthy", &name("db-1"));
    let db2_healthy = at(&events, "health_status: healthy", &name("db-2"));
    // `web` needs nothing: it does not wait for `db`.
    for c in ["web-1", "web-2"] {
        assert!(
            at(&events, "start", &name(c)) < db1_healthy,
            "{c} should start while db is still starting: {events:#?}"
        );
    }
    // `app` needs `db`: it starts only once both of db's are healthy.
    assert!(
        at(&events, "create", &name("app-1")) > db2_healthy,
        "app-1 should wait for db: {events:#?}"
    );
    assert!(db1_healthy < at(&events, "create", &name("db-2")));
}
