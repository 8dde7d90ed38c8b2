//! The engine the tests run against, one tokio runtime for every engine
//! call, and blocking helpers to look into and exec into containers.
//!
//! Tests are plain synchronous `#[test]` functions: the helpers here block.
//! [`docker()`] honours `DOCKER_HOST`, negotiates the API version and
//! pings; an engine that does not answer is a failure with a clear
//! message, never a silent skip.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, HostConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectServiceOptions, ListContainersOptionsBuilder,
};
use futures_util::StreamExt;

use super::image::image;

/// The runtime every engine call of the tests runs on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot build the tests' tokio runtime")
    })
}

/// Runs `f` to completion on the shared runtime. Not from inside another
/// `block_on`: the other helpers here block, so call them outside futures.
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// Fails clearly when the engine is not a swarm manager (never skips).
pub fn swarm_manager() {
    let info = block_on(docker().info()).expect("docker info");
    let swarm = info.swarm.unwrap_or_default();
    assert_eq!(
        swarm.control_available,
        Some(true),
        "these tests need the engine to be a swarm manager: run `docker swarm init --advertise-addr 127.0.0.1` (.ci/run does)"
    );
}

/// Desired replicas of a swarm service, `None` when it does not exist.
pub fn replicas(name: &str) -> Option<i64> {
    let s = block_on(docker().inspect_service(name, None::<InspectServiceOptions>)).ok()?;
    s.spec?.mode?.replicated?.replicas
}

/// The running task containers of a swarm service on this node.
pub fn task_containers(service: &str) -> Vec<ContainerSummary> {
    let filters = HashMap::from([(
        "label",
        vec![format!("com.docker.swarm.service.name={service}")],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    block_on(docker().list_containers(Some(options))).unwrap_or_default()
}

/// The engine address the tests use, as the user would give it.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

pub(super) fn connection() -> &'static Result<Docker, String> {
    static DOCKER: OnceLock<Result<Docker, String>> = OnceLock::new();
    DOCKER.get_or_init(|| {
        block_on(async {
            let docker = Docker::connect_with_defaults().map_err(|e| e.to_string())?;
            let docker = tokio::time::timeout(Duration::from_secs(20), docker.negotiate_version())
                .await
                .map_err(|_| "no answer within 20s".to_string())?
                .map_err(|e| e.to_string())?;
            tokio::time::timeout(Duration::from_secs(20), docker.ping())
                .await
                .map_err(|_| "no answer to ping within 20s".to_string())?
                .map_err(|e| e.to_string())?;
            Ok(docker)
        })
    })
}

/// The engine, connected honouring `DOCKER_HOST`, at the API version it
/// speaks.
///
/// # Panics
/// When the engine cannot be reached: these tests need one.
pub fn docker() -> &'static Docker {
    match connection() {
        Ok(docker) => docker,
        Err(e) => panic!(
            "Docker engine not reachable at {}: {e}. These tests need a running Docker engine; see README",
            docker_host()
        ),
    }
}

pub fn inspect(name: &str) -> ContainerInspectResponse {
    block_on(docker().inspect_container(name, None))
        .unwrap_or_else(|e| panic!("cannot inspect container {name}: {e}"))
}

/// `docker rm -f name`: the container must exist.
pub fn remove_force(name: &str) {
    let force = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    block_on(docker().remove_container(name, Some(force)))
        .unwrap_or_else(|e| panic!("docker rm -f {name}: {e}"));
}

/// `docker stop -t 1 name`: the container must exist.
pub fn stop_by_hand(name: &str) {
    let stop = bollard::query_parameters::StopContainerOptionsBuilder::default()
        .t(1)
        .build();
    block_on(docker().stop_container(name, Some(stop)))
        .unwrap_or_else(|e| panic!("docker stop {name}: {e}"));
}

/// Whether a container of that name exists.
pub fn exists(name: &str) -> bool {
    block_on(docker().inspect_container(name, None)).is_ok()
}

/// `(id, state)` of a container, e.g. `("3f2a…", "running")`.
pub fn id_and_state(name: &str) -> (String, String) {
    let c = inspect(name);
    (
        c.id.unwrap_or_default(),
        c.state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
    )
}

/// When the container was last started, in nanoseconds since the epoch.
pub fn started_at(name: &str) -> i128 {
    let at = inspect(name)
        .state
        .and_then(|s| s.started_at)
        .unwrap_or_else(|| panic!("{name} has no StartedAt"));
    rfc3339_nanos(&at)
}

/// Runs `cmd` in container `name`; its exit code and output (stdout and
/// stderr together).
pub fn exec(name: &str, cmd: &[&str]) -> (i64, String) {
    block_on(exec_on(docker(), name, cmd))
}

/// [`exec`] through the client `docker` (another engine's, say), on the
/// runtime that client lives on.
pub async fn exec_on(docker: &Docker, name: &str, cmd: &[&str]) -> (i64, String) {
    let options = CreateExecOptions {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(cmd.to_vec()),
        ..Default::default()
    };
    let created = docker
        .create_exec(name, options)
        .await
        .unwrap_or_else(|e| panic!("cannot exec {cmd:?} in {name}: {e}"));
    let mut out = String::new();
    match docker.start_exec(&created.id, None).await {
        Ok(StartExecResults::Attached { mut output, .. }) => {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(c) => out.push_str(&c.to_string()),
                    Err(e) => panic!("reading the output of {cmd:?} in {name}: {e}"),
                }
            }
        }
        Ok(StartExecResults::Detached) => unreachable!("exec started attached"),
        Err(e) => panic!("cannot start {cmd:?} in {name}: {e}"),
    }
    let code = docker
        .inspect_exec(&created.id)
        .await
        .ok()
        .and_then(|i| i.exit_code)
        .unwrap_or(-1);
    (code, out)
}

/// Creates and starts a container that muster did not create: the test
/// image sleeping, with an init process, the given labels, and the project
/// network of no one. Its id.
pub fn run_foreign(name: &str, labels: &[(&str, &str)]) -> String {
    let docker = docker();
    let body = ContainerCreateBody {
        image: Some(image().to_string()),
        cmd: Some(vec!["sleep".into(), "3600".into()]),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        ),
        stop_timeout: Some(1),
        host_config: Some(HostConfig {
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    block_on(async {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = docker
            .create_container(Some(options), body)
            .await
            .unwrap_or_else(|e| panic!("cannot create the foreign container {name}: {e}"));
        docker
            .start_container(name, None)
            .await
            .unwrap_or_else(|e| panic!("cannot start the foreign container {name}: {e}"));
        created.id
    })
}

/// Parses an RFC 3339 time as the engine writes it
/// (`2024-05-01T10:00:00.123456789Z`, or with an offset) into nanoseconds
/// since the Unix epoch.
pub fn rfc3339_nanos(s: &str) -> i128 {
    let bad = || -> ! { panic!("not an RFC 3339 time: {s:?}") };
    let num = |t: &str| t.parse::<i64>().unwrap_or_else(|_| bad());
    if s.len() < 20 {
        bad();
    }
    let (date, rest) = s.split_at(10);
    let d: Vec<i64> = date.split('-').map(num).collect();
    let rest = rest.strip_prefix(['T', 't', ' ']).unwrap_or_else(|| bad());
    let tz_at = rest.find(['Z', 'z', '+', '-']).unwrap_or_else(|| bad());
    let (clock, tz) = rest.split_at(tz_at);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let t: Vec<i64> = hms.split(':').map(num).collect();
    if d.len() != 3 || t.len() != 3 {
        bad();
    }
    let frac_nanos = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000000000".chars()).take(9).collect();
        num(&digits)
    };
    let offset_secs = match tz {
        "Z" | "z" => 0,
        _ => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let (h, m) = tz[1..].split_once(':').unwrap_or_else(|| bad());
            sign * (num(h) * 3600 + num(m) * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2] - offset_secs;
    i128::from(secs) * 1_000_000_000 + i128::from(frac_nanos)
}

/// Creates volume `name` with `labels`, as a user would by hand.
pub fn create_volume(name: &str, labels: &[(&str, &str)]) {
    let request = bollard::models::VolumeCreateRequest {
        name: Some(name.to_string()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    };
    block_on(docker().create_volume(request))
        .unwrap_or_else(|e| panic!("cannot create volume {name}: {e}"));
}

/// The labels of volume `name`.
pub fn volume_labels(name: &str) -> BTreeMap<String, String> {
    block_on(docker().inspect_volume(name))
        .unwrap_or_else(|e| panic!("cannot inspect volume {name}: {e}"))
        .labels
        .into_iter()
        .collect()
}
