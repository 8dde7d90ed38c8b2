//! Support for the tests of `muster watch` against a real engine: the
//! daemon as a child process whose output is collected line by line, a
//! live recorder of the engine's events for one project, saves the way
//! editors make them, and bounded waits.
//!
//! Every wait here has a deadline and panics with the daemon's output when
//! it passes; nothing is asserted on timing.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;

use crate::support::{self, Project};

/// A single-service file: `count` busybox containers that sleep, stop at
/// once and run under an init process.
pub fn sleepers(count: u32) -> String {
    format!(
        r#"[services.web]
image = "{{image}}"
count = {count}
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#
    )
}

/// `text` with the placeholders of [`Project::write`] filled in.
pub fn fill(project: &Project, text: &str) -> String {
    text.replace("{project}", project.name())
        .replace("{image}", support::image())
}

/// Saves `services.toml` the way vim and most editors do: a new file in
/// the same directory, renamed over the old one.
pub fn save_by_rename(project: &Project, text: &str) {
    let tmp = project.dir().join(".services.toml.swp");
    std::fs::write(&tmp, fill(project, text)).unwrap();
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

/// Whether the project's lock is free (the daemon prints `Applied:` just
/// before it releases the lock).
pub fn lock_released(project: &Project) -> bool {
    let lock = format!("{}-muster-lock", project.name());
    support::block_on(support::docker().inspect_container(&lock, None)).is_err()
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
        Daemon::spawn(Command::new(binary), project, args)
    }

    /// [`Daemon::start`] with these environment variables set.
    pub fn start_with_env(project: &Project, env: &[(&str, &Path)], args: &[&str]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_muster"));
        cmd.envs(env.iter().copied());
        Daemon::spawn(cmd, project, args)
    }

    fn spawn(mut cmd: Command, project: &Project, args: &[&str]) -> Daemon {
        let mut child = cmd
            .current_dir(project.dir())
            .env("NO_COLOR", "1")
            .env_remove("MUSTER_PROJECT")
            .env_remove("MUSTER_FILE")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("RUST_LOG")
            .args(["-f", "services.toml"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
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

/// One container event of a project, as the engine reported it.
#[derive(Debug, Clone)]
pub struct ContainerEvent {
    /// Nanoseconds since the epoch, on the engine's clock.
    pub time_nano: i64,
    pub action: String,
    pub name: String,
}

/// Records, live, the container events of one project from the moment it is
/// made (the subscription starts at that time, so no event is lost to the
/// race of subscribing). Not bounded by the engine's 256-event backlog.
pub struct EventRecorder {
    events: Arc<Mutex<Vec<ContainerEvent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventRecorder {
    pub fn start(project: &Project) -> EventRecorder {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let since = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
        let filters = HashMap::from([
            ("type", vec!["container".to_string()]),
            (
                "label",
                vec![format!("{}={}", support::PROJECT_LABEL, project.name())],
            ),
        ]);
        let options = EventsOptionsBuilder::default()
            .since(&since)
            .filters(&filters)
            .build();
        let events: Arc<Mutex<Vec<ContainerEvent>>> = Arc::default();
        let sink = events.clone();
        let mut stream = support::docker().events(Some(options));
        let task = support::runtime().spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let attributes = m.actor.and_then(|a| a.attributes).unwrap_or_default();
                sink.lock().unwrap().push(ContainerEvent {
                    time_nano: m.time_nano.unwrap_or_default(),
                    action: m.action.unwrap_or_default(),
                    name: attributes.get("name").cloned().unwrap_or_default(),
                });
            }
        });
        EventRecorder { events, task }
    }

    /// The events recorded so far.
    pub fn events(&self) -> Vec<ContainerEvent> {
        self.events.lock().unwrap().clone()
    }

    /// The events of container `name` with this action, in order.
    pub fn of(&self, name: &str, action: &str) -> Vec<ContainerEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.name == name && e.action == action)
            .collect()
    }
}

impl Drop for EventRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `socat` proxy in front of the real engine's socket, that a test can
/// take down and bring back: the daemon talks to the engine through it.
/// The proxy runs in its own process group, so that taking it down also
/// ends the children it forked for open connections.
pub struct Proxy {
    socket: PathBuf,
    child: Option<Child>,
}

impl Proxy {
    /// Listens on `socket`, forwarding to the engine's local socket.
    pub fn start(socket: &Path) -> Proxy {
        let mut proxy = Proxy {
            socket: socket.to_path_buf(),
            child: None,
        };
        proxy.up();
        proxy
    }

    /// The address to give muster: `unix://…`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Starts the proxy; returns once it accepts connections.
    pub fn up(&mut self) {
        use std::os::unix::process::CommandExt;
        assert!(self.child.is_none(), "the proxy is already up");
        let target = support::docker_host();
        let target = target
            .strip_prefix("unix://")
            .unwrap_or_else(|| panic!("the proxy test needs a unix:// engine, not {target}"));
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new("socat")
            .arg(format!("UNIX-LISTEN:{},fork", self.socket.display()))
            .arg(format!("UNIX-CONNECT:{target}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start socat ({e}): install it (apt-get install socat)")
            });
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_until(
            "the proxy accepts connections",
            Duration::from_secs(10),
            || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        );
    }

    /// Kills the proxy and every connection it holds open.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = i32::try_from(child.id()).unwrap();
            // SAFETY: kill(2) of the process group this proxy leads: its
            // own socat and the children it forked, nothing else.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}
