//! `muster watch` against a real engine: what it does when the engine
//! drifts (containers removed, stopped, crashing), when the engine goes
//! away and comes back, and when it is told to stop in the middle of an
//! apply. Each test runs the daemon as a child process and asserts on the
//! engine's state, with bounded waits.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{
    Daemon, Project, Proxy, Recorder, exactly_running, hold_lock, ids, is_plan_header, lock_name,
    lock_released, remove_force, running_ordinals, sleepers,
};

const T: Duration = Duration::from_secs(30);

#[test]
fn containers_removed_or_stopped_outside_muster_come_back() {
    let project = Project::new("w-drift");
    // A resync of an hour: the repair below comes from the engine's events.
    let d = Daemon::watch_sleepers(&project, 3, "1h");
    let before = ids(&project);

    let web1 = format!("{}-web-1", project.name());
    let web2 = format!("{}-web-2", project.name());
    remove_force(&web1);
    support::stop_by_hand(&web2);

    d.wait_until("web-1 and web-2 run again", T, || {
        exactly_running(&project, 3)
    });
    let after = ids(&project);
    assert_eq!(after.len(), 3);
    assert_ne!(
        after[&web1], before[&web1],
        "web-1 was removed: a new container"
    );
    assert_eq!(
        after[&web2], before[&web2],
        "web-2 was stopped: started again"
    );
    let web3 = format!("{}-web-3", project.name());
    assert_eq!(after[&web3], before[&web3], "web-3 was left alone");
    assert!(d.is_running(), "muster watch exited:\n{}", d.transcript());
}

/// A container removed or stopped by hand is not a crash: the log says
/// what happened and what muster does about it, and nothing backs off.
#[test]
fn the_log_says_removed_or_stopped_outside_muster_and_does_not_back_off() {
    let project = Project::new("w-outside");
    let d = Daemon::watch_sleepers(&project, 2, "1h");
    let web1 = format!("{}-web-1", project.name());
    let web2 = format!("{}-web-2", project.name());

    let mark = d.mark();
    remove_force(&web1);
    d.wait_line(
        mark,
        &format!("{web1} removed outside muster; creating it again"),
        T,
    );
    d.wait_line(mark, "Applied:", T);
    d.wait_until("web-1 runs again", T, || exactly_running(&project, 2));

    let stopped = d.mark();
    support::stop_by_hand(&web2);
    d.wait_line(
        stopped,
        &format!("{web2} stopped outside muster; starting it again"),
        T,
    );
    d.wait_line(stopped, "Applied:", T);
    d.wait_until("web-2 runs again", T, || exactly_running(&project, 2));

    // The same drift again: its plan is printed again (only a crash loop's
    // same restart is not).
    let again = d.mark();
    support::stop_by_hand(&web2);
    d.wait_line(again, "Applied:", T);
    d.wait_until("web-2 runs again", T, || exactly_running(&project, 2));
    assert!(
        d.lines_since(again)
            .iter()
            .any(|l| is_plan_header(&l.text, &project)),
        "the second repair's plan was not printed:\n{}",
        d.transcript()
    );

    d.assert_never_said(
        mark,
        &["died", "back-off", "keeps failing", "crashed"],
        "a removal or stop by hand logged as a crash",
    );
    assert!(d.is_running(), "muster watch exited:\n{}", d.transcript());
}

/// muster's own removals (a `scale --apply` while the daemon runs) are not
/// drift: nothing is logged as removed outside muster or as a crash.
#[test]
fn removals_by_another_muster_are_not_drift() {
    let project = Project::new("w-own");
    let d = Daemon::watch_sleepers(&project, 3, "1h");
    let mark = d.mark();
    support::muster_ok(&project, &["scale", "web=1", "--apply"]);
    d.wait_until("1 container runs", T, || exactly_running(&project, 1));
    // The daemon's pass for the saved file, then time for any event.
    std::thread::sleep(Duration::from_secs(3));
    d.assert_never_said(
        mark,
        &[
            "outside muster",
            "died",
            "back-off",
            "crashed",
            "keeps failing",
        ],
        "muster's own removal logged as drift",
    );
    assert!(exactly_running(&project, 1), "{}", d.transcript());
}

/// A save, then at once `muster apply` in a terminal: the daemon does not
/// act on the terminal apply's stops and removals with the file it read
/// before the save (which would undo that apply for a moment); it reads
/// the save first, and finds the work done.
#[test]
fn a_save_applied_by_another_muster_is_not_undone_by_the_daemon() {
    let project = Project::new("w-saved");
    project.write(&support::sleepers_of_project(2));
    // A long debounce: the terminal apply runs well inside it.
    let d = Daemon::start(&project, &["watch", "--debounce", "2s", "--resync", "1h"]);
    d.wait_until("2 sleepers run", T, || exactly_running(&project, 2));
    d.wait_line(0, "Applied:", T);
    let mark = d.mark();
    let newer = support::sleepers_of_project(1).replace(
        "stop_grace_period",
        "env = { GENERATION = \"2\" }\nstop_grace_period",
    );
    project.write(&newer);
    support::muster_ok(&project, &["apply"]);
    let web1 = format!("{}-web-1", project.name());
    let id = support::id_and_state(&web1).0;
    d.wait_line(mark, "services.toml saved", T);
    // The daemon's pass for the save, then time for any event.
    std::thread::sleep(Duration::from_secs(3));
    d.assert_never_said(
        mark,
        &["outside muster", "back-off", "crashed"],
        "the terminal apply's stops and removals acted on with the older file",
    );
    assert_eq!(
        support::id_and_state(&web1).0,
        id,
        "web-1 was recreated:\n{}",
        d.transcript()
    );
    assert!(exactly_running(&project, 1), "{}", d.transcript());
}

/// Drift while another muster holds the lock is not said at once: that
/// muster (a `restart`, an `apply`) is the likelier cause. Once the daemon
/// has the lock, it says what happened while the holder held it, and the
/// outcome: nothing to do when the holder did the work, the repair when it
/// did not.
#[test]
fn drift_while_another_muster_holds_the_lock_is_said_with_the_holder() {
    let project = Project::new("w-already");
    let d = Daemon::watch_sleepers(&project, 1, "1h");
    d.wait_until("the lock is free", T, || lock_released(&project));
    let web1 = format!("{}-web-1", project.name());
    let pid = std::process::id();
    let held = format!("{web1} stopped while `muster restart web` (pid {pid}) held the lock");

    // The holder (this test) stops web-1 and starts it again.
    hold_lock(&project, "/usr/local/bin/muster restart web");
    let mark = d.mark();
    support::stop_by_hand(&web1);
    std::thread::sleep(Duration::from_secs(2));
    d.assert_never_said(
        mark,
        &["outside muster", "starting it again", "Plan:"],
        "drift said while another muster held the lock",
    );
    support::block_on(support::docker().start_container(&web1, None)).unwrap();
    remove_force(&lock_name(&project));
    d.wait_line(
        mark,
        &format!("{held}; no changes (already applied by pid {pid})"),
        T,
    );
    d.assert_never_said(mark, &["Applied:"], "the holder's work done again");

    // The holder lets go without starting it: the daemon does.
    d.wait_until("the lock is free", T, || lock_released(&project));
    hold_lock(&project, "/usr/local/bin/muster restart web");
    let mark = d.mark();
    support::stop_by_hand(&web1);
    std::thread::sleep(Duration::from_secs(1));
    remove_force(&lock_name(&project));
    d.wait_line(mark, &format!("{held}; starting it again"), T);
    d.wait_line(mark, "Applied: 0 created, 0 recreated, 1 started", T);
    d.assert_never_said(mark, &["outside muster"], "drift under another's lock");
    assert!(exactly_running(&project, 1));

    // The holder stops it and removes it (a `muster down`): what the
    // daemon says it does is what its plan does, a create.
    d.wait_until("the lock is free", T, || lock_released(&project));
    hold_lock(&project, "/usr/local/bin/muster down");
    let mark = d.mark();
    support::stop_by_hand(&web1);
    remove_force(&web1);
    std::thread::sleep(Duration::from_secs(1));
    remove_force(&lock_name(&project));
    let held = format!("{web1} stopped while `muster down` (pid {pid}) held the lock");
    d.wait_line(mark, &format!("{held}; creating it again"), T);
    d.wait_line(mark, "Applied: 1 created", T);
    d.assert_never_said(mark, &["starting it again"], "a create said as a start");
    assert!(exactly_running(&project, 1));
}

/// `muster restart` while the daemon runs: its stops are not drift to the
/// daemon (it waits for the lock, then finds nothing to do), so nothing is
/// said as stopped outside muster and nothing is started twice.
#[test]
fn a_restart_while_the_daemon_runs_is_not_said_as_drift() {
    let project = Project::new("w-restart");
    let d = Daemon::watch_sleepers(&project, 2, "1h");
    d.wait_until("the lock is free", T, || lock_released(&project));
    let events = Recorder::start(&project);
    let mark = d.mark();
    support::muster_ok(&project, &["restart", "web"]);
    // Time for the daemon's passes on the restart's events.
    std::thread::sleep(Duration::from_secs(3));
    d.assert_never_said(
        mark,
        &["outside muster", "starting it again", "Applied:"],
        "the restart's stops taken for drift",
    );
    for k in 1..=2 {
        let name = format!("{}-web-{k}", project.name());
        assert_eq!(
            events.of(&name, "start").len(),
            1,
            "{name} started other than by the restart:\n{}",
            d.transcript()
        );
    }
    assert!(exactly_running(&project, 2), "{}", d.transcript());
}

/// The daemon's summary shows orphans as `plan` does: "No changes" alone
/// would hide a container that the file no longer declares.
#[test]
fn the_daemon_summary_shows_orphans() {
    let project = Project::new("w-orphan");
    project.write(&format!(
        "{}{}",
        sleepers(1),
        support::sleeper_service("old", "{image}", 1)
    ));
    project.muster().arg("apply").assert().success();
    project.write(&sleepers(1));
    let d = Daemon::watch(&project, "1h");
    d.wait_line(
        0,
        "start: No changes. 1 service, 1 container up to date; \
         orphan old: 1 container (use --prune to remove)",
        T,
    );
    assert_eq!(project.containers().len(), 2, "the orphan was left alone");
}

#[test]
fn a_crashing_container_is_restarted_with_growing_delays() {
    let project = Project::new("w-crash");
    project.write(
        r#"[services.crash]
image = "{image}"
command = ["sh", "-c", "echo boom; exit 3"]
restart = "no"
init = true
stop_grace_period = "1s"
"#,
    );
    let crash1 = format!("{}-crash-1", project.name());
    let events = Recorder::start(&project);
    let d = Daemon::watch(&project, "1h");
    d.wait_until("the container has died once", T, || {
        !events.of(&crash1, "die").is_empty()
    });

    // `muster ps` meanwhile shows what the daemon published: the container
    // is held back.
    d.wait_until("muster ps shows it crash-looping", T, || {
        let out = project.muster().arg("ps").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        out.status.success()
            && text.contains("0/1 running")
            && text.contains(&format!("{crash1}  exited  crash-looping ("))
    });

    // Watch for 12 seconds from the first death: restarted after 1s, 2s, 4s, …
    let first = events.of(&crash1, "die")[0].time_nano;
    let window_end = first + 12_000_000_000;
    let started_watching = Instant::now();
    d.wait_until("12s have passed", Duration::from_secs(30), || {
        started_watching.elapsed() >= Duration::from_secs(12)
    });
    let deaths: Vec<i64> = events
        .of(&crash1, "die")
        .into_iter()
        .map(|e| e.time_nano)
        .filter(|t| *t <= window_end)
        .collect();
    assert!(
        (2..=6).contains(&deaths.len()),
        "{} deaths in 12s; a tight loop gives dozens, back-off 3 to 5:\n{}",
        deaths.len(),
        d.transcript()
    );
    let gaps: Vec<f64> = deaths
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1e9)
        .collect();
    // Each restart waits at least its back-off (1s, 2s, 4s, …); the work of a
    // pass comes on top, and varies on a loaded machine, so the bound is
    // from below, and growth is checked from the first gap to the last.
    for (i, gap) in gaps.iter().enumerate() {
        let floor = f64::from(1u32 << i) - 0.05;
        assert!(
            *gap >= floor,
            "restart {} came after {gap:.2}s, before its back-off of {floor:.0}s: {gaps:?}",
            i + 2
        );
    }
    assert!(
        gaps.len() < 2 || gaps[gaps.len() - 1] > gaps[0],
        "the delays between restarts do not grow: {gaps:?}"
    );
    assert!(
        d.transcript().contains(&format!("{crash1} keeps failing")),
        "no back-off reported:\n{}",
        d.transcript()
    );
    let transcript = d.transcript();
    assert!(
        transcript.contains(&format!("{crash1} crashed")) && transcript.contains("| boom"),
        "the crash's last output is not in the log:\n{transcript}"
    );
    // At each failure, not once: every death in the window but the first
    // (which the first apply's own error shows) has its lines.
    let told = transcript.matches(&format!("{crash1} crashed")).count();
    assert!(
        told + 1 >= deaths.len(),
        "{told} crashes told of {} deaths:\n{transcript}",
        deaths.len()
    );
    let plans = transcript
        .lines()
        .filter(|l| support::is_plan_header(l, &project))
        .count();
    assert!(
        plans <= 2,
        "the same plan printed at each restart ({plans} times):\n{transcript}"
    );
    assert!(d.is_running(), "muster watch exited:\n{}", d.transcript());
}

/// The daemon tells its own changes from drift by container id, not by
/// name, so a replacement that dies within seconds of its recreate is
/// restarted at once, not at the next resync (here: an hour).
#[test]
fn a_replacement_that_dies_soon_after_a_recreate_is_restarted() {
    let project = Project::new("w-recrash");
    let d = Daemon::watch_sleepers(&project, 1, "1h");
    let web1 = format!("{}-web-1", project.name());
    let events = Recorder::start(&project);

    // Ready (running) when the recreate checks, dead two seconds later.
    support::save_by_rename(
        &project,
        r#"[services.web]
image = "{image}"
command = ["sh", "-c", "sleep 2; exit 3"]
init = true
stop_grace_period = "1s"
"#,
    );
    d.wait_until("the replacement has died", T, || {
        events.of(&web1, "die").len() >= 2
    });
    d.wait_until("the replacement is started again", T, || {
        events.of(&web1, "start").len() >= 2
    });
}

#[test]
fn the_engine_going_away_and_back_is_survived_and_drift_meanwhile_repaired() {
    let project = Project::new("w-reconnect");
    project.write(&sleepers(2));
    let socket = project.dir().parent().unwrap().join("engine.sock");
    let mut proxy = Proxy::start(&socket);
    let url = proxy.url();
    let d = Daemon::start(
        &project,
        &[
            "--host",
            &url,
            "watch",
            "--debounce",
            "100ms",
            "--resync",
            "1h",
        ],
    );
    d.wait_until("2 containers run", T, || exactly_running(&project, 2));
    d.wait_line(0, "Applied:", T);
    let mark = d.mark();

    proxy.down();
    d.wait_line(mark, "lost the engine", T);
    // Drift while muster cannot see the engine: no event will tell it.
    let web1 = format!("{}-web-1", project.name());
    remove_force(&web1);
    proxy.up();

    d.wait_until(
        "web-1 is recreated once the engine is back",
        Duration::from_secs(60),
        || exactly_running(&project, 2),
    );
    let after: Vec<String> = d.lines_since(mark).into_iter().map(|l| l.text).collect();
    assert!(
        after
            .iter()
            .any(|l| l.contains(&format!("connected to {url}"))),
        "no reconnection logged:\n{}",
        d.transcript()
    );
    assert!(
        after.iter().any(|l| l.contains("engine is back")),
        "no resync logged after the reconnection:\n{}",
        d.transcript()
    );
    assert!(d.is_running(), "muster watch exited:\n{}", d.transcript());
}

#[test]
fn sigterm_during_a_long_apply_exits_0_and_leaves_a_state_apply_completes() {
    let project = Project::new("w-term");
    let file = |count: u32| {
        format!(
            r#"[services.seq]
image = "{{image}}"
count = {count}
mode = "sequential"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#
        )
    };
    project.write(&file(0));
    let d = Daemon::watch(&project, "1h");
    d.wait_line(0, "start: No changes. 1 service, 0 containers", T);

    support::save_by_rename(&project, &file(30));
    d.wait_until("3 containers exist", T, || project.containers().len() >= 3);
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running 20s after SIGTERM:\n{}", d.transcript()));
    assert_eq!(status.code(), Some(0), "{}", d.transcript());

    // Consistent: ordinals 1..k, each once, under its own name, running.
    let containers = project.containers();
    let ordinals = running_ordinals(&project)
        .unwrap_or_else(|| panic!("a container is not running or misnamed: {containers:#?}"));
    let k = ordinals.len() as u32;
    assert_eq!(ordinals, (1..=k).collect::<Vec<_>>(), "{containers:#?}");
    assert!(
        k < 30,
        "the apply was not interrupted: all 30 containers were created:\n{}",
        d.transcript()
    );
    assert!(!containers.iter().any(|c| c.name.ends_with("-next")));
    let unique: BTreeSet<u32> = containers.iter().filter_map(|c| c.ordinal()).collect();
    assert_eq!(unique.len(), containers.len(), "duplicate ordinals");
    // The lock was released.
    assert!(
        support::lock_released(&project),
        "the lock is still held after the daemon exited"
    );

    let plan = project
        .muster()
        .args(["plan", "--detailed-exitcode"])
        .assert()
        .code(2);
    let text = String::from_utf8_lossy(&plan.get_output().stdout).to_string();
    assert!(
        text.contains(&format!(
            "Plan: {} to create, 0 to recreate, 0 to start, 0 to remove.",
            30 - k
        )),
        "{text}"
    );
    project
        .muster()
        .args(["apply", "--lock-timeout", "1s"])
        .assert()
        .success();
    assert!(exactly_running(&project, 30));
    project
        .muster()
        .args(["plan", "--detailed-exitcode"])
        .assert()
        .code(0);
}

/// While a pass waits for the project's lock (up to `--lock-timeout`, 60s
/// by default), SIGTERM still ends the daemon promptly.
#[test]
fn sigterm_while_waiting_for_the_lock_exits_promptly() {
    let project = Project::new("w-lockwait");
    project.write(&sleepers(1));
    let d = Daemon::watch(&project, "1h");
    d.wait_until("1 container runs", T, || exactly_running(&project, 1));
    d.wait_until("the initial apply has released the lock", T, || {
        support::lock_released(&project)
    });

    // Another muster (this test process, alive on this host) holds the lock.
    let lock = lock_name(&project);
    hold_lock(&project, "a test holding the lock");

    let mark = d.mark();
    support::save_by_rename(&project, &sleepers(2));
    d.wait_line(mark, "services.toml saved", T);
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(10));
    remove_force(&lock);
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 10s after SIGTERM, waiting for the lock:\n{}",
            d.transcript()
        )
    });
    assert_eq!(status.code(), Some(0), "{}", d.transcript());
    assert!(
        exactly_running(&project, 1),
        "the pass went on after SIGTERM"
    );
}

#[test]
fn started_without_an_engine_it_applies_once_the_engine_answers() {
    let project = Project::new("w-noengine");
    project.write(&sleepers(1));
    let socket = project.dir().parent().unwrap().join("engine.sock");
    let mut proxy = Proxy::start(&socket);
    proxy.down();
    let url = proxy.url();
    let d = Daemon::start(
        &project,
        &[
            "--host",
            &url,
            "watch",
            "--debounce",
            "100ms",
            "--resync",
            "1h",
        ],
    );
    let line = d.wait_line(0, "retrying in", T);
    assert!(line.stderr && line.text.contains(" error: "), "{line:?}");
    assert!(d.is_running(), "an engine that does not answer is fatal");

    proxy.up();
    d.wait_until(
        "the file is applied once the engine answers",
        Duration::from_secs(60),
        || exactly_running(&project, 1),
    );
}

/// A container's back-off holds back its restarts only: the recreate that a
/// fixed file asks for does not wait out the back-off (up to 5 minutes).
#[test]
fn a_fixed_file_replaces_a_crash_looping_container_without_waiting_out_its_back_off() {
    let project = Project::new("w-fix");
    let crashing = r#"[services.web]
image = "{image}"
command = ["sh", "-c", "exit 3"]
init = true
stop_grace_period = "1s"
"#;
    project.write(crashing);
    let web1 = format!("{}-web-1", project.name());
    let d = Daemon::watch(&project, "1h");
    // 1s + 2s + 4s + 8s of back-off; the next restart is in 16s.
    d.wait_line(
        0,
        &format!("{web1} keeps failing (5 times in a row)"),
        Duration::from_secs(60),
    );

    let mark = d.mark();
    support::save_by_rename(&project, &sleepers(1));
    d.wait_line(mark, "services.toml saved", T);
    d.wait_until(
        "the fixed container runs, well before the 16s back-off is over",
        Duration::from_secs(8),
        || exactly_running(&project, 1),
    );
}
