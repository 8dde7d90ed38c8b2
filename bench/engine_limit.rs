//! The engine's own limit, for bench/run.sh: creates and starts N
//! containers straight through the Docker API, as muster's docker backend
//! does (same create body, bridge network with aliases, same concurrency),
//! and removes them (stop, then remove), with nothing else around it: no
//! file, no plan, no lock, no output. What muster adds to this is muster's.
//!
//! ```text
//! cargo run --release --example engine_limit -- up       PROJECT N [IMAGE] [PARALLEL]
//! cargo run --release --example engine_limit -- recreate PROJECT N [IMAGE] [PARALLEL]
//! cargo run --release --example engine_limit -- recreate-ahead  PROJECT N [IMAGE] [PARALLEL]
//! cargo run --release --example engine_limit -- recreate-renamed PROJECT N [IMAGE] [PARALLEL]
//! cargo run --release --example engine_limit -- down     PROJECT [PARALLEL]
//! ```
//!
//! `up` makes `PROJECT_default` and `PROJECT-svc-1..N` running `sleep 3600`
//! with `init`; `recreate` replaces them as a rolling update does (stop,
//! remove, create, start; PARALLEL in flight); `down` removes the
//! project's containers and its network. Two other orders of the same
//! replacement, to measure whether the order buys anything (BENCHMARKS.md):
//! `recreate-ahead` creates each replacement under a temporary name while
//! the old one stops and goes, then renames and starts it;
//! `recreate-renamed` renames the old one, creates the replacement under
//! the name while the old one stops, starts it once the old one stopped,
//! and removes the old ones at the end.

use std::collections::HashMap;
use std::process::ExitCode;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
    RenameContainerOptions, StartContainerOptions, StopContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt, stream};

const LABEL: &str = "io.muster-bench.project";
const DEFAULT_IMAGE: &str = "muster-example/busybox:1";
const DEFAULT_PARALLEL: usize = 8;
const STOP_GRACE_SECS: i32 = 1;

type Result<T> = std::result::Result<T, String>;

fn usage() -> String {
    "usage: engine_limit up|recreate|recreate-ahead|recreate-renamed PROJECT N [IMAGE] [PARALLEL] \
     | engine_limit down PROJECT [PARALLEL]"
        .into()
}

fn network(project: &str) -> String {
    format!("{project}_default")
}

/// What muster's docker backend sends for container `k` of a parallel
/// service `svc` with `command`, `init` and `stop_grace_period` set.
fn body(project: &str, image: &str, k: usize) -> ContainerCreateBody {
    let host = format!("svc-{k}");
    let labels = HashMap::from([
        (LABEL.to_string(), project.to_string()),
        ("io.muster-bench.ordinal".to_string(), k.to_string()),
    ]);
    let endpoints = HashMap::from([(
        network(project),
        EndpointSettings {
            aliases: Some(vec!["svc".into(), host.clone()]),
            ..Default::default()
        },
    )]);
    ContainerCreateBody {
        hostname: Some(host),
        image: Some(image.into()),
        cmd: Some(vec!["sleep".into(), "3600".into()]),
        env: Some(Vec::new()),
        exposed_ports: Some(Vec::new()),
        labels: Some(labels),
        stop_timeout: Some(i64::from(STOP_GRACE_SECS)),
        host_config: Some(HostConfig {
            binds: Some(Vec::new()),
            network_mode: Some(network(project)),
            port_bindings: Some(HashMap::new()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            init: Some(true),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    }
}

/// As muster's `ensure_network`: one list call, and a create unless the
/// network is there (the engine would make a second one of the same name).
async fn ensure_network(docker: &Docker, project: &str) -> Result<()> {
    let name = network(project);
    let filters = HashMap::from([("name".to_string(), vec![name.clone()])]);
    let existing = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| format!("listing network {name}: {e}"))?;
    if existing
        .iter()
        .any(|n| n.name.as_deref() == Some(name.as_str()))
    {
        return Ok(());
    }
    let labels = HashMap::from([(LABEL.to_string(), project.to_string())]);
    docker
        .create_network(NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(labels),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("creating network {name}: {e}"))?;
    Ok(())
}

fn name_of(project: &str, k: usize) -> String {
    format!("{project}-svc-{k}")
}

/// Container `k` of the project, created under `name`.
async fn create(docker: &Docker, project: &str, image: &str, k: usize, name: &str) -> Result<()> {
    let options = CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    docker
        .create_container(Some(options), body(project, image, k))
        .await
        .map(|_| ())
        .map_err(|e| format!("creating {name}: {e}"))
}

async fn start(docker: &Docker, name: &str) -> Result<()> {
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .map_err(|e| format!("starting {name}: {e}"))
}

async fn create_start(docker: &Docker, project: &str, image: &str, k: usize) -> Result<()> {
    let name = name_of(project, k);
    create(docker, project, image, k, &name).await?;
    start(docker, &name).await
}

async fn rename(docker: &Docker, from: &str, to: &str) -> Result<()> {
    let options = RenameContainerOptions { name: to.into() };
    docker
        .rename_container(from, options)
        .await
        .map_err(|e| format!("renaming {from}: {e}"))
}

/// Stops within the grace period (an error is the remove's to tell).
async fn stop(docker: &Docker, id: &str) {
    let stop = StopContainerOptions {
        t: Some(STOP_GRACE_SECS),
        ..Default::default()
    };
    let _ = docker.stop_container(id, Some(stop)).await;
}

async fn remove(docker: &Docker, id: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    docker
        .remove_container(id, Some(options))
        .await
        .map_err(|e| format!("removing {id}: {e}"))
}

/// As muster's remove: stop within the grace period, then remove.
async fn stop_remove(docker: &Docker, id: &str) -> Result<()> {
    stop(docker, id).await;
    remove(docker, id).await
}

async fn up(docker: &Docker, project: &str, n: usize, image: &str, parallel: usize) -> Result<()> {
    ensure_network(docker, project).await?;
    stream::iter(1..=n)
        .map(|k| create_start(docker, project, image, k))
        .buffer_unordered(parallel)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The order of a rolling replacement's calls.
#[derive(Clone, Copy)]
enum Order {
    /// Stop, remove, create, start (muster's).
    Plain,
    /// Create under a temporary name while the old one stops and goes;
    /// rename, start.
    Ahead,
    /// Rename the old one; create under the name while it stops; start;
    /// the old ones removed at the end.
    Renamed,
}

/// A rolling replacement of containers 1..=N, `parallel` in flight, the
/// next begun as soon as one is started.
async fn recreate(
    docker: &Docker,
    project: &str,
    n: usize,
    image: &str,
    parallel: usize,
    order: Order,
) -> Result<()> {
    let replace = |k: usize| async move {
        let name = name_of(project, k);
        match order {
            Order::Plain => {
                stop_remove(docker, &name).await?;
                create_start(docker, project, image, k).await?;
            }
            Order::Ahead => {
                let next = format!("{name}-next");
                let (gone, made) = futures_util::join!(
                    stop_remove(docker, &name),
                    create(docker, project, image, k, &next)
                );
                gone.and(made)?;
                rename(docker, &next, &name).await?;
                start(docker, &name).await?;
            }
            Order::Renamed => {
                let old = format!("{name}-old");
                rename(docker, &name, &old).await?;
                let ((), made) = futures_util::join!(
                    stop(docker, &old),
                    create(docker, project, image, k, &name)
                );
                made?;
                start(docker, &name).await?;
                return Ok(Some(old));
            }
        }
        Ok::<_, String>(None)
    };
    let olds: Vec<Option<String>> = stream::iter(1..=n)
        .map(replace)
        .buffer_unordered(parallel)
        .try_collect()
        .await?;
    stream::iter(olds.into_iter().flatten())
        .map(|old| async move { remove(docker, &old).await })
        .buffer_unordered(parallel)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn down(docker: &Docker, project: &str, parallel: usize) -> Result<()> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL}={project}")])]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| format!("listing the containers of {project}: {e}"))?;
    let ids: Vec<String> = list.into_iter().filter_map(|c| c.id).collect();
    stream::iter(ids)
        .map(|id| async move { stop_remove(docker, &id).await })
        .buffer_unordered(parallel)
        .try_collect::<Vec<()>>()
        .await?;
    match docker.remove_network(&network(project)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(format!("removing network {}: {e}", network(project))),
    }
}

async fn run(args: &[String]) -> Result<()> {
    let parse = |s: &str, what: &str| -> Result<usize> {
        s.parse()
            .map_err(|_| format!("{what} must be a number, not {s:?}"))
    };
    let docker = Docker::connect_with_defaults()
        .map_err(|e| format!("connecting to the Docker engine: {e}"))?
        .negotiate_version()
        .await
        .map_err(|e| format!("connecting to the Docker engine: {e}"))?;
    match args {
        [cmd, project, n, rest @ ..] if cmd == "up" && rest.len() <= 2 => {
            let image = rest.first().map_or(DEFAULT_IMAGE, String::as_str);
            let parallel = match rest.get(1) {
                Some(p) => parse(p, "PARALLEL")?,
                None => DEFAULT_PARALLEL,
            };
            up(&docker, project, parse(n, "N")?, image, parallel.max(1)).await
        }
        [cmd, project, n, rest @ ..] if cmd.starts_with("recreate") && rest.len() <= 2 => {
            let order = match cmd.as_str() {
                "recreate" => Order::Plain,
                "recreate-ahead" => Order::Ahead,
                "recreate-renamed" => Order::Renamed,
                _ => return Err(usage()),
            };
            let image = rest.first().map_or(DEFAULT_IMAGE, String::as_str);
            let parallel = match rest.get(1) {
                Some(p) => parse(p, "PARALLEL")?,
                None => DEFAULT_PARALLEL,
            };
            let n = parse(n, "N")?;
            recreate(&docker, project, n, image, parallel.max(1), order).await
        }
        [cmd, project, rest @ ..] if cmd == "down" && rest.len() <= 1 => {
            let parallel = match rest.first() {
                Some(p) => parse(p, "PARALLEL")?,
                None => DEFAULT_PARALLEL,
            };
            down(&docker, project, parallel.max(1)).await
        }
        _ => Err(usage()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The runtime muster's CLI uses.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("engine_limit: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine_limit: {e}");
            ExitCode::FAILURE
        }
    }
}
