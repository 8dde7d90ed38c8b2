//! A long apply shows a progress bar on a terminal, and none elsewhere.

mod support;

use support::{Project, sleepers};

#[test]
fn a_long_apply_shows_a_progress_bar_on_a_terminal_only() {
    support::image();
    let project = Project::new("bar");
    project.write(&sleepers(12));
    let bin = assert_cmd::cargo::cargo_bin("muster");
    // `script` gives muster a terminal for stdout and stderr.
    let line = format!("{} -f services.toml apply", bin.display());
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .current_dir(project.dir())
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1")
        .env_remove("MUSTER_FILE")
        .env_remove("MUSTER_PROJECT")
        .output()
        .expect("script (util-linux) is needed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("/12"),
        "no progress bar on a terminal:\n{text}"
    );
    assert_eq!(project.container_names().len(), 12);

    // Not a terminal: step lines only, no bar.
    project.write(&sleepers(0));
    let out = project.muster().arg("apply").output().unwrap();
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("/12"),
        "a progress bar outside a terminal:\n{all}"
    );
    assert_eq!(all.matches("  removed  ").count(), 12, "{all}");
}
