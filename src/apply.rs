//! The apply stage: carries out a [`Plan`] on an [`Engine`]. Does engine I/O
//! through the trait only.
//!
//! # Guarantees
//! - Removals first, dependents before what they depend on. Then services
//!   as a graph: a service starts once every container of the services it
//!   depends on is ready; services independent of each other run side by
//!   side.
//! - Parallel services run up to `parallel` engine operations at once;
//!   containers leaving a crowded project network ([`CROWDED`]) go at most
//!   [`CROWDED_STOPS`] at once ([`stops_at_once`]).
//!   Sequential services create in ascending ordinal order, each container
//!   started only once the previous one is ready, and remove in descending
//!   order, one at a time.
//! - Rolling updates keep at most `update.parallelism` replacements in
//!   flight and start the next as soon as one is ready (a sliding window):
//!   `stop-first` never has more than `parallelism` containers of the
//!   service down at once, `start-first` never fewer than `count` running.
//! - A container without a healthcheck that this apply started must keep
//!   running for a settle time: [`SETTLE`] where the next step depends on
//!   it (a sequential ordinal, a start-first replacement before the old
//!   container goes), [`PARALLEL_SETTLE`] for the containers of a parallel
//!   service, whose settle times run alongside the rest of the service's
//!   work and are checked once at its end.
//! - Readiness is woken by the engine's events ([`Readiness`]), not sleeps.
//! - A wait (a stop within its grace period, a readiness wait, a
//!   dependency) that lasts [`crate::waiting::LONG_WAIT`] is told to the [`Reporter`] while
//!   it goes on; a step's reported duration includes its waits.
//! - After a failure no new step starts; steps already running finish.
//!   Whatever state is left, the next apply completes it: a removed
//!   ordinal is created again, a leftover temporary container is removed.
//! - Volumes are never removed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::watch;

use crate::config::{Desired, Mode, Service, UpdateOrder};
use crate::engine::{Backend, ErrorKind, UnitRequest};
use crate::plan::{Action, Change, Layout, Plan, ServicePlan};
use crate::readiness::{Readiness, listed_ready};
use crate::waiting::{Waiting, told};

/// How an apply runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Engine operations at once within a parallel service.
    pub parallel: usize,
    /// When set (by SIGINT/SIGTERM), no new step starts; steps in flight finish.
    pub stop: Option<Arc<AtomicBool>>,
    /// How long a container without a healthcheck must keep running after
    /// this apply started it to count as ready ([`SETTLE`]).
    pub settle: Duration,
}

impl Options {
    pub fn new(parallel: usize) -> Self {
        Options {
            parallel,
            stop: None,
            settle: SETTLE,
        }
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// Told about each step as it finishes, and about a wait that lasts.
pub trait Reporter: Send + Sync {
    fn step(&self, change: &Change, elapsed: Duration, result: &Result<(), ApplyError>);
    /// `who` (a unit; a service for [`Waiting::on_service`]) has waited
    /// for [`crate::waiting::LONG_WAIT`] and still waits; told once per wait.
    fn waiting(&self, _who: &str, _what: &Waiting) {}
}

pub use crate::apply_error::ApplyError;

/// How long a container without a healthcheck must keep running after its
/// start to count as ready.
pub const SETTLE: Duration = Duration::from_millis(500);

/// The same for the containers of a parallel service, which nothing waits
/// for: only the apply's outcome depends on it, and its last containers'
/// settle is all that is left to wait once they started. A command that
/// fails at once dies about 20 ms after its start on an idle engine.
pub const PARALLEL_SETTLE: Duration = Duration::from_millis(100);

/// A project network holding more containers than this is crowded: with
/// 300 on it, Docker 20.10 lost count of its endpoints (and so kept the
/// network, until dockerd restarts) after 8 of 18 `down`s 8 at once, 1 of
/// 27 4 at once; with 200, after 0 of 16 and 1 of 15 (BENCHMARKS.md). The
/// line is drawn between the two.
pub const CROWDED: usize = 250;

/// Containers stopped at once on a crowded network, whatever `--parallel`.
pub const CROWDED_STOPS: usize = 4;

/// How many of `on_network` containers (the project's) stop or go at once
/// with `--parallel` `parallel`.
pub fn stops_at_once(parallel: usize, on_network: usize) -> usize {
    if on_network > CROWDED {
        parallel.clamp(1, CROWDED_STOPS)
    } else {
        parallel.max(1)
    }
}

/// The temporary name of a start-first replacement.
pub fn temporary_name(name: &str) -> String {
    format!("{name}-next")
}

/// How a service's work ended, once it has.
type Finished = Option<Result<(), ApplyError>>;

struct Run<'a> {
    engine: &'a dyn Backend,
    project: &'a str,
    swarm: crate::config::SwarmSettings,
    layout: Layout,
    options: &'a Options,
    reporter: &'a dyn Reporter,
    readiness: &'a Readiness<'a>,
    failed: AtomicBool,
    /// Services whose steps are not all done yet; a service's final
    /// settle check does not count.
    busy: watch::Sender<usize>,
}

/// Applies `plan` (computed from `desired`) to `engine`. `then` runs once
/// every step succeeded, while the last settle checks still wait (it is
/// not run after a failure); the apply returns once both are done.
///
/// # Errors
/// The first failure: an engine call, or a container that did not start or
/// become ready (with the tail of its logs).
pub async fn apply(
    engine: &dyn Backend,
    desired: &Desired,
    plan: &Plan,
    options: &Options,
    reporter: &dyn Reporter,
    then: impl Future<Output = ()>,
) -> Result<(), ApplyError> {
    let readiness = Readiness::new(engine, &desired.project);
    let run = Run {
        engine,
        project: &desired.project,
        swarm: desired.swarm,
        layout: plan.layout,
        options,
        reporter,
        readiness: &readiness,
        failed: AtomicBool::new(false),
        busy: watch::channel(plan.services.len()).0,
    };
    let mut busy = run.busy.subscribe();
    let steps = async {
        let result = run.all(plan).await;
        if result.is_err() {
            run.failed.store(true, Ordering::SeqCst);
        }
        run.busy.send_replace(0);
        result
    };
    let then = async {
        let _ = busy.wait_for(|n| *n == 0).await;
        if !run.failed.load(Ordering::SeqCst) {
            then.await;
        }
    };
    readiness
        .around(async { tokio::join!(steps, then).0 })
        .await
}

/// Tells [`Run::busy`] once that a service's steps are done.
struct StepsDone<'r> {
    busy: &'r watch::Sender<usize>,
    told: AtomicBool,
}

impl StepsDone<'_> {
    fn tell(&self) {
        if !self.told.swap(true, Ordering::SeqCst) {
            self.busy.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

impl<'a> Run<'a> {
    async fn all(&'a self, plan: &'a Plan) -> Result<(), ApplyError> {
        // Removals, dependents first.
        let removals = if self.layout == Layout::Containers {
            stops_at_once(self.options.parallel, plan.units_now)
        } else {
            self.options.parallel
        };
        for sp in plan.services.iter().rev() {
            let removes: Vec<&Change> = sp
                .changes
                .iter()
                .filter(|c| c.action == Action::Remove)
                .collect();
            let grace = sp.stop_grace_period();
            let width = if sp.mode() == Mode::Sequential {
                1
            } else {
                removals
            };
            self.each(removes, width, |c| self.remove(&c.unit, grace))
                .await?;
        }
        let creates = plan
            .changes()
            .any(|c| matches!(c.action, Action::Create | Action::Recreate | Action::Update));
        if creates {
            self.engine.ensure_network(self.project).await?;
        }
        // The graph: each service waits for what it depends on (earlier in
        // `plan.services`, which is in `depends_on` order) to be done.
        let done: Vec<watch::Sender<Finished>> = plan
            .services
            .iter()
            .map(|_| watch::channel(None).0)
            .collect();
        let works = plan.services.iter().zip(&done).map(|(sp, finished)| {
            let needed: Vec<(&ServicePlan, watch::Receiver<_>)> = sp
                .service
                .iter()
                .flat_map(|s| &s.depends_on)
                .filter_map(|d| {
                    let i = plan.services.iter().position(|p| &p.name == d)?;
                    Some((&plan.services[i], done[i].subscribe()))
                })
                .collect();
            async move {
                let done = StepsDone {
                    busy: &self.busy,
                    told: AtomicBool::new(false),
                };
                let result = self.after(sp, needed, &done).await;
                if result.is_err() {
                    self.failed.store(true, Ordering::SeqCst);
                }
                done.tell();
                finished.send_replace(Some(result.clone()));
                result
            }
        });
        first_error(join_all(works).await)
    }

    /// Runs the service of `sp` once each service it needs is done and ready.
    async fn after(
        &self,
        sp: &ServicePlan,
        needed: Vec<(&ServicePlan, watch::Receiver<Finished>)>,
        done: &StepsDone<'_>,
    ) -> Result<(), ApplyError> {
        let Some(service) = &sp.service else {
            return Ok(());
        };
        let changes = sp.changes.iter().any(|c| c.action != Action::Remove);
        for (dep, mut finished) in needed {
            let wait = async {
                let result = finished
                    .wait_for(Option::is_some)
                    .await
                    .map_or(Ok(()), |r| r.clone().unwrap_or(Ok(())));
                result?;
                if changes {
                    self.wait_service_ready(dep).await
                } else {
                    Ok(())
                }
            };
            if changes {
                let what = Waiting::Dependency {
                    service: dep.name.clone(),
                };
                self.told(&sp.name, what, wait).await?;
            } else {
                wait.await?;
            }
        }
        self.service(service, sp, done).await
    }

    /// Runs `step` for each change, `width` at a time, reporting each. After
    /// a failure, steps not yet begun are skipped; the first error is returned.
    async fn each<'c, F, Fut>(
        &self,
        changes: Vec<&'c Change>,
        width: usize,
        step: F,
    ) -> Result<(), ApplyError>
    where
        F: Fn(&'c Change) -> Fut,
        Fut: std::future::Future<Output = Result<(), ApplyError>>,
    {
        let results: Vec<Result<(), ApplyError>> = stream::iter(changes)
            .map(|c| {
                let fut = step(c);
                async move {
                    if self.failed.load(Ordering::SeqCst) {
                        return Err(ApplyError::Skipped);
                    }
                    if self.options.stopping() {
                        return Err(ApplyError::Interrupted);
                    }
                    let started = Instant::now();
                    let result = fut.await;
                    if result.is_err() {
                        self.failed.store(true, Ordering::SeqCst);
                    }
                    self.reporter.step(c, started.elapsed(), &result);
                    result
                }
            })
            .buffer_unordered(width.max(1))
            .collect()
            .await;
        first_error(results)
    }

    async fn service(
        &self,
        service: &Service,
        sp: &ServicePlan,
        done: &StepsDone<'_>,
    ) -> Result<(), ApplyError> {
        let todo: Vec<&Change> = sp
            .changes
            .iter()
            .filter(|c| c.action != Action::Remove)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let settle = self.settle(service);
        if self.layout.replicated(service) {
            // One unit that rolls its replicas itself.
            return self
                .each(todo, 1, |c| self.converge(service, c, Some(settle)))
                .await;
        }
        if service.mode == Mode::Sequential {
            // One at a time, ascending, each ready before the next; the
            // ordinals below that the plan leaves alone must be ready too
            // (one may still be starting, e.g. after an interrupted apply).
            let mine: Vec<u32> = todo.iter().filter_map(|c| c.ordinal).collect();
            let mut checked = 0;
            for c in todo {
                let ordinal = c.ordinal.unwrap_or(1);
                for k in (checked + 1)..ordinal {
                    if !mine.contains(&k) {
                        let name = self.layout.unit_name(self.project, &service.name, Some(k));
                        self.ready(service, &name, Duration::ZERO).await?;
                    }
                }
                checked = ordinal;
                self.each(vec![c], 1, |c| self.converge(service, c, Some(settle)))
                    .await?;
            }
            return Ok(());
        }
        // Containers this apply starts, settled at the end (see `settled`).
        let started = std::sync::Mutex::new(Vec::new());
        let record = |c: &Change| {
            started
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((c.unit.clone(), Instant::now()));
        };
        let (recreates, others): (Vec<&Change>, Vec<&Change>) =
            todo.into_iter().partition(|c| c.action == Action::Recreate);
        self.each(others, self.options.parallel, |c| async move {
            self.converge(service, c, None).await?;
            record(c);
            Ok(())
        })
        .await?;
        // Rolling update as a sliding window of `parallelism`: the next
        // replacement starts as soon as one in flight is ready. Stop-first
        // replacements of containers count as ready once they run (their
        // settle is checked with the others'); start-first ones settle
        // before the container they replace goes.
        let width = service.update.parallelism.max(1) as usize;
        let inline = service.update.order == UpdateOrder::StartFirst;
        let wait = if inline { settle } else { Duration::ZERO };
        self.each(recreates, width, |c| async move {
            self.converge(service, c, Some(wait)).await?;
            if !inline {
                record(c);
            }
            Ok(())
        })
        .await?;
        let started = started
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        done.tell();
        let settle = settle.min(PARALLEL_SETTLE);
        let what = Waiting::Settled { settle };
        self.told(
            &service.name,
            what,
            self.readiness.settled(&started, settle),
        )
        .await
    }

    /// Runs `wait`, telling the reporter what `who` waits for once it has
    /// lasted [`crate::waiting::LONG_WAIT`].
    async fn told<T>(&self, who: &str, what: Waiting, wait: impl Future<Output = T>) -> T {
        told(|| self.reporter.waiting(who, &what), wait).await
    }

    /// [`Readiness::ready`], told when it lasts.
    async fn ready(
        &self,
        service: &Service,
        name: &str,
        settle: Duration,
    ) -> Result<(), ApplyError> {
        self.readiness
            .ready_told(service, name, settle, |who, what| {
                self.reporter.waiting(who, what);
            })
            .await
    }

    /// Stops (within `grace`) and removes `unit`, told when the stop lasts.
    async fn remove(&self, unit: &str, grace: Duration) -> Result<(), ApplyError> {
        let what = Waiting::Stop { grace };
        Ok(self
            .told(unit, what, self.engine.remove(unit, grace))
            .await?)
    }

    /// How long a container of `service` that this apply starts must keep
    /// running without a healthcheck.
    fn settle(&self, service: &Service) -> Duration {
        self.options.settle.min(service.ready_timeout / 2)
    }

    fn request<'s>(&'s self, service: &'s Service, c: &Change, name: &'s str) -> UnitRequest<'s> {
        UnitRequest {
            project: self.project,
            service,
            ordinal: c.ordinal,
            name,
            replicas: c.to.unwrap_or(1),
            swarm: self.swarm,
        }
    }

    /// Brings one unit to the file's state; with `wait`, until ready (a
    /// container without a healthcheck also running for that long).
    async fn converge(
        &self,
        service: &Service,
        c: &Change,
        wait: Option<Duration>,
    ) -> Result<(), ApplyError> {
        let engine = self.engine;
        let grace = service.stop_grace_period;
        match c.action {
            Action::Start => {
                engine.start(&c.unit).await?;
            }
            Action::Create => {
                self.create_and_start(&self.request(service, c, &c.unit))
                    .await?;
            }
            Action::Scale => {
                engine
                    .update(&self.request(service, c, &c.unit), false)
                    .await?
            }
            Action::Update => {
                let force = !matches!(c.reason, crate::plan::Reason::ConfigChanged);
                engine
                    .update(&self.request(service, c, &c.unit), force)
                    .await?;
            }
            // A unit that is updated in place (a per-ordinal swarm service).
            Action::Recreate if self.layout == Layout::SwarmServices => {
                let force = !matches!(c.reason, crate::plan::Reason::ConfigChanged);
                engine
                    .update(&self.request(service, c, &c.unit), force)
                    .await?;
            }
            Action::Recreate if service.update.order == UpdateOrder::StartFirst => {
                // A leftover of ours under this name is in the plan as a
                // removal; a container of that name that is not ours stays,
                // and the create below fails naming it.
                let temp = temporary_name(&c.unit);
                let request = self.request(service, c, &temp);
                self.ensure_volumes(&request).await?;
                self.create(&request).await?;
                engine.start(&temp).await?;
                let settle = wait.unwrap_or_else(|| self.settle(service));
                self.ready(service, &temp, settle).await?;
                self.remove(&c.unit, grace).await?;
                engine.rename(&temp, &c.unit).await?;
                return Ok(());
            }
            Action::Recreate => {
                self.remove(&c.unit, grace).await?;
                self.create_and_start(&self.request(service, c, &c.unit))
                    .await?;
            }
            Action::Remove => {
                self.remove(&c.unit, grace).await?;
                return Ok(());
            }
        }
        if let Some(settle) = wait {
            self.ready(service, &c.unit, settle).await?;
        }
        Ok(())
    }

    /// The named volumes a container mounts; a unit that schedules its own
    /// replicas has its volumes made where its tasks run.
    async fn ensure_volumes(&self, unit: &UnitRequest<'_>) -> Result<(), ApplyError> {
        if self.layout != Layout::Containers {
            return Ok(());
        }
        let spec = crate::engine::container_spec(
            self.project,
            unit.service,
            unit.ordinal.unwrap_or(1),
            unit.name,
        );
        for m in spec.mounts.iter().filter(|m| !m.bind && !m.external) {
            self.engine.ensure_volume(self.project, &m.source).await?;
        }
        Ok(())
    }

    /// Creates `unit`. A unit of the project that took the name after the
    /// plan was made (one a killed apply's last create made, finished by
    /// the engine after this apply listed) is replaced by the file's; a
    /// unit that is not the project's stays, and the error names it.
    async fn create(&self, unit: &UnitRequest<'_>) -> Result<(), ApplyError> {
        match self.engine.create(unit).await {
            Err(err) if err.kind == ErrorKind::Conflict => {
                match self.engine.unit_owner(unit.name).await? {
                    Some(Some(owner)) if owner == self.project => {
                        let what = match self.layout {
                            Layout::Containers => "a container",
                            Layout::SwarmServices => "a service",
                        };
                        tracing::warn!(
                            "replacing {}, {what} of project {owner} that appeared after the plan was made",
                            unit.name
                        );
                        self.engine
                            .remove(unit.name, unit.service.stop_grace_period)
                            .await?;
                    }
                    None => {} // gone since: the name is free
                    Some(_) => return Err(err.into()),
                }
                Ok(self.engine.create(unit).await?)
            }
            done => Ok(done?),
        }
    }

    async fn create_and_start(&self, unit: &UnitRequest<'_>) -> Result<(), ApplyError> {
        self.ensure_volumes(unit).await?;
        self.create(unit).await?;
        if self.layout == Layout::SwarmServices {
            return Ok(());
        }
        if let Err(e) = self.engine.start(unit.name).await {
            if e.kind == ErrorKind::Unreachable {
                return Err(e.into());
            }
            let why = format!("failed to start: {}", e.message);
            return Err(self.readiness.not_ready(unit.name, why).await);
        }
        Ok(())
    }

    async fn wait_service_ready(&self, sp: &ServicePlan) -> Result<(), ApplyError> {
        let Some(service) = &sp.service else {
            return Ok(());
        };
        if self.layout.replicated(service) {
            let name = self.layout.unit_name(self.project, &service.name, None);
            return self.readiness.ready(service, &name, Duration::ZERO).await;
        }
        let mut names: Vec<String> = (1..=service.count)
            .map(|o| self.layout.unit_name(self.project, &service.name, Some(o)))
            .collect();
        if self.layout == Layout::Containers {
            // One list tells which are ready already; only the others are
            // waited for.
            let units = self.engine.units(self.project).await?;
            let ready: std::collections::HashSet<&str> = units
                .iter()
                .filter(|u| listed_ready(service, u))
                .map(|u| u.name.as_str())
                .collect();
            names.retain(|n| !ready.contains(n.as_str()));
        }
        // The rest at once (`parallel` status calls in flight): the
        // dependent waits for the slowest, not for the sum.
        stream::iter(names)
            .map(|name| async move { self.readiness.ready(service, &name, Duration::ZERO).await })
            .buffer_unordered(self.options.parallel.max(1))
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }
}

/// The first error of `results` that says what went wrong: a failure
/// before an interruption, either before a skipped step.
fn first_error(results: Vec<Result<(), ApplyError>>) -> Result<(), ApplyError> {
    let mut first = None;
    for r in results {
        match r {
            Err(ApplyError::Skipped) | Ok(()) => {}
            Err(ApplyError::Interrupted) => {
                first.get_or_insert(ApplyError::Interrupted);
            }
            Err(e) => {
                if matches!(first, None | Some(ApplyError::Interrupted)) {
                    first = Some(e);
                }
            }
        }
    }
    first.map_or(Ok(()), Err)
}
