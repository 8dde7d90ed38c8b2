//! The one pipeline that every command that changes the engine and every
//! pass of the daemon runs: load (by the caller) → observe → plan → pull
//! missing images → lock → observe again → plan → apply → unlock. Does
//! engine I/O through the [`Backend`] trait only; tells an [`Observer`]
//! what it does and prints nothing itself.
//!
//! # Guarantees
//! - Nothing on the engine changes before every missing image is pulled
//!   and every volume the plan mounts is known to be usable: a failure
//!   there stops the pass with the engine as it was.
//! - The plan that is applied is computed under the lock, from an
//!   observation made under the lock: a stale plan is never applied.
//! - The lock is released on every path, failures included.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::apply::{self, Reporter};
use crate::config::Desired;
use crate::engine::{
    Actual, Applied, Backend, Endpoint, EngineError, ErrorKind, LockHolder, container_spec,
};
use crate::error::Error;
use crate::lock;
use crate::plan::{self, Action, Change, Layout, Plan};

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Also remove the units of services gone from the file.
    pub prune: bool,
    /// Engine operations at once within a parallel service.
    pub parallel: usize,
    pub lock_timeout: Duration,
    /// Set by SIGINT/SIGTERM: no new step starts, the lock wait ends.
    pub stop: Option<Arc<AtomicBool>>,
    /// Take the lock even when a first look finds nothing to do, so that a
    /// command run after another one sees that one's result. The daemon's
    /// idle passes take no lock.
    pub lock_when_idle: bool,
    /// The command, for the lock holder's description.
    pub command: String,
    /// `desired` is restricted to target services: the units of the
    /// others are left out of every observation (neither touched nor
    /// orphans).
    pub targeted: bool,
}

/// Told what a pass does, as it does it. Every method has a default that
/// does nothing, except the step report of [`Reporter`].
pub trait Observer: Reporter {
    /// The plan, before anything changes; again when the engine moved
    /// between the first look and the look under the lock.
    fn plan(&self, _plan: &Plan, _endpoint: &Endpoint) {}
    /// An image is being pulled.
    fn pulling(&self, _image: &str) {}
    /// Steps to take out of the plan before it is applied (the daemon's
    /// back-offs).
    fn hold_back(&self, _plan: &mut Plan) {}
    /// Whether the plan may go on, with what it was made from: on the first
    /// look (before anything is printed or pulled) and again under the
    /// lock. An error ends the pass with nothing changed (a saved plan that
    /// no longer matches the engine).
    fn check(&self, _plan: &Plan, _actual: &Actual) -> Result<(), Error> {
        Ok(())
    }
    /// Right before the apply, with what was observed under the lock.
    fn applying(&self, _plan: &Plan, _actual: &Actual) {}
    /// Right after the apply, whatever its outcome.
    fn applied(&self, _plan: &Plan) {}
    /// The lock is held by another muster, which this one waits for.
    fn lock_held(&self, _holder: &LockHolder) {}
}

/// How a pass ended.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing to do; the plan, for its summary.
    UpToDate(Plan),
    /// The plan was applied.
    Applied(Plan),
}

/// One pass of the pipeline for `desired` on `backend`.
///
/// # Errors
/// [`Error::Pull`] (nothing changed), [`Error::Engine`] (a volume that
/// cannot be used: nothing changed; or the engine failed), [`Error::Lock`],
/// [`Error::Apply`].
pub async fn pass(
    backend: &dyn Backend,
    desired: &Desired,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Outcome, Error> {
    let images = desired.images();
    let mut first = backend.observe(&desired.project, &images).await?;
    if options.targeted {
        crate::target::keep_declared(&mut first, desired);
    }
    let mut planned = plan::plan(desired, &first, options.prune);
    observer.hold_back(&mut planned);
    observer.check(&planned, &first)?;
    if planned.is_empty() && !options.lock_when_idle {
        return Ok(Outcome::UpToDate(planned));
    }
    if !planned.is_empty() {
        observer.plan(&planned, &backend.endpoint());
    }
    pull(backend, &planned.missing_images, observer).await?;
    locked(backend, &desired.project, options, observer, async {
        let mut actual = backend.observe(&desired.project, &images).await?;
        if options.targeted {
            crate::target::keep_declared(&mut actual, desired);
        }
        let mut current = plan::plan(desired, &actual, options.prune);
        observer.hold_back(&mut current);
        observer.check(&current, &actual)?;
        if current.is_empty() {
            remember(backend, desired, options, &actual).await;
            return Ok(Outcome::UpToDate(current));
        }
        if steps(&current) != steps(&planned) {
            observer.plan(&current, &backend.endpoint());
        }
        check_ports(&current)?;
        check_volumes(backend, desired, &current).await?;
        observer.applying(&current, &actual);
        let apply_options = apply::Options {
            stop: options.stop.clone(),
            ..apply::Options::new(options.parallel)
        };
        // The record is written while the last settle checks wait.
        let record = remember(backend, desired, options, &actual);
        let result =
            apply::apply(backend, desired, &current, &apply_options, observer, record).await;
        observer.applied(&current);
        result?;
        Ok(Outcome::Applied(current))
    })
    .await
}

/// Records what this pass applied over `actual` ([`Actual::applied`]),
/// when that changed: once every step succeeded, alongside the last settle
/// checks (a container that then exits is still there, to be started, not
/// missing). A record that cannot be written is told, not failed:
/// the engine has what the file says, and only the wording of a later
/// plan (a unit that vanished, a service scaled up from 0) depends on it.
async fn remember(backend: &dyn Backend, desired: &Desired, options: &Options, actual: &Actual) {
    let record = applied_record(desired, options, actual);
    if record == actual.applied {
        return;
    }
    if let Err(e) = backend.record(&desired.project, &record).await {
        tracing::warn!("{e}; a unit that vanishes later may be planned as a scale-up");
    }
}

/// The record once `desired` is applied over `actual`: the file's count of
/// each of its services; of the services the record had besides, those a
/// targeted pass left alone and the orphans still on the engine.
fn applied_record(desired: &Desired, options: &Options, actual: &Actual) -> Applied {
    let kept = |name: &str| {
        options.targeted || (!options.prune && actual.units.iter().any(|u| u.service == name))
    };
    let mut record: Applied = actual
        .applied
        .iter()
        .filter(|(name, _)| !desired.services.contains_key(*name) && kept(name))
        .map(|(name, count)| (name.clone(), *count))
        .collect();
    for s in desired.services.values() {
        record.insert(s.name.clone(), s.count);
    }
    record
}

fn steps(plan: &Plan) -> Vec<&Change> {
    plan.changes().collect()
}

/// Pulls every missing image, trying them all; the failures together.
async fn pull(
    backend: &dyn Backend,
    images: &[String],
    observer: &dyn Observer,
) -> Result<(), Error> {
    let mut failed: Vec<EngineError> = Vec::new();
    for image in images {
        observer.pulling(image);
        if let Err(e) = backend.pull(image).await {
            if e.kind == ErrorKind::Unreachable {
                return Err(e.into());
            }
            failed.push(e);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Pull {
            failed,
            missing: true,
        })
    }
}

/// A host port that an orphan holds and a container the plan creates asks
/// for would leave that container created and not started: refused before
/// any change, unless the orphans go first (`--prune`).
fn check_ports(plan: &Plan) -> Result<(), Error> {
    if plan.pruned {
        return Ok(());
    }
    let Some((o, holds)) = plan
        .orphans
        .iter()
        .find_map(|o| Some((o, crate::render::holds(o)?)))
    else {
        return Ok(());
    };
    let message = format!(
        "orphan {} ({}): {holds}; remove it with `muster apply --prune` (a renamed \
         service?) or change the port; nothing was changed",
        o.service,
        o.containers.join(", ")
    );
    Err(EngineError::new("checking host ports", ErrorKind::Conflict, message).into())
}

/// Every named volume that the plan's new containers mount must be the
/// project's (or not exist yet): another project's data is never mounted.
/// A volume the file declares external must exist. Checked before any change.
async fn check_volumes(backend: &dyn Backend, desired: &Desired, plan: &Plan) -> Result<(), Error> {
    if plan.layout != Layout::Containers {
        return Ok(());
    }
    let mut mounts = BTreeMap::new();
    for sp in &plan.services {
        let Some(service) = &sp.service else { continue };
        for c in sp
            .changes
            .iter()
            .filter(|c| matches!(c.action, Action::Create | Action::Recreate))
        {
            let spec = container_spec(&desired.project, service, c.ordinal.unwrap_or(1), &c.unit);
            for m in spec.mounts.into_iter().filter(|m| !m.bind) {
                mounts.insert(m.source, m.external);
            }
        }
    }
    for (name, external) in mounts {
        let doing = format!("checking volume {name}");
        let refuse = |message: String| -> Result<(), Error> {
            Err(EngineError::new(&doing, ErrorKind::Conflict, message).into())
        };
        match (backend.volume_owner(&name).await?, external) {
            (None, true) => {
                return refuse(format!(
                    "volume {name} is declared external and does not exist; create it \
                     (docker volume create {name}) or fix its name; nothing was changed"
                ));
            }
            (_, true) | (None, false) => {}
            (Some(Some(owner)), false) if owner == desired.project => {}
            (Some(owner), false) => {
                let whose = match owner {
                    Some(other) => format!("belongs to project {other}"),
                    None => {
                        "was not created by muster (it has no io.muster.project label)".to_string()
                    }
                };
                return refuse(format!(
                    "volume {name} {whose}; muster does not mount another's data. \
                     Declare it as [volumes.NAME] external = true to use it as it is; nothing was changed"
                ));
            }
        }
    }
    Ok(())
}

/// Runs `work` holding the project's lock; releases it on every path.
///
/// # Errors
/// [`Error::Lock`] when the lock cannot be had; `work`'s error otherwise
/// (before a failure to release the lock).
pub async fn locked<T>(
    backend: &dyn Backend,
    project: &str,
    options: &Options,
    observer: &dyn Observer,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let me = lock::me(&options.command);
    lock::acquire(
        backend,
        project,
        &me,
        options.lock_timeout,
        options.stop.as_deref(),
        &|holder| observer.lock_held(holder),
    )
    .await?;
    let result = work.await;
    let released = backend.unlock(project).await;
    let value = result?;
    released?;
    Ok(value)
}

/// What `down` removed.
#[derive(Debug)]
pub struct Down {
    pub plan: Plan,
    pub volumes: Vec<String>,
    /// The project network, when the engine would not let it go (its count
    /// of the network's endpoints is off): why, in the engine's words.
    pub network_kept: Option<String>,
}

/// How long `down` retries removing a network that the engine says still has
/// endpoints: its miscount was not seen to clear within that (BENCHMARKS.md),
/// and a project whose network stuck once pays this at every later `down`.
const NETWORK_RETRY: Duration = Duration::from_secs(2);

/// Removes every unit of the project (the plan to nothing: every service at
/// count 0, orphans pruned), then its network, and with `volumes` its
/// volumes, under the lock.
///
/// # Errors
/// As [`pass`].
pub async fn down(
    backend: &dyn Backend,
    desired: &Desired,
    volumes: bool,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Down, Error> {
    let mut nothing = desired.clone();
    for s in nothing.services.values_mut() {
        s.count = 0;
    }
    locked(backend, &desired.project, options, observer, async {
        let actual = backend.observe(&desired.project, &[]).await?;
        // An external volume is never removed, even one that carries the
        // project's label (muster made it before it was declared so): the
        // file says which are, and so do the labels of the units that
        // mount them, for a `down` without the file.
        let mut external = desired.external_volumes();
        external.extend(
            actual
                .units
                .iter()
                .flat_map(|u| crate::config::external_volumes_of(&u.config)),
        );
        let plan = plan::plan(&nothing, &actual, true);
        let apply_options = apply::Options {
            stop: options.stop.clone(),
            ..apply::Options::new(options.parallel)
        };
        apply::apply(backend, &nothing, &plan, &apply_options, observer, async {}).await?;
        backend.record(&desired.project, &Applied::new()).await?;
        let network_kept = remove_network(backend, &desired.project).await?;
        let mut removed = Vec::new();
        if volumes {
            for v in backend.volumes(&desired.project).await? {
                if external.contains(&v) {
                    continue;
                }
                backend.remove_volume(&v).await?;
                removed.push(v);
            }
        }
        Ok(Down {
            plan,
            volumes: removed,
            network_kept,
        })
    })
    .await
}

/// Removes the project's network. Docker 20.10 sometimes loses count of a
/// network's endpoints, and then refuses to remove the network until it
/// restarts and recounts them: that is retried for a few seconds, then
/// reported (the next apply reuses the network), not failed. It is tried
/// again at least once, however long the first refusal took.
async fn remove_network(backend: &dyn Backend, project: &str) -> Result<Option<String>, Error> {
    let until = std::time::Instant::now() + NETWORK_RETRY;
    let mut retried = false;
    loop {
        match backend.remove_network(project).await {
            Ok(()) => return Ok(None),
            Err(e) if e.kind != ErrorKind::Conflict && e.message.contains("active endpoints") => {
                if retried && std::time::Instant::now() >= until {
                    return Ok(Some(e.message));
                }
                retried = true;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(text: &str) -> Desired {
        crate::config::parse_str("t.toml", text, std::path::Path::new("/srv"))
            .unwrap_or_else(|e| panic!("{}", e.render_plain()))
    }

    fn options(prune: bool, targeted: bool) -> Options {
        Options {
            prune,
            parallel: 8,
            lock_timeout: Duration::from_secs(1),
            stop: None,
            lock_when_idle: true,
            command: String::new(),
            targeted,
        }
    }

    struct Quiet;
    impl crate::apply::Reporter for Quiet {
        fn step(
            &self,
            _: &crate::plan::Change,
            _: Duration,
            _: &Result<(), crate::apply_error::ApplyError>,
        ) {
        }
    }
    impl Observer for Quiet {}

    /// Docker 20.10 at times refuses to remove a network it keeps a stale
    /// endpoint of (the engine's words kept by the memory engine): `down`
    /// retries, then says so without failing; the next apply reuses it.
    #[tokio::test]
    async fn down_retries_a_network_the_engine_keeps_says_why_and_apply_reuses_it() {
        let file = desired("project = \"p\"\n[services.web]\nimage = \"i:1\"\ncount = 2\n");
        let engine = crate::engine::memory::MemoryEngine::with_images(&[("i:1", "sha256:1")]);
        let network = crate::engine::network_name("p");
        let opts = options(false, false);
        pass(&engine, &file, &opts, &Quiet).await.unwrap();
        // Kept twice, then let go: the retry removes it.
        engine.with(|s| s.network_kept = 2);
        let done = down(&engine, &file, false, &opts, &Quiet).await.unwrap();
        assert_eq!(done.network_kept, None);
        assert!(engine.with(|s| !s.networks.contains(&network)));
        // Kept for good: `down` ends, the containers gone, and says why.
        pass(&engine, &file, &opts, &Quiet).await.unwrap();
        engine.with(|s| s.network_kept = u32::MAX);
        let done = down(&engine, &file, false, &opts, &Quiet).await.unwrap();
        let why = done.network_kept.expect("the kept network is said");
        assert!(why.contains("has active endpoints"), "{why}");
        assert!(engine.with(|s| s.containers.is_empty() && s.networks.contains(&network)));
        // The next apply runs on the network the engine kept.
        engine.take_calls();
        pass(&engine, &file, &opts, &Quiet).await.unwrap();
        let calls = engine.take_calls();
        assert!(!calls.iter().any(|c| c.starts_with("network")), "{calls:?}");
        assert_eq!(engine.with(|s| s.containers.len()), 2);
    }

    #[test]
    fn the_record_keeps_what_is_still_there_and_what_a_target_left_alone() {
        let file = desired(
            "project = \"p\"\n[services.web]\nimage = \"i:1\"\ncount = 3\n\
             [services.jobs]\nimage = \"i:1\"\ncount = 0\n",
        );
        let engine = crate::engine::memory::MemoryEngine::with_images(&[("i:1", "sha256:1")]);
        // `old` left the file and still has a container; `gone` has none.
        let old = desired("project = \"p\"\n[services.old]\nimage = \"i:1\"\n");
        let name = crate::engine::container_name("p", "old", 1);
        engine.insert(
            crate::engine::container_spec("p", &old.services["old"], 1, &name),
            crate::engine::State::Running,
        );
        let mut actual = engine.snapshot("p", &[]);
        actual.applied = Applied::from([("web".into(), 2), ("old".into(), 1), ("gone".into(), 4)]);
        let counts = |prune, targeted| -> Vec<(String, u32)> {
            applied_record(&file, &options(prune, targeted), &actual)
                .into_iter()
                .collect()
        };
        let s = |n: &str, c| (n.to_string(), c);
        assert_eq!(
            counts(false, false),
            [s("jobs", 0), s("old", 1), s("web", 3)]
        );
        assert_eq!(counts(true, false), [s("jobs", 0), s("web", 3)]);
        assert_eq!(
            counts(false, true),
            [s("gone", 4), s("jobs", 0), s("old", 1), s("web", 3)]
        );
    }
}
