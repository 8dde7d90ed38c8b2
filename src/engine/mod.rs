//! The engine seam: muster's own view of what runs ([`Actual`]), what it
//! asks for ([`ContainerSpec`]), and the [`Engine`] trait that the Docker
//! backend ([`docker`]) and the in-memory backend ([`memory`]) implement.
//! This module does no I/O itself; only `docker.rs` imports bollard.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use crate::config::{ContainerPort, Healthcheck, Port, Restart};

pub mod docker;
pub mod memory;

pub const LABEL_PROJECT: &str = "io.muster.project";
pub const LABEL_SERVICE: &str = "io.muster.service";
pub const LABEL_ORDINAL: &str = "io.muster.ordinal";
pub const LABEL_HASH: &str = "io.muster.config-hash";
/// The service's shape as JSON, so that a recreate can show what changed.
pub const LABEL_CONFIG: &str = "io.muster.config";
/// On the lock container: who holds the project's lock.
pub const LABEL_LOCK: &str = "io.muster.lock";

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

/// One container that carries the project's label.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub service: String,
    /// `None` when the ordinal label is missing or not a number.
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
    pub containers: Vec<Container>,
    /// For each image reference asked about and present: its image id.
    pub image_ids: BTreeMap<String, String>,
}

/// A mount in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Volume name (`<project>_<name>`) or absolute host path.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub bind: bool,
}

/// Everything the engine needs to create one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub hostname: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub exposed: Vec<ContainerPort>,
    pub ports: Vec<Port>,
    pub mounts: Vec<Mount>,
    pub network: String,
    pub aliases: Vec<String>,
    pub restart: Restart,
    pub init: bool,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub stop_signal: Option<String>,
    pub stop_grace_period: Duration,
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub healthcheck: Option<Healthcheck>,
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

/// The operations muster needs from an engine. Every method is one engine
/// call or a short fixed sequence of them.
pub trait Engine: Send + Sync {
    /// Where the engine is, for messages (e.g. `unix:///var/run/docker.sock`).
    fn endpoint(&self) -> String;

    /// The project's containers (one list call filtered by the project
    /// label) and the ids of the given image references.
    fn observe(
        &self,
        project: &str,
        images: &[String],
    ) -> impl Future<Output = Result<Actual>> + Send;

    /// Pulls an image that is not present.
    fn pull(&self, image: &str) -> impl Future<Output = Result<()>> + Send;

    /// Creates the project's network unless it exists.
    fn ensure_network(&self, project: &str) -> impl Future<Output = Result<()>> + Send;

    /// Creates a named volume (full engine name) unless it exists.
    fn ensure_volume(&self, project: &str, name: &str) -> impl Future<Output = Result<()>> + Send;

    fn create(&self, spec: &ContainerSpec) -> impl Future<Output = Result<()>> + Send;

    fn start(&self, name: &str) -> impl Future<Output = Result<()>> + Send;

    /// Stops (waiting up to `grace`) and removes a container; its volumes stay.
    fn remove(&self, name: &str, grace: Duration) -> impl Future<Output = Result<()>> + Send;

    fn rename(&self, from: &str, to: &str) -> impl Future<Output = Result<()>> + Send;

    /// Current state, health and exit code of one container.
    fn status(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(State, Option<Health>, i64)>> + Send;

    /// The last `lines` lines of a container's output.
    fn logs(&self, name: &str, lines: usize) -> impl Future<Output = Result<String>> + Send;

    /// Takes the project's lock. `Ok(None)`: taken; `Ok(Some(holder))`: held by another.
    fn try_lock(
        &self,
        project: &str,
        me: &LockHolder,
    ) -> impl Future<Output = Result<Option<LockHolder>>> + Send;

    /// Releases the project's lock (also used to clear a dead holder's).
    fn unlock(&self, project: &str) -> impl Future<Output = Result<()>> + Send;

    /// The project's volumes (by label).
    fn volumes(&self, project: &str) -> impl Future<Output = Result<Vec<String>>> + Send;

    fn remove_volume(&self, name: &str) -> impl Future<Output = Result<()>> + Send;

    /// Removes the project's network if it exists and is the project's.
    fn remove_network(&self, project: &str) -> impl Future<Output = Result<()>> + Send;

    /// The project's container events from now on: die, stop, kill,
    /// destroy, oom and health changes. Ends (or yields an error) when the
    /// connection to the engine is lost.
    fn events(&self, project: &str) -> futures_util::stream::BoxStream<'static, Result<Event>>;
}
