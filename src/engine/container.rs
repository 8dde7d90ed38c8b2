//! The container that one unit of the docker backend is: the engine
//! request built from a service of the file. Pure; shared by the Docker
//! and in-memory backends.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{LABEL_CONFIG, LABEL_HASH, LABEL_ORDINAL, LABEL_PROJECT, LABEL_SERVICE, network_name};
use crate::config::{ContainerPort, Healthcheck, Port, Restart, Service, VolumeSource};

/// A mount in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Volume name (`<project>_<name>`, or an external volume's own name)
    /// or absolute host path.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub bind: bool,
    /// A volume the file declares external: muster never creates or removes it.
    pub external: bool,
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

/// Builds the engine request for container `ordinal` of `service`. Pure.
pub fn container_spec(project: &str, service: &Service, ordinal: u32, name: &str) -> ContainerSpec {
    let shape = service.shape();
    let mut labels = service.labels.clone();
    labels.insert(LABEL_PROJECT.into(), project.into());
    labels.insert(LABEL_SERVICE.into(), service.name.clone());
    labels.insert(LABEL_ORDINAL.into(), ordinal.to_string());
    labels.insert(LABEL_HASH.into(), crate::config::hash_shape(&shape));
    labels.insert(
        LABEL_CONFIG.into(),
        serde_json::to_string(&shape).unwrap_or_default(),
    );
    let mut env: Vec<(String, String)> = service
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend(service.link_env(ordinal));
    let mounts = service
        .volumes
        .iter()
        .map(|v| match v.volume_name(project, ordinal) {
            Some(name) => Mount {
                source: name,
                target: v.target.clone(),
                read_only: v.read_only,
                bind: false,
                external: matches!(v.source, VolumeSource::External(_)),
            },
            None => Mount {
                source: match &v.source {
                    VolumeSource::Bind(p) | VolumeSource::Named(p) | VolumeSource::External(p) => {
                        p.clone()
                    }
                },
                target: v.target.clone(),
                read_only: v.read_only,
                bind: true,
                external: false,
            },
        })
        .collect();
    let host = format!("{}-{ordinal}", service.name);
    ContainerSpec {
        name: name.to_string(),
        hostname: host.clone(),
        image: service.image.clone(),
        command: service.command.clone(),
        entrypoint: service.entrypoint.clone(),
        env,
        labels,
        exposed: service.container_ports(),
        ports: service.ports.clone(),
        mounts,
        network: network_name(project),
        aliases: vec![service.name.clone(), host],
        restart: service.restart.clone(),
        init: service.init,
        user: service.user.clone(),
        working_dir: service.working_dir.clone(),
        stop_signal: service.stop_signal.clone(),
        stop_grace_period: service.stop_grace_period,
        cpus: service.cpus,
        memory: service.memory,
        healthcheck: service.healthcheck.clone(),
    }
}
