//! `muster watch` as a child process whose output is collected line by
//! line, and what the daemon's tests wait for.
//!
//! Every wait here has a deadline and panics with the daemon's output when
//! it passes; nothing is asserted on timing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::engine::exists;
use super::project::Project;
use super::run::muster_binary;

/// The running containers of `project`, by ordinal, when every container
/// of it is running under its canonical name: `Some([1, 2, …])`.
pub fn running_ordinals(project: &Project) -> Option<Vec<u32>> {
    let all = project.containers();
    let mut ordinals = Vec::new();
    for c in &all {
        let o = c.ordinal()?;
        let canonical = format!("{}-{}-{o}", project.name(), c.service()?);
        if !c.is_running() || c.name != canonical {
            return None;
        }
        ordinals.push(o);
    }
    ordinals.sort_unstable();
    Some(ordinals)
}

/// Whether the project holds exactly containers 1..=n of one service, all running.
pub fn exactly_running(project: &Project, n: u32) -> bool {
    running_ordinals(project).is_some_and(|o| o == (1..=n).collect::<Vec<_>>())
}

/// The name of the project's lock container.
pub fn lock_name(project: &Project) -> String {
    format!("{}-muster-lock", project.name())
}

/// Takes the project's lock as a live muster would (this test process,
/// described as `command`): a created lock container, removed by the
/// project's cleanup.
pub fn hold_lock(project: &Project, command: &str) {
    let holder = muster::lock::me(command);
    let body = bollard::models::ContainerCreateBody {
        image: Some(super::image().to_string()),
        labels: Some(std::collections::HashMap::from([
            (
                muster::engine::LABEL_LOCK.to_string(),
                serde_json::to_string(&holder).unwrap(),
            ),
            (
                muster::lock::LABEL_LOCK_PROJECT.to_string(),
                project.name().to_string(),
            ),
        ])),
        ..Default::default()
    };
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
        .name(&lock_name(project))
        .build();
    super::block_on(super::docker().create_container(Some(options), body))
        .unwrap_or_else(|e| panic!("cannot take the lock of {}: {e}", project.name()));
}

/// Whether the project's lock is free (the daemon prints `Applied:` just
/// before it releases the lock).
pub fn lock_released(project: &Project) -> bool {
    !exists(&lock_name(project))
}

/// One line the daemon printed.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    pub stderr: bool,
    pub text: String,
}

/// `muster watch` as a child process. Stopped when dropped if it still
/// runs (SIGTERM, then SIGKILL after 10s); its output is printed then when the test is failing (or
/// always, with `MUSTER_TEST_SHOW_DAEMON` set).
pub struct Daemon {
    child: Mutex<Child>,
    pid: u32,
    project: String,
    lines: Arc<Mutex<Vec<Line>>>,
    readers: Mutex<Vec<JoinHandle<()>>>,
}

impl Daemon {
    /// `muster -f services.toml ARGS…` in the project's directory, without
    /// colour and without `MUSTER_PROJECT`; `args` include `watch` and its options.
    pub fn start(project: &Project, args: &[&str]) -> Daemon {
        Daemon::start_binary(Path::new(env!("CARGO_BIN_EXE_muster")), project, args)
    }

    /// [`Daemon::start`] with another build of muster (e.g. a release build).
    pub fn start_binary(binary: &Path, project: &Project, args: &[&str]) -> Daemon {
        Daemon::spawn(muster_binary(binary, project.dir()), project, args)
    }

    /// [`Daemon::start`] with these environment variables set.
    pub fn start_with_env(project: &Project, env: &[(&str, &Path)], args: &[&str]) -> Daemon {
        let mut cmd = muster_binary(Path::new(env!("CARGO_BIN_EXE_muster")), project.dir());
        cmd.envs(env.iter().copied());
        Daemon::spawn(cmd, project, args)
    }

    fn spawn(mut cmd: std::process::Command, project: &Project, args: &[&str]) -> Daemon {
        let mut child = cmd
            .args(["-f", "services.toml"])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot start muster watch");
        let lines: Arc<Mutex<Vec<Line>>> = Arc::default();
        let mut readers = Vec::new();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for (stream, stderr) in [
            (Box::new(out) as Box<dyn std::io::Read + Send>, false),
            (Box::new(err), true),
        ] {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for text in BufReader::new(stream).lines() {
                    let Ok(text) = text else { return };
                    lines.lock().unwrap().push(Line {
                        at: Instant::now(),
                        stderr,
                        text,
                    });
                }
            }));
        }
        Daemon {
            pid: child.id(),
            child: Mutex::new(child),
            project: project.name().to_string(),
            lines,
            readers: Mutex::new(readers),
        }
    }

    /// `muster watch --debounce 100ms --resync RESYNC`.
    pub fn watch(project: &Project, resync: &str) -> Daemon {
        Daemon::start(
            project,
            &["watch", "--debounce", "100ms", "--resync", resync],
        )
    }

    /// [`Daemon::watch`] of `n` sleepers (written to `project`'s file),
    /// returned once its first pass has them running and said `Applied:`.
    pub fn watch_sleepers(project: &Project, n: u32, resync: &str) -> Daemon {
        project.write(&super::fixtures::sleepers(n));
        let d = Daemon::watch(project, resync);
        let t = Duration::from_secs(30);
        d.wait_until(&format!("{n} sleepers run"), t, || {
            exactly_running(project, n)
        });
        d.wait_line(0, "Applied:", t);
        d
    }

    /// Asserts that no line since `mark` holds any of `words` (`what`: the
    /// mistake such a line would be).
    pub fn assert_never_said(&self, mark: usize, words: &[&str], what: &str) {
        let log: Vec<String> = self.lines_since(mark).into_iter().map(|l| l.text).collect();
        for word in words {
            assert!(
                !log.iter().any(|l| l.contains(word)),
                "{what} ({word}):\n{}",
                log.join("\n")
            );
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything printed so far, both streams.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap().clone()
    }

    /// The lines printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| !l.stderr)
            .map(|l| l.text)
            .collect()
    }

    /// How many lines were printed so far: a mark for [`Daemon::lines_since`].
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The lines printed after `mark`.
    pub fn lines_since(&self, mark: usize) -> Vec<Line> {
        self.lines.lock().unwrap()[mark..].to_vec()
    }

    /// The output so far, for failure messages: stderr lines marked `E|`.
    pub fn transcript(&self) -> String {
        self.lines()
            .iter()
            .map(|l| format!("{}{}\n", if l.stderr { "E| " } else { "O| " }, l.text))
            .collect()
    }

    /// Polls `cond` every 100ms until it holds; panics with `what` after
    /// `timeout`, or at once if the daemon exited.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if cond() {
                return;
            }
            // The daemon's output follows, printed when it is dropped.
            if let Some(status) = self.exited() {
                panic!("muster watch exited ({status}) while waiting until {what}");
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting until {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a line printed after `mark` contains `text`; that line.
    pub fn wait_line(&self, mark: usize, text: &str, timeout: Duration) -> Line {
        let lines = self.lines.clone();
        let find = || {
            lines.lock().unwrap()[mark..]
                .iter()
                .find(|l| l.text.contains(text))
                .cloned()
        };
        self.wait_until(&format!("it prints {text:?}"), timeout, || find().is_some());
        find().unwrap()
    }

    /// Whether the process still runs.
    pub fn is_running(&self) -> bool {
        self.exited().is_none()
    }

    /// The exit status once the process has exited (its output then all read).
    fn exited(&self) -> Option<ExitStatus> {
        let status = self.child.lock().unwrap().try_wait().ok().flatten()?;
        self.join_readers();
        Some(status)
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the daemon.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.pid).unwrap();
        // SAFETY: kill(2) on the pid of a child this process started and
        // has not reaped yet.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits up to `timeout` for the daemon to exit; its status, or None.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Once the process has exited: waits until its output is all read.
    fn join_readers(&self) {
        for r in self.readers.lock().unwrap().drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Stopped as a user would, so that it releases the lock; killed
        // if that does not work.
        if self.is_running() {
            self.signal(libc::SIGTERM);
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.join_readers();
        // What it published for `muster ps`; it leaves it behind.
        if let Ok(Some(dir)) = muster::runtime_dir::existing_runtime_dir() {
            let _ = std::fs::remove_file(muster::files::backoff_file(&dir, &self.project));
        }
        if std::thread::panicking() || std::env::var_os("MUSTER_TEST_SHOW_DAEMON").is_some() {
            eprintln!(
                "--- muster watch (pid {}) printed:\n{}---",
                self.pid,
                self.transcript()
            );
        }
    }
}

/// A plan header line of the text output (`project NAME on ENDPOINT`).
pub fn is_plan_header(line: &str, project: &Project) -> bool {
    line.starts_with(&format!("project {} on ", project.name()))
}
