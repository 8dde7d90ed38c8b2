//! Shared fixtures: the common service files, saves the way editors make
//! them, and bounded waits.

use std::time::{Duration, Instant};

use super::project::Project;

/// Each container becomes healthy two seconds after it starts, so an
/// apply of this file holds the lock for several seconds.
pub const SLOW: &str = r#"project = "{project}"

[services.slow]
image = "{image}"
count = 2
mode = "sequential"
command = ["sh", "-c", "sleep 2; touch /tmp/ready; exec sleep 3600"]
init = true
stop_grace_period = "1s"
ready_timeout = "30s"

[services.slow.healthcheck]
test = ["CMD", "test", "-f", "/tmp/ready"]
interval = "1s"
timeout = "1s"
retries = 30
"#;

/// `[services.NAME]`: `count` containers of `image` that sleep, stop at
/// once and run under an init process.
pub fn sleeper_service(name: &str, image: &str, count: u32) -> String {
    format!(
        r#"[services.{name}]
image = "{image}"
count = {count}
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#
    )
}

/// A file of one service, `web`: `count` sleepers of the test image.
pub fn sleepers(count: u32) -> String {
    sleeper_service("web", "{image}", count)
}

/// [`sleepers`] with `project = "{project}"` on top.
pub fn sleepers_of_project(count: u32) -> String {
    format!("project = \"{{project}}\"\n\n{}", sleepers(count))
}

/// Saves `services.toml` the way vim and most editors do: a new file in
/// the same directory, renamed over the old one.
pub fn save_by_rename(project: &Project, text: &str) {
    let tmp = project.dir().join(".services.toml.swp");
    std::fs::write(&tmp, project.fill(text)).unwrap();
    std::fs::rename(&tmp, project.file()).unwrap();
}

/// Polls `cond` every 100ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
