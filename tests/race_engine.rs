//! Races on the real engine (SPEC section 9): several `apply` processes
//! with different files and a `watch` daemon change one project at once.
//! The lock serialises them: every process ends cleanly, no observation
//! ever shows two containers holding one ordinal or a container under a
//! name that is not muster's, and the last apply to run wins. (Two applies
//! of one file, and the take-over of a killed apply's lock, are in
//! `lock_engine.rs`.)

mod support;

use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::{
    Daemon, Outcome, Project, converged_problems, desired_of, muster_process, transient_problems,
};

const FILE: &str = r#"[services.web]
image = "{image}"
count = WEB
command = ["sleep", "3600"]
env = { V = "VALUE" }
init = true
stop_grace_period = "1s"

[services.db]
image = "{image}"
count = DB
mode = "sequential"
command = ["sleep", "3600"]
env = { V = "VALUE" }
init = true
stop_grace_period = "1s"
"#;

fn file(project: &Project, web: u32, db: u32, value: &str) -> String {
    project.fill(
        &FILE
            .replace("WEB", &web.to_string())
            .replace("DB", &db.to_string())
            .replace("VALUE", value),
    )
}

/// `muster -f services.toml --project P apply ARGS…` in `dir`, in the background.
fn apply_in(dir: &Path, project: &Project, args: &[&str]) -> Child {
    muster_process(dir)
        .args(["-f", "services.toml", "--project", project.name(), "apply"])
        .args(args)
        .spawn()
        .unwrap()
}

#[test]
fn concurrent_applies_of_different_files_and_a_daemon_take_turns_and_the_last_apply_wins() {
    let project = Project::new("race");
    let p = project.name().to_string();
    // The daemon's file, and the one the last apply runs.
    std::fs::write(project.file(), file(&project, 4, 2, "last")).unwrap();
    let d = Daemon::start(
        &project,
        &[
            "--project",
            &p,
            "watch",
            "--debounce",
            "100ms",
            "--resync",
            "1h",
            "--lock-timeout",
            "120s",
        ],
    );
    let last = desired_of(&project.file(), &project);
    d.wait_until(
        "the daemon has applied its file",
        Duration::from_secs(60),
        || converged_problems(&project, &last).is_empty(),
    );

    // Other files of the same project, each in a directory of its own.
    let root = project.dir().parent().unwrap().to_path_buf();
    let others = [("a", 2, 1), ("b", 6, 3), ("c", 3, 2)];
    for (name, web, db) in others {
        std::fs::create_dir(root.join(name)).unwrap();
        std::fs::write(
            root.join(name).join("services.toml"),
            file(&project, web, db, name),
        )
        .unwrap();
    }

    // Watches the project all along.
    let stop = AtomicBool::new(false);
    let (observations, problems) = std::thread::scope(|scope| {
        let observer = scope.spawn(|| {
            let mut seen = Vec::new();
            let mut observations = 0;
            while !stop.load(Ordering::SeqCst) {
                let containers = project.containers();
                for c in containers.iter().filter(|c| c.name.ends_with("-next")) {
                    seen.push(format!("{} (stop-first updates only)", c.name));
                }
                seen.extend(transient_problems(&project, &containers));
                observations += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (observations, seen)
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            race(&project, &root, &others, &d, &last)
        }));
        stop.store(true, Ordering::SeqCst);
        let observed = observer.join().unwrap();
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
        observed
    });
    assert!(
        problems.is_empty(),
        "seen during the race ({observations} observations):\n{problems:#?}"
    );
    eprintln!("{observations} observations of the project during the race");
    project
        .muster()
        .args(["--project", &p, "plan", "--detailed-exitcode"])
        .assert()
        .code(0);
    assert!(!support::shows_a_panic(&d.transcript()));
    // The daemon ends cleanly too.
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running 30s after SIGTERM:\n{}", d.transcript()));
    assert_eq!(status.code(), Some(0), "{}", d.transcript());
    assert!(support::lock_released(&project));
}

/// Three applies of the other files at once (one with a short lock
/// timeout), then the last one, of the daemon's file.
fn race(
    project: &Project,
    root: &Path,
    others: &[(&str, u32, u32)],
    d: &Daemon,
    last: &muster::config::Desired,
) {
    let p = project.name();
    let children: Vec<(&str, Child)> = others
        .iter()
        .map(|(name, ..)| {
            let timeout = if *name == "c" { "1s" } else { "120s" };
            (
                *name,
                apply_in(&root.join(name), project, &["--lock-timeout", timeout]),
            )
        })
        .collect();
    for (name, child) in children {
        let out = Outcome::from(child.wait_with_output().unwrap());
        match out.code {
            Some(0) => {}
            Some(1) if name == "c" => assert!(
                out.stderr.contains(&format!("project {p} is locked by"))
                    && out.stderr.contains("(pid "),
                "{name}: a lock timeout must name the holder:\n{out}"
            ),
            _ => panic!("the apply of {name}/services.toml did not end cleanly:\n{out}"),
        }
        assert!(!support::shows_a_panic(&out.stderr), "{name}: {out}");
    }

    let out = Outcome::from(
        apply_in(project.dir(), project, &["--lock-timeout", "120s"])
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(out.code, Some(0), "the last apply:\n{out}");
    d.wait_until(
        "the engine matches the last file",
        Duration::from_secs(60),
        || converged_problems(project, last).is_empty(),
    );
}
