//! `muster watch` against a real engine: what it does when the file is
//! saved (by rename, in place, in a burst, broken), on SIGHUP, and what it
//! prints with `--output json`. Each test runs the daemon as a child
//! process and asserts on the engine's state, with bounded waits.

mod support;

use std::time::Duration;

use bollard::query_parameters::RenameContainerOptionsBuilder;
use support::{
    Daemon, Project, exactly_running, is_plan_header, lock_released, record_events, save_by_rename,
    sleepers,
};

const T: Duration = Duration::from_secs(30);

#[test]
fn saves_by_rename_and_in_place_are_both_applied() {
    let project = Project::new("w-save");
    project.write(&sleepers(1));
    // A resync of an hour: every change below comes from a file event.
    let d = Daemon::watch(&project, "1h");
    d.wait_until("1 container runs after the initial apply", T, || {
        exactly_running(&project, 1)
    });

    // A save that changes nothing is no pass: only the next one is.
    let mark = d.mark();
    save_by_rename(&project, &sleepers(1));
    std::thread::sleep(Duration::from_millis(500)); // > --debounce, to keep the saves apart
    save_by_rename(&project, &sleepers(3));
    d.wait_until("3 containers run after a save by rename", T, || {
        exactly_running(&project, 3)
    });
    let saved = d
        .lines_since(mark)
        .iter()
        .filter(|l| l.text.ends_with(" services.toml saved"))
        .count();
    assert_eq!(
        saved,
        1,
        "an unchanged save made a pass:\n{}",
        d.transcript()
    );

    // Truncate and write, as editors that save in place do.
    project.write(&sleepers(2));
    d.wait_until("ordinals 1 and 2 remain after a save in place", T, || {
        exactly_running(&project, 2)
    });
    assert!(d.is_running(), "muster watch exited:\n{}", d.transcript());
}

#[test]
fn invalid_saves_are_reported_and_change_nothing() {
    let project = Project::new("w-invalid");
    let d = Daemon::watch_sleepers(&project, 2, "3s");
    d.wait_until("the initial apply has released the lock", T, || {
        lock_released(&project)
    });
    let ids_before: Vec<String> = project.containers().into_iter().map(|c| c.id).collect();

    let events = record_events(&project, || {
        let mark = d.mark();
        save_by_rename(&project, "[services.web\nimage = \"x\"\n");
        let line = d.wait_line(mark, "services.toml:1:14", T);
        assert!(line.stderr && line.text.starts_with("error: "), "{line:?}");

        // An editor that truncates before writing: the file is empty for a while.
        let mark = d.mark();
        project.write("");
        let line = d.wait_line(mark, "services.toml:1:1:", T);
        assert!(line.stderr && line.text.starts_with("error: "), "{line:?}");
        assert!(line.text.contains("declares no service"), "{line:?}");

        // A resync while the file is invalid keeps the last good configuration.
        d.wait_line(mark, "resync: No changes. 1 service, 2 containers", T);

        // Deleted (some editors delete, then write anew).
        let mark = d.mark();
        std::fs::remove_file(project.file()).unwrap();
        let line = d.wait_line(mark, "cannot read services.toml", T);
        assert!(line.stderr && line.text.contains(" error: "), "{line:?}");
    });
    assert_eq!(
        events,
        Vec::<String>::new(),
        "the engine changed while the file was invalid"
    );
    let ids_after: Vec<String> = project.containers().into_iter().map(|c| c.id).collect();
    assert_eq!(ids_before, ids_after);
    assert!(d.is_running(), "muster watch exited:\n{}", d.transcript());
    let out = d.transcript();
    assert!(out.contains("keeping the last good configuration"), "{out}");

    save_by_rename(&project, &sleepers(3));
    d.wait_until("the next valid save is applied", T, || {
        exactly_running(&project, 3)
    });
}

#[test]
fn a_burst_of_saves_is_applied_once_or_twice_ending_in_the_last_content() {
    let project = Project::new("w-burst");
    let d = Daemon::watch_sleepers(&project, 1, "1h");

    let mark = d.mark();
    for n in 1..=20 {
        save_by_rename(&project, &sleepers(n));
    }
    save_by_rename(&project, &sleepers(2));

    d.wait_until(
        "the last save (count 2) is in force",
        Duration::from_secs(90),
        || exactly_running(&project, 2),
    );
    // Settled: every plan it printed since the burst has been applied.
    d.wait_until("every plan is applied", T, || {
        let lines = d.lines_since(mark);
        let plans = lines
            .iter()
            .filter(|l| is_plan_header(&l.text, &project))
            .count();
        let applied = lines
            .iter()
            .filter(|l| l.text.contains(" Applied: "))
            .count();
        plans > 0 && plans == applied
    });
    // A fresh pass plans nothing: it ended in the last content.
    let hup = d.mark();
    d.signal(libc::SIGHUP);
    d.wait_line(hup, "SIGHUP: No changes. 1 service, 2 containers", T);

    let plans = d
        .lines_since(mark)
        .iter()
        .filter(|l| is_plan_header(&l.text, &project))
        .count();
    assert!(
        (1..=2).contains(&plans),
        "21 saves in a burst gave {plans} plans:\n{}",
        d.transcript()
    );
    assert!(exactly_running(&project, 2));
}

#[test]
fn json_output_is_one_object_per_line_with_time_and_event() {
    let project = Project::new("w-json");
    project.write(&sleepers(1));
    let d = Daemon::start(
        &project,
        &[
            "watch",
            "--debounce",
            "100ms",
            "--resync",
            "2s",
            "--output",
            "json",
        ],
    );
    d.wait_until("1 container runs", T, || exactly_running(&project, 1));
    save_by_rename(&project, &sleepers(2));
    d.wait_until("2 containers run", T, || exactly_running(&project, 2));
    let mark = d.mark();
    project.write("[services.web]\ncount = \"two\"\n");
    d.wait_line(mark, "\"invalid_file\"", T);
    let mark = d.mark();
    let web1 = format!("{}-web-1", project.name());
    support::remove_force(&web1);
    d.wait_line(mark, "\"step\"", T);
    d.wait_until("web-1 is back", T, || exactly_running(&project, 2));
    let mark = d.mark();
    d.wait_line(mark, "resync", T);
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(T)
        .expect("muster watch did not exit on SIGTERM");
    assert!(status.success(), "{status}\n{}", d.transcript());

    let mut kinds = std::collections::BTreeSet::new();
    for line in d.stdout() {
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", d.transcript()));
        let o = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        let time = o.get("time").and_then(|t| t.as_str());
        assert!(
            time.is_some_and(|t| t.len() == 24 && t.ends_with('Z')),
            "no RFC 3339 \"time\": {line}"
        );
        let event = o.get("event").and_then(|e| e.as_str());
        kinds.insert(
            event
                .unwrap_or_else(|| panic!("no \"event\": {line}"))
                .to_string(),
        );
        if event == Some("plan") {
            assert_eq!(o["plan"]["format_version"], 1, "{line}");
            assert_eq!(o["plan"]["project"], project.name(), "{line}");
        }
        if event == Some("invalid_file") {
            let problems = o["problems"].as_array().expect("\"problems\" is an array");
            assert!(
                problems
                    .iter()
                    .any(|p| p["line"] == 2 && p["column"].is_u64()),
                "no problem located on line 2: {line}"
            );
        }
    }
    for kind in ["log", "plan", "step", "invalid_file"] {
        assert!(
            kinds.contains(kind),
            "no {kind:?} event in:\n{}",
            d.transcript()
        );
    }
}

#[test]
fn sighup_runs_a_pass_that_repairs_drift_no_event_reports() {
    let project = Project::new("w-hup");
    // A resync of an hour: only SIGHUP can make it look again.
    let d = Daemon::watch_sleepers(&project, 1, "1h");

    let mark = d.mark();
    d.signal(libc::SIGHUP);
    d.wait_line(mark, "SIGHUP: No changes. 1 service, 1 container", T);

    // A rename is drift that the daemon does not subscribe to: the
    // container no longer holds its ordinal's name.
    let web1 = format!("{}-web-1", project.name());
    let moved = format!("{}-web-1-moved", project.name());
    let mark = d.mark();
    let options = RenameContainerOptionsBuilder::default()
        .name(&moved)
        .build();
    support::block_on(support::docker().rename_container(&web1, options)).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_until("the SIGHUP pass puts web-1 back", T, || {
        exactly_running(&project, 1)
    });
    let lines = d.lines_since(mark);
    let hup = lines.iter().position(|l| l.text.ends_with(" SIGHUP"));
    let plan = lines.iter().position(|l| is_plan_header(&l.text, &project));
    assert!(
        hup.is_some() && plan.is_some() && hup < plan,
        "the plan does not follow the SIGHUP line:\n{}",
        d.transcript()
    );
}

#[test]
fn starting_without_a_file_claims_no_last_good_configuration() {
    let project = Project::new("w-start-nofile");
    let d = Daemon::watch(&project, "1h");
    let line = d.wait_line(0, "cannot read services.toml: no services.toml in", T);
    assert!(
        line.text.ends_with("; no valid configuration yet"),
        "{line:?}"
    );
    d.wait_line(0, "no valid configuration yet; waiting for a valid save", T);
    assert!(!d.transcript().contains("last good"), "{}", d.transcript());
    save_by_rename(&project, &sleepers(1));
    d.wait_until("the first save is applied", T, || {
        exactly_running(&project, 1)
    });
}

#[test]
fn starting_with_an_invalid_file_waits_for_a_valid_save() {
    let project = Project::new("w-start-invalid");
    project.write("[services.web]\nimage = \"{image}\"\ncount = -1\n");
    let d = Daemon::watch(&project, "1h");
    let line = d.wait_line(0, "services.toml:3:9", T);
    assert!(line.stderr && line.text.starts_with("error: "), "{line:?}");
    d.wait_line(0, "no valid configuration yet", T);
    assert!(project.containers().is_empty());
    assert!(
        !d.transcript().contains("last good"),
        "claims a last good configuration it never had:\n{}",
        d.transcript()
    );

    save_by_rename(&project, &sleepers(2));
    d.wait_until("the first valid save is applied", T, || {
        exactly_running(&project, 2)
    });
}

/// A `services.toml` that is a symlink, as a deployment lays it out
/// (`services.toml -> current/services.toml`, `current -> releases/N`): a
/// save of the target is applied, and a release swapped under the path,
/// which no file event tells, is read again on SIGHUP.
#[test]
fn a_symlinked_file_is_followed_and_a_swapped_release_is_read_on_sighup() {
    let project = Project::new("w-link");
    let dir = project.dir();
    for (release, count) in [("1", 1), ("2", 2)] {
        std::fs::create_dir_all(dir.join("releases").join(release)).unwrap();
        std::fs::write(
            dir.join("releases").join(release).join("services.toml"),
            project.fill(&support::sleepers_of_project(count)),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("releases/1", dir.join("current")).unwrap();
    std::os::unix::fs::symlink("current/services.toml", project.file()).unwrap();
    let d = Daemon::watch(&project, "1h");
    d.wait_until("1 container runs", T, || exactly_running(&project, 1));

    // The target saved in place, in its own directory.
    std::fs::write(
        dir.join("releases/1/services.toml"),
        project.fill(&support::sleepers_of_project(3)),
    )
    .unwrap();
    d.wait_until("the saved target is applied: 3 run", T, || {
        exactly_running(&project, 3)
    });

    // `current` swapped to release 2 by rename: no event names the file.
    std::os::unix::fs::symlink("releases/2", dir.join("current.new")).unwrap();
    std::fs::rename(dir.join("current.new"), dir.join("current")).unwrap();
    let mark = d.mark();
    d.signal(libc::SIGHUP);
    d.wait_line(mark, "SIGHUP", T);
    d.wait_until("release 2 is applied on SIGHUP: 2 run", T, || {
        exactly_running(&project, 2)
    });
}

/// A save that renames the project: the daemon applies the new project
/// and says once that the old one's containers are left as they are.
#[test]
fn a_renamed_project_is_said_and_the_old_one_left_as_it_is() {
    let project = Project::new("w-rename");
    let d = Daemon::watch_sleepers(&project, 1, "1h");
    let old = project.name().to_string();
    let new = format!("{old}-b");
    let mark = d.mark();
    save_by_rename(&project, &format!("project = \"{new}\"\n{}", sleepers(1)));
    d.wait_line(
        mark,
        &format!("the project is now {new} (was {old}): the containers of {old} are left as they are; `muster --project {old} down` removes them"),
        T,
    );
    d.wait_until("the new project's web-1 runs", T, || {
        support::exists(&format!("{new}-web-1")) && support::exists(&format!("{old}-web-1"))
    });
}
