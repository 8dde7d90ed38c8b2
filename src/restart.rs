//! `muster restart [SERVICE…]`: stops and starts each container of the
//! named services (every service without names), under the project's
//! lock. A sequential service restarts one container at a time in ordinal
//! order, each ready before the next; a parallel one up to `--parallel`
//! at once (fewer on a crowded network, [`crate::apply::stops_at_once`]).
//! On a swarm each swarm service redeploys its tasks instead, in its own
//! update order (a forced update, as `docker service update --force`),
//! and is waited for until every task of the new deployment runs.
//! Nothing is created or removed. Does engine I/O through the
//! [`Backend`] trait.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};

use crate::apply::ApplyError;
use crate::config::{Desired, Mode, Service};
use crate::engine::Backend;
use crate::readiness::Readiness;
use crate::waiting::{Tell, Waiting, told};

/// Restarts every unit (container, or swarm service) of `desired`'s
/// services; `done` is told each one as it finishes.
///
/// # Errors
/// The first unit that cannot be stopped, started, or (sequential, or a
/// swarm service) made ready.
pub async fn restart(
    backend: &dyn Backend,
    desired: &Desired,
    parallel: usize,
    done: &(dyn Fn(&str, Duration) + Send + Sync),
    tell: Tell<'_>,
) -> Result<usize, ApplyError> {
    let readiness = Readiness::new(backend, &desired.project);
    let run = Restart {
        backend,
        readiness: &readiness,
        swarm: desired.backend == crate::config::Backend::Swarm,
        done,
        tell,
    };
    readiness.around(run.all(desired, parallel)).await
}

/// One restart: where it happens and whom it tells.
struct Restart<'a> {
    backend: &'a dyn Backend,
    readiness: &'a Readiness<'a>,
    /// Units are swarm services, which redeploy rather than stop.
    swarm: bool,
    done: &'a (dyn Fn(&str, Duration) + Send + Sync),
    tell: Tell<'a>,
}

impl Restart<'_> {
    async fn all(&self, desired: &Desired, parallel: usize) -> Result<usize, ApplyError> {
        let backend = self.backend;
        let listed = backend.units(&desired.project).await?;
        let mut count = 0;
        for service in desired.services.values() {
            let mut units: Vec<(u32, &str)> = listed
                .iter()
                .filter(|u| u.service == service.name)
                .map(|u| (u.ordinal.unwrap_or(u32::MAX), u.name.as_str()))
                .collect();
            units.sort_unstable();
            count += units.len();
            if service.mode == Mode::Sequential {
                for (_, name) in units {
                    self.one(service, name, true).await?;
                }
            } else {
                let results: Vec<Result<(), ApplyError>> = stream::iter(units)
                    .map(|(_, name)| self.one(service, name, false))
                    .buffer_unordered(crate::apply::stops_at_once(parallel, listed.len()))
                    .collect()
                    .await;
                results.into_iter().collect::<Result<(), _>>()?;
            }
        }
        Ok(count)
    }

    /// Stops and starts one container, with `ready` until it is ready (a
    /// swarm service: redeploys it, until its new tasks run); each wait
    /// told when it lasts, the duration told including them.
    async fn one(&self, service: &Service, name: &str, ready: bool) -> Result<(), ApplyError> {
        let began = Instant::now();
        if !self.swarm {
            let grace = service.stop_grace_period;
            let what = Waiting::Stop { grace };
            let stop = self.backend.stop(name, grace);
            told(|| (self.tell)(name, &what), stop).await?;
        }
        self.backend.start(name).await?;
        if ready || self.swarm {
            self.readiness
                .ready_told(service, name, Duration::ZERO, self.tell)
                .await?;
        }
        (self.done)(name, began.elapsed());
        Ok(())
    }
}
