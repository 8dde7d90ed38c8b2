//! The daemon: apply, then run the pipeline again on every save, on engine
//! drift, on a timer and on SIGHUP. Each pass is [`reconcile::pass`], the
//! pipeline of `muster apply`; what drift means is decided by the pure
//! [`crate::backoff`]. Does file, engine and signal I/O.
//!
//! # Guarantees
//! - An invalid file is reported and ignored: the last good configuration
//!   stays in force and nothing on the engine changes because of it.
//! - Every pass observes the engine and plans afresh under the lock, from
//!   the newest file: a stale plan is never applied. Triggers that arrive
//!   during an apply are coalesced into one pass when it ends.
//! - Missing images are pulled before anything changes; a pull that fails
//!   is reported and the pass changes nothing.
//! - A container that keeps dying is restarted with growing delays (1s
//!   doubling to 5m; reset after it ran 10 minutes).
//! - The engine going away is logged; muster reconnects with back-off and
//!   resyncs. Only a failure to start (no file watch) is fatal.
//! - SIGINT/SIGTERM: the steps in flight finish, the lock is released, exit 0.
//! - Idle, it waits on its sources: no polling loop.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use notify::Watcher;
use tokio::sync::mpsc;

use crate::apply::{ApplyError, Reporter};
use crate::backoff::{Decision, Drift};
use crate::config::{self, Backend as BackendKind, Desired};
use crate::engine::{self, Actual, Backend, Endpoint, ErrorKind, Event, LockHolder};
use crate::error::Error;
use crate::output::Printer;
use crate::plan::{Action, Change, Plan};
use crate::reconcile::{self, Observer, Outcome};
use crate::render;
use crate::waiting::Waiting;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The files (`-f`, `--env-file`) and `--project`, as every command
    /// reads them.
    pub sources: config::Sources,
    /// `--backend`: overrides the file's.
    pub backend: Option<BackendKind>,
    pub debounce: Duration,
    pub resync: Duration,
    pub parallel: usize,
    pub lock_timeout: Duration,
    pub prune: bool,
    pub json: bool,
    /// `--listen`: serve the status page, the API and the metrics there.
    pub listen: Option<crate::web::Listen>,
}

/// How the daemon reaches its backend, at start and after the engine went
/// away. The CLI connects to a real engine; tests hand in a memory engine.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// Where it connects, for messages.
    fn address(&self) -> String;
    async fn connect(&self, kind: BackendKind) -> engine::Result<Arc<dyn Backend>>;
}

/// Connects to the engine at `--host`/`DOCKER_HOST`.
pub struct EngineConnector(pub Option<String>);

#[async_trait::async_trait]
impl Connector for EngineConnector {
    fn address(&self) -> String {
        self.0.clone().unwrap_or_else(|| "the Docker engine".into())
    }

    async fn connect(&self, kind: BackendKind) -> engine::Result<Arc<dyn Backend>> {
        engine::connect(kind, self.0.as_deref()).await
    }
}

/// Why a pass runs: what happened, and what the pass does about it when it
/// finds something to do (`web-1 removed outside muster; creating it again`).
#[derive(Debug, Clone)]
struct Trigger {
    /// What happened (`web-1 removed`, `services.toml saved`).
    why: String,
    /// Set for a unit stopped or removed by someone else.
    then: Option<&'static str>,
    /// That unit.
    unit: Option<String>,
}

impl From<String> for Trigger {
    fn from(why: String) -> Self {
        Trigger {
            why,
            then: None,
            unit: None,
        }
    }
}

impl From<&str> for Trigger {
    fn from(why: &str) -> Self {
        why.to_string().into()
    }
}

impl Trigger {
    /// What happened. A unit stopped or removed (`then` is set) is said to
    /// be so "outside muster", unless another muster held the lock
    /// meanwhile: that muster (a `restart`, an `apply`) is the likelier
    /// cause.
    fn reason(&self, held: Option<&LockHolder>) -> String {
        match (self.then, held) {
            (Some(_), Some(holder)) => {
                format!("{} while {} held the lock", self.why, holder_text(holder))
            }
            (Some(_), None) => format!("{} outside muster", self.why),
            (None, _) => self.why.clone(),
        }
    }

    /// The line before the plan: the trigger and what is done about it,
    /// as the pass's `plan` (when known) does it: another muster that held
    /// the lock meanwhile may have done it, or more (a `down`: create, not
    /// start).
    fn announced(&self, held: Option<&LockHolder>, plan: Option<&Plan>) -> String {
        let then = match (self.then, plan, &self.unit) {
            (Some(_), Some(plan), Some(unit)) => Some(
                match plan.changes().find(|c| &c.unit == unit).map(|c| c.action) {
                    Some(Action::Create) => "creating it again",
                    Some(Action::Start) => "starting it again",
                    Some(Action::Recreate | Action::Update | Action::Scale) => "replacing it",
                    Some(Action::Remove) => "removing it",
                    None => "it is as the file says",
                },
            ),
            (then, _, _) => then,
        };
        match then {
            Some(then) => format!("{}; {then}", self.reason(held)),
            None => self.reason(held),
        }
    }
}

/// Another muster holding the lock, as the daemon's log names it:
/// `` `muster restart web` (pid 4242) ``.
fn holder_text(holder: &LockHolder) -> String {
    let mut words = holder.command.split(' ');
    let program = words.next().unwrap_or_default();
    let program = Path::new(program)
        .file_name()
        .map_or(program.into(), |n| n.to_string_lossy());
    let command: Vec<&str> = std::iter::once(&*program).chain(words).collect();
    match command.join(" ").trim() {
        "" => format!("pid {}", holder.pid),
        command => format!("`{command}` (pid {})", holder.pid),
    }
}

/// What wakes the daemon.
#[derive(Debug)]
pub enum Msg {
    /// A file of the chain (or the `.env`) changed: its name.
    File(String),
    Event(Event),
    EngineLost(String),
    Hup,
    Stop(&'static str),
}

/// The daemon's inbox, and the flag that stops steps in flight.
pub struct Inbox {
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    stop: Arc<AtomicBool>,
}

impl Default for Inbox {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Inbox {
            tx,
            rx,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Sends to a running daemon (signals, and tests).
#[derive(Clone)]
pub struct Remote {
    tx: mpsc::UnboundedSender<Msg>,
    stop: Arc<AtomicBool>,
}

impl Remote {
    /// As SIGTERM: the steps in flight finish, then the daemon returns.
    pub fn stop(&self, why: &'static str) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Msg::Stop(why));
    }

    /// As SIGHUP: a resync now.
    pub fn hup(&self) {
        let _ = self.tx.send(Msg::Hup);
    }
}

impl Inbox {
    pub fn remote(&self) -> Remote {
        Remote {
            tx: self.tx.clone(),
            stop: self.stop.clone(),
        }
    }
}

/// Runs the daemon on the engine until SIGINT or SIGTERM.
///
/// # Errors
/// Only when it cannot start: the file's directory cannot be watched, or
/// signals cannot be handled.
pub async fn run(s: Settings, printer: &Printer, connector: &dyn Connector) -> Result<(), String> {
    let inbox = Inbox::default();
    spawn_signals(inbox.remote())?;
    serve(s, printer, connector, inbox).await
}

/// Runs the daemon with `connector` until stopped through `inbox`'s remote.
///
/// # Errors
/// Only when the file's directory cannot be watched.
pub async fn serve(
    s: Settings,
    printer: &Printer,
    connector: &dyn Connector,
    inbox: Inbox,
) -> Result<(), String> {
    let Inbox { tx, mut rx, stop } = inbox;
    // Every file of the chain and the `.env`: a save of any is a reload.
    let _watchers = s
        .sources
        .watched()
        .iter()
        .map(|f| watch_file(f, tx.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let (web, _server) =
        crate::web::launch(s.listen.as_ref(), s.sources.clone(), s.prune, timestamp)
            .await?
            .unzip();
    let mut d = Daemon {
        s,
        printer,
        connector,
        tx,
        stop,
        backend: None,
        events_for: None,
        last_good: None,
        seen: None,
        drift: Mutex::new(Drift::default()),
        reconnect_delay: Duration::from_secs(1),
        next_reconnect: Some(Instant::now()),
        events_task: None,
        backoffs_dir: None,
        state: crate::runtime_dir::StateWriter::start(),
        web,
        last_plan: Mutex::new(None),
    };
    d.log_line(&format!("watching {}", d.s.sources.shown()), false);
    if let Some(l) = &d.s.listen {
        d.log_line(&format!("status page on http://{}/", l.addr), false);
    }
    match crate::runtime_dir::runtime_dir() {
        Ok(dir) => d.backoffs_dir = Some(dir),
        Err(e) => d.log_error(&format!("back-offs will not be shown by `muster ps`: {e}")),
    }
    d.reload_file();
    d.connect().await;
    let mut reasons: Vec<Trigger> = vec!["start".into()];
    let mut file_due: Option<Instant> = None;
    let mut saved: Vec<String> = Vec::new();
    let mut next_resync = Instant::now() + d.s.resync;
    'main: loop {
        // A save not yet read goes first: a pass never plans from a file
        // older than one already saved (another muster may be applying the
        // new one, and its stops and removals are what woke this pass).
        if !reasons.is_empty() && file_due.is_none() {
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
            d.drift().next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(next_resync);
        let msg = tokio::select! {
            m = rx.recv() => m,
            () = tokio::time::sleep_until(wake.into()) => None,
        };
        let mut msgs: Vec<Msg> = msg.into_iter().collect();
        // Drain what queued meanwhile so that one pass covers it.
        while let Ok(m) = rx.try_recv() {
            msgs.push(m);
        }
        for m in msgs {
            match m {
                Msg::File(name) => {
                    if !saved.contains(&name) {
                        saved.push(name);
                    }
                    file_due = Some(Instant::now() + d.s.debounce);
                }
                Msg::Event(e) => {
                    if let Some(why) = d.on_event(&e).await {
                        reasons.push(why);
                    }
                }
                Msg::EngineLost(why) => d.lost(&why),
                Msg::Hup => {
                    // Read the files again too: a change that no file
                    // event told (a symlink's target, a release directory
                    // swapped under the path) is what a reload is for.
                    if d.reload_file() {
                        d.forget_plan();
                    }
                    reasons.push("SIGHUP".into());
                }
                Msg::Stop(sig) => {
                    d.log_line(&format!("{sig}: stopping; containers keep running"), false);
                    break 'main;
                }
            }
        }
        let now = Instant::now();
        if file_due.is_some_and(|t| t <= now) {
            file_due = None;
            let names = std::mem::take(&mut saved).join(", ");
            if d.reload_file() {
                d.forget_plan();
                reasons.push(format!("{names} saved").into());
            }
        }
        if d.next_reconnect.is_some_and(|t| t <= now) && d.connect().await {
            reasons.push("engine is back".into());
        }
        if now >= next_resync {
            if d.reload_file() {
                d.forget_plan();
            }
            reasons.push("resync".into());
        }
        for name in d.drift().due(now) {
            reasons.push(format!("{name} back-off over").into());
        }
        let settled = d.drift().settled(now);
        for (container, decision) in settled {
            if let Some(w) = &d.web {
                w.drift_of(&container, "kill");
            }
            if let Decision::Pass { why, then, .. } = decision {
                reasons.push(Trigger {
                    why,
                    then,
                    unit: Some(container),
                });
            }
        }
    }
    if let Some(w) = &d.web {
        w.stopped();
    }
    if let (Some(project), Some(dir)) = (&d.events_for, &d.backoffs_dir) {
        d.state.put(crate::files::backoff_file(dir, project), None);
    }
    d.state.flush(Duration::from_secs(2)).await;
    if let Some(task) = d.events_task.take() {
        task.abort();
    }
    Ok(())
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
    let shown = file_name(file);
    // A symlink's target, saved in its own directory, is watched there too.
    let target = std::fs::canonicalize(file)
        .ok()
        .filter(|t| t.parent() != Some(dir.as_path()) || t.file_name() != Some(name.as_os_str()));
    let names: Vec<std::ffi::OsString> = std::iter::once(name)
        .chain(
            target
                .iter()
                .filter_map(|t| t.file_name().map(|n| n.to_os_string())),
        )
        .collect();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && !event.kind.is_access()
            && event
                .paths
                .iter()
                .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)))
        {
            let _ = tx.send(Msg::File(shown.clone()));
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    // The directory, not the file: editors save by renaming a new file over it.
    let dirs = std::iter::once(dir).chain(target.and_then(|t| t.parent().map(Path::to_path_buf)));
    for dir in dirs {
        watcher
            .watch(&dir, notify::RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    }
    Ok(watcher)
}

fn spawn_signals(remote: Remote) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => remote.stop("SIGTERM"),
                _ = int.recv() => remote.stop("SIGINT"),
                _ = hup.recv() => remote.hup(),
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

struct Daemon<'p> {
    s: Settings,
    printer: &'p Printer,
    connector: &'p dyn Connector,
    tx: mpsc::UnboundedSender<Msg>,
    stop: Arc<AtomicBool>,
    backend: Option<Arc<dyn Backend>>,
    /// The project whose events are followed.
    events_for: Option<String>,
    last_good: Option<Desired>,
    /// Hash of the file's content at the last load, valid or not.
    seen: Option<u64>,
    drift: Mutex<Drift>,
    reconnect_delay: Duration,
    next_reconnect: Option<Instant>,
    /// The task that forwards engine events.
    events_task: Option<tokio::task::JoinHandle<()>>,
    /// Where back-offs are published, when the runtime directory is safe.
    backoffs_dir: Option<PathBuf>,
    /// Writes state files off the event loop: no file can hang the daemon.
    state: crate::runtime_dir::StateWriter,
    /// What `--listen` shows, told at each change.
    web: Option<Arc<crate::web::State>>,
    /// The last plan printed: a crash loop's restarts do not print it again.
    last_plan: Mutex<Option<String>>,
}

/// Prints what the daemon does: timestamped lines, or JSON objects.
struct Log<'p> {
    printer: &'p Printer,
    json: bool,
    web: Option<&'p crate::web::State>,
}

impl Log<'_> {
    /// An event as `--output json` prints it; also sent to the web face.
    fn json_line(&self, value: serde_json::Value) {
        let mut v = value;
        if let Some(o) = v.as_object_mut() {
            o.insert("time".into(), timestamp().into());
        }
        if let Some(w) = self.web {
            w.event(&v);
        }
        if self.json {
            self.printer.out(&format!("{v}\n"));
        }
    }

    /// A timestamped line; `change` lines are printed even with `-q`.
    fn line(&self, text: &str, change: bool) {
        self.json_line(serde_json::json!({"event": "log", "message": text}));
        if !self.json && (change || !self.printer.quiet) {
            self.printer.out(&format!("{} {text}\n", timestamp()));
        }
    }

    fn error(&self, text: &str) {
        self.json_line(serde_json::json!({"event": "error", "message": text}));
        if !self.json {
            self.printer.err(&format!("{} error: {text}", timestamp()));
        }
    }
}

/// What a pass of the daemon tells the pipeline: it prints as the log
/// does, holds back crash-looping containers, and keeps the drift record.
struct PassObserver<'d> {
    log: Log<'d>,
    drift: &'d Mutex<Drift>,
    /// Ids of the units the apply removes or replaces.
    leaving: Mutex<Vec<String>>,
    /// Containers whose steps wait out their back-off.
    held: Mutex<Vec<String>>,
    last_plan: &'d Mutex<Option<String>>,
    /// The other muster whose lock this pass waited for.
    waited_for: Mutex<Option<LockHolder>>,
}

impl PassObserver<'_> {
    fn drift(&self) -> std::sync::MutexGuard<'_, Drift> {
        self.drift.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Observer for PassObserver<'_> {
    fn plan(&self, plan: &Plan, endpoint: &Endpoint) {
        self.log
            .json_line(serde_json::json!({"event": "plan", "plan": render::plan_json(plan)}));
        if !self.log.json {
            let text = render::plan_text(plan, endpoint, self.log.printer.color_out());
            // The same restart of a crash-looping container again: said by
            // its crash's own lines. Any other plan is printed, even one
            // printed before (a container killed twice).
            let crash_loop = {
                let drift = self.drift();
                plan.changes().all(|c| drift.backoff.contains_key(&c.unit))
            };
            let mut last = self.last_plan.lock().unwrap_or_else(|p| p.into_inner());
            if !crash_loop || last.as_deref() != Some(text.as_str()) {
                self.log.printer.out(&text);
                *last = Some(text);
            }
        }
    }

    fn pulling(&self, image: &str) {
        self.log.line(&format!("pulling {image}"), true);
    }

    fn hold_back(&self, plan: &mut Plan) {
        let held = self.drift().hold_back(plan, Instant::now());
        if let Ok(mut h) = self.held.lock() {
            *h = held;
        }
    }

    fn applying(&self, plan: &Plan, actual: &Actual) {
        let leaving: Vec<String> = plan
            .changes()
            .filter(|c| matches!(c.action, Action::Remove | Action::Recreate))
            .filter_map(|c| actual.units.iter().find(|a| a.name == c.unit))
            .map(|a| a.id.clone())
            .collect();
        self.drift().applying(plan, &leaving, Instant::now());
        if let Ok(mut l) = self.leaving.lock() {
            *l = leaving;
        }
    }

    fn applied(&self, plan: &Plan) {
        let leaving = self.leaving.lock().map(|l| l.clone()).unwrap_or_default();
        self.drift().applied(plan, &leaving, Instant::now());
    }

    fn lock_held(&self, holder: &LockHolder) {
        if let Ok(mut w) = self.waited_for.lock() {
            *w = Some(holder.clone());
        }
    }
}

impl Reporter for PassObserver<'_> {
    fn step(&self, change: &Change, elapsed: Duration, result: &Result<(), ApplyError>) {
        self.log.json_line(serde_json::json!({
            "event": "step",
            "container": change.unit,
            "action": change.action,
            "seconds": elapsed.as_secs_f64(),
            "error": result.as_ref().err().map(ToString::to_string),
        }));
        if !self.log.json {
            self.log.printer.out(&format!(
                "{}\n",
                render::step_line(change, elapsed, result, self.log.printer.color_out())
            ));
        }
    }

    fn waiting(&self, who: &str, what: &Waiting) {
        let subject = if what.on_service() {
            "service"
        } else {
            "container"
        };
        self.log.json_line(serde_json::json!({
            "event": "waiting",
            subject: who,
            "message": format!("{who}: {}", render::waiting_text(what)),
        }));
        if !self.log.json {
            self.log.printer.out(&format!(
                "{}\n",
                render::waiting_line(who, what, self.log.printer.color_out())
            ));
        }
    }
}

impl Daemon<'_> {
    fn log(&self) -> Log<'_> {
        Log {
            printer: self.printer,
            json: self.s.json,
            web: self.web.as_deref(),
        }
    }

    fn log_line(&self, text: &str, change: bool) {
        self.log().line(text, change);
    }

    fn log_error(&self, text: &str) {
        self.log().error(text);
    }

    fn drift(&self) -> std::sync::MutexGuard<'_, Drift> {
        self.drift.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the file; true when its content changed since the last read
    /// and it is valid (it is then the configuration in force).
    fn reload_file(&mut self) -> bool {
        let read = match self.s.sources.read() {
            Ok(r) => r,
            Err(e) => {
                let h = Some(u64::MAX);
                if self.seen != h {
                    self.seen = h;
                    // An unreadable file's problem names it; a missing
                    // one's names the directory it is not in.
                    let text = match e.problems.first() {
                        Some(p) if p.code != config::NOT_FOUND => p.message.clone(),
                        p => format!(
                            "cannot read {}: {}",
                            e.path,
                            p.map_or("", |p| p.message.as_str())
                        ),
                    };
                    if let Some(w) = &self.web {
                        w.file_loaded(Err(text.clone()));
                    }
                    self.log_error(&format!("{text}; {}", self.keeping()));
                }
                return false;
            }
        };
        let bytes = read.bytes();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let h = Some(hasher.finish());
        if self.seen == h {
            return false;
        }
        self.seen = h;
        match read.check(&config::interpolate::Vars::from_process(), self.s.backend) {
            Ok(desired) => {
                if let Some(old) = self
                    .last_good
                    .as_ref()
                    .filter(|old| old.project != desired.project)
                {
                    // As compose: the old project is not this file's any
                    // more, and is left as it is; say so once.
                    self.log_line(
                        &format!(
                            "the project is now {} (was {}): the containers of {} are left as they are; `muster --project {} down` removes them",
                            desired.project, old.project, old.project, old.project
                        ),
                        false,
                    );
                }
                if self
                    .last_good
                    .as_ref()
                    .is_some_and(|old| old.backend != desired.backend)
                {
                    // Another kind of engine: connect again.
                    self.backend = None;
                    self.events_for = None;
                    self.next_reconnect = Some(Instant::now());
                }
                if let Some(w) = &self.web {
                    w.file_loaded(Ok(&desired));
                }
                self.last_good = Some(desired);
                true
            }
            Err(invalid) => {
                if let Some(w) = &self.web {
                    w.file_loaded(Err(invalid.render_plain()));
                }
                let problems: Vec<serde_json::Value> = invalid
                    .problems
                    .iter()
                    .map(|p| {
                        let (file, place) = invalid.place(p);
                        let (line, col) = place.unzip();
                        serde_json::json!({"code": p.code, "message": p.message, "file": file, "line": line, "column": col, "help": p.help})
                    })
                    .collect();
                self.log().json_line(serde_json::json!({"event": "invalid_file", "file": invalid.path, "problems": problems}));
                if !self.s.json {
                    self.log_error(&format!(
                        "{} is invalid; {}, changing nothing",
                        self.s.sources.first().display(),
                        self.keeping()
                    ));
                    self.printer.err(&invalid.render_plain());
                }
                false
            }
        }
    }

    /// What the daemon runs on while the file cannot be used.
    fn keeping(&self) -> &'static str {
        if self.last_good.is_some() {
            "keeping the last good configuration"
        } else {
            "no valid configuration yet"
        }
    }

    /// Connects if not connected; true when a new connection was made.
    async fn connect(&mut self) -> bool {
        if self.backend.is_some() {
            self.next_reconnect = None;
            return false;
        }
        let kind = self
            .last_good
            .as_ref()
            .map_or(BackendKind::Docker, |d| d.backend);
        match self.connector.connect(kind).await {
            Ok(backend) => {
                self.log_line(&format!("connected to {}", backend.endpoint()), false);
                if let Some(w) = &self.web {
                    w.engine(Some(&backend));
                }
                self.backend = Some(backend);
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
        if self.backend.take().is_some() {
            if let Some(w) = &self.web {
                w.engine(None);
            }
            self.log_error(&format!("lost the engine: {why}"));
            self.events_for = None;
            self.next_reconnect = Some(Instant::now() + Duration::from_millis(500));
        }
    }

    /// Subscribes to the project's events (again, when the project changed).
    fn follow_events(&mut self) {
        let (Some(backend), Some(desired)) = (&self.backend, &self.last_good) else {
            return;
        };
        if self.events_for.as_deref() == Some(desired.project.as_str()) {
            return;
        }
        self.events_for = Some(desired.project.clone());
        let mut stream = backend.events(&desired.project);
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
    async fn on_event(&mut self, e: &Event) -> Option<Trigger> {
        let decision = self.drift().on_event(e, Instant::now());
        if let Some(w) = &self.web {
            w.engine_event(e, decision != Decision::Ignore);
        }
        match decision {
            Decision::Ignore => None,
            Decision::Pass {
                why,
                then,
                failures,
            } => {
                self.publish_backoffs();
                if e.action == "die" && then.is_none() {
                    self.crash_output(&e.container).await;
                }
                if let Some((n, wait)) = failures {
                    self.log_line(
                        &format!(
                            "{} keeps failing ({n} times in a row); next restart in {}",
                            e.container,
                            config::format_duration(wait)
                        ),
                        true,
                    );
                }
                Some(Trigger {
                    why,
                    then,
                    unit: Some(e.container.clone()),
                })
            }
        }
    }

    /// A crashed container's last lines, as `apply` shows them.
    async fn crash_output(&self, container: &str) {
        let Some(backend) = &self.backend else { return };
        if let Ok(logs) = backend.logs(container, 10).await {
            self.log_line(
                &format!(
                    "{container} crashed\n{}",
                    render::last_lines(container, &logs)
                ),
                true,
            );
        }
    }

    /// The next plan is printed even when it is the last one again.
    fn forget_plan(&self) {
        *self.last_plan.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Writes the back-offs for `muster ps` (best effort).
    fn publish_backoffs(&self) {
        let records = self
            .drift()
            .records(Instant::now(), crate::engine::now_secs());
        if let Some(w) = &self.web {
            w.backoffs(&records);
        }
        let (Some(project), Some(dir)) = (&self.events_for, &self.backoffs_dir) else {
            return;
        };
        self.state.put(
            crate::files::backoff_file(dir, project),
            crate::files::backoffs_content(&records),
        );
    }

    /// One pass of the pipeline.
    async fn pass(&mut self, triggers: &[Trigger]) {
        let Some(desired) = self.last_good.clone() else {
            self.log_line(
                "no valid configuration yet; waiting for a valid save",
                false,
            );
            return;
        };
        self.follow_events();
        let Some(backend) = self.backend.clone() else {
            return;
        };
        let options = reconcile::Options {
            prune: self.s.prune,
            parallel: self.s.parallel,
            lock_timeout: self.s.lock_timeout,
            stop: Some(self.stop.clone()),
            lock_when_idle: false,
            targeted: false,
            command: format!("muster watch -f {}", self.s.sources.first().display()),
        };
        let observer = PassObserver {
            log: self.log(),
            drift: &self.drift,
            leaving: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
            last_plan: &self.last_plan,
            waited_for: Mutex::new(None),
        };
        let announced = AnnounceFirst::new(&observer, triggers);
        let started = Instant::now();
        let result = reconcile::pass(backend.as_ref(), &desired, &options, &announced).await;
        if result.is_err() {
            announced.flush();
        }
        let reasons: Vec<String> = triggers
            .iter()
            .map(|t| t.reason(announced.holder().as_ref()))
            .collect();
        let why = reasons.join(", ");
        if let Some(w) = &self.web {
            w.pass_ended(&reasons, &result, started.elapsed());
        }
        match result {
            Ok(Outcome::UpToDate(plan)) => {
                let held = observer.held.lock().map(|h| h.clone()).unwrap_or_default();
                let summary = match render::orphans_note(&plan) {
                    Some(orphans) => format!(
                        "{}; {orphans}",
                        render::summary_line(&plan).trim_end_matches('.')
                    ),
                    None => render::summary_line(&plan),
                };
                let by = (observer.waited_for.lock().ok())
                    .and_then(|w| w.as_ref().map(|holder| holder.pid));
                if announced.said.load(Ordering::SeqCst) {
                    // The first look found work and the look under the lock
                    // none: another muster did it while this one waited.
                    self.log_line(&already_applied(by), true);
                } else if announced.kept() {
                    // The same, for drift that was not said before the lock.
                    // Who undid it is known only when this pass waited for
                    // them (another muster may have let go just before).
                    let line = match by {
                        Some(_) => format!("{why}; {}", already_applied(by)),
                        None => {
                            let happened: Vec<&str> =
                                triggers.iter().map(|t| t.why.as_str()).collect();
                            format!(
                                "{}; no changes (already as the file says)",
                                happened.join(", ")
                            )
                        }
                    };
                    self.log_line(&line, true);
                } else if held.is_empty() {
                    // The engine is as the file says: a later plan, even the
                    // same one, is news.
                    self.forget_plan();
                    // Units stopped or removed that the file does not want
                    // (another muster's scale-down or apply, an orphan) are
                    // not drift: only the other triggers are said.
                    let said: Vec<&str> = triggers
                        .iter()
                        .filter(|t| t.then.is_none())
                        .map(|t| t.why.as_str())
                        .collect();
                    if said.is_empty() {
                        tracing::debug!("{why}: {summary}");
                    } else {
                        self.log_line(&format!("{}: {summary}", said.join(", ")), false);
                    }
                } else {
                    self.log_line(
                        &format!("{why}: {} waits out its back-off", held.join(", ")),
                        true,
                    );
                }
            }
            Ok(Outcome::Applied(plan)) => {
                if !self.s.json {
                    self.printer.out(&format!(
                        "{} Applied: {}\n",
                        timestamp(),
                        render::applied_line(&plan)
                    ));
                }
            }
            Err(Error::Lock(crate::lock::LockError::Stopped)) => {
                self.log_line("stopped while waiting for the lock; nothing changed", true);
            }
            Err(Error::Apply(ApplyError::Interrupted)) => {
                self.log_line("interrupted between two steps", true);
            }
            Err(e) => self.failed(&e),
        }
        self.publish_backoffs();
    }

    fn failed(&mut self, e: &Error) {
        let unreachable = match e {
            Error::Engine(e) | Error::Apply(ApplyError::Engine(e)) => {
                e.kind == ErrorKind::Unreachable
            }
            Error::Lock(crate::lock::LockError::Engine(e)) => e.kind == ErrorKind::Unreachable,
            _ => false,
        };
        // A lost engine is said once, as such.
        if unreachable && self.backend.is_some() {
            self.lost(&e.to_string());
        } else {
            let text = render::error_text(e, false);
            self.log_error(text.trim_start_matches("error: "));
        }
    }
}

/// The outcome of a pass whose work another muster did meanwhile.
fn already_applied(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("no changes (already applied by pid {pid})"),
        None => "no changes (already applied by another muster)".into(),
    }
}

/// Logs the pass's trigger before its plan is printed, once there is one to
/// say. A pass for drift alone (units stopped or removed outside muster)
/// says nothing before it holds the lock: when another muster held it
/// meanwhile, that muster (a `restart`, an `apply`) is the likelier cause,
/// and the trigger is said as having happened while it held the lock.
struct AnnounceFirst<'a> {
    inner: &'a PassObserver<'a>,
    triggers: &'a [Trigger],
    said: AtomicBool,
    /// Whether the pass is for drift alone.
    drift: bool,
    /// For drift alone: the plan, kept until the lock is held.
    kept: Mutex<Option<(Plan, Endpoint)>>,
}

impl<'a> AnnounceFirst<'a> {
    fn new(inner: &'a PassObserver<'a>, triggers: &'a [Trigger]) -> Self {
        AnnounceFirst {
            inner,
            triggers,
            said: AtomicBool::new(false),
            drift: !triggers.is_empty() && triggers.iter().all(|t| t.then.is_some()),
            kept: Mutex::new(None),
        }
    }

    /// The other muster this pass waited for, when it is for drift alone.
    fn holder(&self) -> Option<LockHolder> {
        if !self.drift {
            return None;
        }
        self.inner.waited_for.lock().ok()?.clone()
    }

    /// Says the triggers, once; with `plan`, what it does about each.
    fn announce(&self, plan: Option<&Plan>) {
        if !self.said.swap(true, Ordering::SeqCst) {
            let holder = self.holder();
            let why: Vec<String> = self
                .triggers
                .iter()
                .map(|t| t.announced(holder.as_ref(), plan))
                .collect();
            self.inner.log.line(&why.join(", "), true);
        }
    }

    /// Whether a plan is still kept (found on the first look, not said).
    fn kept(&self) -> bool {
        self.kept.lock().is_ok_and(|k| k.is_some())
    }

    /// Says the trigger and the kept plan, if one is kept.
    fn flush(&self) {
        let kept = self.kept.lock().ok().and_then(|mut k| k.take());
        if let Some((plan, endpoint)) = kept {
            self.announce(Some(&plan));
            self.inner.plan(&plan, &endpoint);
        }
    }
}

impl Observer for AnnounceFirst<'_> {
    fn plan(&self, plan: &Plan, endpoint: &Endpoint) {
        if self.drift
            && !self.said.load(Ordering::SeqCst)
            && let Ok(mut kept) = self.kept.lock()
        {
            *kept = Some((plan.clone(), endpoint.clone()));
            return;
        }
        self.announce(Some(plan));
        self.inner.plan(plan, endpoint);
    }
    fn pulling(&self, image: &str) {
        self.flush();
        self.announce(None);
        self.inner.pulling(image);
    }
    fn hold_back(&self, plan: &mut Plan) {
        self.inner.hold_back(plan);
    }
    fn applying(&self, plan: &Plan, actual: &Actual) {
        self.flush();
        self.inner.applying(plan, actual);
    }
    fn applied(&self, plan: &Plan) {
        self.inner.applied(plan);
    }
    fn lock_held(&self, holder: &LockHolder) {
        self.inner.lock_held(holder);
    }
}

impl Reporter for AnnounceFirst<'_> {
    fn step(&self, change: &Change, elapsed: Duration, result: &Result<(), ApplyError>) {
        self.inner.step(change, elapsed, result);
    }
    fn waiting(&self, who: &str, what: &Waiting) {
        self.inner.waiting(who, what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_muster_is_named_by_its_command_and_pid() {
        let holder = |command: &str| LockHolder {
            host: "h".into(),
            pid: 42,
            pid_start: 1,
            boot_id: String::new(),
            pid_ns: 0,
            since: 0,
            command: command.into(),
        };
        let stopped = Trigger {
            why: "p-web-1 stopped".into(),
            then: Some("starting it again"),
            unit: Some("p-web-1".into()),
        };
        let by = holder("/usr/local/bin/muster restart web");
        assert_eq!(
            stopped.announced(Some(&by), None),
            "p-web-1 stopped while `muster restart web` (pid 42) held the lock; starting it again"
        );
        assert_eq!(
            stopped.announced(None, None),
            "p-web-1 stopped outside muster; starting it again"
        );
        assert_eq!(
            stopped.reason(Some(&holder(""))),
            "p-web-1 stopped while pid 42 held the lock"
        );
        let saved = Trigger::from("services.toml saved");
        assert_eq!(saved.announced(Some(&by), None), "services.toml saved");
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
