//! Dry runs are dry (SPEC sections 5 and 9), on the real engine: `plan`,
//! `apply --dry-run`, `validate`, `ps` and `scale` without `--apply` cause
//! no engine event at all, whatever state the project is in: empty, up to
//! date, a scale-up or a config change pending, an orphan, a stopped
//! container, a leftover temporary container of a killed start-first
//! update, a stale lock of a killed process (which they neither take nor
//! clear). The engine's event stream is followed live during the calls.
//! (`safety_engine.rs` covers `plan` and `apply --dry-run` on an empty
//! project, an up-to-date one and a pending change; this extends it to the
//! other commands and states.)

mod support;

use std::os::unix::process::ExitStatusExt;

use support::{
    Project, block_on, docker, exists, id_and_state, ids, lock_name, muster_exits, muster_ok,
    record_events,
};

const FILE: &str = r#"project = "{project}"

[services.web]
image = "{image}"
count = COUNT
command = ["sleep", "3600"]
env = { V = "VALUE" }
init = true
stop_grace_period = "1s"

[services.web.update]
order = "start-first"
"#;

const OLD: &str = r#"
[services.old]
image = "{image}"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#;

fn write(project: &Project, count: u32, value: &str, old: bool) {
    let mut text = FILE
        .replace("COUNT", &count.to_string())
        .replace("VALUE", value);
    if old {
        text.push_str(OLD);
    }
    project.write(&text);
}

fn lock_id(project: &Project) -> Option<String> {
    let lock = lock_name(project);
    exists(&lock).then(|| id_and_state(&lock).0)
}

/// Runs every read-only command in the project's current state: each must
/// exit as expected, and together they must cause no engine event, leave
/// the containers and the lock as they were, and the file as it was.
/// `changes`: whether a plan has changes, without and with `--prune`.
fn assert_dry(project: &Project, state: &str, changes: bool, with_prune: bool) {
    let code = |c: bool| if c { 2 } else { 0 };
    let runs: [(&[&str], i32); 10] = [
        (&["plan"], 0),
        (&["plan", "--detailed-exitcode"], code(changes)),
        (
            &["plan", "--prune", "--detailed-exitcode"],
            code(with_prune),
        ),
        (&["plan", "--output", "json"], 0),
        (
            &["apply", "--dry-run", "--detailed-exitcode"],
            code(changes),
        ),
        (
            &["apply", "--dry-run", "--prune", "--detailed-exitcode"],
            code(with_prune),
        ),
        (&["validate"], 0),
        (&["ps"], 0),
        (&["ps", "--output", "json"], 0),
        (&["scale", "web=7"], 0),
    ];
    let file = std::fs::read_to_string(project.file()).unwrap();
    let before = (ids(project), lock_id(project));
    let events = record_events(project, || {
        for (args, code) in runs {
            let out = muster_exits(project, args, code);
            assert!(!support::shows_a_panic(&out.stderr), "{state}: {out}");
            // `scale` without `--apply` rewrites the file only.
            std::fs::write(project.file(), &file).unwrap();
        }
    });
    assert!(
        events.is_empty(),
        "{state}: a read-only command caused engine events: {events:#?}"
    );
    assert_eq!((ids(project), lock_id(project)), before, "{state}");
}

#[test]
fn read_only_commands_cause_no_engine_event_in_any_state_of_a_project() {
    let project = Project::new("dry");
    let p = project.name().to_string();

    write(&project, 2, "a", true);
    assert_dry(&project, "empty", true, true);
    assert!(project.networks().is_empty());

    muster_ok(&project, &["apply"]);
    assert_dry(&project, "up to date", false, false);

    write(&project, 3, "a", true);
    assert_dry(&project, "scale-up pending", true, true);

    write(&project, 2, "b", true);
    assert_dry(&project, "config change pending", true, true);

    write(&project, 2, "a", false);
    assert_dry(&project, "orphan", false, true);

    write(&project, 2, "a", true);
    let stop = bollard::query_parameters::StopContainerOptionsBuilder::default()
        .t(1)
        .build();
    block_on(docker().stop_container(&format!("{p}-web-1"), Some(stop))).unwrap();
    assert_dry(&project, "a stopped container", true, true);
    muster_ok(&project, &["apply"]);

    // A start-first update killed right after it created the replacement:
    // the replacement is left under its temporary name, and the lock of
    // the dead process with it.
    write(&project, 2, "b", true);
    let killed = project
        .muster()
        .env("MUSTER_FAULT_ABORT_AFTER", "1")
        .arg("apply")
        .output()
        .unwrap();
    assert_eq!(killed.status.signal(), Some(libc::SIGABRT), "{killed:?}");
    let next = format!("{p}-web-1-next");
    assert!(exists(&next), "no leftover {next}");
    assert!(lock_id(&project).is_some(), "the killed apply left no lock");
    assert_dry(
        &project,
        "a leftover -next container and a stale lock",
        true,
        true,
    );
    assert!(exists(&next));

    // The same stale lock, with the project otherwise up to date.
    let lock = lock_id(&project).unwrap();
    let rename = bollard::query_parameters::RenameContainerOptionsBuilder::default()
        .name(&format!("{p}-kept-lock"))
        .build();
    block_on(docker().rename_container(&lock, rename)).unwrap();
    muster_ok(&project, &["apply"]);
    let back = bollard::query_parameters::RenameContainerOptionsBuilder::default()
        .name(&format!("{p}-muster-lock"))
        .build();
    block_on(docker().rename_container(&lock, back)).unwrap();
    assert!(!exists(&next));
    assert_dry(&project, "a stale lock", false, false);
    assert_eq!(lock_id(&project), Some(lock));

    // The next apply takes the stale lock over, and releases it.
    muster_ok(&project, &["apply", "--lock-timeout", "5s"]);
    assert_eq!(lock_id(&project), None);
}
