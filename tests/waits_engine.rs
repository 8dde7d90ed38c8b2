//! Long waits are visible: a step that waits out a stop's grace period or
//! a slow healthcheck says so while it waits, on `muster apply`,
//! `apply --wait`, `restart` and in the daemon's log, and its step line's duration includes the wait; so does
//! a service that waits for what it depends on.

mod support;

use std::time::Duration;

use bollard::models::HealthStatusEnum;

use support::{Daemon, Project, exists, inspect, muster_ok, save_by_rename};

const T: Duration = Duration::from_secs(60);

/// `web`: busybox `sleep` as PID 1 without an init, which ignores SIGTERM:
/// each stop waits out the 3s grace period.
fn stubborn(count: u32) -> String {
    format!(
        r#"[services.web]
image = "{{image}}"
count = {count}
command = ["sleep", "3600"]
stop_grace_period = "3s"
"#
    )
}

/// `db`: sequential, healthy only once it has run for 3s (after a restart
/// too: the container keeps its files).
const SLOW_HEALTHY: &str = r#"[services.db]
image = "{image}"
mode = "sequential"
count = 2
command = ["sh", "-c", "rm -f /tmp/ready; sleep 3 && touch /tmp/ready && exec sleep 3600"]
init = true
stop_grace_period = "1s"
ready_timeout = "45s"

[services.db.healthcheck]
test = ["CMD", "test", "-f", "/tmp/ready"]
interval = "1s"
timeout = "1s"
retries = 30
"#;

/// The position of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

/// The position of the first line the daemon printed that contains `needle`.
fn printed_at(d: &Daemon, needle: &str) -> usize {
    d.lines()
        .iter()
        .position(|l| l.text.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{}", d.transcript()))
}

/// The duration at the end of `line` (`  + x  created  3.41s`,
/// `restarted x (3.1s)`).
fn seconds(line: &str) -> f64 {
    line.rsplit([' ', '('])
        .next()
        .and_then(|t| t.trim_end_matches(')').strip_suffix('s'))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no duration at the end of {line:?}"))
}

#[test]
fn a_stop_that_waits_out_its_grace_period_says_so() {
    let project = Project::new("wait-stop");
    project.write(&stubborn(1));
    muster_ok(&project, &["apply"]);
    let web1 = format!("{}-web-1", project.name());
    assert!(exists(&web1));

    project.write(&stubborn(0));
    let out = muster_ok(&project, &["apply"]);
    let waiting = line_of(
        &out.stdout,
        &format!("  … {web1}  stopping, waiting up to 3s for it to exit (stop_grace_period)"),
    );
    let removed = line_of(&out.stdout, &format!("  - {web1}  removed  "));
    assert!(
        waiting < removed,
        "the wait is told before the step ends:\n{out}"
    );
    assert!(!exists(&web1), "{out}");
}

/// `api`: depends on `db`.
const DEPENDENT: &str = r#"[services.api]
image = "{image}"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
depends_on = ["db"]
"#;

#[test]
fn a_slow_healthcheck_and_a_dependency_say_what_they_wait_for() {
    let project = Project::new("wait-healthy");
    project.write(&format!("{SLOW_HEALTHY}\n{DEPENDENT}"));
    let out = muster_ok(&project, &["apply"]);
    let api = line_of(
        &out.stdout,
        "  … api  waiting for db to be ready (depends_on)",
    );
    let api_created = line_of(
        &out.stdout,
        &format!("  + {}-api-1  created  ", project.name()),
    );
    assert!(api < api_created, "{out}");
    for n in 1..=2 {
        let db = format!("{}-db-{n}", project.name());
        let waiting = line_of(
            &out.stdout,
            &format!(
                "  … {db}  waiting for it to become healthy (healthcheck, up to ready_timeout 45s)"
            ),
        );
        let created = line_of(&out.stdout, &format!("  + {db}  created  "));
        assert!(waiting < created, "{out}");
        // It cannot be healthy before its command slept 3s: a step line
        // that left the readiness wait out would say less.
        let line = out.stdout.lines().nth(created).unwrap();
        assert!(seconds(line) >= 3.0, "{line:?} leaves out the wait:\n{out}");
        let health = inspect(&db)
            .state
            .and_then(|s| s.health)
            .and_then(|h| h.status);
        assert_eq!(health, Some(HealthStatusEnum::HEALTHY), "{db}");
    }
}

/// The position of the line of `text` that is exactly `line`.
fn exact_line(text: &str, line: &str) -> usize {
    text.lines()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no line {line:?} in:\n{text}"))
}

#[test]
fn apply_wait_and_restart_say_what_they_wait_for() {
    let project = Project::new("wait-more");
    let p = project.name();
    // `cache`: parallel, so apply itself does not wait for its health;
    // `--wait` does (healthy after 8s, well after `db`'s 3s that apply
    // waits for).
    let cache = SLOW_HEALTHY
        .replace("[services.db", "[services.cache")
        .replace("sleep 3 &&", "sleep 8 &&")
        .replace("mode = \"sequential\"\ncount = 2", "count = 1");
    let db = SLOW_HEALTHY.replace("count = 2", "count = 1");
    project.write(&format!("{}\n{cache}\n{db}", stubborn(1)));
    let out = muster_ok(&project, &["apply", "--wait"]);
    let waiting = line_of(
        &out.stdout,
        &format!(
            "  … {p}-cache-1  waiting for it to become healthy (healthcheck, up to ready_timeout 45s)"
        ),
    );
    assert!(
        exact_line(&out.stdout, "waiting until every container is ready") < waiting
            && waiting < exact_line(&out.stdout, "every container is ready"),
        "{out}"
    );

    let out = muster_ok(&project, &["restart", "web"]);
    let web1 = format!("{p}-web-1");
    let waiting = line_of(
        &out.stdout,
        &format!("  … {web1}  stopping, waiting up to 3s for it to exit (stop_grace_period)"),
    );
    let restarted = line_of(&out.stdout, &format!("restarted {web1} ("));
    assert!(waiting < restarted, "{out}");

    // A sequential ordinal is waited ready; its duration includes the wait.
    let out = muster_ok(&project, &["restart", "db"]);
    let db1 = format!("{p}-db-1");
    let waiting = line_of(
        &out.stdout,
        &format!(
            "  … {db1}  waiting for it to become healthy (healthcheck, up to ready_timeout 45s)"
        ),
    );
    let restarted = line_of(&out.stdout, &format!("restarted {db1} ("));
    assert!(waiting < restarted, "{out}");
    let line = out.stdout.lines().nth(restarted).unwrap();
    assert!(seconds(line) >= 3.0, "{line:?} leaves out the wait:\n{out}");

    // A saved plan applied with --wait waits too: cache is healthy when
    // it returns.
    muster_ok(&project, &["down"]);
    muster_ok(&project, &["plan", "--out", "plan.json"]);
    let out = muster_ok(&project, &["apply", "plan.json", "--wait"]);
    exact_line(&out.stdout, "every container is ready");
    let health = inspect(&format!("{p}-cache-1"))
        .state
        .unwrap()
        .health
        .unwrap();
    assert_eq!(health.status, Some(HealthStatusEnum::HEALTHY), "{out}");

    // With --output json, stdout is the one JSON document; the wait's
    // lines go to stderr with the steps.
    muster_ok(&project, &["down"]);
    let out = muster_ok(&project, &["apply", "--wait", "--output", "json"]);
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{out}"));
    exact_line(&out.stderr, "every container is ready");
}

#[test]
fn the_daemon_log_says_what_a_step_waits_for() {
    let project = Project::new("wait-daemon");
    project.write(&format!("{SLOW_HEALTHY}\n{}", stubborn(1)));
    let d = Daemon::watch(&project, "1h");
    let db1 = format!("{}-db-1", project.name());
    let waiting = format!(
        "  … {db1}  waiting for it to become healthy (healthcheck, up to ready_timeout 45s)"
    );
    let created = format!("  + {db1}  created  ");
    d.wait_line(0, &created, T);
    assert!(
        printed_at(&d, &waiting) < printed_at(&d, &created),
        "{}",
        d.transcript()
    );
    d.wait_line(0, "Applied:", T);

    let mark = d.mark();
    let web1 = format!("{}-web-1", project.name());
    save_by_rename(&project, &format!("{SLOW_HEALTHY}\n{}", stubborn(0)));
    let waiting =
        format!("  … {web1}  stopping, waiting up to 3s for it to exit (stop_grace_period)");
    let removed = format!("  - {web1}  removed  ");
    d.wait_line(mark, &removed, T);
    assert!(
        printed_at(&d, &waiting) < printed_at(&d, &removed),
        "{}",
        d.transcript()
    );
    d.wait_until("web-1 is gone", T, || !exists(&web1));
}
