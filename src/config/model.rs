//! The desired state: the checked, typed form of `services.toml`.
//! Pure; no I/O. Also defines the config hash and the per-field "shape"
//! that a recreate diffs against.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use super::file::{Backend, EndpointMode, Mode, PublishMode, UpdateOrder};

/// What the file asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub project: String,
    pub backend: Backend,
    pub services: BTreeMap<String, Service>,
    /// The file's `[volumes.NAME]` tables, by NAME.
    pub volumes: BTreeMap<String, DeclaredVolume>,
    /// The `[swarm]` settings (used only on a swarm).
    pub swarm: SwarmSettings,
}

/// The `[swarm]` table, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwarmSettings {
    pub endpoint_mode: EndpointMode,
    pub publish_mode: PublishMode,
}

impl Default for SwarmSettings {
    fn default() -> Self {
        SwarmSettings {
            endpoint_mode: EndpointMode::Vip,
            publish_mode: PublishMode::Ingress,
        }
    }
}

/// Where a swarm may run a service's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub constraints: Vec<String>,
    pub max_replicas_per_node: Option<u32>,
}

impl Desired {
    /// A project known by its name alone (`down` and `ps` with `--project`
    /// when the file cannot be used): it declares no service, so every
    /// unit that carries the project's label is an orphan.
    pub fn named(project: &str, backend: Backend) -> Desired {
        Desired {
            project: project.to_string(),
            backend,
            services: BTreeMap::new(),
            volumes: BTreeMap::new(),
            swarm: SwarmSettings::default(),
        }
    }

    /// The engine names of the external volumes that services mount,
    /// sorted, unique: what must exist before an apply changes anything.
    pub fn external_volumes(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .services
            .values()
            .flat_map(|s| &s.volumes)
            .filter_map(|v| match &v.source {
                VolumeSource::External(name) => Some(name.clone()),
                VolumeSource::Named(_) | VolumeSource::Bind(_) => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The distinct image references of the services, sorted.
    pub fn images(&self) -> Vec<String> {
        let mut images: Vec<String> = self.services.values().map(|s| s.image.clone()).collect();
        images.sort();
        images.dedup();
        images
    }
}

/// One checked service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub image: String,
    pub count: u32,
    pub mode: Mode,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    /// The `env` names that `[sensitive]` matches: their values are kept
    /// out of every output and label (see [`Service::shape`]).
    pub sensitive: BTreeSet<String>,
    pub ports: Vec<Port>,
    pub expose: Vec<ContainerPort>,
    pub volumes: Vec<Volume>,
    pub labels: BTreeMap<String, String>,
    pub depends_on: Vec<String>,
    pub restart: Restart,
    pub init: bool,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub stop_signal: Option<String>,
    pub stop_grace_period: Duration,
    pub ready_timeout: Duration,
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub healthcheck: Option<Healthcheck>,
    pub update: Update,
    /// Swarm only.
    pub placement: Placement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A container port and its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPort {
    pub port: u16,
    pub proto: Proto,
}

impl std::fmt::Display for ContainerPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.port, self.proto.as_str())
    }
}

/// A published port. `host_port` `None` means an ephemeral host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub host_ip: Option<String>,
    pub host_port: Option<u16>,
    pub container: ContainerPort,
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(ip) = &self.host_ip {
            write!(f, "{ip}:")?;
        }
        if let Some(h) = self.host_port {
            write!(f, "{h}:")?;
        }
        write!(f, "{}", self.container)
    }
}

/// A top-level `[volumes.NAME]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclaredVolume {
    /// `external = false`: muster's own, as if it were not declared.
    Owned,
    /// `external = true`: used under this engine name as it is; muster
    /// never creates or removes it.
    External { name: String },
}

/// Where a volume's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A named volume, created as `<project>_<name>`; may hold `{ordinal}`.
    Named(String),
    /// An absolute host path.
    Bind(String),
    /// A volume the file declares external, by its name on the engine.
    External(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub source: VolumeSource,
    pub target: String,
    pub read_only: bool,
}

impl Volume {
    /// The engine's volume name for container `ordinal`, for a named or
    /// external volume.
    pub fn volume_name(&self, project: &str, ordinal: u32) -> Option<String> {
        match &self.source {
            VolumeSource::Named(n) => Some(format!(
                "{project}_{}",
                n.replace("{ordinal}", &ordinal.to_string())
            )),
            VolumeSource::External(n) => Some(n.clone()),
            VolumeSource::Bind(_) => None,
        }
    }
}

impl std::fmt::Display for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            VolumeSource::Named(n) | VolumeSource::Bind(n) => write!(f, "{n}")?,
            // Marked, so that a volume that becomes external (or stops being
            // so) changes the hash: its containers mount another volume.
            VolumeSource::External(n) => write!(f, "external:{n}")?,
        }
        write!(f, ":{}", self.target)?;
        if self.read_only {
            write!(f, ":ro")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    No,
    Always,
    UnlessStopped,
    OnFailure(Option<u32>),
}

impl std::fmt::Display for Restart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Restart::No => f.write_str("no"),
            Restart::Always => f.write_str("always"),
            Restart::UnlessStopped => f.write_str("unless-stopped"),
            Restart::OnFailure(None) => f.write_str("on-failure"),
            Restart::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Healthcheck {
    /// As the engine takes it: `["CMD", …]` or `["CMD-SHELL", "…"]`.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub parallelism: u32,
    pub order: UpdateOrder,
}

impl Mode {
    /// The mode as the file writes it. Also what the config hash covers:
    /// this text must never change, or every container would be recreated.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Parallel => "parallel",
            Mode::Sequential => "sequential",
        }
    }
}

/// Formats a duration the way the file writes it (`1m30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    for (v, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    out
}

impl Service {
    /// Every setting that shapes this service's containers, as `path → value`
    /// text (a sensitive env value as its digest): what the config hash covers and what a recreate diffs. Not
    /// `count`, not `update`, not `depends_on` and not the link variables
    /// (those depend on the ordinal).
    pub fn shape(&self) -> BTreeMap<String, String> {
        let mut s = BTreeMap::new();
        let list = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
        s.insert("image".into(), self.image.clone());
        s.insert("mode".into(), self.mode.as_str().into());
        if let Some(c) = &self.command {
            s.insert("command".into(), list(c));
        }
        if let Some(c) = &self.entrypoint {
            s.insert("entrypoint".into(), list(c));
        }
        for (k, v) in &self.env {
            // A digest, not the value: the shape is stored in a label and
            // printed in diffs; the digest still changes the hash.
            let v = if self.sensitive.contains(k) {
                super::sensitive::digest(k, v)
            } else {
                v.clone()
            };
            s.insert(format!("env.{k}"), v);
        }
        for (k, v) in &self.labels {
            s.insert(format!("labels.{k}"), v.clone());
        }
        let ports: Vec<String> = self.ports.iter().map(|p| p.to_string()).collect();
        if !ports.is_empty() {
            s.insert("ports".into(), list(&ports));
        }
        let expose: Vec<String> = self.expose.iter().map(|p| p.to_string()).collect();
        if !expose.is_empty() {
            s.insert("expose".into(), list(&expose));
        }
        let volumes: Vec<String> = self.volumes.iter().map(|v| v.to_string()).collect();
        if !volumes.is_empty() {
            s.insert("volumes".into(), list(&volumes));
        }
        s.insert("restart".into(), self.restart.to_string());
        s.insert("init".into(), self.init.to_string());
        let opt = |s: &mut BTreeMap<String, String>, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                s.insert(k.into(), v.clone());
            }
        };
        opt(&mut s, "user", &self.user);
        opt(&mut s, "working_dir", &self.working_dir);
        opt(&mut s, "stop_signal", &self.stop_signal);
        s.insert(
            "stop_grace_period".into(),
            format_duration(self.stop_grace_period),
        );
        if let Some(c) = self.cpus {
            s.insert("cpus".into(), c.to_string());
        }
        if let Some(m) = self.memory {
            s.insert("memory".into(), m.to_string());
        }
        if let Some(h) = &self.healthcheck {
            s.insert("healthcheck.test".into(), list(&h.test));
            s.insert("healthcheck.interval".into(), format_duration(h.interval));
            s.insert("healthcheck.timeout".into(), format_duration(h.timeout));
            s.insert("healthcheck.retries".into(), h.retries.to_string());
            s.insert(
                "healthcheck.start_period".into(),
                format_duration(h.start_period),
            );
        }
        s
    }

    /// [`Service::shape`] and what a swarm service adds: placement and the
    /// file's `[swarm]` settings. A swarm unit's config hash covers this.
    pub fn swarm_shape(&self, swarm: &SwarmSettings) -> BTreeMap<String, String> {
        let mut s = self.shape();
        if !self.placement.constraints.is_empty() {
            s.insert(
                "placement.constraints".into(),
                serde_json::to_string(&self.placement.constraints).unwrap_or_default(),
            );
        }
        if let Some(n) = self.placement.max_replicas_per_node {
            s.insert("placement.max_replicas_per_node".into(), n.to_string());
        }
        let endpoint = match swarm.endpoint_mode {
            EndpointMode::Vip => "vip",
            EndpointMode::Dnsrr => "dnsrr",
        };
        let publish = match swarm.publish_mode {
            PublishMode::Ingress => "ingress",
            PublishMode::Host => "host",
        };
        s.insert("swarm.endpoint_mode".into(), endpoint.into());
        s.insert("swarm.publish_mode".into(), publish.into());
        s
    }

    /// The config hash: a digest of [`Service::shape`].
    pub fn config_hash(&self) -> String {
        hash_shape(&self.shape())
    }

    /// Every declared container port (`ports`, then `expose`), sorted, unique.
    pub fn container_ports(&self) -> Vec<ContainerPort> {
        let mut all: Vec<ContainerPort> = self
            .ports
            .iter()
            .map(|p| p.container)
            .chain(self.expose.iter().copied())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Tutum's link variables for container `ordinal` of a sequential
    /// service (SPEC section 3); empty for parallel services and ordinal 1.
    pub fn link_env(&self, ordinal: u32) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.mode != Mode::Sequential {
            return out;
        }
        let ports = self.container_ports();
        let svc = self.name.to_uppercase().replace(['-', '.'], "_");
        for k in 1..ordinal {
            let host = format!("{}-{k}", self.name);
            for p in &ports {
                let proto = p.proto.as_str();
                let pre = format!("{svc}_{k}_PORT_{}_{}", p.port, proto.to_uppercase());
                out.push((pre.clone(), format!("{proto}://{host}:{}", p.port)));
                out.push((format!("{pre}_ADDR"), host.clone()));
                out.push((format!("{pre}_PORT"), p.port.to_string()));
                out.push((format!("{pre}_PROTO"), proto.to_string()));
            }
            if let Some(p) = ports.first() {
                out.push((
                    format!("{svc}_{k}_PORT"),
                    format!("{}://{host}:{}", p.proto.as_str(), p.port),
                ));
            }
        }
        out
    }
}

/// The external volumes that a unit made from `shape` mounts (the
/// `external:NAME:/path` entries of its `volumes`): what `down --volumes`
/// keeps when there is no file to say which volumes are external.
pub fn external_volumes_of(shape: &BTreeMap<String, String>) -> Vec<String> {
    let volumes: Vec<String> = shape
        .get("volumes")
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    volumes
        .iter()
        .filter_map(|v| v.strip_prefix("external:")?.split(':').next())
        .map(str::to_string)
        .collect()
}

/// Digest of a shape map; stable across muster versions for the same map.
pub fn hash_shape(shape: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in shape {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    // Hex by hand: a `format!` per byte was a third of a large plan's time.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for b in h.finalize().iter().take(8) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_first_8_bytes_of_sha256_in_lower_hex() {
        // Stable across versions: running containers carry it in a label.
        let shape = BTreeMap::from([
            ("a".to_string(), "b".to_string()),
            ("image".to_string(), "img:1".to_string()),
        ]);
        assert_eq!(hash_shape(&shape), "2d3b49baa99f5cc4");
    }

    #[test]
    fn formats_durations_as_written() {
        assert_eq!(format_duration(Duration::from_millis(90_000)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn a_shape_names_the_external_volumes_its_unit_mounts() {
        let text = "[volumes.shared]\nexternal = true\nname = \"legacy-data\"\n\
                    [services.web]\nimage = \"busybox\"\n\
                    volumes = [\"shared:/srv:ro\", \"data:/data\", \"/etc/app:/etc/app\"]\n";
        let desired =
            crate::config::parse_str("services.toml", text, std::path::Path::new("/srv/shop"))
                .unwrap();
        let shape = desired.services["web"].shape();
        assert_eq!(external_volumes_of(&shape), ["legacy-data"]);
        assert!(external_volumes_of(&BTreeMap::new()).is_empty());
    }
}

#[cfg(test)]
mod pinned {
    /// Running containers carry their service's hash in a label: if a
    /// refactor changed the hash of an unchanged service, every user's
    /// containers would be recreated at the next apply. This pins it.
    #[test]
    fn the_hash_of_a_known_service_never_changes() {
        let text = r#"
project = "shop"
[services.web]
image = "nginx:1.27"
count = 1
mode = "sequential"
command = ["nginx", "-g", "daemon off;"]
env = { LOG_LEVEL = "info", N = 3 }
ports = ["80", "127.0.0.1:8080:81/udp"]
expose = ["9000"]
volumes = ["data-{ordinal}:/var/lib/app", "/srv/conf:/etc/app:ro"]
labels = { team = "shop" }
restart = "on-failure:3"
init = true
user = "1000:1000"
working_dir = "/srv"
stop_signal = "SIGQUIT"
stop_grace_period = "1m30s"
cpus = 0.5
memory = "256MiB"
[services.web.healthcheck]
test = "curl -fs http://127.0.0.1/"
interval = "2s"
"#;
        let desired = super::super::parse_str("t.toml", text, std::path::Path::new("/x"))
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        let web = &desired.services["web"];
        assert_eq!(web.config_hash(), "1809a9262e3bcd67");
        let mut parallel = web.clone();
        parallel.mode = super::Mode::Parallel;
        assert_eq!(parallel.config_hash(), "ea7f209d6d196fc1");
    }
}
