//! The engine seam: muster's own view of what runs ([`Actual`], made of
//! [`Unit`]s), what it asks for ([`UnitRequest`]), and the object-safe
//! [`Backend`] trait that the Docker backend ([`docker`]) and the
//! in-memory backend ([`memory`]) implement. A new backend is a module
//! here that implements [`Backend`]. This module does no I/O itself; only
//! the backends talk to an engine, and only `docker.rs` imports bollard.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::config::Service;

pub use container::{ContainerSpec, Mount, container_spec};
pub use logs::{LogLine, LogRequest};

pub mod container;
pub mod docker;
pub mod logs;
pub mod memory;
pub mod swarm;

pub const LABEL_PROJECT: &str = "io.muster.project";
pub const LABEL_SERVICE: &str = "io.muster.service";
pub const LABEL_ORDINAL: &str = "io.muster.ordinal";
pub const LABEL_HASH: &str = "io.muster.config-hash";
/// The service's shape as JSON, so that a recreate can show what changed.
pub const LABEL_CONFIG: &str = "io.muster.config";
/// On the lock container: who holds the project's lock.
pub const LABEL_LOCK: &str = "io.muster.lock";
/// On the project's record (a container that never runs; a config on a
/// swarm): the count of each service that muster last applied, as JSON.
pub const LABEL_APPLIED: &str = "io.muster.applied";
/// On the record: the project whose record it is. Only an object carrying
/// it is read or replaced as a record; it is not the project label, so the
/// record is never taken for a unit.
pub const LABEL_RECORD_PROJECT: &str = "io.muster.record-project";

/// The name of the project's record.
pub fn record_name(project: &str) -> String {
    format!("{project}-muster-record")
}

/// The count of each service that muster last applied to a project.
pub type Applied = BTreeMap<String, u32>;

/// The counts of a record's [`LABEL_APPLIED`] (empty when unreadable), if
/// it is the record of `project` (by [`LABEL_RECORD_PROJECT`]): `None` for
/// an object of the record's name that is not, which muster leaves alone.
fn read_record(project: &str, labels: &HashMap<String, String>) -> Option<Applied> {
    if labels.get(LABEL_RECORD_PROJECT).map(String::as_str) != Some(project) {
        return None;
    }
    Some(
        labels
            .get(LABEL_APPLIED)
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default(),
    )
}

/// The labels of the record of `project` that says `applied`: what
/// [`read_record`] reads.
fn record_labels(
    project: &str,
    applied: &Applied,
    doing: &str,
) -> Result<[(&'static str, String); 2]> {
    let json = serde_json::to_string(applied)
        .map_err(|e| EngineError::new(doing, ErrorKind::Other, e.to_string()))?;
    Ok([
        (LABEL_APPLIED, json),
        (LABEL_RECORD_PROJECT, project.to_string()),
    ])
}

/// The name of container `ordinal` of `service`.
pub fn container_name(project: &str, service: &str, ordinal: u32) -> String {
    format!("{project}-{service}-{ordinal}")
}

/// The project's network.
pub fn network_name(project: &str) -> String {
    format!("{project}_default")
}

/// A container's run state, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
    Removing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Restarting => "restarting",
            State::Paused => "paused",
            State::Exited => "exited",
            State::Dead => "dead",
            State::Removing => "removing",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// A published port as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Published {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: String,
}

/// The number of replicas of a unit that runs several (a swarm service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Replicas {
    pub desired: u32,
    pub running: u32,
}

/// One thing a backend manages for the project, as observed: a container
/// on the docker backend; on a swarm, a service (one per parallel service,
/// with [`Replicas`], or one per ordinal of a sequential service).
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub id: String,
    pub name: String,
    pub service: String,
    /// `None` when the ordinal label is missing or not a number, and for a
    /// unit that holds every replica of a service.
    pub ordinal: Option<u32>,
    pub config_hash: String,
    /// The shape it was created from (from its label), for diffs.
    pub config: BTreeMap<String, String>,
    pub image_id: String,
    pub state: State,
    pub health: Option<Health>,
    /// The engine's own words, e.g. "Up 3 minutes (healthy)".
    pub status: String,
    pub ports: Vec<Published>,
    /// Set for a unit that runs several replicas.
    pub replicas: Option<Replicas>,
    /// The unit's tasks, on a backend that schedules tasks (a swarm).
    pub tasks: Vec<Task>,
}

/// One task of a swarm unit, for `ps`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Task {
    pub slot: Option<u32>,
    /// The node's host name.
    pub node: String,
    /// The swarm's word: `running`, `starting`, `failed`, …
    pub state: String,
    /// Why it failed, when it did.
    pub error: String,
    /// The ports it publishes on its node (`publish_mode = "host"`).
    pub ports: Vec<Published>,
}

/// What muster's labels say of a container: (service, ordinal, config hash,
/// config). The one place that reads them, for every backend.
/// `label` looks a label up in whichever map type the backend has.
pub fn read_labels<'a>(
    label: impl Fn(&str) -> Option<&'a String>,
) -> (String, Option<u32>, String, BTreeMap<String, String>) {
    (
        label(LABEL_SERVICE).cloned().unwrap_or_default(),
        label(LABEL_ORDINAL)
            .and_then(|o| o.parse().ok())
            .filter(|o| *o > 0),
        label(LABEL_HASH).cloned().unwrap_or_default(),
        label(LABEL_CONFIG)
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default(),
    )
}

/// What runs for one project, as observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    pub units: Vec<Unit>,
    /// For each image reference asked about and present: its image id.
    pub image_ids: BTreeMap<String, String>,
    /// What the project's record says muster last applied (empty when it
    /// has none): tells a unit that vanished from one never made, and a
    /// service scaled up from 0 from a new one.
    pub applied: Applied,
}

/// Who holds a project's lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    /// Process start time (from /proc), to tell a reused pid apart.
    pub pid_start: u64,
    /// The kernel's boot id and the inode of the holder's PID namespace:
    /// a pid means something only within both (see `lock::is_dead`).
    /// Empty / 0 in holders written by older versions.
    #[serde(default)]
    pub boot_id: String,
    #[serde(default)]
    pub pid_ns: u64,
    /// Unix seconds when the lock was taken.
    pub since: u64,
    pub command: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = now_secs().saturating_sub(self.since);
        write!(
            f,
            "`{}` (pid {} on {}, for {}s)",
            self.command, self.pid, self.host, age
        )
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Something that happened to one of the project's containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Container id.
    pub id: String,
    /// Container name.
    pub container: String,
    /// The engine's action: `die`, `stop`, `kill`, `destroy`, `oom`,
    /// `health_status: unhealthy`, …
    pub action: String,
    /// For `die`: the exit code.
    pub exit_code: Option<i64>,
}

/// What kind of engine failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The engine does not answer.
    Unreachable,
    /// A name is taken (by a container muster does not own, or a race).
    Conflict,
    NotFound,
    Other,
}

/// An engine call that failed, with what muster was doing.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{doing}: {message}")]
pub struct EngineError {
    pub doing: String,
    pub kind: ErrorKind,
    pub message: String,
}

impl EngineError {
    pub fn new(doing: impl Into<String>, kind: ErrorKind, message: impl Into<String>) -> Self {
        EngineError {
            doing: doing.into(),
            kind,
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// Removing what is gone already is done: a not-found answer is success.
pub(crate) fn gone_is_done(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Looking up what may not exist: a not-found answer is `None`.
pub(crate) fn found<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What muster asks a backend to make: one unit of `service`.
#[derive(Debug, Clone, Copy)]
pub struct UnitRequest<'a> {
    pub project: &'a str,
    pub service: &'a Service,
    /// `Some(k)` for container `k` (or the unit of ordinal `k`); `None` for
    /// a unit that holds every replica of the service.
    pub ordinal: Option<u32>,
    /// The unit's name on the engine (a temporary one during a start-first update).
    pub name: &'a str,
    /// Replicas the unit runs (1 for a container).
    pub replicas: u32,
    /// The file's `[swarm]` settings (used by the swarm backend only).
    pub swarm: crate::config::SwarmSettings,
}

/// What `muster exec` runs in a container, and how it is attached.
#[derive(Debug)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    /// The command's stdin, chunk by chunk; when the sender goes away, the
    /// command's stdin is closed (it reads end of file).
    pub stdin: tokio::sync::mpsc::Receiver<Vec<u8>>,
    /// `Some`: run the command on a pseudo-terminal, sized by each
    /// [`TermSize`] received (the first at start, then on each change).
    pub tty: Option<tokio::sync::mpsc::Receiver<TermSize>>,
}

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub columns: u16,
    pub rows: u16,
}

/// How one unit is doing, for readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub health: Option<Health>,
    /// The last exit code (0 while it runs).
    pub exit_code: i64,
    /// What went wrong, in the engine's words, when it says more than an
    /// exit code (a swarm task's error, a paused update).
    pub detail: String,
}

/// Which kind of engine a backend drives, for the plan's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where the engine is, e.g. `unix:///var/run/docker.sock`.
    pub address: String,
    /// What it is when that is not one plain engine, e.g. `swarm, 3 nodes`.
    pub kind: Option<String>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Some(kind) => write!(f, "{} ({kind})", self.address),
            None => f.write_str(&self.address),
        }
    }
}

/// What muster needs from a backend: the verbs of the pipeline on the
/// units it manages. Object-safe, so the backend is picked at run time
/// (`backend` in the file, `--backend` on the command line); every method
/// is one engine call or a short fixed sequence of them.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Where the engine is, for messages.
    fn endpoint(&self) -> Endpoint;

    /// The project's units (one list call filtered by the project label)
    /// and the ids of the given image references that the engine has.
    async fn observe(&self, project: &str, images: &[String]) -> Result<Actual>;

    /// The project's units alone, for a caller that needs neither images
    /// nor the record (readiness, restart, logs).
    async fn units(&self, project: &str) -> Result<Vec<Unit>> {
        Ok(self.observe(project, &[]).await?.units)
    }

    /// Pulls an image that is not present.
    async fn pull(&self, image: &str) -> Result<()>;

    /// Creates the project's network unless it exists.
    async fn ensure_network(&self, project: &str) -> Result<()>;

    /// Creates a named volume (full engine name) unless it exists. A volume
    /// of that name without the project's label is refused.
    async fn ensure_volume(&self, project: &str, name: &str) -> Result<()>;

    /// The project label of a volume: `None` when it does not exist,
    /// `Some(None)` when it exists without one.
    async fn volume_owner(&self, name: &str) -> Result<Option<Option<String>>>;

    /// Creates a unit. A container is created stopped; a unit that
    /// schedules its own replicas starts them.
    async fn create(&self, unit: &UnitRequest<'_>) -> Result<()>;

    /// The project label of the unit named `name`: `None` when there is
    /// none, `Some(None)` when it has no project label.
    async fn unit_owner(&self, name: &str) -> Result<Option<Option<String>>>;

    /// Replaces the spec of a unit in place (backends whose units are
    /// updated rather than recreated); `force` redeploys an unchanged spec.
    async fn update(&self, unit: &UnitRequest<'_>, force: bool) -> Result<()>;

    async fn start(&self, name: &str) -> Result<()>;

    /// Runs a command in the running container `name` (for `muster exec`;
    /// on a swarm, `name` is a task's, `<service>.<slot>`), attached as
    /// `request` says, its output written to this process's stdout and
    /// stderr as it comes; its exit code. A backend without containers
    /// (the memory engine) refuses.
    async fn exec(&self, name: &str, _request: ExecRequest) -> Result<i64> {
        Err(EngineError::new(
            format!("running a command in {name}"),
            ErrorKind::Other,
            "this backend runs no commands",
        ))
    }

    /// Stops a container, waiting up to `grace` (for `muster restart`).
    /// Backends whose units are not containers refuse (a swarm service
    /// restarts by [`Backend::start`] alone, which redeploys it).
    async fn stop(&self, name: &str, _grace: Duration) -> Result<()> {
        Err(EngineError::new(
            format!("stopping {name}"),
            ErrorKind::Other,
            "this backend does not stop its units",
        ))
    }

    /// Stops (waiting up to `grace`) and removes a unit; its volumes stay.
    async fn remove(&self, name: &str, grace: Duration) -> Result<()>;

    async fn rename(&self, from: &str, to: &str) -> Result<()>;

    /// How a unit is doing.
    async fn status(&self, name: &str) -> Result<Status>;

    /// The last `lines` lines of a unit's output.
    async fn logs(&self, name: &str, lines: usize) -> Result<String>;

    /// A unit's output, line by line with the engine's timestamps (see
    /// [`LogRequest`]). Yields an error and ends when the engine goes away.
    fn log_stream(
        &self,
        name: &str,
        request: LogRequest,
    ) -> futures_util::stream::BoxStream<'static, Result<LogLine>>;

    /// The names of the project's units as they start, from now on (for
    /// `logs -f`). Ends, or yields an error, when the engine goes away.
    fn starts(&self, project: &str) -> futures_util::stream::BoxStream<'static, Result<String>>;

    /// The project's unit state changes (start, die, destroy, health
    /// status) from `since` on, replayed by the engine where it can, to wake
    /// readiness waits. `None`: the backend has no such events, and
    /// readiness polls.
    fn changes(
        &self,
        _project: &str,
        _since: std::time::SystemTime,
    ) -> Option<futures_util::stream::BoxStream<'static, Result<Event>>> {
        None
    }

    /// Takes the project's lock. `Ok(None)`: taken; `Ok(Some(holder))`: held by another.
    async fn try_lock(&self, project: &str, me: &LockHolder) -> Result<Option<LockHolder>>;

    /// Releases the project's lock (also used to clear a dead holder's).
    async fn unlock(&self, project: &str) -> Result<()>;

    /// Replaces the project's record of what muster applied ([`Actual::applied`]);
    /// an empty one removes it.
    async fn record(&self, project: &str, applied: &Applied) -> Result<()>;

    /// The project's volumes (by label).
    async fn volumes(&self, project: &str) -> Result<Vec<String>>;

    async fn remove_volume(&self, name: &str) -> Result<()>;

    /// Removes the project's network if it exists and is the project's.
    async fn remove_network(&self, project: &str) -> Result<()>;

    /// The project's unit events from now on: die, stop, kill, destroy, oom
    /// and health changes. Ends (or yields an error) when the connection to
    /// the engine is lost.
    fn events(&self, project: &str) -> futures_util::stream::BoxStream<'static, Result<Event>>;
}

/// Connects to the backend of kind `kind` at `host` (else `DOCKER_HOST`,
/// else the local socket).
///
/// # Errors
/// [`ErrorKind::Unreachable`] when the engine does not answer; a backend
/// this version cannot drive.
pub async fn connect(
    kind: crate::config::Backend,
    host: Option<&str>,
) -> Result<std::sync::Arc<dyn Backend>> {
    match kind {
        crate::config::Backend::Docker => Ok(std::sync::Arc::new(
            docker::DockerEngine::connect(host).await?,
        )),
        crate::config::Backend::Swarm => Ok(std::sync::Arc::new(
            swarm::SwarmEngine::connect(host).await?,
        )),
    }
}
