//! `muster logs` on the real engine: containers that print known lines at
//! known times; the merge order, the prefixes, `--tail`, `--since`,
//! `--timestamps` and the SERVICE filter; `-f` following a container
//! created after it started, ending with exit 0 on SIGINT, and with exit 1
//! (said once) when the engine goes away; the swarm backend's service logs.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::*;

/// A service whose container waits for the Unix second `at`, then prints
/// `NAME1`, `NAME2`, `NAME3` a second apart (the second one on stderr),
/// `offset` seconds after that second.
fn printer(name: &str, at: u64, offset: &str) -> String {
    format!(
        r#"[services.{name}]
image = "{{image}}"
command = ["sh", "-c", "while [ $(date +%s) -lt {at} ]; do sleep 0.05; done; sleep {offset}; echo {name}1; sleep 1; echo {name}2 >&2; sleep 1; echo {name}3; exec sleep 3600"]
init = true
stop_grace_period = "1s"
"#
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The lines of `muster logs ARGS` once they are `n`.
fn logs_when(project: &Project, args: &[&str], n: usize) -> Vec<String> {
    let mut out = Vec::new();
    wait_until(
        &format!("muster logs prints {n} lines"),
        Duration::from_secs(20),
        || {
            let mut all = vec!["logs"];
            all.extend_from_slice(args);
            out = muster_ok(project, &all)
                .stdout
                .lines()
                .map(str::to_string)
                .collect();
            out.len() >= n
        },
    );
    out
}

#[test]
fn merged_in_time_order_with_prefixes_tail_since_timestamps_and_services() {
    let project = Project::new("logs-merge");
    let p = project.name().to_string();
    // Far enough ahead that both containers have started on a busy machine.
    let at = now_secs() + 8;
    project.write(&format!(
        "{}\n{}",
        printer("a", at, "0"),
        printer("b", at, "0.5")
    ));
    muster_ok(&project, &["apply", "-q"]);

    let all = logs_when(&project, &[], 6);
    let (a, b) = (format!("{p}-a-1 |"), format!("{p}-b-1 |"));
    assert_eq!(
        all,
        [
            format!("{a} a1"),
            format!("{b} b1"),
            format!("{a} a2"),
            format!("{b} b2"),
            format!("{a} a3"),
            format!("{b} b3"),
        ],
        "the lines of both containers, merged by time (stderr too)"
    );

    let coloured = muster_ok(&project, &["logs", "--color", "always", "--tail", "1"]).stdout;
    assert_eq!(
        coloured,
        format!("\x1b[36m{a}\x1b[0m a3\n\x1b[33m{b}\x1b[0m b3\n"),
        "a colour per container"
    );

    let tail = muster_ok(&project, &["logs", "--tail", "1"]).stdout;
    assert_eq!(tail, format!("{a} a3\n{b} b3\n"));

    let only_b = muster_ok(&project, &["logs", "b"]).stdout;
    assert_eq!(only_b, format!("{b} b1\n{b} b2\n{b} b3\n"));

    let stamped = muster_ok(&project, &["logs", "--timestamps", "a"]).stdout;
    let stamps: Vec<i128> = stamped
        .lines()
        .map(|l| {
            let rest = l
                .strip_prefix(&format!("{a} "))
                .unwrap_or_else(|| panic!("{l}"));
            let (stamp, text) = rest.split_once(' ').unwrap();
            assert!(text.starts_with('a'), "{l}");
            rfc3339_nanos(stamp)
        })
        .collect();
    assert_eq!(stamps.len(), 3, "{stamped}");
    let gap = |i: usize| stamps[i + 1] - stamps[i];
    for i in 0..2 {
        assert!(
            (900_000_000..2_000_000_000).contains(&gap(i)),
            "a second apart: {stamped}"
        );
    }
    assert!(stamps[0] >= i128::from(at) * 1_000_000_000, "{stamped}");

    // The last line is at `at + 2.5s`; three seconds later none is within 2s.
    let quiet_from = Duration::from_secs(at + 6);
    while SystemTime::now().duration_since(UNIX_EPOCH).unwrap() < quiet_from {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(muster_ok(&project, &["logs", "--since", "2s"]).stdout, "");
    assert_eq!(
        muster_ok(&project, &["logs", "--since", "1m"])
            .stdout
            .lines()
            .count(),
        6
    );

    let unknown = muster_exits(&project, &["logs", "nope"], 64);
    assert!(unknown.stderr.contains("nope"), "{unknown}");
}

fn counting(count: u32) -> String {
    format!(
        r#"[services.web]
image = "{{image}}"
count = {count}
command = ["sh", "-c", "echo hello from $(hostname); printf 'clear \\033[2J\\n'; exec sleep 3600"]
init = true
stop_grace_period = "1s"
"#
    )
}

#[test]
fn follow_sees_a_container_created_later_and_ends_with_0_on_sigint() {
    let project = Project::new("logs-follow");
    let p = project.name().to_string();
    project.write(&counting(1));
    muster_ok(&project, &["apply", "-q"]);
    let logs = Daemon::start(&project, &["logs", "-f"]);
    logs.wait_line(
        0,
        &format!("{p}-web-1 | hello from"),
        Duration::from_secs(20),
    );

    muster_ok(&project, &["scale", "web=2", "--apply"]);
    logs.wait_line(
        0,
        &format!("{p}-web-2 | hello from"),
        Duration::from_secs(20),
    );
    assert!(logs.is_running(), "{}", logs.transcript());
    let first = logs
        .stdout()
        .iter()
        .filter(|l| l.contains("-web-1 |"))
        .count();
    assert_eq!(first, 2, "no line twice:\n{}", logs.transcript());
    let cleared = logs.wait_line(0, &format!("{p}-web-2 | clear"), Duration::from_secs(5));
    assert_eq!(
        cleared.text,
        format!("{p}-web-2 | clear \\x1b[2J"),
        "a container's control characters are masked"
    );

    logs.signal(libc::SIGINT);
    let status = logs
        .wait_exit(Duration::from_secs(10))
        .expect("logs -f ends on SIGINT");
    assert_eq!(status.code(), Some(0), "{}", logs.transcript());
}

#[test]
fn follow_ends_with_1_said_once_when_the_engine_goes_away() {
    let project = Project::new("logs-gone");
    let p = project.name().to_string();
    project.write(&counting(1));
    muster_ok(&project, &["apply", "-q"]);
    let mut proxy = Proxy::start(&project.dir().join("engine.sock"));
    let url = proxy.url();
    let logs = Daemon::start_with_env(
        &project,
        &[("DOCKER_HOST", Path::new(&url))],
        &["logs", "-f"],
    );
    logs.wait_line(
        0,
        &format!("{p}-web-1 | hello from"),
        Duration::from_secs(20),
    );

    proxy.down();
    let status = logs
        .wait_exit(Duration::from_secs(20))
        .expect("logs -f ends when the engine goes away");
    assert_eq!(status.code(), Some(1), "{}", logs.transcript());
    let errors: Vec<_> = logs.lines().into_iter().filter(|l| l.stderr).collect();
    assert_eq!(errors.len(), 1, "said once:\n{}", logs.transcript());
    assert!(
        errors[0].text.starts_with("error:"),
        "{}",
        logs.transcript()
    );
}

#[test]
fn swarm_backend_shows_each_services_logs() {
    let project = Project::new("logs-swarm");
    let p = project.name().to_string();
    project.write(
        r#"backend = "swarm"
[services.s]
image = "{image}"
count = 2
command = ["sh", "-c", "echo swarm-hello; exec sleep 3600"]
init = true
stop_grace_period = "1s"
"#,
    );
    muster_ok(&project, &["apply", "-q"]);
    let lines = logs_when(&project, &[], 2);
    assert_eq!(
        lines,
        [
            format!("{p}_s | swarm-hello"),
            format!("{p}_s | swarm-hello")
        ]
    );
}
