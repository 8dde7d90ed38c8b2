//! The project lock on the real engine (SPEC section 9): concurrent applies
//! of one project take turns and converge; a second apply gives up after
//! `--lock-timeout` naming the holder; the lock of a killed apply is taken
//! over and its work finished.

mod support;

use std::process::{Child, Output};
use std::time::Duration;

use support::{
    Outcome, Project, SLOW, exists, id_and_state, lock_name, muster_exits, muster_ok,
    muster_process, names, wait_until,
};

const WEB: &str = r#"project = "{project}"

[services.web]
image = "{image}"
count = 3
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"

[services.chain]
image = "{image}"
count = 2
mode = "sequential"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#;

fn spawn(project: &Project, file: &str, args: &[&str]) -> Child {
    muster_process(project.dir())
        .args(["-f", file])
        .args(args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start muster {args:?}: {e}"))
}

fn finish(child: Child) -> Outcome {
    let output: Output = child.wait_with_output().unwrap();
    output.into()
}

#[test]
fn two_concurrent_applies_of_the_same_file_take_turns_and_both_succeed() {
    let project = Project::new("lock-same");
    project.write(WEB);
    let first = spawn(&project, "services.toml", &["apply"]);
    let second = spawn(&project, "services.toml", &["apply"]);
    let outcomes = [finish(first), finish(second)];
    for out in &outcomes {
        assert_eq!(out.code, Some(0), "{out}");
    }
    let applied = outcomes
        .iter()
        .filter(|o| o.stdout.contains("Applied: 5 created"))
        .count();
    assert_eq!(
        applied, 1,
        "exactly one apply should create the containers:\n{}\n{}",
        outcomes[0], outcomes[1]
    );

    let mut want = names(&project, "chain", 1..=2);
    want.extend(names(&project, "web", 1..=3));
    assert_eq!(project.container_names(), want);
    assert!(project.containers().iter().all(|c| c.is_running()));
    assert!(!exists(&lock_name(&project)));
    let out = muster_ok(&project, &["plan"]);
    assert!(
        out.stdout
            .contains("No changes. 2 services, 5 containers up to date."),
        "{out}"
    );
}

#[test]
fn two_concurrent_applies_of_different_files_of_one_project_both_succeed() {
    let project = Project::new("lock-files");
    project.write(WEB);
    let other = std::fs::read_to_string(project.file())
        .unwrap()
        .replace("[services.web]", "[services.api]")
        .replace("[services.chain]", "[services.queue]");
    std::fs::write(project.dir().join("other.toml"), other).unwrap();

    let first = spawn(&project, "services.toml", &["apply"]);
    let second = spawn(&project, "other.toml", &["apply"]);
    for out in [finish(first), finish(second)] {
        assert_eq!(out.code, Some(0), "{out}");
    }
    let mut want = names(&project, "api", 1..=3);
    want.extend(names(&project, "chain", 1..=2));
    want.extend(names(&project, "queue", 1..=2));
    want.extend(names(&project, "web", 1..=3));
    assert_eq!(project.container_names(), want);
    assert!(project.containers().iter().all(|c| c.is_running()));
    assert!(!exists(&lock_name(&project)));
}

#[test]
fn apply_gives_up_after_lock_timeout_naming_the_live_holder() {
    let project = Project::new("lock-held");
    project.write(SLOW);
    let holder = spawn(&project, "services.toml", &["apply"]);
    let pid = holder.id();
    wait_until(
        "the first apply to take the lock",
        Duration::from_secs(30),
        || exists(&lock_name(&project)),
    );

    let out = muster_exits(&project, &["apply", "--lock-timeout", "1s"], 1);
    assert!(
        out.stderr
            .contains(&format!("project {} is locked by", project.name())),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!("pid {pid} ")),
        "the holder's pid {pid}:\n{out}"
    );
    assert!(out.stderr.contains("apply"), "the holder's command:\n{out}");
    assert!(out.stderr.contains("--lock-timeout"), "{out}");

    let first = finish(holder);
    assert_eq!(first.code, Some(0), "{first}");
    assert_eq!(project.container_names(), names(&project, "slow", 1..=2));
    assert!(!exists(&lock_name(&project)));
}

#[test]
fn lock_of_a_killed_apply_is_taken_over_and_the_next_apply_finishes_its_work() {
    let project = Project::new("lock-killed");
    project.write(SLOW);
    let [one, two]: [String; 2] = names(&project, "slow", 1..=2).try_into().unwrap();
    let mut victim = spawn(&project, "services.toml", &["apply"]);
    // Mid-apply: slow-1 is created, and the apply waits for it to be healthy.
    wait_until("slow-1 to be created", Duration::from_secs(30), || {
        exists(&one)
    });
    victim.kill().unwrap();
    let killed = finish(victim);
    assert_eq!(killed.code, None, "killed by a signal: {killed}");
    assert!(
        exists(&lock_name(&project)),
        "the killed apply's lock is gone"
    );
    assert!(!exists(&two));

    // The lock's holder is gone: it is taken over without waiting for it.
    let out = muster_ok(&project, &["apply", "--lock-timeout", "2s"]);
    assert!(out.stdout.contains(&format!("+ {two}  create")), "{out}");
    assert_eq!(project.container_names(), [one.clone(), two.clone()]);
    assert_eq!(id_and_state(&one).1, "running");
    assert_eq!(id_and_state(&two).1, "running");
    assert!(!exists(&lock_name(&project)), "the lock was not released");
    let out = muster_ok(&project, &["plan"]);
    assert!(out.stdout.contains("No changes."), "{out}");
}

/// The lock and the record are containers of an empty image that muster
/// imports when its create finds the engine without it (a fresh or pruned
/// engine), instead of inspecting the image before every lock. The image
/// is untagged with `force` (the other tests' locks may be using it: only
/// the tag goes) and the apply must still lock, apply and record.
#[test]
fn the_lock_image_is_imported_again_when_the_engine_lacks_it() {
    use bollard::query_parameters::{RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder};
    use support::{block_on, docker};
    const LOCK_IMAGE: &str = "muster-lock:1";
    let project = Project::new("lock-image");
    project.write(WEB);
    let force = RemoveImageOptionsBuilder::default().force(true).build();
    match block_on(docker().remove_image(LOCK_IMAGE, Some(force), None)) {
        Ok(_) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => panic!("cannot untag {LOCK_IMAGE}: {e}"),
    }
    let out = muster_ok(&project, &["apply"]);
    assert!(out.stdout.contains("Applied: 5 created"), "{out}");
    assert!(
        block_on(docker().inspect_image(LOCK_IMAGE)).is_ok(),
        "{LOCK_IMAGE} should have been imported again"
    );
    assert!(!exists(&lock_name(&project)));
    // The record (a container of the same image) says what was applied:
    // a container removed outside muster is planned as missing.
    block_on(docker().remove_container(
        &format!("{}-web-3", project.name()),
        Some(RemoveContainerOptionsBuilder::default().force(true).build()),
    ))
    .unwrap();
    let out = muster_ok(&project, &["plan"]);
    assert!(out.stdout.contains("(missing)"), "{out}");
}
