//! The quick start as a user runs it after `cargo install`: a copy of
//! `examples/quickstart` outside the source tree, with an installed
//! `muster` on `PATH` and no cargo there, against the real engine.

mod support;

use std::path::Path;

use support::Project;

#[test]
fn the_quick_start_runs_from_a_copy_with_an_installed_muster() {
    let project = Project::new("quick");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = project.dir();
    let above = dir.parent().unwrap();
    // The copy: up.sh and its file here, image.sh one level up, as in the
    // repository; no `project =`, so the directory names the project.
    for (from, to) in [
        ("quickstart/services.toml", dir.join("services.toml")),
        ("quickstart/up.sh", dir.join("up.sh")),
        ("image.sh", above.join("image.sh")),
    ] {
        std::fs::copy(examples.join(from), &to)
            .unwrap_or_else(|e| panic!("cannot copy {from}: {e}"));
    }
    // "Installed": a directory on PATH that holds `muster`; cargo is not
    // on this PATH, so a fall-back to `cargo run` fails.
    let bin = above.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_muster"), bin.join("muster")).unwrap();
    let path = std::env::join_paths([
        bin.as_path(),
        Path::new("/usr/local/sbin"),
        Path::new("/usr/local/bin"),
        Path::new("/usr/sbin"),
        Path::new("/usr/bin"),
        Path::new("/sbin"),
        Path::new("/bin"),
    ])
    .unwrap();

    let out = std::process::Command::new(dir.join("up.sh"))
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("MUSTER_FILE")
        .env_remove("MUSTER_PROJECT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "up.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("Plan: 6 to create") && stdout.contains("Applied: 6 created"),
        "{stdout}\n{stderr}"
    );
    let p = project.name();
    let mut running: Vec<String> = project
        .containers()
        .into_iter()
        .filter(|c| c.is_running())
        .map(|c| c.name)
        .collect();
    running.sort();
    let want: Vec<String> = [
        "ring-1",
        "ring-2",
        "ring-3",
        "sleeper-1",
        "sleeper-2",
        "sleeper-3",
    ]
    .iter()
    .map(|n| format!("{p}-{n}"))
    .collect();
    assert_eq!(running, want, "{stdout}\n{stderr}");
}
