//! The file as written: serde and JSON Schema types for `services.toml`.
//! Pure; no I/O. These types say which keys exist and what type each has;
//! `validate` turns them into the checked [`crate::config::Desired`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// A `services.toml` file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "muster services.toml")]
pub struct File {
    /// Project name, `[a-z0-9][a-z0-9_-]*`. Default: the file's directory name, sanitised.
    pub project: Option<String>,
    /// Where the services run.
    pub backend: Option<Backend>,
    /// The services, by name (`[a-z0-9][a-z0-9_-]*`, at most 50 characters).
    pub services: BTreeMap<String, Service>,
    /// Named volumes that need more than a service's `volumes` entry says,
    /// by the name services mount them with (`NAME:/path`).
    pub volumes: Option<BTreeMap<String, Volume>>,
    /// Settings used only when the backend is `swarm`.
    pub swarm: Option<Swarm>,
    /// Values muster never prints.
    pub sensitive: Option<Sensitive>,
}

/// Values muster never prints: plans, `ps`, logs and `muster config` show
/// `(sensitive)`, and the engine's labels hold a digest.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sensitive {
    /// Env variable names, in every service; `*` matches any text, `?` one
    /// character: `["DB_PASSWORD", "API_*"]`.
    pub env: Option<Vec<String>>,
}

/// Swarm-only settings; accepted in any file, used only on a swarm.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Swarm {
    /// How service names resolve: `vip` (default, a virtual IP balanced by
    /// the kernel's IPVS) or `dnsrr` (the tasks' own addresses).
    pub endpoint_mode: Option<EndpointMode>,
    /// `ingress` (default, the routing mesh) or `host` (on the node that runs the task).
    pub publish_mode: Option<PublishMode>,
}

/// How a swarm service's name resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// A virtual IP balanced by the kernel's IPVS.
    Vip,
    /// DNS round robin over the tasks' own addresses.
    Dnsrr,
}

/// Where a swarm publishes ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// The routing mesh: every node.
    Ingress,
    /// The node that runs the task.
    Host,
}

/// Where a swarm may run a service's tasks; used only on a swarm.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Swarm placement constraints, e.g. `node.labels.disk == ssd`.
    pub constraints: Option<Vec<String>>,
    /// At most this many tasks of the service on one node.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas_per_node: Option<i64>,
}

/// A named volume declared at the top level.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// `true`: a volume that muster did not create, used as it is; never
    /// created, never removed (not even by `down --volumes`). `false`
    /// (default): an ordinary volume, created as `<project>_<name>`.
    pub external: Option<bool>,
    /// The external volume's name on the engine (default: the key); only
    /// with `external = true`.
    pub name: Option<String>,
}

/// Where the services run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One Docker engine.
    Docker,
    /// A Docker Swarm cluster.
    Swarm,
}

/// One service: an image run as `count` containers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Image reference, e.g. `nginx:1.27`.
    pub image: String,
    /// Number of containers (default 1), or a `${VAR…}` string that
    /// interpolates to one.
    #[serde(default)]
    #[schemars(schema_with = "count_schema")]
    pub count: Option<Count>,
    /// `parallel` (default): all containers at once. `sequential`: one after another, linked.
    pub mode: Option<Mode>,
    /// Command: an array, or a string split like a shell does.
    pub command: Option<Command>,
    /// Entrypoint: an array, or a string split like a shell does.
    pub entrypoint: Option<Command>,
    /// Environment variables; numbers and booleans are written as text.
    pub env: Option<BTreeMap<String, EnvValue>>,
    /// Published ports: `"80"`, `"80/udp"`, `"8080:80"`, `"127.0.0.1:8080:80"`.
    pub ports: Option<Vec<PortValue>>,
    /// Container ports that are linked but not published.
    pub expose: Option<Vec<PortValue>>,
    /// Volumes: `name:/path[:ro]`, `./dir:/path[:ro]`, `data-{ordinal}:/path`.
    pub volumes: Option<Vec<String>>,
    /// Extra labels on every container.
    pub labels: Option<BTreeMap<String, String>>,
    /// Services whose containers must all be ready before this one is created.
    pub depends_on: Option<Vec<String>>,
    /// `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`.
    pub restart: Option<String>,
    /// Run an init process as PID 1.
    pub init: Option<bool>,
    /// User (and group) to run as, e.g. `1000:1000`.
    pub user: Option<String>,
    /// Working directory inside the container.
    pub working_dir: Option<String>,
    /// Signal that stops the container, e.g. `SIGTERM`.
    pub stop_signal: Option<String>,
    /// How long a stop waits before killing (default `10s`).
    pub stop_grace_period: Option<String>,
    /// How long a container may take to become ready (default `60s`).
    pub ready_timeout: Option<String>,
    /// CPU limit, e.g. `0.5`.
    pub cpus: Option<f64>,
    /// Memory limit, e.g. `256MiB`.
    pub memory: Option<String>,
    /// Readiness check; a container is ready when healthy.
    pub healthcheck: Option<Healthcheck>,
    /// How a configuration change rolls out.
    pub update: Option<Update>,
    /// Where a swarm may run the tasks (swarm only).
    pub placement: Option<Placement>,
}

/// Deployment mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// All containers at once, no links.
    Parallel,
    /// Container N after 1..N-1 are ready, with link variables to each.
    Sequential,
}

/// A command: an array of arguments, or one string split like a shell does.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Command {
    /// Split like a shell does.
    Shell(String),
    /// Arguments as given.
    Args(Vec<String>),
}

/// An environment value; numbers and booleans are written as text.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvValue {
    /// Text.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// A port: a string such as `"8080:80/tcp"`, or a container port number.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortValue {
    /// `C[/proto]`, `H:C[/proto]` or `IP:H:C[/proto]`.
    Text(String),
    /// A container port.
    Number(i64),
}

/// Healthcheck; `test` is an array (`["CMD", …]`) or a string run with `CMD-SHELL`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// The check.
    pub test: Command,
    /// Time between checks (default `30s`).
    pub interval: Option<String>,
    /// Time a check may take (default `30s`).
    pub timeout: Option<String>,
    /// Failures in a row before unhealthy (default 3).
    #[schemars(range(min = 1, max = 100))]
    pub retries: Option<i64>,
    /// Time before failures count (default `0s`).
    pub start_period: Option<String>,
}

/// How a configuration change rolls out.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// Containers replaced at a time (parallel mode; sequential is always 1).
    #[schemars(range(min = 1, max = 1000))]
    pub parallelism: Option<i64>,
    /// `stop-first` (default) or `start-first`.
    pub order: Option<UpdateOrder>,
}

/// Whether the old container stops before or after its replacement is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// Stop the old container, then start the new one.
    StopFirst,
    /// Start the new one under a temporary name, then remove the old one.
    StartFirst,
}

/// `count` as written: an integer, or the text a `${…}` string became
/// (already checked to read as an integer, see `interpolate`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Count {
    Integer(i64),
    Text(String),
}

impl Count {
    pub fn value(&self) -> i64 {
        match self {
            Count::Integer(n) => *n,
            Count::Text(t) => t.trim().parse().unwrap_or(-1),
        }
    }
}

/// `count`: an integer from 0 to 1000, or a string with `${…}` (checked
/// once interpolated).
fn count_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Number of containers (default 1), or a `${VAR…}` string that interpolates to one.",
        "anyOf": [
            { "type": "integer", "format": "int64", "minimum": 0, "maximum": 1000 },
            { "type": "string", "pattern": "\\$\\{" },
            { "type": "null" }
        ]
    })
}

/// The JSON Schema (draft-07) of the file, as written to `schema/services.schema.json`.
pub fn schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<File>();
    schema.to_value()
}
