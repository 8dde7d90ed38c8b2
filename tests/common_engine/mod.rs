//! Helpers shared by the real-engine tests of plan/apply (`*_engine.rs`),
//! on top of `tests/support`: running muster and reading its outcome,
//! inspecting and exec-ing into containers, foreign containers, engine
//! timestamps, and a live recorder of the engine's events.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EventMessage, HostConfig, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use futures_util::StreamExt;

use crate::support::{self, Project, block_on, docker};

/// What one run of muster did.
#[derive(Debug)]
pub struct Outcome {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl From<std::process::Output> for Outcome {
    fn from(o: std::process::Output) -> Self {
        Outcome {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `project`'s muster (`-f services.toml`) with `args`.
pub fn muster(project: &Project, args: &[&str]) -> Outcome {
    project
        .muster()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run muster {args:?}: {e}"))
        .into()
}

/// Like [`muster`], and the run must exit with `code`.
pub fn muster_exits(project: &Project, args: &[&str], code: i32) -> Outcome {
    let out = muster(project, args);
    assert_eq!(
        out.code,
        Some(code),
        "muster {args:?} in project {} should exit {code}:\n{out}",
        project.name()
    );
    out
}

/// Like [`muster`], and the run must succeed.
pub fn muster_ok(project: &Project, args: &[&str]) -> Outcome {
    muster_exits(project, args, 0)
}

/// `muster` as a plain process in `dir`, configured as `Project::muster`
/// is but without `-f`, for runs in the background or with another file.
pub fn muster_process(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("muster"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("MUSTER_PROJECT")
        .env_remove("MUSTER_FILE")
        .env_remove("CLICOLOR_FORCE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// The service `name` as muster reads it from the project's current file.
pub fn service_of(project: &Project, name: &str) -> muster::config::Service {
    let text = std::fs::read_to_string(project.file()).unwrap();
    let desired = muster::config::parse_str("services.toml", &text, project.dir())
        .unwrap_or_else(|e| panic!("the test's file is invalid:\n{}", e.render_plain()));
    desired.services[name].clone()
}

/// The config hash muster puts on the containers of service `name`.
pub fn config_hash(project: &Project, name: &str) -> String {
    muster::config::hash_shape(&service_of(project, name).shape())
}

/// `<project>-<service>-<ordinal>` for each ordinal.
pub fn names(
    project: &Project,
    service: &str,
    ordinals: impl IntoIterator<Item = u32>,
) -> Vec<String> {
    ordinals
        .into_iter()
        .map(|o| format!("{}-{service}-{o}", project.name()))
        .collect()
}

/// Container name → id, for the project's containers.
pub fn ids(project: &Project) -> BTreeMap<String, String> {
    project
        .containers()
        .into_iter()
        .map(|c| (c.name, c.id))
        .collect()
}

pub fn inspect(name: &str) -> ContainerInspectResponse {
    block_on(docker().inspect_container(name, None))
        .unwrap_or_else(|e| panic!("cannot inspect container {name}: {e}"))
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
    let docker = docker();
    block_on(async {
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
    })
}

/// Creates and starts a container that muster did not create: the test
/// image sleeping, with an init process, the given labels, and the project
/// network of no one. Its id.
pub fn run_foreign(name: &str, labels: &[(&str, &str)]) -> String {
    let docker = docker();
    let body = ContainerCreateBody {
        image: Some(support::image().to_string()),
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

/// Whether an engine object with this name and project label belongs to
/// `project` (same rule as `support`).
fn owned(project: &str, name: &str, label: Option<&String>) -> bool {
    let name = name.trim_start_matches('/');
    label.is_some_and(|l| l == project)
        || name == project
        || name
            .strip_prefix(project)
            .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('_'))
}

/// The engine's events about `project`'s containers, networks and volumes,
/// and about the images its file names, while `f` ran, as `"<type> <action> <name>"` in the engine's order,
/// leaving out healthcheck executions.
///
/// Unlike `Project::events_during`, which queries the engine's buffer of
/// its last 256 events afterwards, this follows the event stream while `f`
/// runs, so a busy engine (other tests' healthchecks) cannot push the
/// project's events out. The end of the window is marked by a sentinel
/// volume, created after `f` and removed again, so every event caused by
/// `f` has arrived when this returns.
pub fn record_events<F: FnOnce()>(project: &Project, f: F) -> Vec<String> {
    record(project, false, f)
}

/// Like [`record_events`], keeping the containers' health changes
/// (`"container health_status: healthy <name>"`).
pub fn record_events_with_health<F: FnOnce()>(project: &Project, f: F) -> Vec<String> {
    record(project, true, f)
}

fn record<F: FnOnce()>(project: &Project, health: bool, f: F) -> Vec<String> {
    static SENTINEL: AtomicUsize = AtomicUsize::new(0);
    let docker = docker();
    let now = block_on(docker.info())
        .ok()
        .and_then(|i| i.system_time)
        .expect("the engine did not report its time");
    // The events API takes `seconds.nanoseconds`, not RFC 3339.
    let now = rfc3339_nanos(&now);
    let since = format!("{}.{:09}", now / 1_000_000_000, now % 1_000_000_000);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<EventMessage, String>>();
    let options = EventsOptionsBuilder::default().since(&since).build();
    let mut stream = docker.events(Some(options));
    let follower = support::runtime().spawn(async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item.map_err(|e| e.to_string())).is_err() || failed {
                return;
            }
        }
    });

    f();

    let sentinel = format!(
        "{}_events-sentinel-{}",
        project.name(),
        SENTINEL.fetch_add(1, Ordering::Relaxed)
    );
    block_on(docker.create_volume(VolumeCreateRequest {
        name: Some(sentinel.clone()),
        ..Default::default()
    }))
    .unwrap_or_else(|e| panic!("cannot create the sentinel volume {sentinel}: {e}"));
    let events = block_on(async {
        let mut seen = Vec::new();
        let wait = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(m) = rx.recv().await {
                let m = m.unwrap_or_else(|e| panic!("the engine's event stream failed: {e}"));
                let is_sentinel = m.action.as_deref() == Some("create")
                    && m.actor.as_ref().and_then(|a| a.id.as_deref()) == Some(sentinel.as_str());
                if is_sentinel {
                    return;
                }
                seen.push(m);
            }
            panic!("the engine's event stream ended early");
        });
        if wait.await.is_err() {
            panic!("the sentinel event did not arrive within 60s");
        }
        seen
    });
    follower.abort();
    let force = RemoveVolumeOptionsBuilder::default().force(true).build();
    if let Err(e) = block_on(docker.remove_volume(&sentinel, Some(force))) {
        eprintln!("cannot remove the sentinel volume {sentinel}: {e}");
    }

    let images = project.images();
    events
        .into_iter()
        .filter_map(|e| {
            let kind = e.typ.map(|t| t.to_string()).unwrap_or_default();
            let action = e.action.unwrap_or_default();
            if action.starts_with("exec_") || (action.starts_with("health_status") && !health) {
                return None;
            }
            let actor = e.actor.unwrap_or_default();
            let attributes = actor.attributes.unwrap_or_default();
            let id = actor.id.unwrap_or_default();
            let label = attributes.get(support::PROJECT_LABEL);
            let ours = match kind.as_str() {
                "container" | "network" => {
                    let name = attributes.get("name").cloned().unwrap_or_default();
                    owned(project.name(), &name, label).then_some(name)
                }
                "volume" => owned(project.name(), &id, label).then_some(id),
                // Pulls and removals of the images the project's file names.
                // (A pull's actor is the reference; a tag's is the image id,
                // with the new reference as its name.)
                "image" => [Some(id), attributes.get("name").cloned()]
                    .into_iter()
                    .flatten()
                    .find(|n| images.contains(n)),
                _ => None,
            };
            ours.map(|name| format!("{kind} {action} {name}"))
        })
        .collect()
}
