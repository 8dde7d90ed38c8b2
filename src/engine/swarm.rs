//! The Docker Swarm backend (SPEC section 10): the file's services as swarm
//! services through a manager's API. A parallel service is one replicated
//! swarm service `<project>_<service>`; a sequential one is one swarm
//! service per ordinal, `<project>_<service>-<k>`, of one replica each.
//! Volumes, images and the engine connection are those of the manager,
//! shared with the docker backend. Does network I/O.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ConfigSpec, EndpointPortConfig, EndpointPortConfigProtocolEnum,
    EndpointPortConfigPublishModeEnum, EndpointSpec, EndpointSpecModeEnum, Limit, LocalNodeState,
    Mount as SwarmMount, MountType, MountVolumeOptions, NetworkAttachmentConfig, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum,
    ServiceUpdateStatusStateEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    InspectServiceOptions, ListNodesOptions, ListServicesOptions, ListTasksOptions, LogsOptions,
    UpdateServiceOptions,
};
use futures_util::StreamExt;

use super::docker::{DockerEngine, NetworkKind, filters, health_config, map_err, nanos};
use super::{
    Actual, Applied, Backend, Endpoint, EngineError, ErrorKind, Event, ExecRequest, Health,
    LABEL_CONFIG, LABEL_HASH, LABEL_LOCK, LABEL_ORDINAL, LABEL_PROJECT, LABEL_SERVICE, LockHolder,
    Replicas, Result, State, Status, Task, Unit, UnitRequest, network_name, record_name,
};
use crate::config::{
    EndpointMode, Mode, PublishMode, Restart, Service, UpdateOrder, VolumeSource, hash_shape,
};

/// On a swarm service: the id of the image it was deployed from, as the
/// manager resolved its tag then; a tag that moves forces an update.
pub const LABEL_IMAGE_ID: &str = "io.muster.image-id";

/// How long a removed service may take to have no task left.
const GONE_WITHIN: Duration = Duration::from_secs(90);

/// A swarm, through one of its managers.
pub struct SwarmEngine {
    docker: DockerEngine,
    nodes: i64,
    /// The id of the node muster talks to.
    node: String,
}

impl SwarmEngine {
    /// Connects to the engine at `host` and checks that it is an active
    /// swarm manager.
    ///
    /// # Errors
    /// Unreachable engine; an engine that is not a swarm manager, with what
    /// to do about it.
    pub async fn connect(host: Option<&str>) -> Result<Self> {
        let docker = DockerEngine::connect(host).await?;
        let endpoint = docker.endpoint().address;
        let info = docker
            .client()
            .info()
            .await
            .map_err(|e| map_err(format!("asking {endpoint} about its swarm"), e))?;
        let swarm = info.swarm.unwrap_or_default();
        let active = swarm.local_node_state == Some(LocalNodeState::ACTIVE);
        if !active || swarm.control_available != Some(true) {
            let what = if active {
                "a swarm worker, not a manager"
            } else {
                "not part of a swarm"
            };
            return Err(EngineError::new(
                format!("connecting to the swarm at {endpoint}"),
                ErrorKind::Other,
                format!(
                    "the engine is {what}; run `docker swarm init` there, or point DOCKER_HOST (--host) at a manager of the swarm"
                ),
            ));
        }
        Ok(SwarmEngine {
            nodes: swarm.nodes.unwrap_or(1),
            node: swarm.node_id.unwrap_or_default(),
            docker,
        })
    }

    fn client(&self) -> &Docker {
        self.docker.client()
    }

    /// Whether every container that uses volume `name` (maybe none by
    /// now) is a swarm task's.
    async fn only_tasks_use(&self, name: &str) -> Result<bool> {
        let users = self
            .docker
            .containers_where(
                "volume",
                name.to_string(),
                &format!("the containers of volume {name}"),
            )
            .await?;
        Ok(users.iter().all(|c| {
            c.labels
                .as_ref()
                .is_some_and(|l| l.contains_key("com.docker.swarm.task.id"))
        }))
    }

    /// The tasks of the given services (names or ids). A service removed
    /// meanwhile makes the engine refuse the filter: then every task is
    /// listed and sorted out here.
    async fn tasks(&self, services: &[String]) -> Result<Vec<bollard::models::Task>> {
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let pairs: Vec<(&str, String)> = services.iter().map(|s| ("service", s.clone())).collect();
        let filtered = self
            .client()
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters(&pairs)),
            }))
            .await
            .map_err(|e| map_err("listing the swarm's tasks", e));
        match filtered {
            Err(e) if e.kind == ErrorKind::NotFound => self.tasks_of_ids(services).await,
            other => other,
        }
    }

    /// The tasks whose service id is one of `ids`, from the list of all tasks.
    async fn tasks_of_ids(&self, ids: &[String]) -> Result<Vec<bollard::models::Task>> {
        let all = self
            .client()
            .list_tasks(None::<ListTasksOptions>)
            .await
            .map_err(|e| map_err("listing the swarm's tasks", e))?;
        Ok(all
            .into_iter()
            .filter(|t| t.service_id.as_ref().is_some_and(|id| ids.contains(id)))
            .collect())
    }

    async fn node_names(&self) -> HashMap<String, String> {
        let nodes = self
            .client()
            .list_nodes(None::<ListNodesOptions>)
            .await
            .unwrap_or_default();
        nodes
            .into_iter()
            .filter_map(|n| {
                let host = n.description.and_then(|d| d.hostname)?;
                Some((n.id?, host))
            })
            .collect()
    }

    async fn inspect(&self, name: &str) -> Result<bollard::models::Service> {
        self.client()
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
            .map_err(|e| map_err(format!("inspecting swarm service {name}"), e))
    }

    /// Sends the whole spec for `unit` with the service's current version;
    /// an "update out of sequence" answer is read again and retried.
    async fn send_update(&self, unit: &UnitRequest<'_>, force: bool) -> Result<()> {
        let doing = format!("updating swarm service {}", unit.name);
        let image_id = self.image_id(&unit.service.image).await?;
        for _ in 0..5 {
            let current = self.inspect(unit.name).await?;
            let version = current
                .version
                .and_then(|v| v.index)
                .and_then(|i| i32::try_from(i).ok())
                .unwrap_or(0);
            let was_forced = current
                .spec
                .and_then(|s| s.task_template)
                .and_then(|t| t.force_update)
                .unwrap_or(0);
            let mut spec = service_spec(unit, &image_id);
            if let Some(t) = spec.task_template.as_mut() {
                t.force_update = Some(if force { was_forced + 1 } else { was_forced });
            }
            let options = UpdateServiceOptions {
                version,
                ..Default::default()
            };
            match self
                .client()
                .update_service(unit.name, spec, options, None)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let err = map_err(&doing, e);
                    if !err.message.contains("out of sequence") {
                        return Err(err);
                    }
                }
            }
        }
        Err(EngineError::new(
            doing,
            ErrorKind::Conflict,
            "the service kept changing under muster (update out of sequence, 5 times)",
        ))
    }

    /// The manager's id of `image`, empty when it does not have it (the
    /// nodes resolve it from a registry).
    async fn image_id(&self, image: &str) -> Result<String> {
        let ids = self.docker.image_ids(&[image.to_string()]).await?;
        Ok(ids.get(image).cloned().unwrap_or_default())
    }
}

fn labels_of(unit: &UnitRequest<'_>, image_id: &str) -> HashMap<String, String> {
    let shape = unit.service.swarm_shape(&unit.swarm);
    let mut labels = HashMap::from([
        (LABEL_PROJECT.to_string(), unit.project.to_string()),
        (LABEL_SERVICE.to_string(), unit.service.name.clone()),
        (LABEL_HASH.to_string(), hash_shape(&shape)),
        (
            LABEL_CONFIG.to_string(),
            serde_json::to_string(&shape).unwrap_or_default(),
        ),
        (LABEL_IMAGE_ID.to_string(), image_id.to_string()),
    ]);
    if let Some(k) = unit.ordinal {
        labels.insert(LABEL_ORDINAL.to_string(), k.to_string());
    }
    labels
}

/// The swarm service for one unit: the whole spec, built from the file.
fn service_spec(unit: &UnitRequest<'_>, image_id: &str) -> ServiceSpec {
    let s: &Service = unit.service;
    // `{ordinal}` and the host name: the task's slot for a replicated
    // service, the literal ordinal for a per-ordinal one.
    let slot = match unit.ordinal {
        Some(k) => k.to_string(),
        None => "{{.Task.Slot}}".to_string(),
    };
    let mut env: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(k) = unit.ordinal {
        env.extend(s.link_env(k).into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    let mounts = s
        .volumes
        .iter()
        .map(|v| {
            let (typ, source) = match &v.source {
                VolumeSource::Bind(p) => (MountType::BIND, p.clone()),
                VolumeSource::External(n) => (MountType::VOLUME, n.clone()),
                VolumeSource::Named(n) => (
                    MountType::VOLUME,
                    format!("{}_{}", unit.project, n.replace("{ordinal}", &slot)),
                ),
            };
            let labelled = matches!(v.source, VolumeSource::Named(_));
            SwarmMount {
                target: Some(v.target.clone()),
                source: Some(source),
                typ: Some(typ),
                read_only: Some(v.read_only),
                volume_options: labelled.then(|| MountVolumeOptions {
                    labels: Some(HashMap::from([(
                        LABEL_PROJECT.to_string(),
                        unit.project.to_string(),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    let (condition, attempts) = match &s.restart {
        Restart::No => (TaskSpecRestartPolicyConditionEnum::NONE, None),
        Restart::Always | Restart::UnlessStopped => (TaskSpecRestartPolicyConditionEnum::ANY, None),
        Restart::OnFailure(n) => (
            TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
            n.map(i64::from),
        ),
    };
    let mut aliases = vec![s.name.clone()];
    if let Some(k) = unit.ordinal {
        aliases.push(format!("{}-{k}", s.name));
    }
    let publish = match unit.swarm.publish_mode {
        PublishMode::Ingress => EndpointPortConfigPublishModeEnum::INGRESS,
        PublishMode::Host => EndpointPortConfigPublishModeEnum::HOST,
    };
    let ports = s
        .ports
        .iter()
        .map(|p| EndpointPortConfig {
            protocol: Some(match p.container.proto {
                crate::config::Proto::Tcp => EndpointPortConfigProtocolEnum::TCP,
                crate::config::Proto::Udp => EndpointPortConfigProtocolEnum::UDP,
            }),
            target_port: Some(i64::from(p.container.port)),
            published_port: p.host_port.map(i64::from),
            publish_mode: Some(publish),
            ..Default::default()
        })
        .collect();
    let parallelism = if s.mode == Mode::Sequential {
        1
    } else {
        i64::from(s.update.parallelism)
    };
    let order = match s.update.order {
        UpdateOrder::StopFirst => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
        UpdateOrder::StartFirst => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
    };
    let mut container_labels: HashMap<String, String> = s
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Task containers must never look like the docker backend's own.
    container_labels.retain(|k, _| !k.starts_with("io.muster."));
    ServiceSpec {
        name: Some(unit.name.to_string()),
        labels: Some(labels_of(unit, image_id)),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(s.image.clone()),
                labels: Some(container_labels),
                // Docker's entrypoint is the swarm's command, its cmd the args.
                command: s.entrypoint.clone(),
                args: s.command.clone(),
                hostname: Some(format!("{}-{slot}", s.name)),
                env: Some(env),
                dir: s.working_dir.clone(),
                user: s.user.clone(),
                mounts: Some(mounts),
                stop_signal: s.stop_signal.clone(),
                stop_grace_period: Some(nanos(s.stop_grace_period)),
                health_check: s.healthcheck.as_ref().map(health_config),
                init: Some(s.init),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: s.cpus.map(|c| (c * 1e9) as i64),
                    memory_bytes: s.memory.and_then(|m| i64::try_from(m).ok()),
                    pids: None,
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(condition),
                max_attempts: attempts,
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(s.placement.constraints.clone()),
                max_replicas: s.placement.max_replicas_per_node.map(i64::from),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(network_name(unit.project)),
                aliases: Some(aliases),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(unit.replicas)),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(parallelism),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(nanos(crate::apply::SETTLE)),
            order: Some(order),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(match unit.swarm.endpoint_mode {
                EndpointMode::Vip => EndpointSpecModeEnum::VIP,
                EndpointMode::Dnsrr => EndpointSpecModeEnum::DNSRR,
            }),
            ports: Some(ports),
        }),
        ..Default::default()
    }
}

fn is_failure(state: Option<TaskState>) -> bool {
    matches!(state, Some(TaskState::FAILED | TaskState::REJECTED))
}

fn is_coming(state: Option<TaskState>) -> bool {
    matches!(
        state,
        Some(
            TaskState::NEW
                | TaskState::ALLOCATED
                | TaskState::PENDING
                | TaskState::ASSIGNED
                | TaskState::ACCEPTED
                | TaskState::PREPARING
                | TaskState::READY
                | TaskState::STARTING
        )
    )
}

/// The ports of `ports` that are published on a host port, each once (a
/// task lists a port once per address family it binds).
fn published(ports: Option<&[EndpointPortConfig]>) -> Vec<super::Published> {
    let mut out: Vec<super::Published> = ports
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            Some(super::Published {
                host_ip: String::new(),
                host_port: u16::try_from(p.published_port?).ok().filter(|&h| h != 0)?,
                container_port: u16::try_from(p.target_port?).ok()?,
                proto: p
                    .protocol
                    .map_or_else(|| "tcp".to_string(), |p| p.to_string()),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn task_error(t: &bollard::models::Task) -> String {
    let status = t.status.clone().unwrap_or_default();
    status
        .err
        .filter(|e| !e.is_empty())
        .or(status.message)
        .unwrap_or_default()
}

/// How a service is doing, from its spec, update status and tasks.
struct Convergence {
    desired: u32,
    /// Tasks in state running, of any spec: more than `desired` while an
    /// update or a scale-down still has old tasks to stop.
    running: u32,
    /// Running tasks of the current spec.
    current: u32,
    coming: bool,
    /// A stalled update, or a task that failed with no retry to come (the
    /// restart condition is `none`).
    failure: Option<String>,
    /// The last task error, while the swarm still retries.
    last_error: Option<String>,
    updating: bool,
}

impl Convergence {
    /// Every slot has one running task of the current spec, and no other runs.
    fn converged(&self) -> bool {
        self.failure.is_none()
            && !self.updating
            && !self.coming
            && self.running == self.desired
            && self.current == self.desired
    }
}

/// Whether a task runs the service's current template. The service's copy
/// has defaults filled in that the task's lacks, so what a change of the
/// file rolls out is compared: the container spec, resources, placement
/// constraints and the forced-update counter.
fn of_current_spec(task: &TaskSpec, template: &TaskSpec) -> bool {
    let container = |t: &TaskSpec| {
        let mut v = serde_json::to_value(&t.container_spec).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("DNSConfig");
        }
        v
    };
    let limits = |t: &TaskSpec| {
        t.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .map(|l| (l.nano_cpus, l.memory_bytes))
    };
    let constraints = |t: &TaskSpec| {
        t.placement
            .as_ref()
            .and_then(|p| p.constraints.clone())
            .unwrap_or_default()
    };
    container(task) == container(template)
        && limits(task) == limits(template)
        && constraints(task) == constraints(template)
        && task.force_update.unwrap_or(0) == template.force_update.unwrap_or(0)
}

fn convergence(
    service: &bollard::models::Service,
    tasks: &[&bollard::models::Task],
) -> Convergence {
    let spec = service.spec.as_ref();
    let desired = spec
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(0)
        .clamp(0, i64::from(u32::MAX)) as u32;
    let retries = spec
        .and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.restart_policy.as_ref())
        .and_then(|r| r.condition)
        != Some(TaskSpecRestartPolicyConditionEnum::NONE);
    // This deployment's tasks: created since the service was made or its
    // last rolling update began, and of its current template. Not since
    // its `updated_at`: the swarm bumps that at every write of the service
    // object, its allocator's too, which can come after the first tasks
    // failed (seen under load: a task that could not start went unseen
    // until ready_timeout).
    let since = [
        service.created_at.as_deref(),
        service
            .update_status
            .as_ref()
            .and_then(|u| u.started_at.as_deref()),
    ]
    .into_iter()
    .flatten()
    .filter_map(unix_millis)
    .max()
    .unwrap_or(0);
    let running = tasks
        .iter()
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .count() as u32;
    let template = spec.and_then(|s| s.task_template.as_ref());
    let of_template = |t: &&&bollard::models::Task| match (&t.spec, template) {
        (Some(task), Some(template)) => of_current_spec(task, template),
        _ => false,
    };
    let current = tasks
        .iter()
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .filter(of_template)
        .count() as u32;
    let coming = tasks.iter().any(|t| {
        t.desired_state == Some(TaskState::RUNNING)
            && is_coming(t.status.as_ref().and_then(|s| s.state))
    });
    let failed = tasks
        .iter()
        .filter(|t| t.created_at.as_deref().and_then(unix_millis).unwrap_or(0) >= since)
        .filter(of_template)
        .filter(|t| is_failure(t.status.as_ref().and_then(|s| s.state)))
        .max_by_key(|t| t.created_at.clone())
        .map(|t| {
            let slot = t.slot.map_or_else(String::new, |s| format!(" {s}"));
            format!("task{slot} failed: {}", task_error(t))
        });
    let (mut failure, mut last_error) = if retries {
        (None, failed)
    } else {
        (failed, None)
    };
    // A task the swarm cannot place says why while it waits (`no suitable
    // node`, `host-mode port already in use`): the reason a service is not
    // ready within its ready_timeout.
    if last_error.is_none() {
        last_error = tasks
            .iter()
            .filter(|t| t.desired_state == Some(TaskState::RUNNING))
            .filter(|t| is_coming(t.status.as_ref().and_then(|s| s.state)))
            .find_map(|t| {
                let err = t
                    .status
                    .as_ref()?
                    .err
                    .as_deref()
                    .filter(|e| !e.is_empty())?;
                let slot = t.slot.map_or_else(String::new, |s| format!(" {s}"));
                Some(format!("task{slot} waits: {err}"))
            });
    }
    // An update status older than the service's last change is that of an
    // earlier update (the one just sent has not started yet): not this one's.
    let mut update = service.update_status.clone().unwrap_or_default();
    let started = update.started_at.as_deref().and_then(unix_millis);
    let changed = service.updated_at.as_deref().and_then(unix_millis);
    if let (Some(started), Some(changed)) = (started, changed)
        && started + 1000 < changed
    {
        update.state = None;
    }
    let updating = matches!(
        update.state,
        Some(
            ServiceUpdateStatusStateEnum::UPDATING | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
        )
    );
    if let Some(
        state @ (ServiceUpdateStatusStateEnum::PAUSED
        | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
        | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
        | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED),
    ) = update.state
    {
        let what = match state {
            ServiceUpdateStatusStateEnum::PAUSED => "the update was paused",
            ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED => "the rollback was paused",
            _ => "the update was rolled back",
        };
        let message = update.message.unwrap_or_default();
        let task = failure.take().or(last_error.clone());
        failure = Some(match task {
            Some(task) => format!("{what} ({message}); {task}"),
            None => format!("{what} ({message})"),
        });
    }
    Convergence {
        desired,
        running,
        current,
        coming,
        failure,
        last_error,
        updating,
    }
}

/// `2026-11-29T10:11:12.123456789Z` → milliseconds since the epoch.
fn unix_millis(rfc3339: &str) -> Option<i64> {
    let (date, time) = rfc3339.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let clock = time.trim_end_matches('Z');
    let clock = clock.split(['+']).next()?;
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (hms.next()??, hms.next()??, hms.next()??);
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + min * 60 + sec) * 1000) + millis)
}

#[async_trait::async_trait]
impl Backend for SwarmEngine {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            address: self.docker.endpoint().address,
            kind: Some(format!(
                "swarm, {}",
                crate::config::plural(self.nodes.max(0) as usize, "node")
            )),
        }
    }

    async fn observe(&self, project: &str, images: &[String]) -> Result<Actual> {
        let (units, applied, image_ids) = tokio::join!(
            self.units(project),
            self.read_record(project),
            self.docker.image_ids(images)
        );
        Ok(Actual {
            units: units?,
            image_ids: image_ids?,
            applied: applied?,
        })
    }

    async fn units(&self, project: &str) -> Result<Vec<Unit>> {
        let label = format!("{LABEL_PROJECT}={project}");
        // A project that the docker backend runs here is not this backend's.
        let containers = self
            .docker
            .containers_where(
                "label",
                label.clone(),
                &format!("the containers of project {project}"),
            )
            .await?;
        if !containers.is_empty() {
            let names: Vec<String> = containers
                .iter()
                .filter_map(|c| c.names.as_ref()?.first().cloned())
                .map(|n| n.trim_start_matches('/').to_string())
                .collect();
            return Err(EngineError::new(
                format!("observing project {project} on the swarm"),
                ErrorKind::Conflict,
                format!(
                    "project {project} runs on this engine with the docker backend ({}); remove it with `muster down --backend docker` first, or use another project name",
                    names.join(", ")
                ),
            ));
        }
        let services = self
            .client()
            .list_services(Some(ListServicesOptions {
                filters: Some(filters(&[("label", label)])),
                status: Some(true),
            }))
            .await
            .map_err(|e| {
                map_err(
                    format!("listing the swarm services of project {project}"),
                    e,
                )
            })?;
        let names: Vec<String> = services
            .iter()
            .filter_map(|s| s.spec.as_ref()?.name.clone())
            .collect();
        let tasks = self.tasks(&names).await?;
        let nodes = if tasks.is_empty() {
            HashMap::new()
        } else {
            self.node_names().await
        };
        let mut units = Vec::new();
        for service in &services {
            let Some(spec) = &service.spec else { continue };
            let name = spec.name.clone().unwrap_or_default();
            let id = service.id.clone().unwrap_or_default();
            let labels = spec.labels.clone().unwrap_or_default();
            let (svc, ordinal, config_hash, config) = super::read_labels(|k| labels.get(k));
            let mine: Vec<&bollard::models::Task> = tasks
                .iter()
                .filter(|t| t.service_id.as_deref() == Some(id.as_str()))
                .collect();
            let c = convergence(service, &mine);
            let state = if c.failure.is_some() && !c.updating && c.running < c.desired {
                State::Dead
            } else if c.running >= c.desired {
                State::Running
            } else if c.coming || c.updating {
                State::Restarting
            } else {
                State::Exited
            };
            let mut task_rows: Vec<Task> = mine
                .iter()
                .filter(|t| t.desired_state == Some(TaskState::RUNNING))
                .map(|t| {
                    let node = t.node_id.clone().unwrap_or_default();
                    Task {
                        slot: t.slot.and_then(|s| u32::try_from(s).ok()),
                        node: nodes.get(&node).cloned().unwrap_or(node),
                        state: t
                            .status
                            .as_ref()
                            .and_then(|s| s.state)
                            .map(|s| s.to_string())
                            .unwrap_or_default(),
                        // The error alone: the status message ("started",
                        // "preparing") only repeats the state.
                        error: t
                            .status
                            .as_ref()
                            .and_then(|s| s.err.clone())
                            .unwrap_or_default(),
                        ports: published(
                            t.status
                                .as_ref()
                                .and_then(|s| s.port_status.as_ref())
                                .and_then(|p| p.ports.as_deref()),
                        ),
                    }
                })
                .collect();
            task_rows.sort_by_key(|t| t.slot);
            units.push(Unit {
                id,
                name,
                service: svc,
                ordinal,
                config_hash,
                config,
                image_id: labels.get(LABEL_IMAGE_ID).cloned().unwrap_or_default(),
                state,
                health: None,
                status: c
                    .failure
                    .unwrap_or_else(|| format!("{}/{} running", c.running, c.desired)),
                // Published through the ingress mesh, on every node.
                ports: published(service.endpoint.as_ref().and_then(|e| e.ports.as_deref())),
                replicas: ordinal.is_none().then_some(Replicas {
                    desired: c.desired,
                    running: c.running,
                }),
                tasks: task_rows,
            });
        }
        units.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(units)
    }

    async fn pull(&self, image: &str) -> Result<()> {
        self.docker.pull(image).await
    }

    async fn ensure_network(&self, project: &str) -> Result<()> {
        self.docker
            .ensure_network_of(project, NetworkKind::Overlay)
            .await
    }

    async fn ensure_volume(&self, project: &str, name: &str) -> Result<()> {
        self.docker.ensure_volume(project, name).await
    }

    async fn volume_owner(&self, name: &str) -> Result<Option<Option<String>>> {
        self.docker.volume_owner(name).await
    }

    async fn create(&self, unit: &UnitRequest<'_>) -> Result<()> {
        tracing::debug!("swarm: create service {}", unit.name);
        let image_id = self.image_id(&unit.service.image).await?;
        self.client()
            .create_service(service_spec(unit, &image_id), None)
            .await
            .map(|_| ())
            .map_err(|e| {
                let mut err = map_err(format!("creating swarm service {}", unit.name), e);
                if err.kind == ErrorKind::Conflict {
                    err.message = format!("the name {} is taken ({})", unit.name, err.message);
                }
                err
            })
    }

    async fn unit_owner(&self, name: &str) -> Result<Option<Option<String>>> {
        Ok(super::found(self.inspect(name).await)?.map(|s| {
            s.spec
                .and_then(|s| s.labels)
                .and_then(|mut l| l.remove(LABEL_PROJECT))
        }))
    }

    async fn update(&self, unit: &UnitRequest<'_>, force: bool) -> Result<()> {
        tracing::debug!("swarm: update service {} (force: {force})", unit.name);
        self.send_update(unit, force).await
    }

    /// A swarm service runs itself: "start" redeploys its tasks.
    async fn start(&self, name: &str) -> Result<()> {
        let doing = format!("restarting swarm service {name}");
        let current = self.inspect(name).await?;
        let version = current
            .version
            .and_then(|v| v.index)
            .and_then(|i| i32::try_from(i).ok())
            .unwrap_or(0);
        let Some(mut spec) = current.spec else {
            return Err(EngineError::new(doing, ErrorKind::NotFound, "no spec"));
        };
        if let Some(t) = spec.task_template.as_mut() {
            t.force_update = Some(t.force_update.unwrap_or(0) + 1);
        }
        let options = UpdateServiceOptions {
            version,
            ..Default::default()
        };
        self.client()
            .update_service(name, spec, options, None)
            .await
            .map(|_| ())
            .map_err(|e| map_err(doing, e))
    }

    /// Runs the command in the running task of slot `<slot>` of `<service>`
    /// (`name` is `<service>.<slot>`, as the swarm names its tasks): only
    /// on the node muster talks to, whose engine holds the task's container.
    async fn exec(&self, name: &str, request: ExecRequest) -> Result<i64> {
        let doing = format!("running a command in task {name}");
        let (service, slot) = name
            .rsplit_once('.')
            .and_then(|(s, n)| Some((s, n.parse::<i64>().ok()?)))
            .ok_or_else(|| EngineError::new(&doing, ErrorKind::Other, "not a task name"))?;
        let tasks = self.tasks(&[service.to_string()]).await?;
        let running = tasks.iter().find(|t| {
            t.slot == Some(slot)
                && t.desired_state == Some(TaskState::RUNNING)
                && t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
        });
        let Some(task) = running else {
            return Err(EngineError::new(
                doing,
                ErrorKind::NotFound,
                "no task of that slot is running (`muster ps` lists them)",
            ));
        };
        let node = task.node_id.clone().unwrap_or_default();
        if node != self.node {
            let nodes = self.node_names().await;
            return Err(EngineError::new(
                doing,
                ErrorKind::Other,
                format!(
                    "it runs on node {}; exec reaches the tasks of the node muster talks to only: point DOCKER_HOST (--host) at that node's engine and use `docker exec`",
                    nodes.get(&node).unwrap_or(&node)
                ),
            ));
        }
        let container = task
            .status
            .as_ref()
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.container_id.clone())
            .unwrap_or_default();
        self.docker.exec(&container, request).await
    }

    /// Removes the service and waits until none of its tasks is left.
    async fn remove(&self, name: &str, grace: Duration) -> Result<()> {
        tracing::debug!("swarm: remove service {name}");
        let id = match self.inspect(name).await {
            Ok(s) => s.id.unwrap_or_default(),
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if let Err(e) = self.client().delete_service(&id).await {
            let err = map_err(format!("removing swarm service {name}"), e);
            if err.kind != ErrorKind::NotFound {
                return Err(err);
            }
        }
        let deadline = Instant::now() + grace + GONE_WITHIN;
        let mut pause = Duration::from_millis(50);
        loop {
            let left = self.tasks_of_ids(std::slice::from_ref(&id)).await?;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(EngineError::new(
                    format!("removing swarm service {name}"),
                    ErrorKind::Other,
                    format!("{} of its tasks are still there", left.len()),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        Err(EngineError::new(
            format!("renaming {from} to {to}"),
            ErrorKind::Other,
            "a swarm service is updated in place, never renamed",
        ))
    }

    async fn status(&self, name: &str) -> Result<Status> {
        let service = self.inspect(name).await?;
        let tasks = self.tasks(&[name.to_string()]).await?;
        let refs: Vec<&bollard::models::Task> = tasks.iter().collect();
        let c = convergence(&service, &refs);
        let (state, detail) = if c.converged() {
            (State::Running, String::new())
        } else {
            match (c.failure, c.last_error) {
                (Some(why), _) => (State::Dead, why),
                (None, error) => (State::Created, error.unwrap_or_default()),
            }
        };
        // A swarm task with a healthcheck is running only once healthy.
        let health = (state == State::Running).then_some(Health::Healthy);
        Ok(Status {
            state,
            health,
            exit_code: 0,
            detail,
        })
    }

    async fn logs(&self, name: &str, lines: usize) -> Result<String> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut stream = self.client().service_logs(name, Some(options));
        let mut out = String::new();
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| map_err(format!("reading the logs of {name}"), e))?;
            out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(out)
    }

    /// The lock is a swarm config object: cluster-wide, created atomically.
    async fn try_lock(&self, project: &str, me: &LockHolder) -> Result<Option<LockHolder>> {
        let name = lock_name(project);
        let doing = format!("taking the lock of project {project}");
        let holder = serde_json::to_string(me).unwrap_or_default();
        let spec = ConfigSpec {
            name: Some(name.clone()),
            labels: Some(HashMap::from([
                (LABEL_LOCK.to_string(), holder),
                (LOCK_PROJECT.to_string(), project.to_string()),
            ])),
            // The data is not read; the holder is in a label.
            data: Some("bG9jaw==".into()),
            templating: None,
        };
        for _ in 0..50 {
            let err = match self.client().create_config(spec.clone()).await {
                Ok(_) => return Ok(None),
                Err(e) => map_err(&doing, e),
            };
            if err.kind != ErrorKind::Conflict {
                return Err(err);
            }
            match self.client().inspect_config(&name).await {
                Ok(c) => {
                    let labels = c.spec.and_then(|s| s.labels).unwrap_or_default();
                    let holder = labels
                        .get(LABEL_LOCK)
                        .and_then(|l| serde_json::from_str(l).ok())
                        .unwrap_or(LockHolder {
                            host: "?".into(),
                            pid: 0,
                            pid_start: 0,
                            since: 0,
                            command: format!("unknown holder of swarm config {name}"),
                            boot_id: String::new(),
                            pid_ns: 0,
                        });
                    return Ok(Some(holder));
                }
                // Released between our create and this inspect: try again.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Err(EngineError::new(
            doing,
            ErrorKind::Other,
            "the lock kept changing hands",
        ))
    }

    async fn unlock(&self, project: &str) -> Result<()> {
        let name = lock_name(project);
        super::gone_is_done(
            self.client()
                .delete_config(&name)
                .await
                .map_err(|e| map_err(format!("releasing the lock of project {project}"), e)),
        )
    }

    async fn record(&self, project: &str, applied: &Applied) -> Result<()> {
        let doing = format!("writing the record of project {project}");
        let name = record_name(project);
        if self.record_config(project).await?.is_some() {
            super::gone_is_done(
                self.client()
                    .delete_config(&name)
                    .await
                    .map_err(|e| map_err(&doing, e)),
            )?;
        }
        if applied.is_empty() {
            return Ok(());
        }
        let labels = super::record_labels(project, applied, &doing)?;
        let spec = ConfigSpec {
            name: Some(name),
            labels: Some(labels.map(|(k, v)| (k.to_string(), v)).into()),
            // The data is not read; the counts are in a label.
            data: Some("cmVjb3Jk".into()),
            templating: None,
        };
        self.client()
            .create_config(spec)
            .await
            .map_err(|e| map_err(&doing, e))?;
        Ok(())
    }

    async fn volumes(&self, project: &str) -> Result<Vec<String>> {
        self.docker.volumes(project).await
    }

    /// A volume that the containers of removed tasks still hold (the
    /// node's agent removes them a moment after their tasks are gone) is
    /// removed once they are gone; one that another container uses fails
    /// at once, as on the docker backend.
    async fn remove_volume(&self, name: &str) -> Result<()> {
        let deadline = Instant::now() + GONE_WITHIN;
        loop {
            match self.docker.remove_volume(name).await {
                Err(e)
                    if e.kind == ErrorKind::Conflict
                        && Instant::now() < deadline
                        && self.only_tasks_use(name).await? =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                done => return done,
            }
        }
    }

    async fn remove_network(&self, project: &str) -> Result<()> {
        self.docker.remove_network(project).await
    }

    /// Service and node events: a service scaled, updated or removed
    /// outside muster, a node that comes or goes.
    fn log_stream(
        &self,
        name: &str,
        request: super::LogRequest,
    ) -> futures_util::stream::BoxStream<'static, Result<super::LogLine>> {
        let stream = self
            .client()
            .service_logs(name, Some(super::docker::logs_options(request)));
        super::docker::log_lines(stream, format!("reading the logs of service {name}"))
    }

    /// The services of the project created from now on ([`Self::events`]'
    /// `create`s): a swarm unit is a service that outlives its tasks, and
    /// its log stream already follows them, restarts included.
    fn starts(&self, project: &str) -> futures_util::stream::BoxStream<'static, Result<String>> {
        self.events(project)
            .filter_map(|event| {
                let name = match event {
                    Ok(e) if e.action == "create" && !e.container.starts_with("node ") => {
                        Some(Ok(e.container))
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                };
                async move { name }
            })
            .boxed()
    }

    fn events(&self, project: &str) -> futures_util::stream::BoxStream<'static, Result<Event>> {
        let options = bollard::query_parameters::EventsOptions {
            filters: Some(filters(&[
                ("type", "service".into()),
                ("type", "node".into()),
            ])),
            ..Default::default()
        };
        let prefix = format!("{project}_");
        self.client()
            .events(Some(options))
            .filter_map(move |item| {
                let event = match item {
                    Err(e) => Some(Err(map_err("following the swarm's events", e))),
                    Ok(m) => {
                        let actor = m.actor.unwrap_or_default();
                        let attributes = actor.attributes.unwrap_or_default();
                        let name = attributes.get("name").cloned().unwrap_or_default();
                        let kind = m.typ.map(|t| t.to_string()).unwrap_or_default();
                        let action = match m.action.unwrap_or_default().as_str() {
                            "remove" => "destroy".to_string(),
                            other => other.to_string(),
                        };
                        let ours = kind == "node" || name.starts_with(&prefix);
                        ours.then(|| {
                            Ok(Event {
                                id: actor.id.unwrap_or_default(),
                                container: if kind == "node" {
                                    format!("node {name}")
                                } else {
                                    name
                                },
                                action,
                                exit_code: None,
                            })
                        })
                    }
                };
                async move { event }
            })
            .boxed()
    }
}

/// Marks the lock's config object as muster's, for this project.
const LOCK_PROJECT: &str = "io.muster.lock-project";

impl SwarmEngine {
    /// The record config of `project`, if muster made it: its counts.
    async fn record_config(&self, project: &str) -> Result<Option<Applied>> {
        let inspected = self
            .client()
            .inspect_config(&record_name(project))
            .await
            .map_err(|e| map_err(format!("reading the record of project {project}"), e));
        let Some(c) = super::found(inspected)? else {
            return Ok(None);
        };
        let labels = c.spec.and_then(|s| s.labels).unwrap_or_default();
        Ok(super::read_record(project, &labels))
    }

    async fn read_record(&self, project: &str) -> Result<Applied> {
        Ok(self.record_config(project).await?.unwrap_or_default())
    }
}

/// The lock's config object.
pub fn lock_name(project: &str) -> String {
    format!("{project}-muster-lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_timestamps_read_as_milliseconds() {
        assert_eq!(unix_millis("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            unix_millis("2026-11-29T10:11:12.123456789Z"),
            Some(1_795_947_072_123)
        );
        assert_eq!(unix_millis("garbage"), None);
    }

    /// A failed task of the service's template, created after the service
    /// and before the allocator's later write of it, is this deployment's
    /// failure; one of another template, or older than the service, is not.
    #[test]
    fn a_failure_counts_from_the_services_creation_not_its_last_write() {
        let template = TaskSpec {
            container_spec: Some(bollard::models::TaskSpecContainerSpec {
                image: Some("img:1".into()),
                ..Default::default()
            }),
            restart_policy: Some(bollard::models::TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            ..Default::default()
        };
        let service = bollard::models::Service {
            created_at: Some("2026-11-29T16:21:44.100Z".into()),
            updated_at: Some("2026-11-29T16:21:47.000Z".into()),
            spec: Some(bollard::models::ServiceSpec {
                task_template: Some(template.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let failed = |created: &str, spec: TaskSpec| bollard::models::Task {
            created_at: Some(created.into()),
            spec: Some(spec),
            status: Some(bollard::models::TaskStatus {
                state: Some(TaskState::FAILED),
                err: Some("exec: \"/no/such/program\": not found".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let this = failed("2026-11-29T16:21:44.101Z", template.clone());
        let c = convergence(&service, &[&this]);
        assert!(
            c.failure
                .as_deref()
                .is_some_and(|f| f.contains("/no/such/program")),
            "{:?}",
            c.failure
        );
        let mut other = template.clone();
        other.force_update = Some(1);
        let before = failed("2026-11-29T16:21:43.900Z", template);
        let another = failed("2026-11-29T16:21:44.200Z", other);
        assert_eq!(convergence(&service, &[&before, &another]).failure, None);
    }

    fn service(text: &str) -> (crate::config::Desired, String) {
        let d = crate::config::parse_str("t.toml", text, std::path::Path::new("/srv"))
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        (d, "sha256:1".into())
    }

    #[test]
    fn a_parallel_service_maps_to_one_replicated_swarm_service() {
        let (d, id) = service(
            "project = \"shop\"\nbackend = \"swarm\"\n[swarm]\nendpoint_mode = \"dnsrr\"\npublish_mode = \"host\"\n\
             [services.web]\nimage = \"img:1\"\ncount = 3\nentrypoint = [\"/bin/sh\"]\ncommand = [\"-c\", \"sleep 9\"]\n\
             volumes = [\"data-{ordinal}:/data\"]\nports = [\"80\"]\nrestart = \"no\"\ninit = true\n\
             [services.web.update]\nparallelism = 2\norder = \"start-first\"\n\
             [services.web.placement]\nconstraints = [\"node.role == worker\"]\nmax_replicas_per_node = 1\n",
        );
        let s = &d.services["web"];
        let unit = UnitRequest {
            project: "shop",
            service: s,
            ordinal: None,
            name: "shop_web",
            replicas: 3,
            swarm: d.swarm,
        };
        let spec = service_spec(&unit, &id);
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["Name"], "shop_web");
        assert_eq!(json["Mode"]["Replicated"]["Replicas"], 3);
        let c = &json["TaskTemplate"]["ContainerSpec"];
        assert_eq!(c["Command"], serde_json::json!(["/bin/sh"]));
        assert_eq!(c["Args"], serde_json::json!(["-c", "sleep 9"]));
        assert_eq!(c["Hostname"], "web-{{.Task.Slot}}");
        assert_eq!(c["Mounts"][0]["Source"], "shop_data-{{.Task.Slot}}");
        assert_eq!(c["Init"], true);
        assert!(
            c["Labels"].as_object().unwrap().is_empty(),
            "task containers carry no muster label"
        );
        assert_eq!(json["TaskTemplate"]["RestartPolicy"]["Condition"], "none");
        assert_eq!(
            json["TaskTemplate"]["Placement"]["Constraints"],
            serde_json::json!(["node.role == worker"])
        );
        assert_eq!(json["TaskTemplate"]["Placement"]["MaxReplicas"], 1);
        assert_eq!(
            json["TaskTemplate"]["Networks"][0]["Target"],
            "shop_default"
        );
        assert_eq!(
            json["TaskTemplate"]["Networks"][0]["Aliases"],
            serde_json::json!(["web"])
        );
        assert_eq!(json["UpdateConfig"]["Parallelism"], 2);
        assert_eq!(json["UpdateConfig"]["Order"], "start-first");
        assert_eq!(json["UpdateConfig"]["FailureAction"], "rollback");
        assert_eq!(json["EndpointSpec"]["Mode"], "dnsrr");
        assert_eq!(json["EndpointSpec"]["Ports"][0]["PublishMode"], "host");
        assert_eq!(json["EndpointSpec"]["Ports"][0]["TargetPort"], 80);
        assert!(
            json["EndpointSpec"]["Ports"][0]
                .get("PublishedPort")
                .is_none()
        );
        assert_eq!(json["Labels"][LABEL_PROJECT], "shop");
        assert_eq!(json["Labels"][LABEL_IMAGE_ID], "sha256:1");
        assert!(json["Labels"].get(LABEL_ORDINAL).is_none());
    }

    #[test]
    fn a_sequential_ordinal_gets_its_links_host_name_and_alias() {
        let (d, id) = service(
            "project = \"shop\"\nbackend = \"swarm\"\n[services.db]\nimage = \"img:1\"\nmode = \"sequential\"\ncount = 3\nexpose = [\"5432\"]\nvolumes = [\"data-{ordinal}:/data\"]\nrestart = \"on-failure:4\"\n",
        );
        let s = &d.services["db"];
        let unit = UnitRequest {
            project: "shop",
            service: s,
            ordinal: Some(3),
            name: "shop_db-3",
            replicas: 1,
            swarm: d.swarm,
        };
        let json = serde_json::to_value(service_spec(&unit, &id)).unwrap();
        let c = &json["TaskTemplate"]["ContainerSpec"];
        assert_eq!(c["Hostname"], "db-3");
        assert_eq!(c["Mounts"][0]["Source"], "shop_data-3");
        let env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap();
        assert!(
            env.contains(&"DB_1_PORT=tcp://db-1:5432".to_string()),
            "{env:?}"
        );
        assert!(
            env.contains(&"DB_2_PORT_5432_TCP_ADDR=db-2".to_string()),
            "{env:?}"
        );
        assert_eq!(
            json["TaskTemplate"]["Networks"][0]["Aliases"],
            serde_json::json!(["db", "db-3"])
        );
        assert_eq!(
            json["TaskTemplate"]["RestartPolicy"]["Condition"],
            "on-failure"
        );
        assert_eq!(json["TaskTemplate"]["RestartPolicy"]["MaxAttempts"], 4);
        assert_eq!(json["UpdateConfig"]["Parallelism"], 1);
        assert_eq!(json["Labels"][LABEL_ORDINAL], "3");
    }
}
