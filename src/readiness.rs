//! Readiness: waits until units run, and are healthy where a healthcheck
//! is declared. Woken by the engine's events (one stream per [`Readiness`],
//! replayed from its creation, so nothing that happens in between is
//! missed), each wake confirmed by one status call; a slow poll is the
//! fallback when the backend has no such events or the stream is lost
//! (after a reconnect every wait checks again). Used by apply (sequential
//! ordinals, rolling updates, dependencies, the settle check), by
//! `apply --wait` and by `restart`. Does engine I/O through the
//! [`Backend`] trait.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use futures_util::future::try_join_all;
use futures_util::stream::BoxStream;
use tokio::sync::watch;

use crate::apply_error::ApplyError;
use crate::config::{Desired, Service};
use crate::engine::{Backend, ErrorKind, Health, State, Unit};
use crate::waiting::{Tell, Waiting, told};

/// The longest pause between two status calls of one wait when the
/// engine's events wake it; without events the pause grows to
/// [`POLL_WITHOUT_EVENTS`].
const POLL_WITH_EVENTS: Duration = Duration::from_secs(1);
const POLL_WITHOUT_EVENTS: Duration = Duration::from_millis(250);

/// The settle check inspects the containers started less than this before
/// it (see [`Readiness::settled`]). Docker 20.10 told the `die` of a
/// command that fails at once up to 130 ms after its start call returned,
/// and muster heard it up to 220 ms later still, on a busy machine; an
/// inspect right after the start call saw it exited 39 times in 40
/// (BENCHMARKS.md).
const RECENT: Duration = Duration::from_secs(1);

/// Inspects at once in the settle check.
const INSPECTS: usize = 8;

/// Where a unit's last `start` and `die` came among the events of one
/// stream (1 for the first event), and when its last `die` came in.
#[derive(Debug, Default, Clone, Copy)]
struct Told {
    start: Option<u64>,
    die: Option<u64>,
    died_at: Option<Instant>,
    /// The exit code its last `die` told.
    exit_code: Option<i64>,
}

/// The waits of one apply (or one `--wait`, one `restart`) on a project.
pub struct Readiness<'a> {
    backend: &'a dyn Backend,
    project: &'a str,
    since: SystemTime,
    /// Bumped at each event of a unit, by name.
    wakers: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Each unit's last `start` and last `die`, as the events told.
    told: Mutex<HashMap<String, Told>>,
    /// Whether the event stream was ever lost: from then on, what the
    /// events did not tell proves nothing.
    lost: AtomicBool,
    /// Whether the backend has events to wake waits.
    evented: AtomicBool,
}

impl<'a> Readiness<'a> {
    pub fn new(backend: &'a dyn Backend, project: &'a str) -> Self {
        Readiness {
            backend,
            project,
            since: SystemTime::now(),
            wakers: Mutex::default(),
            told: Mutex::default(),
            lost: AtomicBool::new(false),
            evented: AtomicBool::new(false),
        }
    }

    /// Runs `work` while following the engine's events for its waits.
    pub async fn around<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        let stream = self.backend.changes(self.project, self.since);
        self.evented.store(stream.is_some(), Ordering::Relaxed);
        tokio::select! {
            biased;
            never = self.pump(stream) => match never {},
            out = work => out,
        }
    }

    async fn pump(
        &self,
        mut stream: Option<BoxStream<'static, crate::engine::Result<crate::engine::Event>>>,
    ) -> Infallible {
        let mut n: u64 = 0;
        loop {
            let Some(mut events) = stream.take() else {
                return std::future::pending().await;
            };
            while let Some(Ok(e)) = events.next().await {
                n += 1;
                match e.action.as_str() {
                    "die" => {
                        let mut told = lock(&self.told);
                        let t = told.entry(e.container.clone()).or_default();
                        t.die = Some(n);
                        t.died_at = Some(Instant::now());
                        t.exit_code = e.exit_code;
                    }
                    "start" => {
                        lock(&self.told)
                            .entry(e.container.clone())
                            .or_default()
                            .start = Some(n);
                    }
                    _ => {}
                }
                self.wake(Some(&e.container));
            }
            // Lost: every wait checks again, and the stream is replayed
            // from the start.
            self.lost.store(true, Ordering::Relaxed);
            self.wake(None);
            tokio::time::sleep(Duration::from_millis(200)).await;
            stream = self.backend.changes(self.project, self.since);
        }
    }

    /// Wakes the waits of `name` (of every unit with `None`).
    fn wake(&self, name: Option<&str>) {
        let wakers = lock(&self.wakers);
        match name {
            Some(name) => {
                if let Some(w) = wakers.get(name) {
                    w.send_modify(|n| *n += 1);
                }
            }
            None => wakers.values().for_each(|w| w.send_modify(|n| *n += 1)),
        }
    }

    fn subscribe(&self, name: &str) -> watch::Receiver<u64> {
        lock(&self.wakers)
            .entry(name.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Waits until `name` of `service` runs, and is healthy when a
    /// healthcheck is declared. Without a healthcheck it must also keep
    /// running for `settle` from when it is first seen running (a swarm
    /// service's tasks run seconds after the wait began, and the swarm says
    /// a task runs before it says it failed): a command that fails at once
    /// is a container that failed to start, not a ready one.
    ///
    /// # Errors
    /// [`ApplyError::NotReady`] when it exits, turns unhealthy or is not
    /// ready within `ready_timeout` (with its last lines); engine errors.
    pub async fn ready(
        &self,
        service: &Service,
        name: &str,
        settle: Duration,
    ) -> Result<(), ApplyError> {
        let mut woken = self.subscribe(name);
        let began = Instant::now();
        let deadline = began + service.ready_timeout;
        let mut settled: Option<Instant> = None;
        let most = if self.evented.load(Ordering::Relaxed) {
            POLL_WITH_EVENTS
        } else {
            POLL_WITHOUT_EVENTS
        };
        let mut pause = Duration::from_millis(25);
        loop {
            woken.borrow_and_update();
            let status = self.backend.status(name).await?;
            let running = status.state == State::Running;
            settled = running.then(|| settled.unwrap_or_else(|| Instant::now() + settle));
            let why = match (status.state, status.health) {
                (State::Running, _)
                    if service.healthcheck.is_none()
                        && settled.is_some_and(|at| Instant::now() >= at) =>
                {
                    return Ok(());
                }
                // Healthy counts where a healthcheck is declared: the swarm
                // backend says so of every converged service, and one
                // without a healthcheck must still settle.
                (State::Running, Some(Health::Healthy)) if service.healthcheck.is_some() => {
                    return Ok(());
                }
                (State::Running, Some(Health::Unhealthy)) => Some("became unhealthy".to_string()),
                (State::Exited | State::Dead, _) if !status.detail.is_empty() => {
                    Some(status.detail.clone())
                }
                (State::Exited | State::Dead, _) => {
                    Some(format!("exited with code {}", status.exit_code))
                }
                _ => None,
            };
            let why = why.or_else(|| {
                (Instant::now() >= deadline).then(|| {
                    let mut why = format!(
                        "was not ready within ready_timeout ({})",
                        crate::config::format_duration(service.ready_timeout)
                    );
                    if !status.detail.is_empty() {
                        why.push_str(&format!(": {}", status.detail));
                    }
                    why
                })
            });
            if let Some(why) = why {
                return Err(self.not_ready(name, why).await);
            }
            let mut wake_at = (Instant::now() + pause).min(deadline);
            if let Some(at) = settled.filter(|_| service.healthcheck.is_none()) {
                wake_at = wake_at.min(at);
            }
            tokio::select! {
                _ = woken.changed() => {}
                () = tokio::time::sleep_until(wake_at.into()) => {}
            }
            pause = (pause * 2).min(most);
        }
    }

    /// [`Readiness::ready`]; `tell` hears of the wait once it has lasted.
    ///
    /// # Errors
    /// As [`Readiness::ready`].
    pub async fn ready_told(
        &self,
        service: &Service,
        name: &str,
        settle: Duration,
        tell: impl Fn(&str, &Waiting),
    ) -> Result<(), ApplyError> {
        let what = Waiting::ready(service);
        told(|| tell(name, &what), self.ready(service, name, settle)).await
    }

    /// Checks that containers started by this apply without a healthcheck
    /// kept running for `settle` after their start (`started`: name and
    /// when it started). The settle times run alongside the rest of the
    /// work; this waits only for what is left of the last one. The events
    /// then tell that none of them died since its start, once they told
    /// every start (the stream is live and delivered at least that far);
    /// otherwise, or when one died, one list call tells. Last, those
    /// started within [`RECENT`] are inspected one by one: the engine may
    /// still be handling the exit of one, which neither its events nor its
    /// list call show yet, and an inspect waits for that.
    ///
    /// # Errors
    /// [`ApplyError::NotReady`] for one that exited; engine errors.
    pub async fn settled(
        &self,
        started: &[(String, Instant)],
        settle: Duration,
    ) -> Result<(), ApplyError> {
        let Some(last) = started.iter().map(|(_, t)| *t).max() else {
            return Ok(());
        };
        if settle.is_zero() {
            return Ok(());
        }
        tokio::time::sleep_until((last + settle).into()).await;
        let alive = !self.lost.load(Ordering::Relaxed) && {
            let told = lock(&self.told);
            started.iter().all(|(name, _)| {
                told.get(name)
                    .is_some_and(|t| t.start.is_some() && t.die < t.start)
            })
        };
        if !alive {
            self.listed_alive(started).await?;
        }
        let now = Instant::now();
        let recent = started
            .iter()
            .filter(|(_, at)| now.duration_since(*at) < RECENT)
            .map(|(name, _)| async move { (name, self.backend.status(name).await) });
        let mut inspected = futures_util::stream::iter(recent).buffered(INSPECTS);
        while let Some((name, status)) = inspected.next().await {
            let status = match status {
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                status => status?,
            };
            if matches!(status.state, State::Exited | State::Dead) {
                let status = format!(" (exit code {})", status.exit_code);
                return Err(self.exited_at_once(name, &status).await);
            }
        }
        Ok(())
    }

    /// The settle check's list call: fails for the first of `started` that
    /// it shows exited, or that the events told dead since its start.
    async fn listed_alive(&self, started: &[(String, Instant)]) -> Result<(), ApplyError> {
        // The exit code of a death since `since`, as the events told it.
        let died = |name: &str, since: Instant| {
            lock(&self.told)
                .get(name)
                .filter(|t| t.died_at.is_some_and(|at| at >= since))
                .map(|t| t.exit_code)
        };
        let units = self.backend.units(self.project).await?;
        for (name, since) in started {
            let unit = units.iter().find(|u| &u.name == name);
            // The engine tells the `die` before its list shows the
            // container exited: the list's status is said only once it does.
            let exited = unit.filter(|u| matches!(u.state, State::Exited | State::Dead));
            let status = match (exited, died(name, *since)) {
                (Some(u), _) => format!(" ({})", u.status),
                (None, Some(Some(code))) => format!(" (exit code {code})"),
                (None, Some(None)) => String::new(),
                (None, None) => continue,
            };
            return Err(self.exited_at_once(name, &status).await);
        }
        Ok(())
    }

    /// The settle check's error for `name`, with how it exited (`status`,
    /// empty when unknown).
    async fn exited_at_once(&self, name: &str, status: &str) -> ApplyError {
        let why = format!("exited right after it started{status}");
        self.not_ready(name, why).await
    }

    /// The error for `name`, with the tail of its logs.
    pub(crate) async fn not_ready(&self, name: &str, why: String) -> ApplyError {
        let logs = self.backend.logs(name, 20).await.unwrap_or_default();
        ApplyError::NotReady {
            container: name.to_string(),
            why,
            logs,
        }
    }
}

/// Whether a container, as one list call shows it, is what
/// [`Readiness::ready`] without a settle time would find ready: running,
/// and healthy where its service declares a healthcheck. For the docker
/// backend's containers only: a swarm unit's listed state is not its
/// readiness.
pub fn listed_ready(service: &Service, unit: &Unit) -> bool {
    unit.state == State::Running
        && (service.healthcheck.is_none() || unit.health == Some(Health::Healthy))
}

/// `apply --wait`: waits for every unit of `desired`'s services at once;
/// `tell` hears of each wait that lasts.
///
/// # Errors
/// As [`Readiness::ready`], for the first unit that fails.
pub async fn wait_all(
    backend: &dyn Backend,
    desired: &Desired,
    tell: Tell<'_>,
) -> Result<(), ApplyError> {
    let readiness = Readiness::new(backend, &desired.project);
    let units = backend.units(&desired.project).await?;
    let containers = desired.backend == crate::config::Backend::Docker;
    let waits = units.iter().filter_map(|u| {
        let service = desired.services.get(&u.service)?;
        if containers && listed_ready(service, u) {
            return None;
        }
        Some(readiness.ready_told(service, &u.name, Duration::ZERO, tell))
    });
    readiness.around(try_join_all(waits)).await.map(|_| ())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
