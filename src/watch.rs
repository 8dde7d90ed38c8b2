//! The daemon: apply, then re-plan on every save, on engine drift, on a
//! timer and on SIGHUP. Each pass runs the same pipeline as `muster apply`.
//! Does file, engine and signal I/O.
//!
//! # Guarantees
//! - An invalid file is reported and ignored: the last good configuration
//!   stays in force and nothing on the engine changes because of it.
//! - Every pass observes the engine and plans afresh under the lock, from
//!   the newest file: a stale plan is never applied. Triggers that arrive
//!   during an apply are coalesced into one pass when it ends.
//! - A container that keeps dying is restarted with growing delays (1s
//!   doubling to 5m; reset after it ran 10 minutes).
//! - The engine going away is logged; muster reconnects with back-off and
//!   resyncs. Only a failure to start (no file watch) is fatal.
//! - SIGINT/SIGTERM: the steps in flight finish, the lock is released, exit 0.
//! - Idle, it waits on its sources: no polling loop.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use notify::Watcher;
use tokio::sync::mpsc;

use crate::apply::{self, ApplyError, Reporter};
use crate::cli::exit;
use crate::config::{self, Desired};
use crate::engine::docker::DockerEngine;
use crate::engine::{Engine, Event};
use crate::lock;
use crate::plan::{self, Action, Change, Plan};
use crate::render::{self, Printer};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub file: PathBuf,
    pub project: Option<String>,
    pub host: Option<String>,
    pub debounce: Duration,
    pub resync: Duration,
    pub parallel: usize,
    pub lock_timeout: Duration,
    pub prune: bool,
    pub json: bool,
}

enum Msg {
    File,
    Event(Event),
    EngineLost(String),
    Hup,
    Stop(&'static str),
}

/// Restart back-off of one container.
#[derive(Debug, Clone)]
struct Backoff {
    failures: u32,
    /// Not restarted before this.
    until: Instant,
    /// A pass is owed when `until` comes.
    due: bool,
}

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// Where the daemon tells `muster ps` which containers are backing off,
/// in the [runtime directory](crate::runtime_dir) `dir`.
pub fn backoff_file(dir: &Path, project: &str) -> PathBuf {
    dir.join(format!("{project}.backoff.json"))
}

/// One container's back-off, as `muster ps` reads it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackoffRecord {
    pub failures: u32,
    /// Unix seconds of the next restart.
    pub next_restart: u64,
}

/// The back-offs the daemon published for `project`, if any.
pub fn read_backoffs(project: &str) -> BTreeMap<String, BackoffRecord> {
    crate::runtime_dir::existing_runtime_dir()
        .ok()
        .flatten()
        .and_then(|dir| crate::safe_file::read_private(&backoff_file(&dir, project), 1 << 20).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The delay after `failures` failures in a row: 1s, 2s, 4s, … 5m.
pub fn backoff_delay(failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1).min(16))
        .unwrap_or(u32::MAX);
    (BACKOFF_FIRST * factor).min(BACKOFF_MAX)
}

struct Daemon<'p> {
    s: Settings,
    printer: &'p Printer,
    tx: mpsc::UnboundedSender<Msg>,
    stop: Arc<AtomicBool>,
    engine: Option<DockerEngine>,
    /// The project whose events are followed.
    events_for: Option<String>,
    last_good: Option<Desired>,
    /// Hash of the file's content at the last load, valid or not.
    seen: Option<u64>,
    /// When muster last started each container, and its back-off.
    started: BTreeMap<String, Instant>,
    backoff: BTreeMap<String, Backoff>,
    /// Ids of containers muster itself removes or replaces: their events
    /// are ours (by id: a replacement of the same name that dies is not).
    ours: BTreeMap<String, Instant>,
    reconnect_delay: Duration,
    next_reconnect: Option<Instant>,
    /// The task that forwards engine events.
    events_task: Option<tokio::task::JoinHandle<()>>,
    /// Where back-offs are published, when the runtime directory is safe.
    backoffs_dir: Option<PathBuf>,
    state: crate::runtime_dir::StateWriter,
}

/// Runs the daemon until SIGINT or SIGTERM.
///
/// # Errors
/// Only when it cannot start: the file's directory cannot be watched, or
/// signals cannot be handled.
pub async fn run(s: Settings, printer: &Printer) -> Result<u8, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _watcher = watch_file(&s.file, tx.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signals(tx.clone(), stop.clone())?;
    let mut d = Daemon {
        s,
        printer,
        tx,
        stop,
        engine: None,
        events_for: None,
        last_good: None,
        seen: None,
        started: BTreeMap::new(),
        backoff: BTreeMap::new(),
        ours: BTreeMap::new(),
        reconnect_delay: Duration::from_secs(1),
        next_reconnect: Some(Instant::now()),
        events_task: None,
        backoffs_dir: None,
        state: crate::runtime_dir::StateWriter::start(),
    };
    d.log_line(&format!("watching {}", d.s.file.display()), false);
    match crate::runtime_dir::runtime_dir() {
        Ok(dir) => d.backoffs_dir = Some(dir),
        Err(e) => d.log_error(&format!("back-offs will not be shown by `muster ps`: {e}")),
    }
    d.reload_file();
    d.connect().await;
    let mut reasons: Vec<String> = vec!["start".into()];
    let mut file_due: Option<Instant> = None;
    let mut next_resync = Instant::now() + d.s.resync;
    'main: loop {
        if !reasons.is_empty() {
            let why = std::mem::take(&mut reasons);
            d.pass(&why).await;
            next_resync = Instant::now() + d.s.resync;
            if d.stop.load(Ordering::SeqCst) {
                d.log_line("stopping; containers keep running", false);
                break;
            }
        }
        let wake = [
            Some(next_resync),
            file_due,
            d.next_reconnect,
            d.backoff.values().filter(|b| b.due).map(|b| b.until).min(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(next_resync);
        let msg = tokio::select! {
            m = rx.recv() => m,
            () = tokio::time::sleep_until(wake.into()) => None,
        };
        let now = Instant::now();
        match msg {
            Some(Msg::File) => file_due = Some(now + d.s.debounce),
            Some(Msg::Event(e)) => {
                if let Some(why) = d.on_event(&e) {
                    reasons.push(why);
                }
            }
            Some(Msg::EngineLost(why)) => d.lost(&why),
            Some(Msg::Hup) => reasons.push("SIGHUP".into()),
            Some(Msg::Stop(sig)) => {
                d.log_line(&format!("{sig}: stopping; containers keep running"), false);
                break;
            }
            None => {}
        }
        if file_due.is_some_and(|t| t <= now) {
            file_due = None;
            if d.reload_file() {
                reasons.push(format!("{} saved", file_name(&d.s.file)));
            }
        }
        if d.next_reconnect.is_some_and(|t| t <= now) && d.connect().await {
            reasons.push("engine is back".into());
        }
        if now >= next_resync {
            reasons.push("resync".into());
        }
        for (name, b) in &mut d.backoff {
            if b.due && b.until <= now {
                b.due = false;
                reasons.push(format!("{name} back-off over"));
            }
        }
        // Drain what queued meanwhile so that one pass covers it.
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::File => file_due = Some(Instant::now() + d.s.debounce),
                Msg::Event(e) => {
                    if let Some(why) = d.on_event(&e) {
                        reasons.push(why);
                    }
                }
                Msg::EngineLost(why) => d.lost(&why),
                Msg::Hup => reasons.push("SIGHUP".into()),
                Msg::Stop(sig) => {
                    d.log_line(&format!("{sig}: stopping; containers keep running"), false);
                    break 'main;
                }
            }
        }
    }
    if let (Some(project), Some(dir)) = (&d.events_for, &d.backoffs_dir) {
        d.state.put(backoff_file(dir, project), None);
    }
    d.state.flush(Duration::from_secs(2)).await;
    if let Some(task) = d.events_task.take() {
        task.abort();
    }
    Ok(exit::OK)
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().to_string(),
    )
}

fn watch_file(
    file: &Path,
    tx: mpsc::UnboundedSender<Msg>,
) -> Result<notify::RecommendedWatcher, String> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir =
        std::path::absolute(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && !event.kind.is_access()
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()))
        {
            let _ = tx.send(Msg::File);
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    // The directory, not the file: editors save by renaming a new file over it.
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    Ok(watcher)
}

fn spawn_signals(tx: mpsc::UnboundedSender<Msg>, stop: Arc<AtomicBool>) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = term.recv() => Msg::Stop("SIGTERM"),
                _ = int.recv() => Msg::Stop("SIGINT"),
                _ = hup.recv() => Msg::Hup,
            };
            if matches!(msg, Msg::Stop(_)) {
                stop.store(true, Ordering::SeqCst);
            }
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// UTC time as `2026-11-28T12:00:00.123Z`.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

impl Daemon<'_> {
    fn json_line(&self, value: serde_json::Value) {
        let mut v = value;
        if let Some(o) = v.as_object_mut() {
            o.insert("time".into(), timestamp().into());
        }
        self.printer.out(&format!("{v}\n"));
    }

    /// A timestamped line; `change` lines are printed even with `-q`.
    fn log_line(&self, text: &str, change: bool) {
        if self.s.json {
            self.json_line(serde_json::json!({"event": "log", "message": text}));
        } else if change || !self.printer.quiet {
            self.printer.out(&format!("{} {text}\n", timestamp()));
        }
    }

    fn log_error(&self, text: &str) {
        if self.s.json {
            self.json_line(serde_json::json!({"event": "error", "message": text}));
        } else {
            self.printer.err(&format!("{} error: {text}", timestamp()));
        }
    }

    /// Reads the file; true when its content changed since the last read
    /// and it is valid (it is then the configuration in force).
    fn reload_file(&mut self) -> bool {
        let bytes = match config::read_capped(&self.s.file) {
            Ok(b) => b,
            Err(e) => {
                let h = Some(u64::MAX);
                if self.seen != h {
                    self.seen = h;
                    self.log_error(&format!(
                        "cannot read {}: {e}; keeping the last good configuration",
                        self.s.file.display()
                    ));
                }
                return false;
            }
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let h = Some(hasher.finish());
        if self.seen == h {
            return false;
        }
        self.seen = h;
        let dir = self
            .s
            .file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        match config::parse_bytes(&self.s.file.display().to_string(), &bytes, &dir) {
            Ok(mut desired) => {
                if let Some(p) = &self.s.project {
                    desired.project = p.clone();
                }
                if desired.backend == config::Backend::Swarm {
                    self.log_error("backend = \"swarm\" is not supported yet; keeping the last good configuration");
                    return false;
                }
                self.last_good = Some(desired);
                true
            }
            Err(invalid) => {
                if self.s.json {
                    let problems: Vec<serde_json::Value> = invalid
                        .problems
                        .iter()
                        .map(|p| {
                            let (line, col) = invalid.line_col(p.span.as_ref().map_or(0, |s| s.start));
                            serde_json::json!({"code": p.code, "message": p.message, "line": line, "column": col, "help": p.help})
                        })
                        .collect();
                    self.json_line(serde_json::json!({"event": "invalid_file", "file": invalid.path, "problems": problems}));
                } else {
                    self.log_error(&format!(
                        "{} is invalid; keeping the last good configuration, changing nothing",
                        self.s.file.display()
                    ));
                    self.printer.err(&invalid.render_plain());
                }
                false
            }
        }
    }

    /// Connects if not connected; true when a new connection was made.
    async fn connect(&mut self) -> bool {
        if self.engine.is_some() {
            self.next_reconnect = None;
            return false;
        }
        match DockerEngine::connect(self.s.host.as_deref()).await {
            Ok(engine) => {
                self.log_line(&format!("connected to {}", engine.endpoint()), false);
                self.engine = Some(engine);
                self.events_for = None;
                self.follow_events();
                self.reconnect_delay = Duration::from_secs(1);
                self.next_reconnect = None;
                true
            }
            Err(e) => {
                self.log_error(&format!(
                    "{e}; retrying in {}s",
                    self.reconnect_delay.as_secs()
                ));
                self.next_reconnect = Some(Instant::now() + self.reconnect_delay);
                self.reconnect_delay = (self.reconnect_delay * 2).min(Duration::from_secs(30));
                false
            }
        }
    }

    fn lost(&mut self, why: &str) {
        if self.engine.take().is_some() {
            self.log_error(&format!("lost the engine: {why}"));
            self.events_for = None;
            self.next_reconnect = Some(Instant::now() + Duration::from_millis(500));
        }
    }

    /// Subscribes to the project's container events (again, when the project changed).
    fn follow_events(&mut self) {
        let (Some(engine), Some(desired)) = (&self.engine, &self.last_good) else {
            return;
        };
        if self.events_for.as_deref() == Some(desired.project.as_str()) {
            return;
        }
        self.events_for = Some(desired.project.clone());
        let mut stream = engine.events(&desired.project);
        let tx = self.tx.clone();
        let project = desired.project.clone();
        if let Some(old) = self.events_task.take() {
            old.abort();
        }
        self.events_task = Some(tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let msg = match item {
                    Ok(e) => Msg::Event(e),
                    Err(e) => Msg::EngineLost(e.to_string()),
                };
                let lost = matches!(msg, Msg::EngineLost(_));
                if tx.send(msg).is_err() || lost {
                    return;
                }
            }
            let _ = tx.send(Msg::EngineLost(format!(
                "the event stream of {project} ended"
            )));
        }));
    }

    /// What an engine event means: a reason to run a pass, or nothing.
    fn on_event(&mut self, e: &Event) -> Option<String> {
        let now = Instant::now();
        self.ours
            .retain(|_, t| now.duration_since(*t) < Duration::from_secs(10));
        if self.ours.contains_key(&e.id) {
            return None;
        }
        let what = match (e.action.as_str(), e.exit_code) {
            ("die", Some(code)) => format!("{} died (exit {code})", e.container),
            ("die", None) => format!("{} died", e.container),
            ("destroy", _) => format!("{} was removed", e.container),
            ("oom", _) => format!("{} ran out of memory", e.container),
            ("stop", _) => format!("{} was stopped", e.container),
            ("kill", _) => return None, // a die follows
            (a, _) if a.starts_with("health_status") => {
                if a.contains("unhealthy") {
                    format!("{} became unhealthy", e.container)
                } else {
                    return None;
                }
            }
            (a, _) => format!("{} {a}", e.container),
        };
        if e.action == "die" {
            let ran_long = self
                .started
                .get(&e.container)
                .is_none_or(|t| now.duration_since(*t) >= BACKOFF_RESET);
            let b = self.backoff.entry(e.container.clone()).or_insert(Backoff {
                failures: 0,
                until: now,
                due: false,
            });
            b.failures = if ran_long { 1 } else { b.failures + 1 };
            let (failures, delay) = (b.failures, backoff_delay(b.failures));
            b.until = now + delay;
            b.due = true;
            self.publish_backoffs();
            if failures > 1 {
                self.log_line(
                    &format!(
                        "{} keeps failing ({failures} times in a row); next restart in {}",
                        e.container,
                        config::format_duration(delay)
                    ),
                    true,
                );
            }
        }
        Some(what)
    }

    /// Writes the back-offs for `muster ps` (best effort).
    fn publish_backoffs(&self) {
        let (Some(project), Some(dir)) = (&self.events_for, &self.backoffs_dir) else {
            return;
        };
        let now = Instant::now();
        let unix = crate::engine::now_secs();
        let records: BTreeMap<&String, BackoffRecord> = self
            .backoff
            .iter()
            .filter(|(_, b)| b.failures > 1)
            .map(|(name, b)| {
                let left = b.until.saturating_duration_since(now).as_secs();
                (
                    name,
                    BackoffRecord {
                        failures: b.failures,
                        next_restart: unix + left,
                    },
                )
            })
            .collect();
        // Written off the event loop: no file can hang the daemon.
        let text = serde_json::to_vec(&records)
            .ok()
            .filter(|_| !records.is_empty());
        self.state.put(backoff_file(dir, project), text);
    }

    /// Takes out the changes to containers that are backing off; their names.
    fn hold_back(&self, plan: &mut Plan) -> Vec<String> {
        let now = Instant::now();
        let mut held = Vec::new();
        for sp in &mut plan.services {
            sp.changes.retain(|c| {
                // A recreate (new config or image) is not held back.
                let wait = matches!(c.action, Action::Start | Action::Create)
                    && self
                        .backoff
                        .get(&c.container)
                        .is_some_and(|b| b.until > now);
                if wait {
                    held.push(c.container.clone());
                }
                !wait
            });
        }
        held
    }

    /// One pass of the pipeline: load, observe, plan, print, apply.
    async fn pass(&mut self, reasons: &[String]) {
        let Some(desired) = self.last_good.clone() else {
            self.log_line(
                "no valid configuration yet; waiting for a valid save",
                false,
            );
            return;
        };
        self.follow_events();
        let Some(engine) = self.engine.clone() else {
            return;
        };
        let images = desired.images();
        let why = reasons.join(", ");
        // A first look without the lock: an idle pass takes no lock.
        let first = match engine.observe(&desired.project, &images).await {
            Ok(a) => a,
            Err(e) => return self.engine_failed(&e.to_string(), e.kind),
        };
        let mut quick = plan::plan(&desired, &first, self.s.prune);
        let held = self.hold_back(&mut quick);
        if quick.is_empty() {
            if held.is_empty() {
                self.log_line(&format!("{why}: {}", render::summary_line(&quick)), false);
            } else {
                self.log_line(
                    &format!("{why}: {} waits out its back-off", held.join(", ")),
                    true,
                );
            }
            return;
        }
        self.log_line(&why, true);
        let me = lock::me(&format!("muster watch -f {}", self.s.file.display()));
        let stop = Some(self.stop.as_ref());
        if let Err(e) =
            lock::acquire(&engine, &desired.project, &me, self.s.lock_timeout, stop).await
        {
            if matches!(e, lock::LockError::Stopped) {
                return;
            }
            return self.log_error(&e.to_string());
        }
        let result = self.apply_locked(&engine, &desired, &images).await;
        if let Err(e) = engine.unlock(&desired.project).await {
            self.log_error(&e.to_string());
        }
        match result {
            Ok(()) => {}
            Err(ApplyError::Interrupted) => self.log_line("interrupted between two steps", true),
            Err(ApplyError::Engine(e)) => self.engine_failed(&e.to_string(), e.kind),
            Err(e) => {
                let text = render::error_text(&crate::commands::Error::Apply(e), false);
                self.log_error(text.trim_start_matches("error: "));
            }
        }
    }

    fn engine_failed(&mut self, text: &str, kind: crate::engine::ErrorKind) {
        self.log_error(text);
        if kind == crate::engine::ErrorKind::Unreachable {
            self.lost(text);
        }
    }

    async fn apply_locked(
        &mut self,
        engine: &DockerEngine,
        desired: &Desired,
        images: &[String],
    ) -> Result<(), ApplyError> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(ApplyError::Interrupted);
        }
        let actual = engine.observe(&desired.project, images).await?;
        let mut plan = plan::plan(desired, &actual, self.s.prune);
        self.hold_back(&mut plan);
        if plan.is_empty() {
            return Ok(());
        }
        if self.s.json {
            self.json_line(serde_json::json!({"event": "plan", "plan": render::plan_json(&plan)}));
        } else {
            self.printer.out(&render::plan_text(
                &plan,
                &engine.endpoint(),
                self.printer.color_out(),
            ));
        }
        let leaving: Vec<String> = plan
            .changes()
            .filter(|c| matches!(c.action, Action::Remove | Action::Recreate))
            .filter_map(|c| actual.containers.iter().find(|a| a.name == c.container))
            .map(|a| a.id.clone())
            .collect();
        for id in &leaving {
            // Kept until 10s after the apply ends (see below).
            self.ours
                .insert(id.clone(), Instant::now() + Duration::from_secs(86_400));
        }
        for c in plan.changes().filter(|c| c.action == Action::Recreate) {
            // A new config or image deserves a fresh start.
            self.backoff.remove(&c.container);
        }
        let options = apply::Options {
            stop: Some(self.stop.clone()),
            ..apply::Options::new(self.s.parallel)
        };
        let reporter = WatchReporter {
            printer: self.printer,
            json: self.s.json,
        };
        let result = apply::apply(engine, desired, &plan, &options, &reporter).await;
        let done = Instant::now();
        for c in plan.changes() {
            if matches!(c.action, Action::Create | Action::Recreate | Action::Start) {
                self.started.insert(c.container.clone(), done);
            }
        }
        // Events of what we removed or replaced may still arrive: they are ours.
        for id in leaving {
            self.ours.insert(id, done);
        }
        if result.is_ok() && !self.s.json {
            self.printer.out(&format!(
                "{} Applied: {}\n",
                timestamp(),
                render::applied_line(&plan)
            ));
        }
        result
    }
}

struct WatchReporter<'p> {
    printer: &'p Printer,
    json: bool,
}

impl Reporter for WatchReporter<'_> {
    fn step(&self, change: &Change, elapsed: Duration, result: &Result<(), ApplyError>) {
        if self.json {
            let v = serde_json::json!({
                "time": timestamp(),
                "event": "step",
                "container": change.container,
                "action": change.action,
                "seconds": elapsed.as_secs_f64(),
                "error": result.as_ref().err().map(ToString::to_string),
            });
            self.printer.out(&format!("{v}\n"));
        } else {
            self.printer.out(&format!(
                "{}\n",
                render::step_line(change, elapsed, result, self.printer.color_out())
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_five_minutes() {
        let delays: Vec<u64> = (1..=11).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff_delay(1000), BACKOFF_MAX);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
}
