//! The one recorder of the engine's events: it follows the engine's event
//! stream live, from the engine's "now" when it starts, and keeps the
//! events of one project (its containers, networks and volumes, by label
//! or by name) and of the images its file names. Healthcheck executions
//! (`exec_*`) are the engine's own doing and are left out.
//!
//! A recording can be read while it runs ([`Recorder::events`],
//! [`Recorder::of`]), e.g. while a daemon works, or be finished
//! ([`Recorder::finish`]): a sentinel volume is created then, and its event
//! marks the end of the window, so every event caused before has arrived.
//! Being live, it is not bounded by the engine's backlog of its last 256
//! events, which a busy engine (other tests' healthchecks) fills quickly.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::models::{EventMessage, VolumeCreateRequest};
use bollard::query_parameters::{EventsOptionsBuilder, RemoveVolumeOptionsBuilder};
use futures_util::StreamExt;

use super::engine::{block_on, docker, rfc3339_nanos, runtime};
use super::project::{PROJECT_LABEL, Project};

/// One event of a project, as the engine reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Nanoseconds since the epoch, on the engine's clock.
    pub time_nano: i64,
    /// `container`, `network`, `volume` or `image`.
    pub kind: String,
    /// `create`, `start`, `die`, `health_status: healthy`, `pull`, …
    pub action: String,
    /// The object's name; for an image, the reference the file names.
    pub name: String,
}

impl std::fmt::Display for Event {
    /// `"<kind> <action> <name>"`, e.g. `"container create mt-x-1-0-web-1"`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.kind, self.action, self.name)
    }
}

/// A live recording of one project's events; stops when dropped.
pub struct Recorder {
    project: String,
    events: Arc<Mutex<Vec<Event>>>,
    /// Why the event stream ended, if it did.
    failure: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Starts recording `project`'s events, from the engine's current time
    /// on (events between that time and the subscription are replayed by
    /// the engine, so none is lost). The images are those of the file the
    /// project last wrote.
    pub fn start(project: &Project) -> Recorder {
        let docker = docker();
        let now = block_on(docker.info())
            .ok()
            .and_then(|i| i.system_time)
            .unwrap_or_else(|| panic!("the engine did not report its time"));
        // The events API takes `seconds.nanoseconds`, not RFC 3339.
        let now = rfc3339_nanos(&now);
        let since = format!("{}.{:09}", now / 1_000_000_000, now % 1_000_000_000);
        let options = EventsOptionsBuilder::default().since(&since).build();
        let mut stream = docker.events(Some(options));
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let failure: Arc<Mutex<Option<String>>> = Arc::default();
        let (sink, failed) = (events.clone(), failure.clone());
        let owner = project.name().to_string();
        let images = project.images();
        let task = runtime().spawn(async move {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(m) => {
                        if let Some(e) = ours(&owner, &images, m) {
                            sink.lock().unwrap().push(e);
                        }
                    }
                    Err(e) => {
                        *failed.lock().unwrap() = Some(e.to_string());
                        return;
                    }
                }
            }
            *failed.lock().unwrap() = Some("the engine ended the event stream".into());
        });
        Recorder {
            project: project.name().to_string(),
            events,
            failure,
            task,
        }
    }

    /// The events recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// The events recorded so far of container `name` with this action.
    pub fn of(&self, name: &str, action: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.kind == "container" && e.name == name && e.action == action)
            .collect()
    }

    /// Ends the recording once every event caused so far has arrived; the
    /// events, in the engine's order.
    pub fn finish(self) -> Vec<Event> {
        static SENTINEL: AtomicUsize = AtomicUsize::new(0);
        let sentinel = format!(
            "{}_events-sentinel-{}",
            self.project,
            SENTINEL.fetch_add(1, Ordering::Relaxed)
        );
        let docker = docker();
        block_on(docker.create_volume(VolumeCreateRequest {
            name: Some(sentinel.clone()),
            ..Default::default()
        }))
        .unwrap_or_else(|e| panic!("cannot create the sentinel volume {sentinel}: {e}"));
        let is_sentinel =
            |e: &Event| e.kind == "volume" && e.action == "create" && e.name == sentinel;
        let deadline = Instant::now() + Duration::from_secs(60);
        let events = loop {
            let events = self.events();
            if let Some(at) = events.iter().position(is_sentinel) {
                break events[..at].to_vec();
            }
            if let Some(failure) = self.failure.lock().unwrap().clone() {
                panic!("the engine's event stream failed: {failure}");
            }
            assert!(
                Instant::now() < deadline,
                "the sentinel event did not arrive within 60s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let force = RemoveVolumeOptionsBuilder::default().force(true).build();
        if let Err(e) = block_on(docker.remove_volume(&sentinel, Some(force))) {
            eprintln!("cannot remove the sentinel volume {sentinel}: {e}");
        }
        events
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The event as a project's [`Event`], if it is one of `project`'s.
fn ours(project: &str, images: &BTreeSet<String>, m: EventMessage) -> Option<Event> {
    let kind = m.typ.map(|t| t.to_string()).unwrap_or_default();
    let action = m.action.unwrap_or_default();
    if action.starts_with("exec_") {
        return None;
    }
    let actor = m.actor.unwrap_or_default();
    let attributes = actor.attributes.unwrap_or_default();
    let id = actor.id.unwrap_or_default();
    let label = attributes.get(PROJECT_LABEL);
    let name = match kind.as_str() {
        "container" | "network" | "service" | "config" => {
            let name = attributes.get("name").cloned().unwrap_or_default();
            Project::owns_name(project, &name, label).then_some(name)
        }
        "volume" => Project::owns_name(project, &id, label).then_some(id),
        // A pull's actor is the reference; a tag's is the image id, with
        // the new reference as its name.
        "image" => [Some(id), attributes.get("name").cloned()]
            .into_iter()
            .flatten()
            .find(|n| images.contains(n)),
        _ => None,
    }?;
    Some(Event {
        time_nano: m.time_nano.unwrap_or_default(),
        kind,
        action,
        name,
    })
}

/// `project`'s events while `f` ran, as `"<kind> <action> <name>"` in the
/// engine's order, without the containers' health changes.
pub fn record_events<F: FnOnce()>(project: &Project, f: F) -> Vec<String> {
    record(project, f)
        .into_iter()
        .filter(|e| !e.action.starts_with("health_status"))
        .map(|e| e.to_string())
        .collect()
}

/// Like [`record_events`], keeping the containers' health changes
/// (`"container health_status: healthy <name>"`).
pub fn record_events_with_health<F: FnOnce()>(project: &Project, f: F) -> Vec<String> {
    record(project, f).iter().map(Event::to_string).collect()
}

fn record<F: FnOnce()>(project: &Project, f: F) -> Vec<Event> {
    let recorder = Recorder::start(project);
    f();
    recorder.finish()
}
