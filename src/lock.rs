//! The project lock (SPEC section 9): at most one muster changes a project on
//! an engine at a time. The lock lives on the engine (a container name is
//! unique there), so it holds across processes and hosts. Reads /proc to
//! tell whether a holder on this host is still alive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::engine::{Backend, EngineError, ErrorKind, LockHolder, now_secs};

/// On the lock container: the project whose lock it is. Only a container
/// carrying it is ever taken for a lock (and removed as one); it is not the
/// project label, so the lock is never taken for a service container.
pub const LABEL_LOCK_PROJECT: &str = "io.muster.lock-project";

/// The pause between two tries while the lock is held or in flux.
const PAUSE: Duration = Duration::from_millis(200);

/// Takeovers of dead holders in one `acquire` before it waits like for a
/// live one: an engine that keeps showing a removed lock cannot make it spin.
const MAX_TAKEOVERS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "project {project} is locked by {holder}; gave up after {waited}s (--lock-timeout). \
         If that process is gone, `docker rm -f {project}-muster-lock` releases it"
    )]
    Held {
        project: String,
        holder: Box<LockHolder>,
        waited: u64,
    },
    #[error("stopped while waiting for the lock")]
    Stopped,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Where a process runs: a pid names a process only within one host, one
/// boot and one PID namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Here {
    host: String,
    boot_id: String,
    pid_ns: u64,
    /// Unix seconds when this host booted.
    booted_at: u64,
}

impl Here {
    fn now() -> Here {
        Here {
            host: hostname(),
            boot_id: boot_id(),
            pid_ns: pid_namespace(),
            booted_at: booted_at().unwrap_or(0),
        }
    }
}

/// What can be known of a pid in this PID namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// No process has that pid.
    Gone,
    /// It exists and started at this time (field 22 of /proc/PID/stat).
    Started(u64),
    /// It may exist, but its start time cannot be read (hidepid, a /proc
    /// of another namespace mounted here, …).
    Unknown,
}

/// This process, as a lock holder.
pub fn me(command: &str) -> LockHolder {
    let here = Here::now();
    LockHolder {
        host: here.host,
        pid: std::process::id(),
        pid_start: std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| start_time(&s))
            .unwrap_or(0),
        boot_id: here.boot_id,
        pid_ns: here.pid_ns,
        since: now_secs(),
        command: command.to_string(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_string())
        .unwrap_or_default()
}

/// The inode of this process's PID namespace; 0 when it cannot be read.
fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

fn booted_at() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Field 22 of a /proc/PID/stat text.
fn start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces; fields after it don't.
    let after = stat.get(stat.rfind(')')? + 2..)?;
    after.split(' ').nth(19)?.parse().ok()
}

/// `pid` in this PID namespace. Only the kernel's "no such process" counts
/// as gone: a /proc entry that is missing or unreadable proves nothing
/// (hidepid hides other users' processes).
fn probe(pid: u32) -> Probe {
    let Some(raw) = i32::try_from(pid).ok().filter(|p| *p > 0) else {
        return Probe::Unknown;
    };
    // SAFETY: signal 0 sends nothing; kill only checks that the pid exists
    // and may be signalled.
    let alive = unsafe { libc::kill(raw, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    if !alive {
        return Probe::Gone;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| start_time(&s))
        .map_or(Probe::Unknown, Probe::Started)
}

/// Whether `holder` is provably gone, as seen from `here`: a holder of
/// another host, or of another PID namespace of this one, may be alive.
fn is_dead(holder: &LockHolder, here: &Here, probe: impl Fn(u32) -> Probe) -> bool {
    if holder.host != here.host {
        return false;
    }
    if holder.boot_id.is_empty() {
        // An older holder, without boot id or namespace: dead only if it
        // took the lock before this host last booted.
        return here.booted_at > 0 && holder.since < here.booted_at;
    }
    if holder.boot_id != here.boot_id {
        return true;
    }
    if holder.pid_ns == 0 || holder.pid_ns != here.pid_ns {
        return false;
    }
    match probe(holder.pid) {
        Probe::Gone => true,
        Probe::Started(start) => start != holder.pid_start,
        Probe::Unknown => false,
    }
}

/// Why `acquire` is still waiting.
enum Waiting {
    Holder(LockHolder),
    /// The lock vanished between the engine's conflict and its inspect.
    InFlux(EngineError),
}

/// Takes the lock of `project`, waiting up to `timeout` for another holder.
/// A lock whose holder is provably gone is taken over, and so is one that
/// this very process left behind.
///
/// # Errors
/// [`LockError::Held`] naming the holder after `timeout`; engine errors
/// (a lock that keeps vanishing is retried up to `timeout` too). With
/// `stop` set meanwhile (SIGTERM in the daemon), it gives up at once with
/// [`LockError::Stopped`]. `waiting` is told each live holder it waits for.
pub async fn acquire(
    engine: &dyn Backend,
    project: &str,
    me: &LockHolder,
    timeout: Duration,
    stop: Option<&AtomicBool>,
    waiting: &(dyn Fn(&LockHolder) + Send + Sync),
) -> Result<(), LockError> {
    let started = Instant::now();
    let here = Here::now();
    let mut takeovers = 0;
    loop {
        let waiting = match engine.try_lock(project, me).await {
            Ok(None) => return Ok(()),
            Ok(Some(holder)) => {
                // This very process: an earlier pass of the daemon could
                // not release it (the engine went away). Passes run one at
                // a time, so it is ours.
                let mine = (&holder.host, &holder.boot_id, holder.pid_ns, holder.pid)
                    == (&me.host, &me.boot_id, me.pid_ns, me.pid)
                    && holder.pid_start == me.pid_start;
                if takeovers < MAX_TAKEOVERS && (mine || is_dead(&holder, &here, probe)) {
                    if mine {
                        tracing::warn!(
                            "taking back the lock of project {project} that this process left"
                        );
                    } else {
                        tracing::warn!(
                            "taking over the lock of project {project} left by {holder}, which is gone"
                        );
                    }
                    takeovers += 1;
                    engine.unlock(project).await?;
                    tokio::time::sleep(PAUSE / 4).await;
                    continue;
                }
                waiting(&holder);
                Waiting::Holder(holder)
            }
            Err(e) if e.kind == ErrorKind::NotFound => Waiting::InFlux(e),
            Err(e) => return Err(e.into()),
        };
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Err(LockError::Stopped);
        }
        if started.elapsed() >= timeout {
            return Err(match waiting {
                Waiting::Holder(holder) => LockError::Held {
                    project: project.to_string(),
                    holder: Box::new(holder),
                    waited: started.elapsed().as_secs(),
                },
                Waiting::InFlux(e) => LockError::Engine(e),
            });
        }
        tokio::time::sleep(PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::memory::MemoryEngine;

    fn here() -> Here {
        Here {
            host: "box".into(),
            boot_id: "boot-1".into(),
            pid_ns: 4026531836,
            booted_at: 1_000,
        }
    }

    fn holder() -> LockHolder {
        LockHolder {
            host: "box".into(),
            pid: 42,
            pid_start: 7,
            boot_id: "boot-1".into(),
            pid_ns: 4026531836,
            since: 2_000,
            command: "muster apply".into(),
        }
    }

    #[test]
    fn a_holder_of_this_namespace_is_dead_only_when_its_pid_is_provably_gone_or_reused() {
        let h = holder();
        assert!(is_dead(&h, &here(), |_| Probe::Gone));
        assert!(is_dead(&h, &here(), |_| Probe::Started(8)), "pid reused");
        assert!(!is_dead(&h, &here(), |_| Probe::Started(7)));
        assert!(
            !is_dead(&h, &here(), |_| Probe::Unknown),
            "an unreadable /proc entry means alive"
        );
    }

    #[test]
    fn a_holder_of_another_pid_namespace_or_host_is_alive_whatever_this_proc_says() {
        let other_ns = LockHolder {
            pid_ns: 4026532000,
            ..holder()
        };
        assert!(!is_dead(&other_ns, &here(), |_| Probe::Gone));
        let unknown_ns = LockHolder {
            pid_ns: 0,
            ..holder()
        };
        assert!(!is_dead(&unknown_ns, &here(), |_| Probe::Gone));
        let other_host = LockHolder {
            host: "elsewhere".into(),
            ..holder()
        };
        assert!(!is_dead(&other_host, &here(), |_| Probe::Gone));
    }

    #[test]
    fn a_holder_of_an_earlier_boot_of_this_host_is_dead() {
        let rebooted = LockHolder {
            boot_id: "boot-0".into(),
            ..holder()
        };
        assert!(is_dead(&rebooted, &here(), |_| Probe::Started(7)));
        // An older holder without boot id: dead only if it predates the boot.
        let old = LockHolder {
            boot_id: String::new(),
            pid_ns: 0,
            ..holder()
        };
        assert!(!is_dead(&old, &here(), |_| Probe::Gone));
        let before_boot = LockHolder { since: 500, ..old };
        assert!(is_dead(&before_boot, &here(), |_| Probe::Started(7)));
    }

    #[test]
    fn old_holder_labels_without_the_new_fields_are_read() {
        let old = r#"{"host":"box","pid":42,"pid_start":7,"since":2000,"command":"muster apply"}"#;
        let h: LockHolder = serde_json::from_str(old).unwrap();
        assert_eq!((h.boot_id.as_str(), h.pid_ns), ("", 0));
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let mine = me("test");
        let here = Here::now();
        assert!(mine.pid_ns != 0 && !mine.boot_id.is_empty());
        assert!(!is_dead(&mine, &here, probe));
        let reused = LockHolder {
            pid_start: mine.pid_start + 1,
            ..mine
        };
        assert!(is_dead(&reused, &here, probe));
    }

    /// `acquire` of project `p` by this process, waiting up to `timeout`.
    async fn acquire_for(engine: &MemoryEngine, timeout: Duration) -> Result<(), LockError> {
        acquire(engine, "p", &me("test"), timeout, None, &|_| {}).await
    }

    /// An engine whose lock keeps vanishing (conflict on create, not found
    /// on inspect) is retried with a pause, and given up at the timeout.
    #[tokio::test]
    async fn a_lock_in_flux_is_retried_with_pauses_until_the_timeout() {
        let engine = MemoryEngine::default();
        engine.with(|s| s.lock_fault = Some(ErrorKind::NotFound));
        let started = Instant::now();
        let result = acquire_for(&engine, Duration::from_secs(1)).await;
        let took = started.elapsed();
        assert!(matches!(result, Err(LockError::Engine(_))), "{result:?}");
        assert!(took >= Duration::from_secs(1), "gave up early: {took:?}");
        assert!(
            took < Duration::from_secs(3),
            "overran the timeout: {took:?}"
        );
        let calls = engine.with(|s| s.lock_calls);
        assert!((2..=8).contains(&calls), "{calls} lock calls in {took:?}");
    }

    /// A server error while reading the holder is reported at once.
    #[tokio::test]
    async fn a_server_error_is_reported_at_once() {
        let engine = MemoryEngine::default();
        engine.with(|s| s.lock_fault = Some(ErrorKind::Other));
        let result = acquire_for(&engine, Duration::from_secs(30)).await;
        assert!(matches!(result, Err(LockError::Engine(_))), "{result:?}");
        assert_eq!(engine.with(|s| s.lock_calls), 1);
    }

    /// An engine that keeps showing a dead holder after its removal makes
    /// `acquire` wait with pauses, not spin.
    #[tokio::test]
    async fn a_dead_holder_that_keeps_coming_back_is_not_spun_on() {
        let engine = MemoryEngine::default();
        let dead = LockHolder {
            pid_start: me("test").pid_start + 1,
            pid: std::process::id(),
            ..me("test")
        };
        engine.with(|s| s.lock_fault_holder = Some(dead));
        let started = Instant::now();
        let result = acquire_for(&engine, Duration::from_secs(1)).await;
        let took = started.elapsed();
        assert!(matches!(result, Err(LockError::Held { .. })), "{result:?}");
        assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(3));
        let calls = engine.with(|s| s.lock_calls);
        assert!((2..=12).contains(&calls), "{calls} lock calls in {took:?}");
    }
}
