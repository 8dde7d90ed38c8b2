//! The apply stage: carries out a [`Plan`] on an [`Engine`]. Does engine I/O
//! through the trait only.
//!
//! # Guarantees
//! - Services are handled in `depends_on` order; removals first, in reverse
//!   order. A service waits until every container of the services it
//!   depends on is ready.
//! - Parallel services run up to `parallel` engine operations at once.
//!   Sequential services create in ascending ordinal order, each container
//!   started only once the previous one is ready, and remove in descending
//!   order, one at a time.
//! - After a failure no new step starts; steps already running finish.
//!   Whatever state is left, the next apply completes it: a removed
//!   ordinal is created again, a leftover temporary container is removed.
//! - Volumes are never removed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;

use crate::config::{Desired, Mode, Service, UpdateOrder};
use crate::engine::{Backend, EngineError, ErrorKind, Health, State, UnitRequest};
use crate::plan::{Action, Change, Layout, Plan, ServicePlan};

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

/// Told about each step as it finishes.
pub trait Reporter: Send + Sync {
    fn step(&self, change: &Change, elapsed: Duration, result: &Result<(), ApplyError>);
}

/// Why an apply stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{container} {why}")]
    NotReady {
        container: String,
        why: String,
        /// The tail of its output.
        logs: String,
    },
    #[error("stopped after an earlier failure")]
    Skipped,
    /// Stopped by a signal between two steps.
    #[error("interrupted; the next apply finishes the plan")]
    Interrupted,
}

/// How long a container without a healthcheck must keep running after its
/// start to count as ready.
pub const SETTLE: Duration = Duration::from_millis(500);

/// The temporary name of a start-first replacement.
pub fn temporary_name(name: &str) -> String {
    format!("{name}-next")
}

struct Run<'a> {
    engine: &'a dyn Backend,
    project: &'a str,
    swarm: crate::config::SwarmSettings,
    layout: Layout,
    options: &'a Options,
    reporter: &'a dyn Reporter,
    failed: AtomicBool,
}

/// Applies `plan` (computed from `desired`) to `engine`.
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
) -> Result<(), ApplyError> {
    let run = Run {
        engine,
        project: &desired.project,
        swarm: desired.swarm,
        layout: plan.layout,
        options,
        reporter,
        failed: AtomicBool::new(false),
    };
    // Removals, dependents first.
    for sp in plan.services.iter().rev() {
        let removes: Vec<&Change> = sp
            .changes
            .iter()
            .filter(|c| c.action == Action::Remove)
            .collect();
        let grace = sp
            .service
            .as_ref()
            .map_or(Duration::from_secs(10), |s| s.stop_grace_period);
        let width = if sp.mode() == Mode::Sequential {
            1
        } else {
            options.parallel
        };
        run.each(removes, width, |c| async move {
            engine.remove(&c.unit, grace).await.map_err(Into::into)
        })
        .await?;
    }
    let creates = plan
        .changes()
        .any(|c| matches!(c.action, Action::Create | Action::Recreate | Action::Update));
    if creates {
        engine.ensure_network(&desired.project).await?;
    }
    for sp in &plan.services {
        let Some(service) = &sp.service else { continue };
        let needed = service
            .depends_on
            .iter()
            .filter_map(|d| plan.services.iter().find(|p| &p.name == d));
        if sp.changes.iter().any(|c| c.action != Action::Remove) {
            for dep in needed {
                run.wait_service_ready(dep).await?;
            }
        }
        run.service(service, sp).await?;
    }
    Ok(())
}

impl Run<'_> {
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
        let mut first = None;
        for r in results {
            match r {
                Err(ApplyError::Skipped) => {}
                Err(ApplyError::Interrupted) if first.is_none() => {
                    first = Some(ApplyError::Interrupted)
                }
                Err(ApplyError::Interrupted) => {}
                Err(e) => {
                    if matches!(first, None | Some(ApplyError::Interrupted)) {
                        first = Some(e);
                    }
                }
                Ok(()) => {}
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn service(&self, service: &Service, sp: &ServicePlan) -> Result<(), ApplyError> {
        let todo: Vec<&Change> = sp
            .changes
            .iter()
            .filter(|c| c.action != Action::Remove)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        if self.layout.replicated(service) {
            // One unit that rolls its replicas itself.
            return self
                .each(todo, 1, |c| self.converge(service, c, true))
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
                        self.wait_ready(service, &name, false).await?;
                    }
                }
                checked = ordinal;
                self.each(vec![c], 1, |c| self.converge(service, c, true))
                    .await?;
            }
            return Ok(());
        }
        let (recreates, others): (Vec<&Change>, Vec<&Change>) =
            todo.into_iter().partition(|c| c.action == Action::Recreate);
        let started: Vec<&str> = others.iter().map(|c| c.unit.as_str()).collect();
        self.each(others, self.options.parallel, |c| {
            self.converge(service, c, false)
        })
        .await?;
        self.check_still_running(service, &started).await?;
        // Rolling update: `parallelism` at a time, each batch ready before the next.
        for batch in recreates.chunks(service.update.parallelism.max(1) as usize) {
            self.each(batch.to_vec(), batch.len(), |c| {
                self.converge(service, c, true)
            })
            .await?;
        }
        Ok(())
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

    /// Brings one unit to the file's state; with `wait`, until ready.
    async fn converge(&self, service: &Service, c: &Change, wait: bool) -> Result<(), ApplyError> {
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
                engine.create(&request).await?;
                engine.start(&temp).await?;
                self.wait_ready(service, &temp, true).await?;
                engine.remove(&c.unit, grace).await?;
                engine.rename(&temp, &c.unit).await?;
                return Ok(());
            }
            Action::Recreate => {
                engine.remove(&c.unit, grace).await?;
                self.create_and_start(&self.request(service, c, &c.unit))
                    .await?;
            }
            Action::Remove => {
                engine.remove(&c.unit, grace).await?;
                return Ok(());
            }
        }
        if wait {
            self.wait_ready(service, &c.unit, true).await?;
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

    async fn create_and_start(&self, unit: &UnitRequest<'_>) -> Result<(), ApplyError> {
        self.ensure_volumes(unit).await?;
        self.engine.create(unit).await?;
        if self.layout.replicated(unit.service) || self.layout == Layout::SwarmServices {
            return Ok(());
        }
        if let Err(e) = self.engine.start(unit.name).await {
            if e.kind == ErrorKind::Unreachable {
                return Err(e.into());
            }
            let logs = self.engine.logs(unit.name, 20).await.unwrap_or_default();
            return Err(ApplyError::NotReady {
                container: unit.name.to_string(),
                why: format!("failed to start: {}", e.message),
                logs,
            });
        }
        Ok(())
    }

    /// Waits until `name` runs (and is healthy, when a healthcheck is declared).
    /// Without a healthcheck, a container that this apply `just_started`
    /// must keep running for `settle`: a command that fails at once is a
    /// container that failed to start, not a ready one.
    async fn wait_ready(
        &self,
        service: &Service,
        name: &str,
        just_started: bool,
    ) -> Result<(), ApplyError> {
        let began = Instant::now();
        let deadline = began + service.ready_timeout;
        let settle = if just_started {
            self.options.settle.min(service.ready_timeout / 2)
        } else {
            Duration::ZERO
        };
        let mut pause = Duration::from_millis(25);
        loop {
            let status = self.engine.status(name).await?;
            let why = match (status.state, status.health) {
                (State::Running, _)
                    if service.healthcheck.is_none() && began.elapsed() >= settle =>
                {
                    return Ok(());
                }
                (State::Running, Some(Health::Healthy)) => return Ok(()),
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
                let logs = self.engine.logs(name, 20).await.unwrap_or_default();
                return Err(ApplyError::NotReady {
                    container: name.to_string(),
                    why,
                    logs,
                });
            }
            let left = settle
                .saturating_sub(began.elapsed())
                .max(Duration::from_millis(1));
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Parallel containers are not waited for one by one (that would cost
    /// the settle time per container): once they all started, one settle
    /// time and one list call tell whether any of them exited at once.
    async fn check_still_running(
        &self,
        service: &Service,
        started: &[&str],
    ) -> Result<(), ApplyError> {
        if started.is_empty() || self.options.settle.is_zero() {
            return Ok(());
        }
        tokio::time::sleep(self.options.settle.min(service.ready_timeout / 2)).await;
        let actual = self.engine.observe(self.project, &[]).await?;
        let exited = actual
            .units
            .iter()
            .filter(|u| started.contains(&u.name.as_str()))
            .find(|u| matches!(u.state, State::Exited | State::Dead));
        if let Some(u) = exited {
            let logs = self.engine.logs(&u.name, 20).await.unwrap_or_default();
            return Err(ApplyError::NotReady {
                container: u.name.clone(),
                why: format!("exited right after it started ({})", u.status),
                logs,
            });
        }
        Ok(())
    }

    async fn wait_service_ready(&self, sp: &ServicePlan) -> Result<(), ApplyError> {
        let Some(service) = &sp.service else {
            return Ok(());
        };
        if self.layout.replicated(service) {
            let name = self.layout.unit_name(self.project, &service.name, None);
            return self.wait_ready(service, &name, false).await;
        }
        for o in 1..=service.count {
            let name = self.layout.unit_name(self.project, &service.name, Some(o));
            self.wait_ready(service, &name, false).await?;
        }
        Ok(())
    }
}
