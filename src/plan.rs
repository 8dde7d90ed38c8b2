//! The plan stage: `plan(&Desired, &Actual, prune) -> Plan`, the diff between
//! the file and the engine. Pure: no I/O, deterministic output.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::config::{Desired, Mode, Service};
use crate::engine::{Actual, Container, State, container_name};

/// What to do to one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Recreate,
    Start,
    Remove,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Recreate => "recreate",
            Action::Start => "start",
            Action::Remove => "remove",
        }
    }
}

/// One setting that differs between a container and the file.
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
    pub container: String,
    pub ordinal: u32,
    pub action: Action,
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldChange>,
}

/// The plan for one service of the file, or one orphan being pruned.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub name: String,
    /// `None` for an orphan (a service gone from the file).
    pub service: Option<Service>,
    /// Containers with a valid ordinal now, and the count the file asks for.
    pub from: u32,
    pub to: u32,
    /// In the order they are applied: removals (highest ordinal first), then
    /// the rest in ascending ordinal order.
    pub changes: Vec<Change>,
    /// Whether the config differs for at least one container.
    pub config_changed: bool,
}

impl ServicePlan {
    pub fn mode(&self) -> Mode {
        self.service.as_ref().map_or(Mode::Parallel, |s| s.mode)
    }
}

/// A service on the engine that the file no longer declares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orphan {
    pub service: String,
    pub containers: Vec<String>,
}

/// The whole diff.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub project: String,
    /// Services of the file in `depends_on` order, then pruned orphans.
    pub services: Vec<ServicePlan>,
    /// Orphans (also when pruned).
    pub orphans: Vec<Orphan>,
    pub pruned: bool,
    /// Images the engine does not have; apply pulls them first.
    pub missing_images: Vec<String>,
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
}

impl Plan {
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.services.iter().flat_map(|s| s.changes.iter())
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in self.changes() {
            match c.action {
                Action::Create => s.create += 1,
                Action::Recreate => s.recreate += 1,
                Action::Start => s.start += 1,
                Action::Remove => s.remove += 1,
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.summary().total() == 0
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
    // Grouped by hash: a BTreeMap lookup per container costs dozens of
    // string comparisons with thousands of services. The orphans left over
    // are sorted by name below, so the plan stays deterministic.
    let mut by_service: HashMap<&str, Vec<&Container>> = HashMap::new();
    for c in &actual.containers {
        by_service.entry(c.service.as_str()).or_default().push(c);
    }
    let mut services = Vec::new();
    for s in service_order(desired) {
        let existing = by_service.remove(s.name.as_str()).unwrap_or_default();
        services.push(plan_service(&desired.project, s, &existing, actual));
    }
    let mut orphans = Vec::new();
    let mut left: Vec<(&str, Vec<&Container>)> = by_service.into_iter().collect();
    left.sort_unstable_by_key(|(name, _)| *name);
    for (name, containers) in left {
        let mut names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
        names.sort();
        orphans.push(Orphan {
            service: name.to_string(),
            containers: names,
        });
        if prune {
            let mut sorted = containers.clone();
            sorted.sort_by_key(|c| std::cmp::Reverse((c.ordinal, c.name.clone())));
            services.push(ServicePlan {
                name: name.to_string(),
                service: None,
                from: containers.len() as u32,
                to: 0,
                changes: sorted
                    .iter()
                    .map(|c| Change {
                        service: name.to_string(),
                        container: c.name.clone(),
                        ordinal: c.ordinal.unwrap_or(0),
                        action: Action::Remove,
                        reason: "service removed from the file".into(),
                        diff: Vec::new(),
                    })
                    .collect(),
                config_changed: false,
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
        services,
        orphans,
        pruned: prune,
        missing_images,
    }
}

fn plan_service(
    project: &str,
    s: &Service,
    existing: &[&Container],
    actual: &Actual,
) -> ServicePlan {
    let shape = s.shape();
    let hash = crate::config::hash_shape(&shape);
    let mut removes = Vec::new();
    let mut rest = Vec::new();
    let change =
        |c_name: String, ordinal: u32, action: Action, reason: String, diff: Vec<FieldChange>| {
            Change {
                service: s.name.clone(),
                container: c_name,
                ordinal,
                action,
                reason,
                diff,
            }
        };

    // The container that holds each ordinal: the one with the canonical
    // name. Anything else (a leftover of an interrupted update, a duplicate,
    // a container without a valid ordinal) is removed.
    let mut holder: BTreeMap<u32, &Container> = BTreeMap::new();
    for c in existing {
        if let Some(o) = c.ordinal
            && is_named(&c.name, project, &s.name, o)
        {
            holder.insert(o, c);
        }
    }
    for c in existing {
        let canonical = c
            .ordinal
            .is_some_and(|o| holder.get(&o).is_some_and(|h| h.id == c.id));
        if !canonical {
            let reason = match c.ordinal {
                None => "no valid ordinal label",
                Some(_) => "leftover of an interrupted apply",
            };
            removes.push(change(
                c.name.clone(),
                c.ordinal.unwrap_or(0),
                Action::Remove,
                reason.into(),
                Vec::new(),
            ));
        }
    }
    let from = holder.len() as u32;
    let highest = holder.keys().next_back().copied().unwrap_or(0);
    let scale_reason = format!("scale {from} → {}", s.count);
    let above_reason = if from == s.count {
        format!("ordinal above count {}", s.count)
    } else {
        scale_reason.clone()
    };
    for (&o, c) in holder.iter().rev() {
        if o > s.count {
            removes.push(change(
                c.name.clone(),
                o,
                Action::Remove,
                above_reason.clone(),
                Vec::new(),
            ));
        }
    }
    let desired_image = actual.image_ids.get(&s.image);
    let mut config_changed = false;
    for o in 1..=s.count {
        let Some(c) = holder.get(&o) else {
            let reason = if o > highest {
                scale_reason.clone()
            } else {
                "missing".into()
            };
            let name = container_name(project, &s.name, o);
            rest.push(change(name, o, Action::Create, reason, Vec::new()));
            continue;
        };
        // The holder has the canonical name; copied only for a change.
        let name = || c.name.clone();
        if c.config_hash != hash {
            config_changed = true;
            rest.push(change(
                name(),
                o,
                Action::Recreate,
                "config changed".into(),
                diff(&c.config, &shape),
            ));
        } else if desired_image.is_some_and(|id| *id != c.image_id) {
            let id = desired_image.map(|i| short_id(i)).unwrap_or_default();
            rest.push(change(
                name(),
                o,
                Action::Recreate,
                format!("image {} now points at {id}", s.image),
                Vec::new(),
            ));
        } else {
            match c.state {
                State::Created | State::Exited => rest.push(change(
                    name(),
                    o,
                    Action::Start,
                    format!("{} but should run", c.state.as_str()),
                    Vec::new(),
                )),
                State::Dead => rest.push(change(
                    name(),
                    o,
                    Action::Recreate,
                    "dead".into(),
                    Vec::new(),
                )),
                State::Running | State::Restarting | State::Paused | State::Removing => {}
            }
        }
    }
    // Removals go highest ordinal first (for sequential services too).
    removes.sort_by_key(|c| std::cmp::Reverse((c.ordinal, c.container.clone())));
    removes.extend(rest);
    ServicePlan {
        name: s.name.clone(),
        service: Some(s.clone()),
        from,
        to: s.count,
        changes: removes,
        config_changed,
    }
}

/// Whether `name` is [`container_name`]`(project, service, ordinal)`,
/// without building it (this runs once per container of the project).
fn is_named(name: &str, project: &str, service: &str, ordinal: u32) -> bool {
    name.strip_prefix(project)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_prefix(service))
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|r| {
            !r.starts_with('0') && r.bytes().all(|b| b.is_ascii_digit()) && r.parse() == Ok(ordinal)
        })
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
    use crate::apply::container_spec;
    use crate::engine::memory::MemoryEngine;

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
            .map(|c| format!("{} {} ({})", c.action.as_str(), c.container, c.reason))
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
        for o in [1, 9, 10, 1000] {
            assert!(is_named(&container_name("p", "web", o), "p", "web", o));
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
            assert!(!is_named(other, "p", "web", 1), "{other}");
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
