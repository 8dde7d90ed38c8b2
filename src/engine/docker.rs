//! The Docker engine backend: the only module that imports bollard. Converts
//! engine objects into muster's types at the boundary. Does network I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::ResizeExecOptions;
use bollard::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerSummary, ContainerSummaryStateEnum,
    EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig, NetworkCreateRequest,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions,
    ListNetworksOptions, ListVolumesOptions, LogsOptions, RemoveContainerOptions,
    RemoveVolumeOptions, RenameContainerOptions, StartContainerOptions, StopContainerOptions,
};
use bollard::{BollardRequest, Docker};
use futures_util::StreamExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{
    Actual, Applied, Backend, ContainerSpec, Endpoint, EngineError, ErrorKind, ExecRequest, Health,
    LABEL_LOCK, LABEL_PROJECT, LockHolder, Published, Result, State, Status, TermSize, Unit,
    UnitRequest, container_spec, network_name, record_name,
};
use crate::config::{Healthcheck, Restart};
use crate::lock::LABEL_LOCK_PROJECT;
use crate::sanitize;

/// The image the lock container is created from: imported from an empty
/// archive, never run, so no registry is needed.
const LOCK_IMAGE: &str = "muster-lock:1";

/// How long past its own time (a stop's grace period; none for a create,
/// a start, a rename or a removal) a call may go unanswered before muster
/// checks on the engine.
const OVERDUE: Duration = Duration::from_secs(15);

/// How long the engine may take to list its networks in that check.
const NETWORKS_ANSWER: Duration = Duration::from_secs(30);

/// How long muster waits for a [`hint`] (who uses a network, which networks
/// hold the pools).
const HINT_ANSWER: Duration = Duration::from_secs(5);

/// How long a container may stay in flux before muster gives up on it.
/// Docker 20.10 lists a container from the moment its create saved its host
/// config, but finds it by name only once that create is done (after it
/// mounted the root file system and copied the image's content into the
/// anonymous volumes); and it lists one that another call is removing,
/// answering a second removal "already in progress" at once. Both happen
/// when the next apply plans while a killed apply's last calls are still
/// running on the engine.
const IN_FLUX: Duration = Duration::from_secs(10);

/// The pause between two looks at a container in flux.
const IN_FLUX_PAUSE: Duration = Duration::from_millis(50);

/// Fault injection for the crash tests: with `MUSTER_FAULT_ABORT_AFTER=K`
/// the process aborts (as under `kill -9`: no cleanup, no unlock) right
/// after its K-th change to the engine. Hidden; never set it in production.
fn fault_point() {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    static DONE: AtomicU64 = AtomicU64::new(0);
    let limit = LIMIT.get_or_init(|| {
        std::env::var("MUSTER_FAULT_ABORT_AFTER")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(limit) = limit
        && DONE.fetch_add(1, Ordering::SeqCst) + 1 >= *limit
    {
        std::process::abort();
    }
}

/// A connection to one Docker engine.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    endpoint: String,
    /// Per project, the one lock container `unlock` may remove: the one this
    /// handle created, or the one whose holder `try_lock` last reported (so
    /// that a dead holder's lock is taken over, and nobody else's).
    lock_ids: Arc<Mutex<HashMap<String, String>>>,
    /// Per project, the record container the last `observe` found, which
    /// `record` replaces (under the lock, so nobody else wrote one since).
    record_ids: Arc<Mutex<HashMap<String, String>>>,
}

/// The words for a lost or absent engine: say so, then the client's detail.
/// What went wrong in the operating system's words, not the HTTP
/// client's: the innermost cause (`connection refused`, …).
fn unreachable(e: &BollardError) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let why = match cause
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
    {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
        Some(std::io::ErrorKind::NotFound) => "no such socket".to_string(),
        Some(std::io::ErrorKind::PermissionDenied) => "permission denied".to_string(),
        _ => match e {
            BollardError::SocketNotFoundError(_) => "no such socket".to_string(),
            BollardError::RequestTimeoutError => "no answer in time".to_string(),
            _ => cause.to_string(),
        },
    };
    format!("the Docker engine does not answer: cannot connect ({why})")
}

pub(super) fn map_err(doing: impl Into<String>, e: BollardError) -> EngineError {
    let (kind, message) = match &e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => (
            match status_code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                _ => ErrorKind::Other,
            },
            message.clone(),
        ),
        BollardError::HyperResponseError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::RequestTimeoutError
        | BollardError::SocketNotFoundError(_) => (ErrorKind::Unreachable, unreachable(&e)),
        other => {
            let text = other.to_string();
            let unreachable = text.contains("onnect")
                || text.contains("No such file")
                || text.contains("refused");
            if unreachable {
                (ErrorKind::Unreachable, self::unreachable(other))
            } else {
                (ErrorKind::Other, text)
            }
        }
    };
    // The engine's words may quote names and text from anywhere.
    EngineError::new(
        sanitize::text(&doing.into()),
        kind,
        sanitize::text(&message),
    )
}

/// With `DOCKER_TLS_VERIFY` set (for `tcp://`) or an `https://` endpoint:
/// the TLS client configuration, which trusts `$DOCKER_CERT_PATH/ca.pem`
/// only, as the docker CLI does (bollard's own adds the system's roots), and
/// shows `cert.pem`/`key.pem` when they exist; with the CA file's path.
fn tls_config(endpoint: &str, doing: &str) -> Result<Option<(Arc<ClientConfig>, PathBuf)>> {
    let verify = std::env::var_os("DOCKER_TLS_VERIFY").is_some();
    if !(endpoint.starts_with("https://") || verify && endpoint.starts_with("tcp://")) {
        return Ok(None);
    }
    let dir = std::env::var_os("DOCKER_CERT_PATH")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .unwrap_or_default();
    let bad = |what: String| EngineError::new(doing, ErrorKind::Other, what);
    let read_certs = |path: &Path| {
        CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| {
                bad(format!(
                    "cannot read certificates from {}: {e}",
                    path.display()
                ))
            })
    };
    let ca = dir.join("ca.pem");
    let mut roots = RootCertStore::empty();
    let (trusted, _) = roots.add_parsable_certificates(read_certs(&ca)?);
    if trusted == 0 {
        return Err(bad(format!("no usable CA certificate in {}", ca.display())));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let config = if cert.exists() && key.exists() {
        let chain = read_certs(&cert)?;
        let key = PrivateKeyDer::from_pem_file(&key)
            .map_err(|e| bad(format!("cannot read the key {}: {e}", key.display())))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad(format!("the client certificate {}: {e}", cert.display())))?
    } else {
        builder.with_no_client_auth()
    };
    Ok(Some((Arc::new(config), ca)))
}

/// A client for a TLS endpoint (`tcp://host:port` or `https://…`) that
/// uses `config`, through bollard's custom transport.
fn tls_client(endpoint: &str, config: Arc<ClientConfig>, doing: &str) -> Result<Docker> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = HttpsConnector::from((http, config));
    let client = LegacyClient::builder(TokioExecutor::new()).build(https);
    let address = endpoint.replacen("tcp://", "https://", 1);
    Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let client = client.clone();
            async move { client.request(request).await.map_err(BollardError::from) }
        },
        Some(address),
        600,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| map_err(doing, e))
}

/// Why a TLS handshake failed, if that is what `e` is.
struct TlsFailure(rustls::Error);

impl TlsFailure {
    fn describe(&self, ca: &Path) -> String {
        use rustls::CertificateError;
        match &self.0 {
            // A CA of the same name as ca.pem's but another key: BadSignature.
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => format!(
                "certificate not signed by {} (the only CA trusted with DOCKER_TLS_VERIFY)",
                ca.display()
            ),
            rustls::Error::InvalidCertificate(_) => {
                format!("the engine's certificate is refused ({})", self.0)
            }
            other => format!("failed: {other}"),
        }
    }
}

fn tls_failure(e: &BollardError) -> Option<TlsFailure> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(TlsFailure(tls.clone()));
        }
        // An io::Error's `source` skips the error it wraps: step into it.
        cause = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

impl DockerEngine {
    /// Connects to `host` (`unix://…`, `tcp://…`; TLS with `DOCKER_TLS_VERIFY`
    /// and `DOCKER_CERT_PATH`), or to `DOCKER_HOST`, or to the local socket,
    /// and negotiates the API version.
    ///
    /// # Errors
    /// [`ErrorKind::Unreachable`] when the engine does not answer within 3
    /// seconds or a TLS handshake fails (said so, naming the CA file);
    /// [`ErrorKind::Other`] for unreadable certificate files.
    pub async fn connect(host: Option<&str>) -> Result<Self> {
        let endpoint = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let doing = format!("connecting to the Docker engine at {endpoint}");
        if !endpoint.contains("://") {
            // A socket path, or host:port, as people write it by habit.
            let like = if endpoint.starts_with('/') {
                format!("unix://{endpoint}")
            } else {
                format!("tcp://{endpoint}")
            };
            return Err(EngineError::new(
                &doing,
                ErrorKind::Unreachable,
                format!("{endpoint:?} has no scheme; did you mean {like}? (--host or DOCKER_HOST)"),
            ));
        }
        let tls = tls_config(&endpoint, &doing)?;
        let docker = match &tls {
            Some((config, _)) => tls_client(&endpoint, config.clone(), &doing)?,
            None => Docker::connect_with_host(&endpoint).map_err(|e| map_err(&doing, e))?,
        };
        // Stops wait out grace periods: allow long calls.
        let docker = docker.with_timeout(Duration::from_secs(600));
        let docker = tokio::time::timeout(Duration::from_secs(3), docker.negotiate_version())
            .await
            .map_err(|_| EngineError::new(&doing, ErrorKind::Unreachable, "no answer within 3s"))?
            .map_err(|e| {
                let refused = tls.as_ref().and_then(|(_, ca)| {
                    let why = tls_failure(&e)?;
                    Some(EngineError::new(
                        &doing,
                        ErrorKind::Unreachable,
                        format!("TLS handshake with {endpoint}: {}", why.describe(ca)),
                    ))
                });
                refused.unwrap_or_else(|| {
                    let mut err = map_err(&doing, e);
                    err.kind = ErrorKind::Unreachable;
                    err
                })
            })?;
        Ok(DockerEngine {
            docker,
            endpoint,
            lock_ids: Arc::default(),
            record_ids: Arc::default(),
        })
    }

    fn remember_lock(&self, project: &str, id: String) {
        let mut ids = self.lock_ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.insert(project.to_string(), id);
    }

    /// The bollard client, for the daemon's event stream.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Imports the lock's empty image, which the lock and the record are
    /// made from.
    async fn import_lock_image(&self) -> Result<()> {
        // An empty tar archive: two zero blocks.
        let empty = bollard::body_full(vec![0u8; 1024].into());
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some("muster-lock".into()),
            tag: Some("1".into()),
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(options), Some(empty), None);
        while let Some(item) = stream.next().await {
            item.map_err(|e| map_err("creating the lock image", e))?;
        }
        Ok(())
    }

    /// Creates the marker container `name` (the lock, the record) with
    /// `body`; when the engine lacks the lock's image (its only 404 here),
    /// imports it and creates again. No inspect before: the image is there
    /// on every apply but the first.
    async fn create_marker(
        &self,
        name: &str,
        body: &ContainerCreateBody,
        doing: &str,
    ) -> Result<ContainerCreateResponse> {
        let create = || async {
            let options = CreateContainerOptions {
                name: Some(name.to_string()),
                ..Default::default()
            };
            self.docker
                .create_container(Some(options), body.clone())
                .await
                .map_err(|e| map_err(doing, e))
        };
        match create().await {
            Err(e) if e.kind == ErrorKind::NotFound => {
                self.import_lock_image().await?;
                create().await
            }
            other => other,
        }
    }

    /// The record container of `project`, if muster made it: its id and
    /// counts.
    async fn record_container(&self, project: &str) -> Result<Option<(String, Applied)>> {
        let inspected = self
            .docker
            .inspect_container(&record_name(project), None::<InspectContainerOptions>)
            .await
            .map_err(|e| map_err(format!("reading the record of project {project}"), e));
        let Some(c) = super::found(inspected)? else {
            return Ok(None);
        };
        // A record is never started.
        if c.state.and_then(|s| s.running).unwrap_or(false) {
            return Ok(None);
        }
        let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
        Ok(super::read_record(project, &labels)
            .zip(c.id)
            .map(|(a, id)| (id, a)))
    }

    /// The id of each image of `images` that the engine has, inspected
    /// all at once.
    pub(super) async fn image_ids(&self, images: &[String]) -> Result<BTreeMap<String, String>> {
        let inspected = futures_util::future::join_all(images.iter().map(|image| async move {
            let inspected = self
                .docker
                .inspect_image(image)
                .await
                .map_err(|e| map_err(format!("inspecting image {image}"), e));
            super::found(inspected).map(|i| i.and_then(|i| i.id).map(|id| (image.clone(), id)))
        }))
        .await;
        inspected
            .into_iter()
            .filter_map(Result::transpose)
            .collect()
    }

    /// Removes the record container `id`. By id: a container of the
    /// record's name that is not the record stays, and a create fails
    /// naming it.
    async fn remove_record(&self, id: &str, doing: &str) -> Result<()> {
        super::gone_is_done(
            self.docker
                .remove_container(id, None::<RemoveContainerOptions>)
                .await
                .map_err(|e| map_err(doing, e)),
        )
    }

    /// The counts of the project's record; remembers its id for `record`.
    async fn read_record(&self, project: &str) -> Result<Applied> {
        let found = self.record_container(project).await?;
        let mut ids = self.record_ids.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match found {
            Some((id, applied)) => {
                ids.insert(project.to_string(), id);
                applied
            }
            None => {
                ids.remove(project);
                Applied::new()
            }
        })
    }
}

/// A container that is never started and only carries `labels` (the lock,
/// the record), from the lock's empty image.
fn marker(what: &str, labels: [(&str, String); 2]) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(LOCK_IMAGE.into()),
        cmd: Some(vec![what.into()]),
        labels: Some(labels.map(|(k, v)| (k.to_string(), v)).into()),
        network_disabled: Some(true),
        ..Default::default()
    }
}

pub(super) fn filters(pairs: &[(&str, String)]) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        map.entry((*k).to_string()).or_default().push(v.clone());
    }
    map
}

pub(super) fn parse_health(status: &str) -> Option<Health> {
    if status.contains("(healthy)") {
        Some(Health::Healthy)
    } else if status.contains("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.contains("(health: starting)") {
        Some(Health::Starting)
    } else {
        None
    }
}

fn to_unit(c: ContainerSummary) -> Option<Unit> {
    let labels = c.labels.unwrap_or_default();
    let name = c
        .names?
        .into_iter()
        .next()?
        .trim_start_matches('/')
        .to_string();
    let name = sanitize::text(&name).into_owned();
    let state = match c.state? {
        ContainerSummaryStateEnum::CREATED => State::Created,
        ContainerSummaryStateEnum::RUNNING => State::Running,
        ContainerSummaryStateEnum::RESTARTING => State::Restarting,
        ContainerSummaryStateEnum::PAUSED => State::Paused,
        ContainerSummaryStateEnum::EXITED => State::Exited,
        ContainerSummaryStateEnum::DEAD => State::Dead,
        _ => State::Removing,
    };
    let status = sanitize::text(&c.status.unwrap_or_default()).into_owned();
    let mut ports: Vec<Published> = c
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            Some(Published {
                host_ip: sanitize::text(&p.ip.unwrap_or_default()).into_owned(),
                host_port: p.public_port?,
                container_port: p.private_port,
                proto: p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into()),
            })
        })
        .collect();
    ports.sort();
    ports.dedup();
    // The config (field names and values) is masked where a diff shows it,
    // so that old and new values are compared as they are.
    let (service, ordinal, config_hash, config) = super::read_labels(|k| labels.get(k));
    let service = sanitize::text(&service).into_owned();
    Some(Unit {
        id: c.id.unwrap_or_default(),
        service,
        ordinal,
        config_hash,
        config,
        image_id: c.image_id.unwrap_or_default(),
        health: parse_health(&status),
        state,
        status,
        ports,
        name,
        replicas: None,
        tasks: Vec::new(),
    })
}

/// The answer of an engine call that only adds a hint to an error muster
/// already has: none when the call fails or takes longer than
/// [`HINT_ANSWER`], so that the error is not held back.
async fn hint<T>(call: impl Future<Output = std::result::Result<T, BollardError>>) -> Option<T> {
    tokio::time::timeout(HINT_ANSWER, call).await.ok()?.ok()
}

/// The engine's words when every address pool is taken: Docker 20.10's
/// (answered as not found), and those of newer engines' address allocator
/// (answered as a bad parameter).
const NO_POOL_LEFT: [&str; 2] = [
    "could not find an available, non-overlapping IPv4 address pool",
    "all predefined address pools have been fully subnetted",
];

pub(super) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The engine's form of a healthcheck, for a container or a swarm task.
pub(super) fn health_config(h: &Healthcheck) -> HealthConfig {
    HealthConfig {
        test: Some(h.test.clone()),
        interval: Some(nanos(h.interval)),
        timeout: Some(nanos(h.timeout)),
        retries: Some(i64::from(h.retries)),
        start_period: Some(nanos(h.start_period)),
        start_interval: None,
    }
}

fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        port_bindings
            .entry(p.container.to_string())
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
            });
    }
    let binds: Vec<String> = spec
        .mounts
        .iter()
        .map(|m| {
            format!(
                "{}:{}{}",
                m.source,
                m.target,
                if m.read_only { ":ro" } else { "" }
            )
        })
        .collect();
    let restart = match &spec.restart {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, n.map(i64::from)),
    };
    let mut endpoints = HashMap::new();
    endpoints.insert(
        spec.network.clone(),
        EndpointSettings {
            aliases: Some(spec.aliases.clone()),
            ..Default::default()
        },
    );
    ContainerCreateBody {
        hostname: Some(spec.hostname.clone()),
        user: spec.user.clone(),
        exposed_ports: Some(spec.exposed.iter().map(ToString::to_string).collect()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        healthcheck: spec.healthcheck.as_ref().map(health_config),
        image: Some(spec.image.clone()),
        working_dir: spec.working_dir.clone(),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: Some(
            i64::try_from(whole_seconds(spec.stop_grace_period)).unwrap_or(i64::MAX),
        ),
        host_config: Some(HostConfig {
            binds: Some(binds),
            network_mode: Some(spec.network.clone()),
            port_bindings: Some(port_bindings),
            restart_policy: Some(RestartPolicy {
                name: Some(restart.0),
                maximum_retry_count: restart.1,
            }),
            init: spec.init.then_some(true),
            nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
            memory: spec.memory.and_then(|m| i64::try_from(m).ok()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    }
}

/// Why an attached exec session ended early.
enum Attach {
    Engine(BollardError),
    /// Writing to this process's stdout or stderr.
    Local(std::io::Error),
}

type ExecOutput = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = std::result::Result<LogOutput, BollardError>> + Send>,
>;
type ExecInput = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

impl DockerEngine {
    /// Runs an exec session until the command's output ends: its output to
    /// this process's stdout and stderr, `stdin` to its input (closed when
    /// `stdin` ends), each terminal size to the engine.
    async fn attach(
        &self,
        exec_id: &str,
        mut output: ExecOutput,
        input: ExecInput,
        stdin: tokio::sync::mpsc::Receiver<Vec<u8>>,
        sizes: Option<tokio::sync::mpsc::Receiver<TermSize>>,
    ) -> std::result::Result<(), Attach> {
        use std::io::Write as _;
        // Fed on tasks of their own: a command that does not read its stdin
        // must not hold up its output.
        let mut feeds = vec![tokio::spawn(feed_stdin(input, stdin))];
        if let Some(sizes) = sizes {
            let (docker, id) = (self.docker.clone(), exec_id.to_string());
            feeds.push(tokio::spawn(feed_sizes(docker, id, sizes)));
        }
        let drained = async {
            while let Some(item) = output.next().await {
                // The user's own session: its bytes go through unchanged.
                match item.map_err(Attach::Engine)? {
                    LogOutput::StdErr { message } => std::io::stderr().write_all(&message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        let mut out = std::io::stdout();
                        out.write_all(&message).and_then(|()| out.flush())
                    }
                    LogOutput::StdIn { .. } => Ok(()),
                }
                .map_err(Attach::Local)?;
            }
            Ok(())
        }
        .await;
        for feed in feeds {
            feed.abort();
        }
        drained
    }
}

/// Writes `stdin` to an exec's input, then closes it.
async fn feed_stdin(mut input: ExecInput, mut stdin: tokio::sync::mpsc::Receiver<Vec<u8>>) {
    use tokio::io::AsyncWriteExt as _;
    while let Some(bytes) = stdin.recv().await {
        // A command that stopped reading is no error: its exit code says
        // how it ended.
        if input.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = input.shutdown().await;
}

/// Gives an exec's pseudo-terminal each size of `sizes`.
async fn feed_sizes(
    docker: Docker,
    exec_id: String,
    mut sizes: tokio::sync::mpsc::Receiver<TermSize>,
) {
    while let Some(size) = sizes.recv().await {
        let resize = ResizeExecOptions {
            height: size.rows,
            width: size.columns,
        };
        // A size that does not reach the engine leaves the old one.
        if let Err(e) = docker.resize_exec(&exec_id, resize).await {
            tracing::debug!("engine: resizing exec {exec_id}: {e}");
        }
    }
}

#[async_trait::async_trait]
impl Backend for DockerEngine {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            address: self.endpoint.clone(),
            kind: None,
        }
    }

    async fn observe(&self, project: &str, images: &[String]) -> Result<Actual> {
        let (units, applied, image_ids) = tokio::join!(
            self.units(project),
            self.read_record(project),
            self.image_ids(images)
        );
        let (units, applied, image_ids) = (units?, applied?, image_ids?);
        Ok(Actual {
            units,
            image_ids,
            applied,
        })
    }

    async fn units(&self, project: &str) -> Result<Vec<Unit>> {
        tracing::debug!("engine: list the containers of {project}");
        let list = self
            .containers_where(
                "label",
                format!("{LABEL_PROJECT}={project}"),
                &format!("the containers of project {project}"),
            )
            .await?;
        if list.is_empty() {
            self.refuse_a_swarm_project(project).await?;
        }
        let mut units: Vec<Unit> = list.into_iter().filter_map(to_unit).collect();
        units.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(units)
    }

    async fn pull(&self, image: &str) -> Result<()> {
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            item.map_err(|e| map_err(format!("pulling image {image}"), e))?;
        }
        Ok(())
    }

    async fn ensure_network(&self, project: &str) -> Result<()> {
        self.ensure_network_of(project, NetworkKind::Bridge).await
    }

    async fn ensure_volume(&self, project: &str, name: &str) -> Result<()> {
        let doing = format!("creating volume {name}");
        match self.volume_owner(name).await? {
            Some(owner) if owner.as_deref() == Some(project) => return Ok(()),
            Some(owner) => return Err(foreign_volume(&doing, name, project, owner.as_deref())),
            None => {}
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(HashMap::from([(
                LABEL_PROJECT.to_string(),
                project.to_string(),
            )])),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| map_err(doing, e))
    }

    async fn volume_owner(&self, name: &str) -> Result<Option<Option<String>>> {
        let inspected = self
            .docker
            .inspect_volume(name)
            .await
            .map_err(|e| map_err(format!("inspecting volume {name}"), e));
        Ok(super::found(inspected)?.map(|v| v.labels.get(LABEL_PROJECT).cloned()))
    }

    async fn create(&self, unit: &UnitRequest<'_>) -> Result<()> {
        let spec = container_spec(
            unit.project,
            unit.service,
            unit.ordinal.unwrap_or(1),
            unit.name,
        );
        self.create_container(&spec).await
    }

    /// A container the engine lists but cannot find yet (its create is
    /// still under way) is waited for: its label is known once it is made.
    async fn unit_owner(&self, name: &str) -> Result<Option<Option<String>>> {
        let deadline = Instant::now() + IN_FLUX;
        loop {
            let inspected = self
                .docker
                .inspect_container(name, None::<InspectContainerOptions>)
                .await
                .map_err(|e| map_err(format!("inspecting {name}"), e));
            match super::found(inspected)? {
                Some(c) => {
                    return Ok(Some(
                        c.config
                            .and_then(|c| c.labels)
                            .and_then(|mut l| l.remove(LABEL_PROJECT)),
                    ));
                }
                None if Instant::now() < deadline && self.listed(name).await? => {
                    tokio::time::sleep(IN_FLUX_PAUSE).await;
                }
                None => return Ok(None),
            }
        }
    }

    async fn update(&self, unit: &UnitRequest<'_>, _force: bool) -> Result<()> {
        Err(EngineError::new(
            format!("updating {}", unit.name),
            ErrorKind::Other,
            "a container is recreated, never updated in place",
        ))
    }

    async fn start(&self, name: &str) -> Result<()> {
        tracing::debug!("engine: start {name}");
        let deadline = Instant::now() + IN_FLUX;
        loop {
            let call = self
                .docker
                .start_container(name, None::<StartContainerOptions>);
            match self
                .answered(&format!("starting {name}"), Duration::ZERO, call)
                .await
            {
                // Listed but not found: its create is still under way.
                Err(err)
                    if err.kind == ErrorKind::NotFound
                        && Instant::now() < deadline
                        && self.listed(name).await? =>
                {
                    tokio::time::sleep(IN_FLUX_PAUSE).await;
                }
                done => break done?,
            }
        }
        fault_point();
        Ok(())
    }

    async fn exec(&self, name: &str, request: ExecRequest) -> Result<i64> {
        use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        use std::io::Write as _;
        let doing = format!("running a command in {name}");
        let ExecRequest {
            cmd,
            stdin,
            tty: sizes,
        } = request;
        let tty = sizes.is_some();
        let exec = self
            .docker
            .create_exec(
                name,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty),
                    cmd: Some(cmd),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| map_err(&doing, e))?;
        let started = self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    tty,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| map_err(&doing, e))?;
        if let StartExecResults::Attached { output, input } = started {
            self.attach(&exec.id, output, input, stdin, sizes)
                .await
                .map_err(|e| match e {
                    Attach::Engine(e) => map_err(&doing, e),
                    Attach::Local(e) => EngineError::new(&doing, ErrorKind::Other, e.to_string()),
                })?;
        }
        let _ = std::io::stdout().flush();
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| map_err(&doing, e))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<()> {
        tracing::debug!("engine: stop {name}");
        self.stop_container(name, grace).await
    }

    async fn remove(&self, name: &str, grace: Duration) -> Result<()> {
        tracing::debug!("engine: stop and remove {name}");
        // Done once the engine no longer lists it: one it cannot find yet,
        // or that another call is removing, is waited for (see IN_FLUX).
        let deadline = Instant::now() + grace + IN_FLUX;
        while !self.removed(name, grace).await? && self.listed(name).await? {
            if Instant::now() >= deadline {
                return Err(EngineError::new(
                    format!("removing {name}"),
                    ErrorKind::Other,
                    format!(
                        "the engine still lists it {}s later, but will neither find nor remove it",
                        (grace + IN_FLUX).as_secs()
                    ),
                ));
            }
            tokio::time::sleep(IN_FLUX_PAUSE).await;
        }
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        tracing::debug!("engine: rename {from} to {to}");
        let options = RenameContainerOptions {
            name: to.to_string(),
        };
        let call = self.docker.rename_container(from, options);
        self.answered(&format!("renaming {from} to {to}"), Duration::ZERO, call)
            .await?;
        fault_point();
        Ok(())
    }

    async fn status(&self, name: &str) -> Result<Status> {
        let c = self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .map_err(|e| map_err(format!("inspecting {name}"), e))?;
        let st = c.state.unwrap_or_default();
        use bollard::models::ContainerStateStatusEnum as S;
        let state = match st.status {
            Some(S::CREATED) => State::Created,
            Some(S::RUNNING) => State::Running,
            Some(S::RESTARTING) => State::Restarting,
            Some(S::PAUSED) => State::Paused,
            Some(S::EXITED) => State::Exited,
            Some(S::DEAD) => State::Dead,
            _ => State::Removing,
        };
        let health = st.health.and_then(|h| match h.status? {
            HealthStatusEnum::STARTING => Some(Health::Starting),
            HealthStatusEnum::HEALTHY => Some(Health::Healthy),
            HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
            _ => None,
        });
        Ok(Status {
            state,
            health,
            exit_code: st.exit_code.unwrap_or(0),
            detail: String::new(),
        })
    }

    async fn logs(&self, name: &str, lines: usize) -> Result<String> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(name, Some(options));
        let mut out = String::new();
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| map_err(format!("reading the logs of {name}"), e))?;
            out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(sanitize::lines(&out).into_owned())
    }

    async fn try_lock(&self, project: &str, me: &LockHolder) -> Result<Option<LockHolder>> {
        let name = lock_name(project);
        let doing = format!("taking the lock of project {project}");
        let holder = serde_json::to_string(me)
            .map_err(|e| EngineError::new(&doing, ErrorKind::Other, e.to_string()))?;
        let body = marker(
            "lock",
            [
                (LABEL_LOCK, holder),
                (LABEL_LOCK_PROJECT, project.to_string()),
            ],
        );
        match self.create_marker(&name, &body, &doing).await {
            Ok(created) => {
                self.remember_lock(project, created.id);
                return Ok(None);
            }
            Err(err) if err.kind != ErrorKind::Conflict => return Err(err),
            Err(_) => {}
        }
        // Not found here: released since the create; the caller tries
        // again after a pause.
        let c = self
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
            .map_err(|e| map_err(format!("{doing}: inspecting {name}"), e))?;
        let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
        let started = c.state.and_then(|s| s.running).unwrap_or(false);
        if labels.get(LABEL_LOCK_PROJECT).map(String::as_str) != Some(project) || started {
            return Err(EngineError::new(
                doing,
                ErrorKind::Conflict,
                format!(
                    "container {name} has the lock's name, but muster did not create it \
                     (a lock is never started and carries label {LABEL_LOCK_PROJECT}={project}); \
                     muster leaves it alone: remove or rename it if it is not in use"
                ),
            ));
        }
        let holder = labels
            .get(LABEL_LOCK)
            .and_then(|l| serde_json::from_str::<LockHolder>(l).ok())
            .map(|h| LockHolder {
                host: sanitize::text(&h.host).into_owned(),
                command: sanitize::text(&h.command).into_owned(),
                boot_id: sanitize::text(&h.boot_id).into_owned(),
                ..h
            })
            .unwrap_or(LockHolder {
                host: "?".into(),
                pid: 0,
                pid_start: 0,
                boot_id: String::new(),
                pid_ns: 0,
                since: 0,
                command: format!("unknown holder of container {name}"),
            });
        if let Some(id) = c.id {
            self.remember_lock(project, id);
        }
        Ok(Some(holder))
    }

    async fn unlock(&self, project: &str) -> Result<()> {
        let id = {
            let mut ids = self.lock_ids.lock().unwrap_or_else(|p| p.into_inner());
            ids.remove(project)
        };
        let Some(id) = id else {
            return Ok(());
        };
        // By id, never by name: the name may be another holder's lock by now.
        super::gone_is_done(
            self.docker
                .remove_container(&id, None::<RemoveContainerOptions>)
                .await
                .map_err(|e| map_err(format!("releasing the lock of project {project}"), e)),
        )
    }

    async fn record(&self, project: &str, applied: &Applied) -> Result<()> {
        let doing = format!("writing the record of project {project}");
        let found = {
            let mut ids = self.record_ids.lock().unwrap_or_else(|p| p.into_inner());
            ids.remove(project)
        };
        if let Some(id) = found {
            self.remove_record(&id, &doing).await?;
        }
        if applied.is_empty() {
            return Ok(());
        }
        let body = marker("record", super::record_labels(project, applied, &doing)?);
        let name = record_name(project);
        let create = || self.create_marker(&name, &body, &doing);
        match create().await {
            // A record that this handle's last observe did not see.
            Err(e) if e.kind == ErrorKind::Conflict => {
                let Some((id, _)) = self.record_container(project).await? else {
                    return Err(e);
                };
                self.remove_record(&id, &doing).await?;
                create().await?;
            }
            other => {
                other?;
            }
        }
        Ok(())
    }

    async fn volumes(&self, project: &str) -> Result<Vec<String>> {
        let options = ListVolumesOptions {
            filters: Some(filters(&[("label", format!("{LABEL_PROJECT}={project}"))])),
        };
        let list = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| map_err(format!("listing the volumes of project {project}"), e))?;
        let mut names: Vec<String> = list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| sanitize::text(&v.name).into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
            .map_err(|e| map_err(format!("removing volume {name}"), e))
    }

    fn events(
        &self,
        project: &str,
    ) -> futures_util::stream::BoxStream<'static, Result<super::Event>> {
        self.event_stream(project)
    }

    fn log_stream(
        &self,
        name: &str,
        request: super::LogRequest,
    ) -> futures_util::stream::BoxStream<'static, Result<super::LogLine>> {
        let stream = self.docker.logs(name, Some(logs_options(request)));
        log_lines(stream, format!("reading the logs of {name}"))
    }

    fn starts(&self, project: &str) -> futures_util::stream::BoxStream<'static, Result<String>> {
        self.container_events(project, &["start"], None)
            .map(|e| e.map(|e| e.container))
            .boxed()
    }

    fn changes(
        &self,
        project: &str,
        since: std::time::SystemTime,
    ) -> Option<futures_util::stream::BoxStream<'static, Result<super::Event>>> {
        Some(self.container_events(
            project,
            &["start", "die", "destroy", "health_status"],
            Some(since),
        ))
    }

    async fn remove_network(&self, project: &str) -> Result<()> {
        let name = network_name(project);
        let doing = format!("removing network {name}");
        let options = ListNetworksOptions {
            filters: Some(filters(&[("label", format!("{LABEL_PROJECT}={project}"))])),
        };
        let list = self.docker.list_networks(Some(options));
        let existing = self.answered(&doing, Duration::ZERO, list).await?;
        for n in existing
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name.as_str()))
        {
            let id = n.id.unwrap_or_else(|| name.clone());
            let remove = self.docker.remove_network(&id);
            if let Err(mut err) = self.answered(&doing, Duration::ZERO, remove).await {
                match err.kind {
                    ErrorKind::NotFound => continue,
                    ErrorKind::Unreachable => return Err(err),
                    _ => {}
                }
                // Still in use by a container (not muster's: its own are
                // gone): a conflict, said as such. None listed: the
                // engine's count of the network's endpoints is off
                // (Docker 20.10), which the caller retries.
                let users = hint(self.docker.inspect_network(&id, None))
                    .await
                    .and_then(|n| n.containers)
                    .unwrap_or_default();
                if !users.is_empty() {
                    let names: Vec<String> = users
                        .values()
                        .filter_map(|c| c.name.clone())
                        .map(|n| sanitize::text(&n).into_owned())
                        .collect();
                    err.kind = ErrorKind::Conflict;
                    err.message = format!(
                        "it is still in use by {} (not muster's): {}",
                        names.join(", "),
                        err.message
                    );
                }
                return Err(err);
            }
        }
        Ok(())
    }
}

impl DockerEngine {
    fn event_stream(
        &self,
        project: &str,
    ) -> futures_util::stream::BoxStream<'static, Result<super::Event>> {
        self.container_events(
            project,
            &["die", "stop", "kill", "destroy", "oom", "health_status"],
            None,
        )
    }

    /// The project's container events of the given actions, from `since`
    /// (replayed by the engine) or from now on.
    fn container_events(
        &self,
        project: &str,
        actions: &[&str],
        since: Option<std::time::SystemTime>,
    ) -> futures_util::stream::BoxStream<'static, Result<super::Event>> {
        let mut pairs = vec![
            ("type", "container".to_string()),
            ("label", format!("{LABEL_PROJECT}={project}")),
        ];
        pairs.extend(actions.iter().map(|a| ("event", (*a).to_string())));
        let since = since.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let options = bollard::query_parameters::EventsOptions {
            filters: Some(filters(&pairs)),
            since: since.map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos())),
            ..Default::default()
        };
        self.docker
            .events(Some(options))
            .map(|item| {
                let m = item.map_err(|e| map_err("following the engine's events", e))?;
                let actor = m.actor.unwrap_or_default();
                let id = actor.id.unwrap_or_default();
                let attributes = actor.attributes.unwrap_or_default();
                Ok(super::Event {
                    id,
                    container: sanitize::text(attributes.get("name").map_or("", String::as_str))
                        .into_owned(),
                    action: sanitize::text(&m.action.unwrap_or_default()).into_owned(),
                    exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
                })
            })
            .boxed()
    }
}

/// The engine's query for a [`super::LogRequest`]; always with timestamps,
/// to merge units in time order.
pub(super) fn logs_options(request: super::LogRequest) -> LogsOptions {
    LogsOptions {
        follow: request.follow,
        stdout: true,
        stderr: true,
        timestamps: true,
        since: request
            .since
            .map_or(0, |s| i32::try_from(s).unwrap_or(i32::MAX)),
        tail: request.tail.map_or("all".into(), |n| n.to_string()),
        ..Default::default()
    }
}

/// The engine's log frames as lines.
pub(super) fn log_lines(
    stream: impl futures_util::Stream<Item = std::result::Result<LogOutput, BollardError>>
    + Send
    + 'static,
    doing: String,
) -> futures_util::stream::BoxStream<'static, Result<super::LogLine>> {
    stream
        .flat_map(move |item| {
            let lines = match item {
                Ok(LogOutput::StdErr { message }) => Ok(super::logs::lines_of(&message, true)),
                Ok(
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message },
                ) => Ok(super::logs::lines_of(&message, false)),
                Err(e) => Err(map_err(&doing, e)),
            };
            futures_util::stream::iter(match lines {
                Ok(lines) => lines.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        })
        .boxed()
}

/// The lock container's name. It carries no project label (but its own
/// [`LABEL_LOCK_PROJECT`]), so it is never mistaken for a service container.
pub fn lock_name(project: &str) -> String {
    format!("{project}-muster-lock")
}

/// A volume of the project's name that the project does not own.
fn foreign_volume(doing: &str, name: &str, project: &str, owner: Option<&str>) -> EngineError {
    let whose = match owner {
        Some(other) => format!("it belongs to project {other} (label {LABEL_PROJECT}={other})"),
        None => format!("it has no {LABEL_PROJECT} label: muster did not create it"),
    };
    EngineError::new(
        doing,
        ErrorKind::Conflict,
        format!(
            "volume {name} exists and {whose}; muster will not mount another's data into project {project}. \
             Declare it in the file as [volumes.NAME] external = true to use it as it is"
        ),
    )
}

impl DockerEngine {
    /// One stop (within `grace`) and removal of `name`: true once this
    /// call removed it; false when the engine did not find it, or another
    /// removal of it is under way.
    async fn removed(&self, name: &str, grace: Duration) -> Result<bool> {
        if let Err(err) = self.stop_container(name, grace).await {
            match err.kind {
                ErrorKind::NotFound => return Ok(false),
                ErrorKind::Unreachable => return Err(err),
                _ => {} // e.g. already stopped (304): remove anyway
            }
        }
        fault_point();
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        let call = self.docker.remove_container(name, Some(options));
        match self
            .answered(&format!("removing {name}"), Duration::ZERO, call)
            .await
        {
            Ok(()) => {
                fault_point();
                Ok(true)
            }
            Err(err)
                if err.kind == ErrorKind::NotFound
                    || err.message.contains("already in progress") =>
            {
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Every container (running or not) that matches the engine's filter
    /// `key`=`value`; `what` names them in an error.
    pub(super) async fn containers_where(
        &self,
        key: &str,
        value: String,
        what: &str,
    ) -> Result<Vec<ContainerSummary>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters(&[(key, value)])),
            ..Default::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|e| map_err(format!("listing {what}"), e))
    }

    /// Whether the engine lists a container named `name`.
    async fn listed(&self, name: &str) -> Result<bool> {
        let list = self
            .containers_where("name", format!("^{name}$"), &format!("container {name}"))
            .await?;
        let slashed = format!("/{name}");
        Ok(list
            .iter()
            .any(|c| c.names.iter().flatten().any(|n| *n == slashed)))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<()> {
        tracing::debug!("engine: create {}", spec.name);
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let doing = format!("creating {}", spec.name);
        let call = self
            .docker
            .create_container(Some(options), create_body(spec));
        self.answered(&doing, Duration::ZERO, call)
            .await
            .map_err(|mut err| {
                if err.kind == ErrorKind::Conflict {
                    err.message = format!("the name {} is taken ({})", spec.name, err.message);
                }
                err
            })?;
        fault_point();
        Ok(())
    }

    /// A project that the swarm backend runs here (its swarm services carry
    /// the project's label) is not this backend's: refused naming them, as
    /// the swarm backend refuses one of this backend. Asked only of a
    /// project with no container here; an engine that is no swarm manager
    /// has no services.
    async fn refuse_a_swarm_project(&self, project: &str) -> Result<()> {
        let options = bollard::query_parameters::ListServicesOptions {
            filters: Some(filters(&[("label", format!("{LABEL_PROJECT}={project}"))])),
            status: None,
        };
        let Ok(services) = self.docker.list_services(Some(options)).await else {
            return Ok(());
        };
        let names: Vec<String> = services.into_iter().filter_map(|s| s.spec?.name).collect();
        if names.is_empty() {
            return Ok(());
        }
        Err(EngineError::new(
            format!("observing project {project}"),
            ErrorKind::Conflict,
            format!(
                "project {project} runs on this engine's swarm with the swarm backend ({}); use `--backend swarm` (or `backend = \"swarm\"` in the file), or another project name",
                names.join(", ")
            ),
        ))
    }

    /// Stops `name`, killing it after `grace` (rounded up to a second).
    async fn stop_container(&self, name: &str, grace: Duration) -> Result<()> {
        let seconds = whole_seconds(grace);
        let stop = StopContainerOptions {
            t: Some(i32::try_from(seconds).unwrap_or(i32::MAX)),
            ..Default::default()
        };
        let call = self.docker.stop_container(name, Some(stop));
        self.answered(
            &format!("stopping {name}"),
            Duration::from_secs(seconds),
            call,
        )
        .await
    }

    /// `call`, which the engine should answer within `own` (a stop's grace
    /// period), its error said as `doing`. Once it is [`OVERDUE`] past
    /// that, and every [`OVERDUE`] after, muster asks the engine for its
    /// networks: when that goes unanswered for [`NETWORKS_ANSWER`] too, the
    /// engine is stuck, and the call fails now, saying so, instead of after
    /// the client's 600 s.
    /// Docker 20.10 before 20.10.27 has such a deadlock in its network
    /// controller (moby#46661): removals and network calls hang for good
    /// while the container list still answers.
    async fn answered<T>(
        &self,
        doing: &str,
        own: Duration,
        call: impl Future<Output = std::result::Result<T, BollardError>>,
    ) -> Result<T> {
        let began = Instant::now();
        tokio::pin!(call);
        let mut wait = own + OVERDUE;
        loop {
            tokio::select! {
                done = &mut call => return done.map_err(|e| map_err(doing, e)),
                () = tokio::time::sleep(wait) => {}
            }
            tracing::debug!(
                "engine: {doing}: no answer after {:?}; listing networks",
                began.elapsed()
            );
            let probe = tokio::time::timeout(
                NETWORKS_ANSWER,
                self.docker.list_networks(None::<ListNetworksOptions>),
            );
            tokio::select! {
                done = &mut call => return done.map_err(|e| map_err(doing, e)),
                probed = probe => if probed.is_err() {
                    return Err(EngineError::new(
                        doing,
                        ErrorKind::Unreachable,
                        format!(
                            "the engine has not answered for {}s, and does not list its networks \
                             either (no answer within {}s): its network controller is stuck. \
                             Docker before 20.10.27 has such a deadlock (moby#46661); restart \
                             dockerd, then run muster again",
                            began.elapsed().as_secs(),
                            NETWORKS_ANSWER.as_secs()
                        ),
                    ));
                }
            }
            wait = OVERDUE;
        }
    }
}

/// The project network each backend wants: the docker backend's bridge, or
/// the swarm backend's attachable overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NetworkKind {
    Bridge,
    Overlay,
}

impl NetworkKind {
    fn driver(self) -> &'static str {
        match self {
            NetworkKind::Bridge => "bridge",
            NetworkKind::Overlay => "overlay",
        }
    }

    /// The backend that makes this kind of network.
    fn backend(self) -> &'static str {
        match self {
            NetworkKind::Bridge => "docker",
            NetworkKind::Overlay => "swarm",
        }
    }
}

impl DockerEngine {
    /// Creates the project's network of `kind` unless it exists. One of that
    /// name that the project does not own, or of the other kind (the other
    /// backend's), is refused.
    pub(super) async fn ensure_network_of(&self, project: &str, kind: NetworkKind) -> Result<()> {
        let name = network_name(project);
        let doing = format!("creating network {name}");
        let options = ListNetworksOptions {
            filters: Some(filters(&[("name", name.clone())])),
        };
        let list = self.docker.list_networks(Some(options));
        let existing = self.answered(&doing, Duration::ZERO, list).await?;
        if let Some(n) = existing
            .iter()
            .find(|n| n.name.as_deref() == Some(name.as_str()))
        {
            let owner = n.labels.as_ref().and_then(|l| l.get(LABEL_PROJECT));
            if owner.map(String::as_str) != Some(project) {
                return Err(EngineError::new(
                    doing,
                    ErrorKind::Conflict,
                    "a network of that name exists and muster does not own it",
                ));
            }
            let driver = n.driver.clone().unwrap_or_default();
            if driver != kind.driver() {
                let other = match kind {
                    NetworkKind::Bridge => NetworkKind::Overlay,
                    NetworkKind::Overlay => NetworkKind::Bridge,
                };
                return Err(EngineError::new(
                    doing,
                    ErrorKind::Conflict,
                    format!(
                        "network {name} is the {} backend's ({driver} driver): project {project} runs on this engine with the {} backend; `muster down --backend {}` it first, or use another project name",
                        other.backend(),
                        other.backend(),
                        other.backend()
                    ),
                ));
            }
            return Ok(());
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some(kind.driver().into()),
            attachable: (kind == NetworkKind::Overlay).then_some(true),
            labels: Some(HashMap::from([(
                LABEL_PROJECT.to_string(),
                project.to_string(),
            )])),
            ..Default::default()
        };
        let create = self.docker.create_network(request);
        match self.answered(&doing, Duration::ZERO, create).await {
            Ok(_) => Ok(()),
            // Another muster created it meanwhile: fine.
            Err(err) if err.kind == ErrorKind::Conflict => Ok(()),
            Err(err) if NO_POOL_LEFT.iter().any(|w| err.message.contains(w)) => {
                Err(self.no_pool_left(err).await)
            }
            Err(err) => Err(err),
        }
    }

    /// `err`, the engine's refusal to create a network for want of an
    /// address pool (which Docker 20.10 answers as "not found"), said
    /// plainly, with the projects of muster's whose network no container of
    /// theirs uses (each holds a pool, and one the engine kept at a `down`
    /// holds it until dockerd restarts) and how to free pools. The lists
    /// are a [`hint`]: when they fail or are late, it is left out.
    async fn no_pool_left(&self, err: EngineError) -> EngineError {
        // Bridge networks only: a swarm project's containers are its tasks,
        // which do not carry the project's label.
        let label = ("label", LABEL_PROJECT.to_string());
        let bridges = filters(&[label.clone(), ("driver", "bridge".to_string())]);
        let (networks, containers) = tokio::join!(
            hint(self.docker.list_networks(Some(ListNetworksOptions {
                filters: Some(bridges)
            }))),
            hint(self.docker.list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters(&[label])),
                ..Default::default()
            })))
        );
        let mut idle = Vec::new();
        if let (Some(networks), Some(containers)) = (networks, containers) {
            let used: HashSet<String> = containers
                .into_iter()
                .filter_map(|c| c.labels?.remove(LABEL_PROJECT))
                .collect();
            idle = networks
                .into_iter()
                .filter_map(|n| n.labels?.remove(LABEL_PROJECT))
                .filter(|project| !used.contains(project))
                .map(|project| sanitize::text(&project).into_owned())
                .collect();
            idle.sort();
            idle.dedup();
        }
        let held = if idle.is_empty() {
            String::new()
        } else {
            format!(
                " The network of each of these muster projects holds one while no container uses it: {}. `muster down --project NAME` removes it; one the engine still will not remove has lost count of its endpoints, and frees its pool only when dockerd restarts.",
                idle.join(", ")
            )
        };
        EngineError::new(
            err.doing,
            ErrorKind::Other,
            format!(
                "the engine has no address pool left for another network ({}): every network holds one, about 30 by default.{held} `docker network prune` removes the networks no container uses; `default-address-pools` in the engine's daemon.json gives it more",
                err.message
            ),
        )
    }
}

/// The engine counts a stop's grace in whole seconds: a fraction is
/// rounded up, so that `800ms` still gives the process its SIGTERM first.
fn whole_seconds(grace: Duration) -> u64 {
    grace.as_secs() + u64::from(grace.subsec_nanos() > 0)
}
