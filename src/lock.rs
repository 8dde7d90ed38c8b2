//! The project lock (SPEC section 9): at most one muster changes a project on
//! an engine at a time. The lock lives on the engine (a container name is
//! unique there), so it holds across processes and hosts. Reads /proc to
//! tell whether a holder on this host is still alive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::engine::{Backend, EngineError, LockHolder, now_secs};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "project {project} is locked by {holder}; gave up after {waited}s (--lock-timeout). \
         If that process is gone, `docker rm -f {project}-muster-lock` releases it"
    )]
    Held {
        project: String,
        holder: LockHolder,
        waited: u64,
    },
    #[error("stopped while waiting for the lock")]
    Stopped,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// This process, as a lock holder.
pub fn me(command: &str) -> LockHolder {
    LockHolder {
        host: hostname(),
        pid: std::process::id(),
        pid_start: process_start(std::process::id()).unwrap_or(0),
        since: now_secs(),
        command: command.to_string(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The start time of a process (field 22 of /proc/PID/stat), if it exists.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it don't.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

/// Whether `holder` is a process of this host that no longer exists.
fn is_dead(holder: &LockHolder) -> bool {
    holder.host == hostname() && process_start(holder.pid) != Some(holder.pid_start)
}

/// Takes the lock of `project`, waiting up to `timeout` for another holder.
/// A lock whose holder died on this host is taken over, and so is one that
/// this very process left behind.
///
/// # Errors
/// [`LockError::Held`] naming the holder after `timeout`; engine errors.
/// With `stop` set meanwhile (SIGTERM in the daemon), it gives up at once
/// with [`LockError::Stopped`].
pub async fn acquire(
    engine: &dyn Backend,
    project: &str,
    me: &LockHolder,
    timeout: Duration,
    stop: Option<&AtomicBool>,
) -> Result<(), LockError> {
    let started = Instant::now();
    loop {
        let Some(holder) = engine.try_lock(project, me).await? else {
            return Ok(());
        };
        if is_dead(&holder) {
            tracing::warn!(
                "taking over the lock of project {project} left by {holder}, which is gone"
            );
            engine.unlock(project).await?;
            continue;
        }
        // This very process: an earlier pass of the daemon could not release
        // it (the engine went away). Passes run one at a time, so it is ours.
        if (&holder.host, holder.pid, holder.pid_start) == (&me.host, me.pid, me.pid_start) {
            tracing::warn!("taking back the lock of project {project} that this process left");
            engine.unlock(project).await?;
            continue;
        }
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Err(LockError::Stopped);
        }
        if started.elapsed() >= timeout {
            return Err(LockError::Held {
                project: project.to_string(),
                holder,
                waited: started.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let mine = me("test");
        assert!(!is_dead(&mine));
        let gone = LockHolder {
            pid_start: mine.pid_start + 1,
            ..mine.clone()
        };
        assert!(is_dead(&gone));
        let elsewhere = LockHolder {
            host: "another-host".into(),
            ..gone
        };
        assert!(!is_dead(&elsewhere));
    }
}
