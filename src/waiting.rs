//! Long waits, told while they go on: what a step waits for, and how long a
//! wait lasts before it is told. Used by apply, `apply --wait` and
//! `restart`; rendered by `render`. Pure but for the timer.

use std::time::Duration;

use crate::config::Service;

/// How long a wait goes on before it is told: short waits print nothing.
pub const LONG_WAIT: Duration = Duration::from_millis(1500);

/// What a step waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// A stop: the process may take up to `grace` to exit.
    Stop { grace: Duration },
    /// The healthcheck to pass, up to `timeout` (ready_timeout).
    Healthy { timeout: Duration },
    /// To run (no healthcheck), up to `timeout` (ready_timeout).
    Running { timeout: Duration },
    /// The containers a service started to keep running for `settle`.
    Settled { settle: Duration },
    /// Every unit of `service`, which it depends on, to be ready.
    Dependency { service: String },
}

impl Waiting {
    /// A unit of `service` to be ready: healthy where it declares a
    /// healthcheck, else running.
    pub fn ready(service: &Service) -> Waiting {
        let timeout = service.ready_timeout;
        if service.healthcheck.is_some() {
            Waiting::Healthy { timeout }
        } else {
            Waiting::Running { timeout }
        }
    }

    /// Whether the one who waits is a service rather than a unit.
    pub fn on_service(&self) -> bool {
        matches!(self, Waiting::Settled { .. } | Waiting::Dependency { .. })
    }
}

/// Told who waits, and for what, once a wait lasts [`LONG_WAIT`].
pub type Tell<'a> = &'a (dyn Fn(&str, &Waiting) + Send + Sync);

/// Runs `wait`; once it has lasted [`LONG_WAIT`], calls `tell` (once) and
/// goes on waiting.
pub async fn told<T>(tell: impl FnOnce(), wait: impl Future<Output = T>) -> T {
    let mut wait = std::pin::pin!(wait);
    tokio::select! {
        out = &mut wait => return out,
        () = tokio::time::sleep(LONG_WAIT) => {}
    }
    tell();
    wait.await
}
