//! An in-memory engine for fast tests of the planner and the executor: it
//! keeps containers, networks, volumes and the lock in a map, records every
//! call, and can be told to fail. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;

use super::{
    Actual, Applied, Backend, ContainerSpec, Endpoint, EngineError, ErrorKind, Event, Health,
    LABEL_PROJECT, LockHolder, Result, State, Status, Unit, UnitRequest, container_spec,
};

#[derive(Debug, Clone)]
pub struct MemContainer {
    pub spec: ContainerSpec,
    pub id: String,
    pub image_id: String,
    pub state: State,
}

#[derive(Debug, Default)]
pub struct MemState {
    pub containers: BTreeMap<String, MemContainer>,
    /// Image reference → id.
    pub images: BTreeMap<String, String>,
    /// What `pull` can fetch: image reference → id.
    pub registry: BTreeMap<String, String>,
    pub networks: BTreeSet<String>,
    pub volumes: BTreeMap<String, String>,
    pub lock: Option<LockHolder>,
    /// Each project's record (not in `calls`: it is not a unit's change).
    pub records: BTreeMap<String, Applied>,
    /// Every mutating call, in order, e.g. `create shop-web-1`.
    pub calls: Vec<String>,
    /// Containers whose start fails.
    pub failing: BTreeSet<String>,
    /// Containers whose command fails at once, and whose exit the engine
    /// is still handling: they start and their `start` is told, an inspect
    /// (`status`) shows them exited with code 3, while the list call and
    /// the events still show them running (Docker 20.10 handles an exit
    /// holding the container, and an inspect waits for it).
    pub exiting: BTreeSet<String>,
    /// Lock calls made, and a fault they answer with: an error of this
    /// kind, or this holder whatever was removed (engines that misbehave).
    pub lock_calls: usize,
    pub lock_fault: Option<ErrorKind>,
    pub lock_fault_holder: Option<LockHolder>,
    /// Removals of a network that fail as Docker 20.10's do when it has lost
    /// count of the network's endpoints, before one succeeds.
    pub network_kept: u32,
    /// Whether `changes` tells the starts, deaths and removals of
    /// containers (off: the backend has no such events, and readiness
    /// polls, as for most tests).
    pub evented: bool,
    /// Each `changes` stream ends after telling this many events: lost,
    /// and every replay lost at the same place.
    pub changes_cut: Option<usize>,
    /// List calls (`units`) made.
    pub lists: usize,
    /// The most stops and removals seen in flight at once: each yields to
    /// the scheduler once before it happens, as an engine call would, so
    /// that calls made side by side overlap.
    pub most_stopping: usize,
    /// Stops and removals in flight now.
    stopping: usize,
    /// What `changes` replays: every event told so far, in order.
    told: Vec<(std::time::SystemTime, Event)>,
    next_id: u64,
}

/// The in-memory engine.
#[derive(Debug)]
pub struct MemoryEngine {
    pub state: Mutex<MemState>,
    /// What [`MemoryEngine::drift`] tells the subscribers of `events`.
    events: tokio::sync::broadcast::Sender<Event>,
    /// What the subscribers of `changes` hear (when [`MemState::evented`]).
    changes: tokio::sync::broadcast::Sender<Event>,
}

impl Default for MemoryEngine {
    fn default() -> Self {
        MemoryEngine {
            state: Mutex::default(),
            events: tokio::sync::broadcast::channel(1024).0,
            changes: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

impl MemoryEngine {
    /// An engine that has the given images (reference, id).
    pub fn with_images(images: &[(&str, &str)]) -> Self {
        let engine = MemoryEngine::default();
        engine.with(|s| {
            for (r, id) in images {
                s.images.insert((*r).to_string(), (*id).to_string());
            }
        });
        engine
    }

    /// A stop or removal begins: counted in flight while it yields once.
    async fn stopping(&self) {
        self.with(|s| {
            s.stopping += 1;
            s.most_stopping = s.most_stopping.max(s.stopping);
        });
        tokio::task::yield_now().await;
        self.with(|s| s.stopping -= 1);
    }

    /// Runs `f` on the state (to set it up or inspect it).
    pub fn with<T>(&self, f: impl FnOnce(&mut MemState) -> T) -> T {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// The calls made so far, and forgets them.
    pub fn take_calls(&self) -> Vec<String> {
        self.with(|s| std::mem::take(&mut s.calls))
    }

    /// What `observe` returns, without a runtime.
    pub fn snapshot(&self, project: &str, images: &[String]) -> Actual {
        self.with(|s| {
            let units = s
                .containers
                .iter()
                .filter(|(_, c)| {
                    c.spec.labels.get(LABEL_PROJECT).map(String::as_str) == Some(project)
                })
                .map(|(name, c)| {
                    let (service, ordinal, config_hash, config) =
                        super::read_labels(|k| c.spec.labels.get(k));
                    Unit {
                        id: c.id.clone(),
                        name: name.clone(),
                        service,
                        ordinal,
                        config_hash,
                        config,
                        image_id: c.image_id.clone(),
                        state: c.state,
                        health: c.spec.healthcheck.as_ref().map(|_| Health::Healthy),
                        status: c.state.as_str().into(),
                        ports: Vec::new(),
                        replicas: None,
                        tasks: Vec::new(),
                    }
                })
                .collect();
            let image_ids = images
                .iter()
                .filter_map(|i| s.images.get(i).map(|id| (i.clone(), id.clone())))
                .collect();
            let applied = s.records.get(project).cloned().unwrap_or_default();
            Actual {
                units,
                image_ids,
                applied,
            }
        })
    }

    /// Adds a container made from `spec` directly (an actual state for tests).
    pub fn insert(&self, spec: ContainerSpec, state: State) {
        self.with(|s| {
            s.next_id += 1;
            let image_id = s.images.get(&spec.image).cloned().unwrap_or_default();
            let id = format!("mem{}", s.next_id);
            s.containers.insert(
                spec.name.clone(),
                MemContainer {
                    spec,
                    id,
                    image_id,
                    state,
                },
            );
        });
    }
}

impl MemoryEngine {
    /// Creates a container from `spec` (stopped), as the engine would.
    ///
    /// # Errors
    /// A conflict when the name is taken.
    pub fn create_container(&self, spec: &ContainerSpec) -> Result<()> {
        if self.with(|s| s.containers.contains_key(&spec.name)) {
            return Err(EngineError::new(
                format!("creating {}", spec.name),
                ErrorKind::Conflict,
                format!("the name {} is taken", spec.name),
            ));
        }
        self.insert(spec.clone(), State::Created);
        self.with(|s| s.calls.push(format!("create {}", spec.name)));
        Ok(())
    }

    /// Something outside muster happened to container `name`: `remove` it,
    /// or `stop` it (it exits with `exit_code`). Subscribers of `events`
    /// hear of it as from a real engine.
    pub fn drift(&self, name: &str, action: &str, exit_code: i64) {
        let event = self.with(|s| {
            let event = self.tell(s, name, action, exit_code)?;
            match action {
                "destroy" => {
                    s.containers.remove(name);
                }
                _ => {
                    if let Some(c) = s.containers.get_mut(name) {
                        c.state = State::Exited;
                    }
                }
            }
            Some(event)
        });
        if let Some(event) = event {
            let _ = self.events.send(event);
        }
    }

    /// The event `action` of container `name` (`exit_code` for a `die`),
    /// told to the subscribers of `changes` (and its replays) when the
    /// engine is evented; `None` when there is no such container. Called
    /// with the state held, so that a stream opening sees each event once:
    /// in its replay or live.
    fn tell(&self, s: &mut MemState, name: &str, action: &str, exit_code: i64) -> Option<Event> {
        let event = Event {
            id: s.containers.get(name)?.id.clone(),
            container: name.to_string(),
            action: action.to_string(),
            exit_code: (action == "die").then_some(exit_code),
        };
        if s.evented {
            s.told.push((std::time::SystemTime::now(), event.clone()));
            let _ = self.changes.send(event.clone());
        }
        Some(event)
    }
}

fn not_found(doing: String) -> EngineError {
    EngineError::new(doing, ErrorKind::NotFound, "no such object")
}

#[async_trait::async_trait]
impl Backend for MemoryEngine {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            address: "memory://".into(),
            kind: None,
        }
    }

    async fn observe(&self, project: &str, images: &[String]) -> Result<Actual> {
        Ok(self.snapshot(project, images))
    }

    async fn units(&self, project: &str) -> Result<Vec<Unit>> {
        self.with(|s| s.lists += 1);
        Ok(self.snapshot(project, &[]).units)
    }

    async fn pull(&self, image: &str) -> Result<()> {
        self.with(|s| match s.registry.get(image).cloned() {
            Some(id) => {
                s.images.insert(image.to_string(), id);
                s.calls.push(format!("pull {image}"));
                Ok(())
            }
            None => Err(EngineError::new(
                format!("pulling image {image}"),
                ErrorKind::NotFound,
                format!("manifest for {image} not found"),
            )),
        })
    }

    async fn ensure_network(&self, project: &str) -> Result<()> {
        self.with(|s| {
            if s.networks.insert(super::network_name(project)) {
                s.calls.push(format!("network {project}"));
            }
        });
        Ok(())
    }

    async fn ensure_volume(&self, project: &str, name: &str) -> Result<()> {
        self.with(|s| match s.volumes.get(name) {
            Some(owner) if owner != project => Err(EngineError::new(
                format!("creating volume {name}"),
                ErrorKind::Conflict,
                format!("volume {name} belongs to project {owner}"),
            )),
            Some(_) => Ok(()),
            None => {
                s.volumes.insert(name.to_string(), project.to_string());
                s.calls.push(format!("volume {name}"));
                Ok(())
            }
        })
    }

    async fn volume_owner(&self, name: &str) -> Result<Option<Option<String>>> {
        Ok(self.with(|s| {
            s.volumes
                .get(name)
                .map(|owner| Some(owner.clone()).filter(|o| !o.is_empty()))
        }))
    }

    async fn create(&self, unit: &UnitRequest<'_>) -> Result<()> {
        let spec = container_spec(
            unit.project,
            unit.service,
            unit.ordinal.unwrap_or(1),
            unit.name,
        );
        self.create_container(&spec)
    }

    async fn unit_owner(&self, name: &str) -> Result<Option<Option<String>>> {
        Ok(self.with(|s| {
            s.containers
                .get(name)
                .map(|c| c.spec.labels.get(LABEL_PROJECT).cloned())
        }))
    }

    async fn update(&self, unit: &UnitRequest<'_>, _force: bool) -> Result<()> {
        Err(EngineError::new(
            format!("updating {}", unit.name),
            ErrorKind::Other,
            "a container is recreated, never updated in place",
        ))
    }

    async fn stop(&self, name: &str, _grace: Duration) -> Result<()> {
        self.stopping().await;
        self.with(|s| {
            s.calls.push(format!("stop {name}"));
            let c = s
                .containers
                .get_mut(name)
                .ok_or_else(|| not_found(format!("stopping {name}")))?;
            c.state = State::Exited;
            self.tell(s, name, "die", 1);
            Ok(())
        })
    }

    async fn start(&self, name: &str) -> Result<()> {
        self.with(|s| {
            let failing = s.failing.contains(name);
            let c = s
                .containers
                .get_mut(name)
                .ok_or_else(|| not_found(format!("starting {name}")))?;
            s.calls.push(format!("start {name}"));
            if failing {
                c.state = State::Exited;
                self.tell(s, name, "die", 1);
                return Err(EngineError::new(
                    format!("starting {name}"),
                    ErrorKind::Other,
                    "exit 1",
                ));
            }
            c.state = State::Running;
            self.tell(s, name, "start", 0);
            Ok(())
        })
    }

    async fn remove(&self, name: &str, _grace: Duration) -> Result<()> {
        self.stopping().await;
        self.with(|s| {
            if s.containers
                .get(name)
                .is_some_and(|c| c.state == State::Running)
            {
                self.tell(s, name, "die", 1);
            }
            self.tell(s, name, "destroy", 0);
            if s.containers.remove(name).is_some() {
                s.calls.push(format!("remove {name}"));
            }
        });
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.with(|s| {
            if s.containers.contains_key(to) {
                return Err(EngineError::new(
                    format!("renaming {from}"),
                    ErrorKind::Conflict,
                    "name taken",
                ));
            }
            let mut c = s
                .containers
                .remove(from)
                .ok_or_else(|| not_found(format!("renaming {from}")))?;
            c.spec.name = to.to_string();
            s.containers.insert(to.to_string(), c);
            s.calls.push(format!("rename {from} {to}"));
            Ok(())
        })
    }

    async fn status(&self, name: &str) -> Result<Status> {
        self.with(|s| {
            let c = s
                .containers
                .get(name)
                .ok_or_else(|| not_found(format!("inspecting {name}")))?;
            let health = c.spec.healthcheck.as_ref().map(|_| Health::Healthy);
            if c.state == State::Running && s.exiting.contains(name) {
                return Ok(Status {
                    state: State::Exited,
                    health,
                    exit_code: 3,
                    detail: String::new(),
                });
            }
            let exit_code = if c.state == State::Exited { 1 } else { 0 };
            Ok(Status {
                state: c.state,
                health,
                exit_code,
                detail: String::new(),
            })
        })
    }

    async fn logs(&self, _name: &str, _lines: usize) -> Result<String> {
        Ok(String::new())
    }

    async fn try_lock(&self, _project: &str, me: &LockHolder) -> Result<Option<LockHolder>> {
        self.with(|s| {
            s.lock_calls += 1;
            if let Some(kind) = s.lock_fault {
                return Err(EngineError::new("taking the lock", kind, "injected fault"));
            }
            Ok(match s.lock_fault_holder.as_ref().or(s.lock.as_ref()) {
                Some(h) => Some(h.clone()),
                None => {
                    s.lock = Some(me.clone());
                    None
                }
            })
        })
    }

    async fn unlock(&self, _project: &str) -> Result<()> {
        self.with(|s| s.lock = None);
        Ok(())
    }

    async fn record(&self, project: &str, applied: &Applied) -> Result<()> {
        self.with(|s| {
            if applied.is_empty() {
                s.records.remove(project);
            } else {
                s.records.insert(project.to_string(), applied.clone());
            }
        });
        Ok(())
    }

    async fn volumes(&self, project: &str) -> Result<Vec<String>> {
        Ok(self.with(|s| {
            s.volumes
                .iter()
                .filter(|(_, p)| *p == project)
                .map(|(n, _)| n.clone())
                .collect()
        }))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.with(|s| {
            s.volumes.remove(name);
            s.calls.push(format!("remove volume {name}"));
        });
        Ok(())
    }

    /// Its units print nothing.
    fn log_stream(
        &self,
        _name: &str,
        _request: super::LogRequest,
    ) -> futures_util::stream::BoxStream<'static, Result<super::LogLine>> {
        futures_util::stream::empty().boxed()
    }

    fn starts(&self, _project: &str) -> futures_util::stream::BoxStream<'static, Result<String>> {
        futures_util::stream::pending().boxed()
    }

    fn events(&self, project: &str) -> futures_util::stream::BoxStream<'static, Result<Event>> {
        of_project(tokio_stream_of(self.events.subscribe()), project)
    }

    /// When evented: the events told since `since`, then those told from
    /// now on; cut after [`MemState::changes_cut`] events.
    fn changes(
        &self,
        project: &str,
        since: std::time::SystemTime,
    ) -> Option<futures_util::stream::BoxStream<'static, Result<Event>>> {
        let (replay, live, cut) = self.with(|s| {
            if !s.evented {
                return None;
            }
            let replay: Vec<Result<Event>> = s
                .told
                .iter()
                .filter(|(at, _)| *at >= since)
                .map(|(_, e)| Ok(e.clone()))
                .collect();
            Some((replay, self.changes.subscribe(), s.changes_cut))
        })?;
        let stream = futures_util::stream::iter(replay).chain(tokio_stream_of(live));
        Some(
            of_project(stream.boxed(), project)
                .take(cut.unwrap_or(usize::MAX))
                .boxed(),
        )
    }

    async fn remove_network(&self, project: &str) -> Result<()> {
        self.with(|s| {
            let name = super::network_name(project);
            if s.network_kept > 0 && s.networks.contains(&name) {
                s.network_kept -= 1;
                return Err(EngineError::new(
                    format!("removing network {name}"),
                    ErrorKind::Other,
                    format!("error while removing network: network {name} id 13afb5e1 has active endpoints"),
                ));
            }
            s.networks.remove(&name);
            Ok(())
        })
    }
}

/// The events of `stream` that are of `project`'s containers (and its errors).
fn of_project(
    stream: futures_util::stream::BoxStream<'static, Result<Event>>,
    project: &str,
) -> futures_util::stream::BoxStream<'static, Result<Event>> {
    let prefix = format!("{project}-");
    stream
        .filter(move |e| {
            let ours = e
                .as_ref()
                .map_or(true, |e| e.container.starts_with(&prefix));
            async move { ours }
        })
        .boxed()
}

/// A broadcast receiver as a stream of events (lagging is not an error here).
fn tokio_stream_of(
    rx: tokio::sync::broadcast::Receiver<Event>,
) -> futures_util::stream::BoxStream<'static, Result<Event>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) => return Some((Ok(e), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}
