//! `muster restart [SERVICE…]`: stops and starts each container of the
//! named services (every service without names), under the project's
//! lock. A sequential service restarts one container at a time in ordinal
//! order, each ready before the next; a parallel one up to `--parallel`
//! at once. Nothing is created or removed. Does engine I/O through the
//! [`Backend`] trait.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};

use crate::apply::ApplyError;
use crate::config::{Desired, Mode, Service};
use crate::engine::Backend;

/// Restarts every container of `desired`'s services; `done` is told each
/// one as it finishes.
///
/// # Errors
/// The first container that cannot be stopped, started, or (sequential)
/// made ready.
pub async fn restart(
    backend: &dyn Backend,
    desired: &Desired,
    parallel: usize,
    done: &(dyn Fn(&str, Duration) + Send + Sync),
) -> Result<usize, ApplyError> {
    let actual = backend.observe(&desired.project, &[]).await?;
    let mut count = 0;
    for service in desired.services.values() {
        let mut units: Vec<(u32, &str)> = actual
            .units
            .iter()
            .filter(|u| u.service == service.name)
            .map(|u| (u.ordinal.unwrap_or(u32::MAX), u.name.as_str()))
            .collect();
        units.sort_unstable();
        count += units.len();
        if service.mode == Mode::Sequential {
            for (_, name) in units {
                one(backend, service, name, done).await?;
                crate::readiness::wait_one(backend, service, name).await?;
            }
        } else {
            let results: Vec<Result<(), ApplyError>> = stream::iter(units)
                .map(|(_, name)| one(backend, service, name, done))
                .buffer_unordered(parallel.max(1))
                .collect()
                .await;
            results.into_iter().collect::<Result<(), _>>()?;
        }
    }
    Ok(count)
}

async fn one(
    backend: &dyn Backend,
    service: &Service,
    name: &str,
    done: &(dyn Fn(&str, Duration) + Send + Sync),
) -> Result<(), ApplyError> {
    let began = Instant::now();
    backend.stop(name, service.stop_grace_period).await?;
    backend.start(name).await?;
    done(name, began.elapsed());
    Ok(())
}
