//! What the web face knows of the daemon: the daemon tells it at a few
//! points (file loaded, engine connected or lost, engine event, log line,
//! pass ended); a task of its own observes the engine after each of them
//! and keeps the view that the page, the API and the metrics show. Does
//! engine I/O (observe only) in that task.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, broadcast};

use super::metrics::{self, Metrics};
use crate::backoff::BackoffRecord;
use crate::config::Desired;
use crate::engine::{Actual, Backend, Event};
use crate::error::Error;
use crate::reconcile::Outcome;
use crate::render::{PsService, PsView};

/// Events kept for the page's timeline.
const RECENT: usize = 100;
/// Quiet time after a change before the engine is observed again: a burst
/// of events (an apply) costs one observation.
const SETTLE: Duration = Duration::from_millis(150);
/// An observation that takes longer is given up; the view stays as it was.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a pass ended, for the page and the metrics.
#[derive(Debug, Clone, Serialize)]
pub struct PassEnd {
    /// `up_to_date`, `applied`, `interrupted` or `failed`.
    pub outcome: &'static str,
    /// What triggered it, as the daemon said.
    pub trigger: String,
    /// The summary, or the error.
    pub message: String,
    pub time: String,
    pub seconds: f64,
}

impl PassEnd {
    /// From the result of [`crate::reconcile::pass`].
    pub fn of(result: &Result<Outcome, Error>) -> (&'static str, String) {
        match result {
            Ok(Outcome::UpToDate(plan)) => ("up_to_date", crate::render::summary_line(plan)),
            Ok(Outcome::Applied(plan)) => ("applied", crate::render::applied_line(plan)),
            Err(Error::Lock(crate::lock::LockError::Stopped))
            | Err(Error::Apply(crate::apply::ApplyError::Interrupted)) => {
                ("interrupted", "stopped between two steps".into())
            }
            Err(e) => ("failed", e.to_string()),
        }
    }
}

/// The file as the daemon last read it.
#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    pub path: String,
    pub valid: bool,
    /// The diagnostics while it is invalid (plain text, one per problem).
    pub problems: Option<String>,
}

/// The engine connection.
#[derive(Debug, Clone, Serialize)]
pub struct EngineView {
    pub connected: bool,
    pub endpoint: Option<String>,
}

/// `GET /api/v1/services`, and what the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub project: Option<String>,
    pub file: FileView,
    pub engine: EngineView,
    /// The first pass has ended.
    pub ready: bool,
    pub services: Vec<PsService>,
    pub orphans: Vec<crate::plan::Orphan>,
    /// When the engine was last observed.
    pub observed_at: Option<String>,
    /// What the next pass would do, from that observation (`plan --output json`).
    pub pending: Option<serde_json::Value>,
    /// The last plan the daemon printed (before applying it).
    pub last_plan: Option<serde_json::Value>,
    pub last_pass: Option<PassEnd>,
    /// Newest last.
    pub events: Vec<serde_json::Value>,
}

#[derive(Default)]
struct Inner {
    desired: Option<Desired>,
    problems: Option<String>,
    backend: Option<Arc<dyn Backend>>,
    endpoint: Option<String>,
    backoffs: BTreeMap<String, BackoffRecord>,
    actual: Option<Actual>,
    ps: Option<PsView>,
    pending: Option<serde_json::Value>,
    observed_at: Option<String>,
    last_plan: Option<serde_json::Value>,
    last_pass: Option<PassEnd>,
    events: VecDeque<serde_json::Value>,
}

/// Shared between the daemon's loop and the web server.
pub struct State {
    /// The daemon's files (`-f` chain, `.env`): a scale edits the one
    /// that sets the count.
    pub(super) sources: crate::config::Sources,
    pub(super) prune: bool,
    pub(super) csrf: String,
    pub(super) listen: super::Listen,
    pub(super) metrics: Metrics,
    inner: RwLock<Inner>,
    events: broadcast::Sender<Arc<str>>,
    changed: Notify,
    ready: AtomicBool,
    running: AtomicBool,
    /// The daemon's clock (`2026-11-28T12:00:00.123Z`), so that the page
    /// and the log agree.
    clock: fn() -> String,
}

impl State {
    /// # Errors
    /// When no CSRF token can be made (no random source).
    pub fn new(
        listen: super::Listen,
        sources: crate::config::Sources,
        prune: bool,
        clock: fn() -> String,
    ) -> std::io::Result<State> {
        let (events, _) = broadcast::channel(256);
        Ok(State {
            sources,
            prune,
            csrf: super::security::random_token()?,
            listen,
            metrics: Metrics::default(),
            inner: RwLock::default(),
            events,
            changed: Notify::new(),
            ready: AtomicBool::new(false),
            running: AtomicBool::new(true),
            clock,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The file was read: valid (`Ok`, with the overrides of the command
    /// line applied) or not (`Err`, its diagnostics).
    pub fn file_loaded(&self, result: Result<&Desired, String>) {
        self.metrics.file_valid(result.is_ok());
        {
            let mut inner = self.write();
            match result {
                Ok(desired) => {
                    inner.desired = Some(desired.clone());
                    inner.problems = None;
                }
                Err(problems) => inner.problems = Some(problems),
            }
        }
        self.changed.notify_one();
    }

    /// Connected to `backend`, or lost it (`None`).
    pub fn engine(&self, backend: Option<&Arc<dyn Backend>>) {
        self.metrics.engine_connected(backend.is_some());
        {
            let mut inner = self.write();
            inner.endpoint = backend.map(|b| b.endpoint().to_string());
            inner.backend = backend.cloned();
        }
        self.changed.notify_one();
    }

    /// An engine event of the project; `drift`: the daemon acts on it.
    pub fn engine_event(&self, e: &Event, drift: bool) {
        if drift {
            self.drift_of(&e.container, &e.action);
        }
        self.changed.notify_one();
    }

    /// Drift of `kind` (the engine's action) to `container`.
    pub fn drift_of(&self, container: &str, kind: &str) {
        let service = self.service_of(container);
        self.metrics.drift(&service, &metrics::drift_kind(kind));
        self.changed.notify_one();
    }

    fn service_of(&self, container: &str) -> String {
        let inner = self.read();
        if let Some(u) = inner
            .actual
            .iter()
            .flat_map(|a| &a.units)
            .find(|u| u.name == container)
        {
            return u.service.clone();
        }
        inner
            .desired
            .as_ref()
            .and_then(|d| {
                d.services
                    .keys()
                    .filter(|s| {
                        container
                            .strip_prefix(&format!("{}-{s}-", d.project))
                            .is_some_and(|n| n.parse::<u32>().is_ok())
                    })
                    .max_by_key(|s| s.len())
                    .cloned()
            })
            .unwrap_or_else(|| "(unknown)".into())
    }

    /// The daemon's current crash-loop back-offs.
    pub fn backoffs(&self, records: &BTreeMap<String, BackoffRecord>) {
        self.write().backoffs = records.clone();
        self.changed.notify_one();
    }

    /// One object of the daemon's `--output json` log: kept for the
    /// timeline and sent to every `/api/v1/events` listener.
    pub fn event(&self, value: &serde_json::Value) {
        {
            let mut inner = self.write();
            if value.get("event").and_then(|e| e.as_str()) == Some("plan") {
                inner.last_plan = value.get("plan").cloned();
            }
            inner.events.push_back(value.clone());
            while inner.events.len() > RECENT {
                inner.events.pop_front();
            }
        }
        // No listener is not an error.
        let _ = self.events.send(Arc::from(value.to_string()));
    }

    /// A pass ended, `reasons` being what triggered it.
    pub fn pass_ended(&self, reasons: &[String], result: &Result<Outcome, Error>, took: Duration) {
        let (outcome, message) = PassEnd::of(result);
        let first = reasons.first().map_or("", String::as_str);
        self.metrics
            .pass(metrics::trigger_kind(first), outcome, took.as_secs_f64());
        if outcome == "applied" {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.metrics.applied_at(now.as_secs_f64());
        }
        self.write().last_pass = Some(PassEnd {
            outcome,
            trigger: reasons.join(", "),
            message,
            time: (self.clock)(),
            seconds: took.as_secs_f64(),
        });
        self.ready.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// The daemon's loop ended.
    pub fn stopped(&self) {
        self.running.store(false, Ordering::SeqCst);
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.events.subscribe()
    }

    /// The configuration in force and the last observation, for a scale's plan.
    pub(super) fn desired_and_actual(&self) -> (Option<Desired>, Option<Actual>) {
        let inner = self.read();
        (inner.desired.clone(), inner.actual.clone())
    }

    /// What the page and `GET /api/v1/services` show.
    pub fn view(&self) -> View {
        let inner = self.read();
        let (services, orphans) = match &inner.ps {
            Some(ps) => (ps.services.clone(), ps.orphans.clone()),
            None => (Vec::new(), Vec::new()),
        };
        View {
            project: inner.desired.as_ref().map(|d| d.project.clone()),
            file: FileView {
                path: self.sources.shown(),
                valid: inner.problems.is_none(),
                problems: inner.problems.clone(),
            },
            engine: EngineView {
                connected: inner.backend.is_some(),
                endpoint: inner.endpoint.clone(),
            },
            ready: self.is_ready(),
            services,
            orphans,
            observed_at: inner.observed_at.clone(),
            pending: inner.pending.clone(),
            last_plan: inner.last_plan.clone(),
            last_pass: inner.last_pass.clone(),
            events: inner.events.iter().cloned().collect(),
        }
    }

    /// What the next pass would do, as `plan --output json` prints it.
    pub fn pending(&self) -> Option<serde_json::Value> {
        self.read().pending.clone()
    }

    /// Observes the engine after every change the daemon reports, until
    /// the daemon stops.
    pub(super) async fn follow(self: Arc<Self>) {
        loop {
            self.changed.notified().await;
            tokio::time::sleep(SETTLE).await;
            self.refresh().await;
        }
    }

    async fn refresh(&self) {
        let (backend, desired, backoffs) = {
            let inner = self.read();
            (
                inner.backend.clone(),
                inner.desired.clone(),
                inner.backoffs.clone(),
            )
        };
        let (Some(backend), Some(desired)) = (backend, desired) else {
            return;
        };
        let observed = tokio::time::timeout(
            OBSERVE_TIMEOUT,
            backend.observe(&desired.project, &desired.images()),
        )
        .await;
        // A failed observation leaves the view as it was; the daemon
        // reports the engine's failures itself.
        let Ok(Ok(actual)) = observed else { return };
        let ps = PsView::new(&desired, &actual, &backoffs);
        let plan = crate::plan::plan(&desired, &actual, self.prune);
        let counts: BTreeMap<String, (u32, usize)> = ps
            .services
            .iter()
            .map(|s| {
                (
                    s.service.clone(),
                    (s.desired.unwrap_or_default(), s.running),
                )
            })
            .collect();
        let in_backoff: BTreeMap<String, usize> = ps
            .services
            .iter()
            .map(|s| {
                let n = s.containers.iter().filter(|c| c.backoff.is_some()).count();
                (s.service.clone(), n)
            })
            .collect();
        self.metrics.containers(&counts);
        self.metrics.backoffs(&in_backoff);
        {
            let mut inner = self.write();
            inner.ps = Some(ps);
            inner.actual = Some(actual);
            inner.pending = Some(crate::render::plan_json(&plan));
            inner.observed_at = Some((self.clock)());
        }
        let state = serde_json::json!({"event": "state", "time": (self.clock)()});
        let _ = self.events.send(Arc::from(state.to_string()));
    }
}
