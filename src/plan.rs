//! The plan stage: `plan(&Desired, &Actual, prune) -> Plan`, the diff between
//! the file and the engine, in terms of the units the file's backend
//! manages ([`Layout`]). Pure: no I/O, deterministic output.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::config::{Backend, Desired, Mode, Service};
use crate::engine::{Actual, State, Unit};

/// What to do to one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Recreate,
    Start,
    Remove,
    /// Change the replica count of a unit that runs several.
    Scale,
    /// Replace the spec of a unit that runs several, in place.
    Update,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Recreate => "recreate",
            Action::Start => "start",
            Action::Remove => "remove",
            Action::Scale => "scale",
            Action::Update => "update",
        }
    }
}

/// Why a unit is in the plan. Rendered in one place ([`std::fmt::Display`]);
/// the text is what `--output json` calls `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The service's count changes.
    Scale {
        from: u32,
        to: u32,
    },
    /// An ordinal below the highest one is missing (removed outside muster).
    Missing,
    /// An ordinal above the count, while the count itself does not change.
    AboveCount(u32),
    ConfigChanged,
    /// The image tag now points at another image id (short form).
    ImageMoved {
        image: String,
        id: String,
    },
    /// Exists with the same config, and is not running.
    NotRunning(State),
    Dead,
    /// A temporary unit of an interrupted start-first update, or a duplicate.
    Leftover,
    NoOrdinal,
    /// Its service is gone from the file (`--prune`).
    ServiceRemoved,
    /// A swarm paused or rolled back its last update, or its tasks fail.
    Stalled,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Scale { from, to } => write!(f, "scale {from} → {to}"),
            Reason::Missing => f.write_str("missing"),
            Reason::AboveCount(n) => write!(f, "ordinal above count {n}"),
            Reason::ConfigChanged => f.write_str("config changed"),
            Reason::ImageMoved { image, id } => write!(f, "image {image} now points at {id}"),
            Reason::NotRunning(state) => write!(f, "{} but should run", state.as_str()),
            Reason::Dead => f.write_str("dead"),
            Reason::Leftover => f.write_str("leftover of an interrupted apply"),
            Reason::NoOrdinal => f.write_str("no valid ordinal label"),
            Reason::ServiceRemoved => f.write_str("service removed from the file"),
            Reason::Stalled => f.write_str("its last update did not converge"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One setting that differs between a unit and the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub path: String,
    /// `None`: the setting is new.
    pub from: Option<String>,
    /// `None`: the setting is gone.
    pub to: Option<String>,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub service: String,
    /// The unit's name (a container's, or a swarm service's).
    #[serde(rename = "container")]
    pub unit: String,
    /// `None` for a unit that holds every replica of its service.
    pub ordinal: Option<u32>,
    pub action: Action,
    pub reason: Reason,
    /// Replicas before and after, for a unit that runs several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldChange>,
}

impl Change {
    fn one(service: &str, unit: String, ordinal: u32, action: Action, reason: Reason) -> Change {
        Change {
            service: service.to_string(),
            unit,
            ordinal: Some(ordinal),
            action,
            reason,
            from: None,
            to: None,
            diff: Vec::new(),
        }
    }

    /// What this step counts for in the summary: one per container, or the
    /// tasks it creates, replaces and removes for a unit with replicas.
    pub fn weight(&self) -> Summary {
        let mut s = Summary::default();
        let (from, to) = (self.from.unwrap_or(1), self.to.unwrap_or(1));
        match self.action {
            Action::Create => s.create = to as usize,
            Action::Recreate => s.recreate = 1,
            Action::Start => s.start = 1,
            Action::Remove => s.remove = from as usize,
            Action::Scale | Action::Update => {
                s.create = to.saturating_sub(from) as usize;
                s.remove = from.saturating_sub(to) as usize;
                if self.action == Action::Update {
                    s.recreate = from.min(to) as usize;
                }
            }
        }
        s
    }
}

/// How a backend lays a service out in units: the docker backend runs one
/// container per ordinal; a swarm runs a parallel service as one unit with
/// replicas and a sequential one as one unit per ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Containers,
    SwarmServices,
}

impl Layout {
    pub fn of(backend: Backend) -> Layout {
        match backend {
            Backend::Docker => Layout::Containers,
            Backend::Swarm => Layout::SwarmServices,
        }
    }

    /// What a unit of `service` is made of, for its config hash and diffs.
    pub fn shape(self, desired: &Desired, service: &Service) -> BTreeMap<String, String> {
        match self {
            Layout::Containers => service.shape(),
            Layout::SwarmServices => service.swarm_shape(&desired.swarm),
        }
    }

    /// Whether `service` is one unit that holds all its replicas.
    pub fn replicated(self, service: &Service) -> bool {
        self == Layout::SwarmServices && service.mode == Mode::Parallel
    }

    /// The name of a unit: `ordinal` `None` for a replicated unit.
    pub fn unit_name(self, project: &str, service: &str, ordinal: Option<u32>) -> String {
        match (self, ordinal) {
            (Layout::Containers, o) => {
                crate::engine::container_name(project, service, o.unwrap_or(1))
            }
            (Layout::SwarmServices, Some(k)) => format!("{project}_{service}-{k}"),
            (Layout::SwarmServices, None) => format!("{project}_{service}"),
        }
    }

    /// Where `muster exec` runs for ordinal `ordinal` of `service`: its
    /// container, or on a swarm the task of its slot, `<unit>.<slot>` as
    /// the swarm names tasks (slot 1 of an ordinal's own unit).
    pub fn exec_target(self, project: &str, service: &Service, ordinal: u32) -> String {
        match self {
            Layout::Containers => crate::engine::container_name(project, &service.name, ordinal),
            Layout::SwarmServices if self.replicated(service) => {
                format!("{}.{ordinal}", self.unit_name(project, &service.name, None))
            }
            Layout::SwarmServices => {
                format!(
                    "{}.1",
                    self.unit_name(project, &service.name, Some(ordinal))
                )
            }
        }
    }

    /// Whether `name` is the unit of ordinal `ordinal` of `service`,
    /// without building the name (this runs once per unit of the project).
    fn is_named(self, name: &str, project: &str, service: &str, ordinal: u32) -> bool {
        let sep = match self {
            Layout::Containers => '-',
            Layout::SwarmServices => '_',
        };
        name.strip_prefix(project)
            .and_then(|r| r.strip_prefix(sep))
            .and_then(|r| r.strip_prefix(service))
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|r| {
                !r.starts_with('0')
                    && r.bytes().all(|b| b.is_ascii_digit())
                    && r.parse() == Ok(ordinal)
            })
    }
}

/// The plan for one service of the file, or one orphan being pruned.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub name: String,
    /// `None` for an orphan (a service gone from the file).
    pub service: Option<Service>,
    /// Units (or replicas) now, and the count the file asks for.
    pub from: u32,
    pub to: u32,
    /// In the order they are applied: removals (highest ordinal first), then
    /// the rest in ascending ordinal order.
    pub changes: Vec<Change>,
    /// Whether the config differs for at least one unit.
    pub config_changed: bool,
    /// Neither a unit on the engine nor the project's record knows the
    /// service: it is new (`+`). A service scaled up from 0 is not.
    pub new: bool,
    /// For an orphan: the mode and stop grace period its units were made
    /// with, from their labels (the file no longer says).
    pub made_with: Option<(Mode, Duration)>,
}

impl ServicePlan {
    pub fn mode(&self) -> Mode {
        match (&self.service, self.made_with) {
            (Some(s), _) => s.mode,
            (None, Some((mode, _))) => mode,
            (None, None) => Mode::Parallel,
        }
    }

    /// How long a stop of its units waits before the kill.
    pub fn stop_grace_period(&self) -> Duration {
        match (&self.service, self.made_with) {
            (Some(s), _) => s.stop_grace_period,
            (None, Some((_, grace))) => grace,
            (None, None) => DEFAULT_STOP_GRACE,
        }
    }
}

/// The engine's own default, for a unit whose labels do not say.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// The mode and stop grace period `units` were made with, from their
/// config labels: sequential when any says so, the longest grace.
fn made_with(units: &[&Unit]) -> (Mode, Duration) {
    let sequential = units
        .iter()
        .any(|u| u.config.get("mode").is_some_and(|m| m == "sequential"));
    let grace = units
        .iter()
        .map(|u| {
            u.config
                .get("stop_grace_period")
                .and_then(|g| crate::config::parse_duration(g).ok())
                .unwrap_or(DEFAULT_STOP_GRACE)
        })
        .max()
        .unwrap_or(DEFAULT_STOP_GRACE);
    let mode = if sequential {
        Mode::Sequential
    } else {
        Mode::Parallel
    };
    (mode, grace)
}

/// A service on the engine that the file no longer declares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orphan {
    pub service: String,
    pub containers: Vec<String>,
    /// Fixed host ports its containers publish that a container this plan
    /// creates asks for (a renamed service): the create would fail.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HeldPort>,
}

/// A host port an orphan holds, and the service of the file that wants it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldPort {
    pub port: u16,
    pub wanted_by: String,
}

/// The whole diff.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub project: String,
    pub layout: Layout,
    /// Services of the file in `depends_on` order, then pruned orphans.
    pub services: Vec<ServicePlan>,
    /// Orphans (also when pruned).
    pub orphans: Vec<Orphan>,
    pub pruned: bool,
    /// Images the engine does not have; apply pulls them first.
    pub missing_images: Vec<String>,
    /// Units of the project on the engine when the plan was made, orphans
    /// included (the containers on its network, for the docker backend).
    pub units_now: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub recreate: usize,
    pub start: usize,
    pub remove: usize,
}

impl Summary {
    pub fn total(&self) -> usize {
        self.create + self.recreate + self.start + self.remove
    }

    fn add(&mut self, o: Summary) {
        self.create += o.create;
        self.recreate += o.recreate;
        self.start += o.start;
        self.remove += o.remove;
    }
}

impl Plan {
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.services.iter().flat_map(|s| s.changes.iter())
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in self.changes() {
            s.add(c.weight());
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.services.iter().all(|s| s.changes.is_empty())
    }
}

/// Services in `depends_on` order: every service after all it depends on;
/// otherwise by name.
pub fn service_order(desired: &Desired) -> Vec<&Service> {
    // Only asked, never iterated: a hash set keeps this linear in services.
    let mut done: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    while out.len() < desired.services.len() {
        let before = out.len();
        for (name, s) in &desired.services {
            if !done.contains(name.as_str())
                && s.depends_on
                    .iter()
                    .all(|d| done.contains(d.as_str()) || !desired.services.contains_key(d))
            {
                done.insert(name);
                out.push(s);
            }
        }
        if out.len() == before {
            // A cycle; validation rejects it, so only reachable with hand-made input.
            out.extend(
                desired
                    .services
                    .values()
                    .filter(|s| !done.contains(s.name.as_str())),
            );
            break;
        }
    }
    out
}

/// Computes what to change so that the engine matches the file.
pub fn plan(desired: &Desired, actual: &Actual, prune: bool) -> Plan {
    let layout = Layout::of(desired.backend);
    // Grouped by hash: a BTreeMap lookup per unit costs dozens of string
    // comparisons with thousands of services. The orphans left over are
    // sorted by name below, so the plan stays deterministic.
    let mut by_service: HashMap<&str, Vec<&Unit>> = HashMap::new();
    for u in &actual.units {
        by_service.entry(u.service.as_str()).or_default().push(u);
    }
    let mut services = Vec::new();
    for s in service_order(desired) {
        let existing = by_service.remove(s.name.as_str()).unwrap_or_default();
        let shape = layout.shape(desired, s);
        let plan = if layout.replicated(s) {
            plan_replicated(&desired.project, layout, s, shape, &existing, actual)
        } else {
            plan_ordinals(&desired.project, layout, s, shape, &existing, actual)
        };
        services.push(plan);
    }
    let mut orphans = Vec::new();
    let mut left: Vec<(&str, Vec<&Unit>)> = by_service.into_iter().collect();
    left.sort_unstable_by_key(|(name, _)| *name);
    // The fixed host ports of the containers this plan creates.
    let wanted: BTreeMap<u16, String> = services
        .iter()
        .filter(|sp| {
            sp.changes
                .iter()
                .any(|c| matches!(c.action, Action::Create | Action::Recreate))
        })
        .filter_map(|sp| sp.service.as_ref())
        .flat_map(|s| {
            s.ports
                .iter()
                .filter_map(|p| Some((p.host_port?, s.name.clone())))
        })
        .collect();
    for (name, units) in left {
        let mut names: Vec<String> = units.iter().map(|u| u.name.clone()).collect();
        names.sort();
        let mut holds: Vec<HeldPort> = units
            .iter()
            .flat_map(|u| &u.ports)
            .filter_map(|p| {
                Some(HeldPort {
                    port: p.host_port,
                    wanted_by: wanted.get(&p.host_port)?.clone(),
                })
            })
            .collect();
        holds.sort_by_key(|h| h.port);
        holds.dedup();
        orphans.push(Orphan {
            service: name.to_string(),
            containers: names,
            holds,
        });
        if prune {
            let mut sorted = units.clone();
            sorted.sort_by_key(|u| std::cmp::Reverse((u.ordinal, u.name.clone())));
            services.push(ServicePlan {
                name: name.to_string(),
                service: None,
                from: units.iter().map(|u| replicas_of(u)).sum(),
                to: 0,
                changes: sorted
                    .iter()
                    .map(|u| Change {
                        from: u.replicas.map(|r| r.desired),
                        ordinal: u.ordinal,
                        ..Change::one(
                            name,
                            u.name.clone(),
                            0,
                            Action::Remove,
                            Reason::ServiceRemoved,
                        )
                    })
                    .collect(),
                config_changed: false,
                new: false,
                made_with: Some(made_with(&units)),
            });
        }
    }
    let mut missing_images: Vec<String> = desired
        .services
        .values()
        .filter(|s| s.count > 0 && !actual.image_ids.contains_key(&s.image))
        .map(|s| s.image.clone())
        .collect();
    missing_images.sort();
    missing_images.dedup();
    Plan {
        project: desired.project.clone(),
        layout,
        services,
        orphans,
        pruned: prune,
        missing_images,
        units_now: actual.units.len(),
    }
}

fn replicas_of(u: &Unit) -> u32 {
    u.replicas.map_or(1, |r| r.desired)
}

/// Why an existing unit of the right config must still be replaced: its
/// image tag moved.
fn image_moved(s: &Service, u: &Unit, actual: &Actual) -> Option<Reason> {
    let id = actual.image_ids.get(&s.image)?;
    (*id != u.image_id).then(|| Reason::ImageMoved {
        image: s.image.clone(),
        id: short_id(id),
    })
}

/// A service that is one unit holding all its replicas (a parallel
/// service on a swarm): created, scaled, updated or removed as a whole.
fn plan_replicated(
    project: &str,
    layout: Layout,
    s: &Service,
    shape: BTreeMap<String, String>,
    existing: &[&Unit],
    actual: &Actual,
) -> ServicePlan {
    let hash = crate::config::hash_shape(&shape);
    let name = layout.unit_name(project, &s.name, None);
    let (current, extra): (Vec<&Unit>, Vec<&Unit>) = existing
        .iter()
        .partition(|u| u.name == name && u.ordinal.is_none());
    let mut changes: Vec<Change> = extra
        .iter()
        .map(|u| Change {
            ordinal: u.ordinal,
            from: u.replicas.map(|r| r.desired),
            ..Change::one(&s.name, u.name.clone(), 0, Action::Remove, Reason::Leftover)
        })
        .collect();
    let from = current.first().map_or(0, |u| replicas_of(u));
    let applied = actual.applied.get(&s.name).copied();
    let unit = |action, reason, diff| Change {
        ordinal: None,
        from: Some(from),
        to: Some(s.count),
        diff,
        ..Change::one(&s.name, name.clone(), 0, action, reason)
    };
    let scale = Reason::Scale { from, to: s.count };
    let mut config_changed = false;
    match current.first() {
        // Applied before and gone: removed outside muster.
        None if s.count > 0 && applied.is_some_and(|a| a > 0) => {
            changes.push(unit(Action::Create, Reason::Missing, Vec::new()));
        }
        None if s.count > 0 => changes.push(unit(Action::Create, scale, Vec::new())),
        None => {}
        Some(_) if s.count == 0 => changes.push(unit(Action::Remove, scale, Vec::new())),
        Some(u) if u.config_hash != hash => {
            config_changed = true;
            changes.push(unit(
                Action::Update,
                Reason::ConfigChanged,
                diff(&u.config, &shape),
            ));
        }
        Some(u) => {
            if let Some(reason) = image_moved(s, u, actual) {
                changes.push(unit(Action::Update, reason, Vec::new()));
            } else if matches!(u.state, State::Dead | State::Exited) {
                // A paused or rolled-back update, or tasks that stopped for
                // good: never "No changes".
                changes.push(unit(Action::Update, Reason::Stalled, Vec::new()));
            } else if from != s.count {
                changes.push(unit(Action::Scale, scale, Vec::new()));
            }
        }
    }
    ServicePlan {
        name: s.name.clone(),
        service: Some(s.clone()),
        from,
        to: s.count,
        changes,
        config_changed,
        new: existing.is_empty() && applied.is_none(),
        made_with: None,
    }
}

/// A service laid out as one unit per ordinal: containers on the docker
/// backend, per-ordinal services of a sequential service on a swarm.
fn plan_ordinals(
    project: &str,
    layout: Layout,
    s: &Service,
    shape: BTreeMap<String, String>,
    existing: &[&Unit],
    actual: &Actual,
) -> ServicePlan {
    let hash = crate::config::hash_shape(&shape);
    let mut removes = Vec::new();
    let mut rest = Vec::new();
    let change = |unit: String, ordinal: u32, action: Action, reason: Reason| {
        Change::one(&s.name, unit, ordinal, action, reason)
    };

    // The unit that holds each ordinal: the one with the canonical name.
    // Anything else (a leftover of an interrupted update, a duplicate, a
    // unit without a valid ordinal) is removed.
    let mut holder: BTreeMap<u32, &Unit> = BTreeMap::new();
    for u in existing {
        if let Some(o) = u.ordinal
            && layout.is_named(&u.name, project, &s.name, o)
        {
            holder.insert(o, u);
        }
    }
    for u in existing {
        let canonical = u
            .ordinal
            .is_some_and(|o| holder.get(&o).is_some_and(|h| h.id == u.id));
        if !canonical {
            let reason = match u.ordinal {
                None => Reason::NoOrdinal,
                Some(_) => Reason::Leftover,
            };
            removes.push(Change {
                ordinal: u.ordinal,
                ..change(u.name.clone(), 0, Action::Remove, reason)
            });
        }
    }
    // The count before: what muster last applied, where the record says;
    // an ordinal up to it that is not there vanished ("missing").
    let applied = actual.applied.get(&s.name).copied();
    let from = applied.unwrap_or(holder.len() as u32);
    let highest = holder
        .keys()
        .next_back()
        .copied()
        .unwrap_or(0)
        .max(applied.unwrap_or(0));
    let scale = Reason::Scale { from, to: s.count };
    let above = if from == s.count {
        Reason::AboveCount(s.count)
    } else {
        scale.clone()
    };
    for (&o, u) in holder.iter().rev() {
        if o > s.count {
            removes.push(change(u.name.clone(), o, Action::Remove, above.clone()));
        }
    }
    let mut config_changed = false;
    for o in 1..=s.count {
        let Some(u) = holder.get(&o) else {
            let reason = if o > highest {
                scale.clone()
            } else {
                Reason::Missing
            };
            let name = layout.unit_name(project, &s.name, Some(o));
            rest.push(change(name, o, Action::Create, reason));
            continue;
        };
        // The holder has the canonical name; copied only for a change.
        let name = || u.name.clone();
        if u.config_hash != hash {
            config_changed = true;
            rest.push(Change {
                diff: diff(&u.config, &shape),
                ..change(name(), o, Action::Recreate, Reason::ConfigChanged)
            });
        } else if let Some(reason) = image_moved(s, u, actual) {
            rest.push(change(name(), o, Action::Recreate, reason));
        } else {
            match u.state {
                State::Created | State::Exited => rest.push(change(
                    name(),
                    o,
                    Action::Start,
                    Reason::NotRunning(u.state),
                )),
                State::Dead if layout == Layout::SwarmServices => {
                    rest.push(change(name(), o, Action::Recreate, Reason::Stalled));
                }
                State::Dead => rest.push(change(name(), o, Action::Recreate, Reason::Dead)),
                State::Running | State::Restarting | State::Paused | State::Removing => {}
            }
        }
    }
    // Removals go highest ordinal first (for sequential services too).
    removes.sort_by_key(|c| std::cmp::Reverse((c.ordinal, c.unit.clone())));
    removes.extend(rest);
    ServicePlan {
        name: s.name.clone(),
        service: Some(s.clone()),
        from,
        to: s.count,
        changes: removes,
        config_changed,
        new: existing.is_empty() && applied.is_none(),
        made_with: None,
    }
}

/// `sha256:0123456789ab…` → `0123456789ab`.
pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// The settings that differ, by path.
pub fn diff(from: &BTreeMap<String, String>, to: &BTreeMap<String, String>) -> Vec<FieldChange> {
    let keys: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    keys.into_iter()
        .filter(|k| from.get(*k) != to.get(*k))
        .map(|k| FieldChange {
            path: k.clone(),
            from: from.get(k).cloned(),
            to: to.get(k).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::container_spec;
    use crate::engine::memory::MemoryEngine;

    use crate::engine::container_name;

    const IMG: &str = "img:1";
    const IMG_ID: &str = "sha256:aaaaaaaaaaaaaaaa";

    fn desired(text: &str) -> Desired {
        crate::config::parse_str("t.toml", text, std::path::Path::new("/srv"))
            .unwrap_or_else(|e| panic!("{}", e.render_plain()))
    }

    /// An engine holding `ordinals` of `service` from `file`, in `state`.
    fn engine_with(file: &Desired, service: &str, ordinals: &[u32], state: State) -> MemoryEngine {
        let engine = MemoryEngine::with_images(&[(IMG, IMG_ID)]);
        let s = &file.services[service];
        for o in ordinals {
            let name = container_name(&file.project, service, *o);
            engine.insert(container_spec(&file.project, s, *o, &name), state);
        }
        engine
    }

    fn run(file: &Desired, engine: &MemoryEngine, prune: bool) -> Plan {
        plan(
            file,
            &engine.snapshot(&file.project, &[IMG.to_string()]),
            prune,
        )
    }

    fn steps(p: &Plan) -> Vec<String> {
        p.changes()
            .map(|c| format!("{} {} ({})", c.action.as_str(), c.unit, c.reason))
            .collect()
    }

    fn web(count: u32, extra: &str) -> Desired {
        desired(&format!(
            "project = \"shop\"\n[services.web]\nimage = \"{IMG}\"\ncount = {count}\n{extra}\n"
        ))
    }

    #[test]
    fn every_action_and_reason() {
        struct Case {
            name: &'static str,
            have: Desired,
            ordinals: &'static [u32],
            state: State,
            want: Desired,
            steps: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "scale up from nothing creates in ascending order",
                have: web(1, ""),
                ordinals: &[],
                state: State::Running,
                want: web(3, ""),
                steps: &[
                    "create shop-web-1 (scale 0 → 3)",
                    "create shop-web-2 (scale 0 → 3)",
                    "create shop-web-3 (scale 0 → 3)",
                ],
            },
            Case {
                name: "scale down removes the highest ordinals first",
                have: web(5, ""),
                ordinals: &[1, 2, 3, 4, 5],
                state: State::Running,
                want: web(2, ""),
                steps: &[
                    "remove shop-web-5 (scale 5 → 2)",
                    "remove shop-web-4 (scale 5 → 2)",
                    "remove shop-web-3 (scale 5 → 2)",
                ],
            },
            Case {
                name: "a removed container in the middle is created again",
                have: web(3, ""),
                ordinals: &[1, 3],
                state: State::Running,
                want: web(3, ""),
                steps: &["create shop-web-2 (missing)"],
            },
            Case {
                name: "a stopped container is started",
                have: web(2, ""),
                ordinals: &[1, 2],
                state: State::Exited,
                want: web(2, ""),
                steps: &[
                    "start shop-web-1 (exited but should run)",
                    "start shop-web-2 (exited but should run)",
                ],
            },
            Case {
                name: "a dead container is recreated",
                have: web(1, ""),
                ordinals: &[1],
                state: State::Dead,
                want: web(1, ""),
                steps: &["recreate shop-web-1 (dead)"],
            },
            Case {
                name: "a config change recreates every container",
                have: web(2, "env = { A = \"1\" }"),
                ordinals: &[1, 2],
                state: State::Running,
                want: web(2, "env = { A = \"2\" }"),
                steps: &[
                    "recreate shop-web-1 (config changed)",
                    "recreate shop-web-2 (config changed)",
                ],
            },
            Case {
                name: "a count change recreates nothing",
                have: web(2, "env = { A = \"1\" }"),
                ordinals: &[1, 2],
                state: State::Running,
                want: web(
                    3,
                    "env = { A = \"1\" }\n[services.web.update]\nparallelism = 3",
                ),
                steps: &["create shop-web-3 (scale 2 → 3)"],
            },
            Case {
                name: "up to date",
                have: web(2, ""),
                ordinals: &[1, 2],
                state: State::Running,
                want: web(2, ""),
                steps: &[],
            },
        ];
        for case in cases {
            let engine = engine_with(&case.have, "web", case.ordinals, case.state);
            let p = run(&case.want, &engine, false);
            assert_eq!(steps(&p), case.steps, "{}", case.name);
        }
    }

    #[test]
    fn recreate_lists_the_changed_fields() {
        let engine = engine_with(
            &web(1, "env = { A = \"1\", B = \"x\" }"),
            "web",
            &[1],
            State::Running,
        );
        let p = run(&web(1, "env = { A = \"2\", C = \"y\" }"), &engine, false);
        let c = p.changes().next().unwrap();
        let d: Vec<(String, Option<String>, Option<String>)> = c
            .diff
            .iter()
            .map(|f| (f.path.clone(), f.from.clone(), f.to.clone()))
            .collect();
        assert_eq!(
            d,
            vec![
                ("env.A".into(), Some("1".into()), Some("2".into())),
                ("env.B".into(), Some("x".into()), None),
                ("env.C".into(), None, Some("y".into())),
            ]
        );
        assert!(p.services[0].config_changed);
    }

    #[test]
    fn a_tag_that_moved_recreates() {
        let file = web(1, "");
        let engine = engine_with(&file, "web", &[1], State::Running);
        engine.with(|s| {
            s.images
                .insert(IMG.into(), "sha256:bbbbbbbbbbbbbbbbbbbb".into())
        });
        let p = run(&file, &engine, false);
        assert_eq!(
            steps(&p),
            ["recreate shop-web-1 (image img:1 now points at bbbbbbbbbbbb)"]
        );
    }

    #[test]
    fn leftovers_and_unnumbered_containers_are_removed() {
        let file = web(1, "");
        let engine = engine_with(&file, "web", &[1], State::Running);
        let s = &file.services["web"];
        engine.insert(
            container_spec("shop", s, 1, "shop-web-1-next"),
            State::Running,
        );
        let mut odd = container_spec("shop", s, 1, "shop-web-x");
        odd.labels
            .insert(crate::engine::LABEL_ORDINAL.into(), "zero".into());
        engine.insert(odd, State::Running);
        let p = run(&file, &engine, false);
        assert_eq!(
            steps(&p),
            [
                "remove shop-web-1-next (leftover of an interrupted apply)",
                "remove shop-web-x (no valid ordinal label)",
            ]
        );
    }

    #[test]
    fn orphans_are_reported_and_removed_only_with_prune() {
        let old = desired("project = \"shop\"\n[services.old]\nimage = \"img:1\"\ncount = 2\n");
        let engine = engine_with(&old, "old", &[1, 2], State::Running);
        let file = web(0, "");
        let p = run(&file, &engine, false);
        assert!(p.is_empty());
        assert_eq!(p.orphans[0].containers, ["shop-old-1", "shop-old-2"]);
        let p = run(&file, &engine, true);
        assert_eq!(
            steps(&p),
            [
                "remove shop-old-2 (service removed from the file)",
                "remove shop-old-1 (service removed from the file)",
            ]
        );
    }

    #[test]
    fn services_follow_depends_on() {
        let file = desired(
            "project = \"shop\"\n\
             [services.web]\nimage = \"img:1\"\ndepends_on = [\"api\"]\n\
             [services.api]\nimage = \"img:1\"\ndepends_on = [\"db\", \"cache\"]\n\
             [services.db]\nimage = \"img:1\"\n\
             [services.cache]\nimage = \"img:1\"\n",
        );
        let engine = MemoryEngine::with_images(&[(IMG, IMG_ID)]);
        let order: Vec<String> = run(&file, &engine, false)
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(order, ["cache", "db", "api", "web"]);
    }

    #[test]
    fn the_record_tells_a_vanished_unit_and_a_scale_up_from_zero() {
        let file = web(3, "");
        let engine = engine_with(&file, "web", &[1, 2], State::Running);
        // Without a record, the highest ordinal gone looks like a scale-up.
        let p = run(&file, &engine, false);
        assert_eq!(steps(&p), ["create shop-web-3 (scale 2 → 3)"]);
        engine.with(|s| {
            s.records
                .insert("shop".into(), BTreeMap::from([("web".into(), 3)]))
        });
        let p = run(&file, &engine, false);
        assert_eq!(steps(&p), ["create shop-web-3 (missing)"]);
        assert_eq!((p.services[0].from, p.services[0].to), (3, 3));
        // Missing and a scale-up beyond the record at once.
        let p = run(&web(4, ""), &engine, false);
        assert_eq!(
            steps(&p),
            [
                "create shop-web-3 (missing)",
                "create shop-web-4 (scale 3 → 4)"
            ]
        );

        // A service at 0 that muster applied is not new; one unknown is.
        let none = MemoryEngine::with_images(&[(IMG, IMG_ID)]);
        let p = run(&web(2, ""), &none, false);
        assert!(p.services[0].new);
        none.with(|s| {
            s.records
                .insert("shop".into(), BTreeMap::from([("web".into(), 0)]))
        });
        let p = run(&web(2, ""), &none, false);
        assert!(!p.services[0].new);
        assert_eq!(
            steps(&p),
            [
                "create shop-web-1 (scale 0 → 2)",
                "create shop-web-2 (scale 0 → 2)"
            ]
        );
    }

    #[test]
    fn sequential_scale_down_removes_highest_first_then_creates_ascending() {
        let have = desired(
            "project = \"shop\"\n[services.db]\nimage = \"img:1\"\nmode = \"sequential\"\ncount = 4\n",
        );
        let engine = engine_with(&have, "db", &[1, 2, 4], State::Running);
        let want = desired(
            "project = \"shop\"\n[services.db]\nimage = \"img:1\"\nmode = \"sequential\"\ncount = 3\n",
        );
        assert_eq!(
            steps(&run(&want, &engine, false)),
            [
                "remove shop-db-4 (ordinal above count 3)",
                "create shop-db-3 (missing)"
            ]
        );
    }

    #[test]
    fn is_named_matches_container_name_exactly() {
        const L: Layout = Layout::Containers;
        for o in [1, 9, 10, 1000] {
            assert!(L.is_named(&container_name("p", "web", o), "p", "web", o));
        }
        for other in [
            "p-web-01",
            "p-web-+1",
            "p-web-1 ",
            "p-web-",
            "p-web",
            "q-web-1",
            "p-webx-1",
            "p-web-x-1",
            "p-web-11",
        ] {
            assert!(!L.is_named(other, "p", "web", 1), "{other}");
        }
    }

    #[test]
    fn missing_images_are_listed() {
        let file = desired(
            "project = \"shop\"\n[services.a]\nimage = \"nope:1\"\n[services.b]\nimage = \"img:1\"\n",
        );
        let engine = MemoryEngine::with_images(&[(IMG, IMG_ID)]);
        let actual = engine.snapshot("shop", &["nope:1".into(), IMG.into()]);
        assert_eq!(plan(&file, &actual, false).missing_images, ["nope:1"]);
    }
}
