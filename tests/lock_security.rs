//! The project lock against a hostile or confusing host (issue 15, items 3
//! and 4), on the real engine: a holder in another PID namespace keeps its
//! lock; a container that merely has the lock's name is never removed; a
//! holder whose lock was taken over never removes the new holder's lock.

mod support;

use std::collections::HashMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use muster::engine::{LABEL_LOCK, LockHolder};
use muster::lock::LABEL_LOCK_PROJECT;
use support::{Outcome, exists, id_and_state, inspect, muster_exits, names, run_foreign};
use support::{Project, SLOW, block_on, docker};

fn lock_name(project: &Project) -> String {
    format!("{}-muster-lock", project.name())
}

fn finish(child: Child) -> Outcome {
    let output: Output = child.wait_with_output().unwrap();
    output.into()
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `muster -f services.toml apply` in the project's directory, run by
/// `wrapper` (e.g. `unshare …`) when given.
fn spawn_apply(project: &Project, wrapper: &[&str]) -> Child {
    let muster = assert_cmd::cargo::cargo_bin("muster");
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&muster);
            c
        }
        None => Command::new(&muster),
    };
    cmd.current_dir(project.dir())
        .args(["-f", "services.toml", "apply"])
        .env("NO_COLOR", "1")
        .env_remove("MUSTER_PROJECT")
        .env_remove("MUSTER_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start muster apply under {wrapper:?}: {e}"))
}

fn holder_of(name: &str) -> LockHolder {
    let labels = inspect(name)
        .config
        .and_then(|c| c.labels)
        .unwrap_or_default();
    serde_json::from_str(&labels[LABEL_LOCK]).unwrap()
}

/// Creates (never starts) a lock container as muster would, held by `holder`.
fn plant_lock(project: &Project, holder: &LockHolder) -> String {
    let body = bollard::models::ContainerCreateBody {
        image: Some(support::image().to_string()),
        labels: Some(HashMap::from([
            (
                LABEL_LOCK.to_string(),
                serde_json::to_string(holder).unwrap(),
            ),
            (LABEL_LOCK_PROJECT.to_string(), project.name().to_string()),
        ])),
        ..Default::default()
    };
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
        .name(&lock_name(project))
        .build();
    block_on(docker().create_container(Some(options), body))
        .unwrap()
        .id
}

#[test]
fn a_holder_in_another_pid_namespace_keeps_its_lock() {
    let project = Project::new("lsec-pidns");
    project.write(SLOW);
    let holder = spawn_apply(&project, &["unshare", "--pid", "--fork", "--mount-proc"]);
    let lock = lock_name(&project);
    wait_until(
        "the namespaced apply to take the lock",
        Duration::from_secs(30),
        || exists(&lock),
    );
    let recorded = holder_of(&lock);
    let here = muster::lock::me("test");
    assert_ne!(recorded.pid_ns, here.pid_ns, "{recorded:?}");
    assert_eq!(recorded.boot_id, here.boot_id);

    // Its pid means nothing in this namespace (pid 1 here is init): the
    // holder must be waited for, not taken over.
    let out = muster_exits(&project, &["apply", "--lock-timeout", "1s"], 1);
    assert!(
        out.stderr
            .contains(&format!("project {} is locked by", project.name())),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!("pid {} ", recorded.pid)),
        "{out}"
    );

    let first = finish(holder);
    assert_eq!(first.code, Some(0), "{first}");
    assert!(first.stdout.contains("Applied: 2 created"), "{first}");
    assert_eq!(project.container_names(), names(&project, "slow", 1..=2));
    assert!(
        !exists(&lock),
        "the namespaced apply did not release its lock"
    );
}

#[test]
fn a_started_or_unmarked_container_under_the_lock_name_is_never_removed() {
    let project = Project::new("lsec-forged");
    project.write(SLOW);
    let lock = lock_name(&project);
    // A holder of this host that is gone: a real lock of it would be taken over.
    let gone = LockHolder {
        pid_start: muster::lock::me("x").pid_start + 1,
        ..muster::lock::me("a forged holder")
    };
    let forged = serde_json::to_string(&gone).unwrap();
    for labels in [
        vec![(LABEL_LOCK, forged.as_str())],
        vec![
            (LABEL_LOCK, forged.as_str()),
            (LABEL_LOCK_PROJECT, project.name()),
        ],
    ] {
        let id = run_foreign(&lock, &labels);
        let out = muster_exits(&project, &["apply", "--lock-timeout", "2s"], 1);
        assert!(
            out.stderr
                .contains(&format!("container {lock} has the lock's name"))
                && out.stderr.contains("muster did not create it"),
            "{labels:?}: {out}"
        );
        assert_eq!(id_and_state(&lock), (id.clone(), "running".to_string()));
        assert!(project.containers().is_empty(), "apply went on: {out}");
        let force = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
            .force(true)
            .build();
        block_on(docker().remove_container(&id, Some(force))).unwrap();
    }
}

#[test]
fn a_holder_whose_lock_was_taken_over_does_not_release_the_new_holders_lock() {
    let project = Project::new("lsec-unlock");
    project.write(SLOW);
    let lock = lock_name(&project);
    let first = spawn_apply(&project, &[]);
    wait_until(
        "the apply to take the lock",
        Duration::from_secs(30),
        || exists(&lock),
    );
    let (old, _) = id_and_state(&lock);

    // Someone takes the lock over while the apply runs: this test process.
    let force = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    block_on(docker().remove_container(&old, Some(force))).unwrap();
    let new = plant_lock(&project, &muster::lock::me("the new holder"));

    let first = finish(first);
    assert_eq!(first.code, Some(0), "{first}");
    assert!(
        exists(&lock),
        "the first apply removed the new holder's lock:\n{first}"
    );
    assert_eq!(id_and_state(&lock).0, new);
    let force = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    block_on(docker().remove_container(&new, Some(force))).unwrap();
}
