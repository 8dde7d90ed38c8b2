//! `apply --wait`: after the apply, waits until every container of the
//! file's (or the targets') services is ready — running, and healthy where
//! a healthcheck is declared — within each service's `ready_timeout`, like
//! `docker compose up --wait`. Without it, apply waits only where the plan
//! needs it (sequential services, rolling recreates, dependencies). Does
//! engine I/O through the [`Backend`] trait.

use std::time::{Duration, Instant};

use futures_util::future::try_join_all;

use crate::apply::ApplyError;
use crate::config::{Desired, Service};
use crate::engine::{Backend, Health, State};

/// Waits for every unit of `desired`'s services at once.
///
/// # Errors
/// [`ApplyError::NotReady`] for the first unit that exits, turns
/// unhealthy or is not ready in time (with its last lines); engine errors.
pub async fn wait_all(backend: &dyn Backend, desired: &Desired) -> Result<(), ApplyError> {
    let actual = backend.observe(&desired.project, &[]).await?;
    let waits = actual.units.iter().filter_map(|u| {
        let service = desired.services.get(&u.service)?;
        Some(wait_one(backend, service, &u.name))
    });
    try_join_all(waits).await.map(|_| ())
}

/// Waits until the unit `name` of `service` is ready.
///
/// # Errors
/// As [`wait_all`].
pub async fn wait_one(
    backend: &dyn Backend,
    service: &Service,
    name: &str,
) -> Result<(), ApplyError> {
    let deadline = Instant::now() + service.ready_timeout;
    let mut pause = Duration::from_millis(50);
    loop {
        let status = backend.status(name).await?;
        let why = match (status.state, status.health) {
            (State::Running, None) if service.healthcheck.is_none() => return Ok(()),
            (State::Running, Some(Health::Healthy)) => return Ok(()),
            (State::Running, Some(Health::Unhealthy)) => Some("became unhealthy".to_string()),
            (State::Exited | State::Dead, _) => {
                Some(format!("exited with code {}", status.exit_code))
            }
            _ if Instant::now() >= deadline => Some(format!(
                "was not ready within ready_timeout ({})",
                crate::config::format_duration(service.ready_timeout)
            )),
            _ => None,
        };
        if let Some(why) = why {
            let logs = backend.logs(name, 20).await.unwrap_or_default();
            return Err(ApplyError::NotReady {
                container: name.to_string(),
                why,
                logs,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
