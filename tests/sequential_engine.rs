//! Sequential services on the real engine (SPEC sections 3 and 9): link
//! variables, creation in ordinal order each after the previous one is
//! ready, reachability over the link addresses, removal highest first, and
//! a failing container stopping the service at its ordinal.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{
    Project, exec, exists, muster, muster_exits, muster_ok, names, record_events,
    record_events_with_health, started_at,
};

/// Three nodes that each serve "hi" on 5432, healthy once /tmp/ready exists.
const DB: &str = r#"project = "{project}"

[services.db]
image = "{image}"
count = 3
mode = "sequential"
command = ["sh", "-c", "touch /tmp/ready; while true; do echo hi | nc -l -p 5432; done"]
ports = ["8080"]
expose = ["5432"]
init = true
stop_grace_period = "1s"
ready_timeout = "30s"

[services.db.healthcheck]
test = ["CMD", "test", "-f", "/tmp/ready"]
interval = "1s"
timeout = "1s"
retries = 30
"#;

/// The link variables SPEC section 3 gives container `n` of service `db`
/// declaring ports 5432 and 8080 (tcp).
fn expected_links(n: u32) -> BTreeSet<String> {
    let mut want = BTreeSet::new();
    for k in 1..n {
        for port in [5432, 8080] {
            let pre = format!("DB_{k}_PORT_{port}_TCP");
            want.insert(format!("{pre}=tcp://db-{k}:{port}"));
            want.insert(format!("{pre}_ADDR=db-{k}"));
            want.insert(format!("{pre}_PORT={port}"));
            want.insert(format!("{pre}_PROTO=tcp"));
        }
        // The lowest declared port, here from `expose`.
        want.insert(format!("DB_{k}_PORT=tcp://db-{k}:5432"));
    }
    want
}

/// Every variable of `container` whose name starts with `DB_`.
fn links_of(project: &Project, container: &str) -> BTreeSet<String> {
    project
        .env(container)
        .into_iter()
        .filter(|v| v.starts_with("DB_"))
        .collect()
}

/// Runs `script` with `sh -c` in `container` until it prints `want`.
fn reaches(container: &str, script: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out) = exec(container, &["sh", "-c", script]);
        if code == 0 && out.contains(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{container}: `{script}` exited {code} and printed {out:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sequential_service_links_each_container_to_the_earlier_ones_and_starts_each_after_the_previous_is_healthy()
 {
    let project = Project::new("seq-links");
    project.write(DB);
    let [one, two, three]: [String; 3] = names(&project, "db", 1..=3).try_into().unwrap();

    let events = record_events_with_health(&project, || {
        muster_ok(&project, &["apply"]);
    });
    assert_eq!(
        project.container_names(),
        [one.clone(), two.clone(), three.clone()]
    );

    // Exactly the variables of SPEC section 3, no more, no fewer.
    assert_eq!(links_of(&project, &one), BTreeSet::new());
    assert_eq!(links_of(&project, &two), expected_links(2));
    assert_eq!(links_of(&project, &three), expected_links(3));

    // Started in ordinal order…
    assert!(
        started_at(&one) < started_at(&two),
        "{one} started after {two}"
    );
    assert!(
        started_at(&two) < started_at(&three),
        "{two} started after {three}"
    );
    // …and each created only once the one before it was healthy.
    let at = |event: &str| {
        events
            .iter()
            .position(|e| e == event)
            .unwrap_or_else(|| panic!("no event {event:?} in {events:#?}"))
    };
    assert!(
        at(&format!("container health_status: healthy {one}"))
            < at(&format!("container create {two}")),
        "{two} was created before {one} was healthy: {events:#?}"
    );
    assert!(
        at(&format!("container health_status: healthy {two}"))
            < at(&format!("container create {three}")),
        "{three} was created before {two} was healthy: {events:#?}"
    );

    // The link addresses resolve on the project network.
    reaches(
        &three,
        "echo | nc -w 2 $DB_1_PORT_5432_TCP_ADDR $DB_1_PORT_5432_TCP_PORT",
        "hi",
    );
    reaches(
        &three,
        "echo | nc -w 2 $DB_2_PORT_5432_TCP_ADDR $DB_2_PORT_5432_TCP_PORT",
        "hi",
    );
    reaches(
        &two,
        "echo | nc -w 2 $DB_1_PORT_5432_TCP_ADDR $DB_1_PORT_5432_TCP_PORT",
        "hi",
    );
}

const SLEEPERS: &str = r#"project = "{project}"

[services.db]
image = "{image}"
count = COUNT
mode = "sequential"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#;

#[test]
fn sequential_scale_down_removes_highest_first_one_at_a_time() {
    let project = Project::new("seq-down");
    let [one, two, three]: [String; 3] = names(&project, "db", 1..=3).try_into().unwrap();
    project.write(&SLEEPERS.replace("COUNT", "3"));
    muster_ok(&project, &["apply"]);
    assert_eq!(
        project.container_names(),
        [one.clone(), two.clone(), three.clone()]
    );

    project.write(&SLEEPERS.replace("COUNT", "1"));
    let mut out = None;
    let events = record_events(&project, || {
        out = Some(muster_ok(&project, &["apply"]));
    });
    assert_eq!(project.container_names(), std::slice::from_ref(&one));

    let destroyed: Vec<&str> = events
        .iter()
        .filter_map(|e| e.strip_prefix("container destroy "))
        .filter(|name| name.contains("-db-"))
        .collect();
    assert_eq!(destroyed, [three.as_str(), two.as_str()], "{events:#?}");
    // One at a time: nothing happens to 2 before 3 is gone.
    let three_gone = events
        .iter()
        .position(|e| *e == format!("container destroy {three}"))
        .unwrap();
    let two_first = events
        .iter()
        .position(|e| e.ends_with(&format!(" {two}")))
        .unwrap();
    assert!(three_gone < two_first, "{events:#?}");
    assert!(
        !events.iter().any(|e| e.ends_with(&format!(" {one}"))),
        "{one} was touched: {events:#?}"
    );

    // The report lists the steps in the same order.
    let out = out.unwrap();
    let step = |name: &str| {
        out.stdout
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("- {name}  removed")))
            .unwrap_or_else(|| panic!("no step for {name}:\n{out}"))
    };
    assert!(step(&three) < step(&two), "{out}");
}

/// A sequential service gone from the file, pruned (and so by `down`):
/// removed highest first, one at a time, each stop waiting the
/// `stop_grace_period` its containers were made with (the file no longer
/// says; it was the engine's 10 s).
#[test]
fn a_pruned_sequential_orphan_goes_highest_first_with_its_own_grace() {
    let project = Project::new("seq-orphan");
    let [one, two, three]: [String; 3] = names(&project, "db", 1..=3).try_into().unwrap();
    // No init: `sleep` ignores SIGTERM, so each stop waits its grace.
    let stubborn = SLEEPERS
        .replace("COUNT", "3")
        .replace("init = true\n", "")
        .replace("stop_grace_period = \"1s\"", "stop_grace_period = \"2s\"");
    project.write(&stubborn);
    muster_ok(&project, &["apply"]);
    project.write("project = \"{project}\"\n[services.other]\nimage = \"{image}\"\ncount = 0\n");
    let mut out = None;
    let events = record_events(&project, || {
        out = Some(muster_ok(&project, &["apply", "--prune"]));
    });
    let out = out.unwrap();
    assert!(project.container_names().is_empty(), "{out}");
    let destroyed: Vec<&str> = events
        .iter()
        .filter_map(|e| e.strip_prefix("container destroy "))
        .filter(|name| name.contains("-db-"))
        .collect();
    assert_eq!(destroyed, [&three, &two, &one], "{events:#?}");
    // One at a time: nothing happens to the next before one is gone.
    for (gone, next) in [(&three, &two), (&two, &one)] {
        let gone_at = events
            .iter()
            .position(|e| *e == format!("container destroy {gone}"))
            .unwrap();
        let next_first = events
            .iter()
            .position(|e| e.ends_with(&format!(" {next}")))
            .unwrap();
        assert!(gone_at < next_first, "{events:#?}");
    }
    assert!(
        out.stdout.contains(&format!(
            "{three}  stopping, waiting up to 2s for it to exit"
        )),
        "{out}"
    );
    assert!(!out.stdout.contains("up to 10s"), "{out}");
}

/// Ordinal 2 says something recognisable and exits 1 at once.
const FAILING: &str = r#"project = "{project}"

[services.svc]
image = "{image}"
count = 3
mode = "sequential"
command = ["sh", "-c", "if [ \"$(hostname)\" = svc-2 ]; then echo svc-2 gives up: no quorum; exit 1; fi; exec sleep 3600"]
init = true
stop_grace_period = "1s"
ready_timeout = "20s"
"#;

const HEALTHCHECK: &str = r#"
[services.svc.healthcheck]
test = ["CMD", "true"]
interval = "1s"
timeout = "1s"
retries = 3
"#;

fn assert_stops_at_the_failing_container(project: &Project) {
    let [one, two, three]: [String; 3] = names(project, "svc", 1..=3).try_into().unwrap();
    let mut out = None;
    let events = record_events(project, || {
        out = Some(muster_exits(project, &["apply"], 1));
    });
    let out = out.unwrap();
    assert!(
        out.stderr.contains(&two),
        "the error does not name {two}:\n{out}"
    );
    assert!(
        out.stderr.contains("svc-2 gives up: no quorum"),
        "the error does not show the logs of {two}:\n{out}"
    );
    assert!(
        !exists(&three),
        "{three} was created after {two} failed:\n{out}"
    );
    assert!(
        !events.contains(&format!("container create {three}")),
        "{events:#?}"
    );
    assert!(inspect_running(&one), "{one} should still run");
}

fn inspect_running(name: &str) -> bool {
    support::id_and_state(name).1 == "running"
}

#[test]
fn failing_container_stops_a_sequential_service_with_a_healthcheck_at_its_ordinal() {
    let project = Project::new("seq-fail-hc");
    project.write(&format!("{FAILING}{HEALTHCHECK}"));
    assert_stops_at_the_failing_container(&project);
}

#[test]
fn failing_container_stops_a_sequential_service_without_a_healthcheck_at_its_ordinal() {
    let project = Project::new("seq-fail");
    project.write(FAILING);
    assert_stops_at_the_failing_container(&project);
}

/// db-1 is healthy only once someone creates /tmp/ready in it; the other
/// ordinals are healthy at once.
const WAITS_FOR_READY: &str = r#"project = "{project}"

[services.db]
image = "{image}"
count = COUNT
mode = "sequential"
command = ["sh", "-c", "[ \"$(hostname)\" = db-1 ] || touch /tmp/ready; exec sleep 3600"]
init = true
stop_grace_period = "1s"
ready_timeout = "TIMEOUT"

[services.db.healthcheck]
test = ["CMD", "test", "-f", "/tmp/ready"]
interval = "1s"
timeout = "1s"
retries = 30
"#;

fn waits_for_ready(count: u32, timeout: &str) -> String {
    WAITS_FOR_READY
        .replace("COUNT", &count.to_string())
        .replace("TIMEOUT", timeout)
}

#[test]
fn sequential_scale_up_creates_the_next_ordinal_only_once_the_existing_ones_are_healthy() {
    let project = Project::new("seq-up-wait");
    let [one, two]: [String; 2] = names(&project, "db", 1..=2).try_into().unwrap();
    project.write(&waits_for_ready(1, "3s"));
    // db-1 does not become healthy on its own: apply gives up on it.
    let out = muster_exits(&project, &["apply"], 1);
    assert!(out.stderr.contains(&one), "{out}");
    assert_eq!(project.container_names(), std::slice::from_ref(&one));

    // db-1 is there but not healthy: db-2 must not be created.
    project.write(&waits_for_ready(2, "3s"));
    let out = muster(&project, &["apply"]);
    assert!(
        !exists(&two),
        "{two} was created while {one} was not healthy:\n{out}"
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains(&one), "{out}");

    // Once db-1 is healthy, the same file goes through.
    let (code, out) = exec(&one, &["touch", "/tmp/ready"]);
    assert_eq!(code, 0, "{out}");
    project.write(&waits_for_ready(2, "20s"));
    muster_ok(&project, &["apply"]);
    assert_eq!(project.container_names(), [one, two]);
}
