//! `muster exec SERVICE[-N] -- CMD…` on the real engine: output on both
//! streams, the command's exit code, stdin forwarded, and a pseudo-terminal
//! (sized like the local one, which is restored afterwards) when muster
//! runs on a terminal.

mod support;

use support::{Outcome, Project, muster_exits, muster_ok, on_a_terminal, sleeper_service};

/// A project with two running sleepers, `web-1` and `web-2`.
fn two_sleepers(prefix: &str) -> Project {
    let project = Project::new(prefix);
    project.write(&format!(
        "project = \"{{project}}\"\n{}",
        sleeper_service("web", "{image}", 2)
    ));
    muster_ok(&project, &["apply"]);
    project
}

#[test]
fn exec_runs_a_command_in_a_container_and_exits_with_its_code() {
    let project = two_sleepers("exec");
    let out = muster_exits(
        &project,
        &[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        3,
    );
    assert_eq!(out.stdout, "out\n", "{out}");
    assert!(out.stderr.contains("err"), "{out}");
    // SERVICE-N: that container (muster names its host SERVICE-N).
    let out = muster_ok(&project, &["exec", "web-2", "--", "hostname"]);
    assert_eq!(out.stdout, "web-2\n", "{out}");
    let out = muster_ok(&project, &["exec", "web", "--", "hostname"]);
    assert_eq!(out.stdout, "web-1\n", "{out}");
    muster_exits(&project, &["exec", "nope", "--", "true"], 64);
    let out = muster_exits(&project, &["exec", "web-0", "--", "true"], 64);
    assert!(out.stderr.contains("ordinals start at 1"), "{out}");
}

#[test]
fn exec_forwards_piped_stdin_and_closes_it_at_its_end() {
    let project = two_sleepers("exec-stdin");
    // `cat` ends only when its stdin is closed; then the exit code comes through.
    let out: Outcome = project
        .muster()
        .args(["exec", "web-2", "--", "sh", "-c", "cat; exit 5"])
        .write_stdin("hi\nthere\n")
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, Some(5), "{out}");
    assert_eq!(out.stdout, "hi\nthere\n", "{out}");
    // More stdin than the command reads (like `yes | … head`): its output and
    // exit code still come through.
    let out: Outcome = project
        .muster()
        .args(["exec", "web", "--", "head", "-c", "4"])
        .write_stdin("y\n".repeat(4 << 20))
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, "y\ny\n", "{out}");
    // Not on a terminal: no pseudo-terminal.
    let out = muster_exits(&project, &["exec", "web", "--", "tty"], 1);
    assert_eq!(out.stdout, "not a tty\n", "{out}");
}

#[test]
fn exec_on_a_terminal_runs_on_a_pseudo_terminal_and_restores_the_local_one() {
    let project = two_sleepers("exec-tty");
    let out = on_a_terminal(&project, "muster exec web -- sh -c 'tty; exit 4'");
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stdout.contains("/dev/pts/"), "{out}");

    // -T: no pseudo-terminal, even on a terminal.
    let out = on_a_terminal(&project, "muster exec -T web -- tty");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("not a tty"), "{out}");

    // The container's terminal gets the local one's size (it starts at
    // 0 0 and is resized once the command runs, so wait for it).
    let out = on_a_terminal(
        &project,
        "stty cols 123 rows 45; muster exec web -- timeout 60 sh -c \
         'until [ \"$(stty size)\" = \"45 123\" ]; do sleep 0.1; done; echo sized'",
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("sized"), "{out}");

    // The local terminal leaves raw mode after the command, and after an
    // error too (web-9 does not exist).
    let out = on_a_terminal(
        &project,
        "muster exec web -- true; stty -a; muster exec web-9 -- true; stty -a",
    );
    let modes: Vec<&str> = out
        .stdout
        .split_whitespace()
        .filter(|w| w.trim_start_matches('-') == "icanon")
        .collect();
    assert_eq!(modes, ["icanon", "icanon"], "{out}");
    assert!(out.stdout.contains("web-9"), "{out}");
}
