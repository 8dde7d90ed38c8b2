//! The files muster writes and reads, attacked by another local user
//! (issue 15, items 1, 2 and 10). muster runs as root here, as the
//! daemon does under systemd; the attacker's part runs as `nobody`
//! through `setpriv`. Each test performs the attack and checks that it
//! now fails safely.

mod support;

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::Project;
use support::{Daemon, Recorder};

const NOBODY: u32 = 65534;
const T: Duration = Duration::from_secs(30);

/// Runs `args` as `nobody`, without any group of root's.
fn as_nobody(args: &[&str]) {
    let status = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .status()
        .expect("cannot run setpriv (util-linux)");
    assert!(status.success(), "as nobody: {args:?} failed: {status}");
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A path in the shared temporary directory where the attacker plants
/// something; removed when the test ends, even when it fails.
struct Planted(PathBuf);

impl Planted {
    fn at(name: String) -> Planted {
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        Planted(path)
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A file that only scale touches: no engine is needed.
const WEB: &str = "# the web tier\n[services.web]\nimage = \"example/web:1\"\ncount = 1\n";

/// A root-only file outside the project, that an attacker would like
/// root to overwrite or chmod: its path, content and metadata.
struct RootOnly {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl RootOnly {
    fn new() -> RootOnly {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("preload");
        std::fs::write(&path, "root only\n").unwrap();
        chmod(&path, 0o600);
        RootOnly { _dir: dir, path }
    }

    fn assert_untouched(&self) {
        let meta = std::fs::symlink_metadata(&self.path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&self.path).unwrap(),
            "root only\n",
            "the root-only file was overwritten"
        );
        assert_eq!(
            meta.mode() & 0o7777,
            0o600,
            "the root-only file was chmodded"
        );
        assert_eq!(
            (meta.uid(), meta.gid()),
            (0, 0),
            "the root-only file was chowned"
        );
    }
}

/// Makes the project's directory writable by every user, as /tmp is.
fn world_writable(project: &Project) {
    chmod(project.dir().parent().unwrap(), 0o755);
    chmod(project.dir(), 0o1777);
}

#[test]
fn scale_in_a_directory_others_may_write_does_not_follow_planted_symlinks() {
    let project = Project::new("sec-plant");
    project.write(WEB);
    world_writable(&project);
    let target = RootOnly::new();
    // Every name a writer could be expected to use for its temporary file.
    for name in [
        ".services.toml.muster-tmp",
        ".services.toml.tmp",
        "services.toml.tmp",
        "services.toml~",
    ] {
        let link = project.dir().join(name);
        as_nobody(&["ln", "-s", s(&target.path), s(&link)]);
    }

    project.muster().args(["scale", "web=3"]).assert().success();

    target.assert_untouched();
    let meta = std::fs::symlink_metadata(project.file()).unwrap();
    assert!(
        meta.file_type().is_file(),
        "services.toml is no longer a regular file"
    );
    assert_eq!(
        std::fs::read_to_string(project.file()).unwrap(),
        WEB.replace("count = 1", "count = 3")
    );
    assert_eq!(meta.mode() & 0o777, 0o644);
}

#[test]
fn a_symlinked_services_toml_stays_a_symlink_and_its_target_gets_the_count() {
    let project = Project::new("sec-link");
    let real_dir = project.dir().join("checkout");
    std::fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("services.toml");
    std::fs::write(&real, WEB).unwrap();
    symlink("checkout/services.toml", project.file()).unwrap();

    project.muster().args(["scale", "web=3"]).assert().success();

    let meta = std::fs::symlink_metadata(project.file()).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "services.toml was replaced by a file"
    );
    assert_eq!(
        std::fs::read_link(project.file()).unwrap(),
        Path::new("checkout/services.toml")
    );
    assert_eq!(
        std::fs::read_to_string(&real).unwrap(),
        WEB.replace("count = 1", "count = 3")
    );
    let leftovers: Vec<_> = std::fs::read_dir(&real_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("services.toml")]);
}

#[test]
fn scale_by_root_keeps_the_owner_and_mode_of_the_file() {
    let project = Project::new("sec-owner");
    project.write(WEB);
    std::os::unix::fs::chown(project.file(), Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(&project.file(), 0o640);

    project.muster().args(["scale", "web=3"]).assert().success();

    let meta = std::fs::metadata(project.file()).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (NOBODY, NOBODY),
        "the owner changed"
    );
    assert_eq!(meta.mode() & 0o7777, 0o640, "the mode changed");
    assert!(
        std::fs::read_to_string(project.file())
            .unwrap()
            .contains("count = 3")
    );
}

#[test]
fn validate_refuses_a_fifo_at_once() {
    let project = Project::new("sec-fifo");
    mkfifo(&project.file());
    let started = Instant::now();
    let out = project
        .muster()
        .arg("validate")
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "validate: {stderr}");
    assert!(stderr.contains("FIFO, not a regular file"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A service whose one container was stopped: `muster ps` would show a
/// back-off for it.
fn exited_project(prefix: &str) -> Project {
    let project = Project::new(prefix);
    project.write(
        "[services.job]\nimage = \"{image}\"\ncommand = [\"sleep\", \"3600\"]\ninit = true\nstop_grace_period = \"1s\"\n",
    );
    project.muster().arg("apply").assert().success();
    let job1 = format!("{}-job-1", project.name());
    support::stop_by_hand(&job1);
    project
}

/// What the audit planted: a back-off record for every container name.
fn forged_backoff(project: &Project) -> String {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        r#"{{"{}-job-1": {{"failures": 99, "next_restart": {}}}}}"#,
        project.name(),
        unix + 3600
    )
}

/// `muster ps` with `XDG_RUNTIME_DIR` set, bounded; its output.
fn ps(project: &Project, runtime: &Path) -> String {
    let out = project
        .muster()
        .arg("ps")
        .env_remove("RUNTIME_DIRECTORY")
        .env("XDG_RUNTIME_DIR", runtime)
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "muster ps: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn ps_shows_no_back_off_planted_by_another_user() {
    let project = exited_project("sec-ps");
    let forged = forged_backoff(&project);
    // Where muster kept it before: the temporary directory.
    let old_path = Planted::at(format!("muster-{}.backoff.json", project.name()));
    as_nobody(&[
        "sh",
        "-c",
        &format!("printf '%s' '{forged}' > {}", s(&old_path.0)),
    ]);
    // A runtime directory that another user owns.
    let theirs = tempfile::tempdir().unwrap();
    chmod(theirs.path(), 0o755);
    std::os::unix::fs::chown(theirs.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    as_nobody(&[
        "mkdir",
        "-m",
        "0700",
        &format!("{}/muster", s(theirs.path())),
    ]);
    as_nobody(&[
        "sh",
        "-c",
        &format!(
            "printf '%s' '{forged}' > {}/muster/{}.backoff.json",
            s(theirs.path()),
            project.name()
        ),
    ]);
    // A world-writable one (its `muster` directory planted by the attacker).
    let open = tempfile::tempdir().unwrap();
    chmod(open.path(), 0o1777);
    as_nobody(&["mkdir", "-m", "0777", &format!("{}/muster", s(open.path()))]);
    as_nobody(&[
        "sh",
        "-c",
        &format!(
            "printf '%s' '{forged}' > {}/muster/{}.backoff.json",
            s(open.path()),
            project.name()
        ),
    ]);

    let outputs = [ps(&project, theirs.path()), ps(&project, open.path())];
    for out in outputs {
        assert!(out.contains("job-1  exited"), "{out}");
        assert!(
            !out.contains("crash-looping"),
            "a planted back-off is shown:\n{out}"
        );
    }
}

#[test]
fn ps_does_not_hang_on_a_fifo_at_the_back_off_path() {
    let project = exited_project("sec-psfifo");
    let old_path = Planted::at(format!("muster-{}.backoff.json", project.name()));
    as_nobody(&["mkfifo", s(&old_path.0)]);
    let runtime = tempfile::tempdir().unwrap();
    let dir = runtime.path().join("muster");
    std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    mkfifo(&dir.join(format!("{}.backoff.json", project.name())));

    let started = Instant::now();
    let out = ps(&project, runtime.path());
    assert!(out.contains("job-1  exited"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// A service that dies at once, again and again: the daemon publishes
/// its back-offs from the second death on.
const CRASH: &str = "[services.crash]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\nrestart = \"no\"\ninit = true\nstop_grace_period = \"1s\"\n";

/// Starts `muster watch` with `XDG_RUNTIME_DIR` set and waits until the
/// crashing container has died twice (a back-off was published or
/// refused by then).
fn crash_loop(project: &Project, runtime: &Path) -> Daemon {
    project.write(CRASH);
    let events = Recorder::start(project);
    let crash1 = format!("{}-crash-1", project.name());
    let d = Daemon::start_with_env(
        project,
        &[("XDG_RUNTIME_DIR", runtime)],
        &["watch", "--debounce", "100ms", "--resync", "1h"],
    );
    d.wait_until("the container has died twice", T, || {
        events.of(&crash1, "die").len() >= 2
    });
    // The daemon handles the second death's event.
    std::thread::sleep(Duration::from_millis(500));
    d
}

#[test]
fn the_daemon_stops_on_sigterm_with_fifos_planted_at_its_state_paths() {
    let project = Project::new("sec-wfifo");
    // Where the daemon wrote before: the temporary file of its back-off
    // file in the temporary directory.
    let old_tmp = Planted::at(format!(
        ".muster-{}.backoff.json.muster-tmp",
        project.name()
    ));
    as_nobody(&["mkfifo", s(&old_tmp.0)]);
    // And in its own runtime directory, at the back-off file itself.
    let runtime = tempfile::tempdir().unwrap();
    let dir = runtime.path().join("muster");
    std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    mkfifo(&dir.join(format!("{}.backoff.json", project.name())));

    let d = crash_loop(&project, runtime.path());
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("muster watch hangs after SIGTERM"));
    assert!(
        status.success(),
        "muster watch exited {status}:\n{}",
        d.transcript()
    );
}

#[test]
fn the_daemon_refuses_a_runtime_directory_other_users_may_write() {
    let project = Project::new("sec-wopen");
    let open = tempfile::tempdir().unwrap();
    chmod(open.path(), 0o1777);

    let d = crash_loop(&project, open.path());
    let refused = d.wait_line(0, "refusing", T);
    assert!(refused.stderr, "{}", refused.text);
    assert!(
        refused.text.contains("runtime directory") && refused.text.contains("may write"),
        "{}",
        refused.text
    );
    let left: Vec<_> = std::fs::read_dir(open.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the daemon wrote to it: {left:?}");
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(10))
        .expect("it stops on SIGTERM");
    assert!(status.success());
}

#[test]
fn the_daemon_publishes_back_offs_in_a_private_runtime_directory_for_ps() {
    let project = Project::new("sec-wok");
    let runtime = tempfile::tempdir().unwrap();

    let d = crash_loop(&project, runtime.path());
    let file = runtime
        .path()
        .join("muster")
        .join(format!("{}.backoff.json", project.name()));
    d.wait_until("the back-offs are published", T, || file.exists());
    let dir = std::fs::symlink_metadata(runtime.path().join("muster")).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    d.wait_until("muster ps shows the crash loop", T, || {
        ps(&project, runtime.path()).contains("crash-looping (")
    });
    d.signal(libc::SIGTERM);
    assert!(
        d.wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert!(!file.exists(), "the back-off file is left behind");
}
