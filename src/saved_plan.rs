//! Saved plans (`muster plan --out FILE`, `muster apply FILE`): the §4 JSON
//! of a plan, with the SHA-256 of the file it was made from and a
//! fingerprint of what the engine held, and the comparison that says what
//! moved since. Pure: the caller reads and writes the plan file.
//!
//! A reviewed plan is the plan that runs, or none: [`SavedPlan::check`]
//! refuses when the engine's state is not the one the plan was made from,
//! or when the plan made now differs from the saved one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::engine::Actual;

/// The `format_version` of §4's JSON, which a saved plan extends.
pub const FORMAT_VERSION: u64 = 1;

/// A plan file larger than this is not one muster wrote for a project it
/// can run (10,000 containers make a few MiB).
pub const MAX_PLAN_BYTES: u64 = 64 * 1024 * 1024;

/// One unit as it was observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitPrint {
    pub name: String,
    pub id: String,
    pub config_hash: String,
    pub state: String,
    pub image_id: String,
}

/// What the engine held for the project when the plan was made: each
/// unit, and the image id of each of the file's images that was present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `sha256:` of `units` and `images`: one value to compare, and a
    /// hand-edited fingerprint is seen.
    pub digest: String,
    /// Sorted by name.
    pub units: Vec<UnitPrint>,
    pub images: BTreeMap<String, String>,
}

impl Fingerprint {
    pub fn of(actual: &Actual) -> Fingerprint {
        let mut units: Vec<UnitPrint> = actual
            .units
            .iter()
            .map(|u| UnitPrint {
                name: u.name.clone(),
                id: u.id.clone(),
                config_hash: u.config_hash.clone(),
                state: u.state.as_str().to_string(),
                image_id: u.image_id.clone(),
            })
            .collect();
        units.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        let images = actual.image_ids.clone();
        Fingerprint {
            digest: digest(&units, &images),
            units,
            images,
        }
    }

    /// What differs from `now`, one sentence each, in name order. Images in
    /// `pulled` were missing when the plan was made and are pulled by its
    /// apply: they may be there now.
    pub fn moved(&self, now: &Fingerprint, pulled: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let before: BTreeMap<&str, &UnitPrint> =
            self.units.iter().map(|u| (u.name.as_str(), u)).collect();
        let after: BTreeMap<&str, &UnitPrint> =
            now.units.iter().map(|u| (u.name.as_str(), u)).collect();
        let names: BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
        for name in names {
            match (before.get(name), after.get(name)) {
                (Some(_), None) => out.push(format!("{name} is gone")),
                (None, Some(u)) => out.push(format!("{name} appeared ({})", u.state)),
                (Some(a), Some(b)) if a.id != b.id => out.push(format!(
                    "{name} was replaced (id {} → {})",
                    short(&a.id),
                    short(&b.id)
                )),
                (Some(a), Some(b)) => {
                    if a.state != b.state {
                        out.push(format!("{name} is now {} (was {})", b.state, a.state));
                    }
                    if a.config_hash != b.config_hash || a.image_id != b.image_id {
                        out.push(format!("{name} changed its config or image"));
                    }
                }
                (None, None) => {}
            }
        }
        let images: BTreeSet<&String> = self.images.keys().chain(now.images.keys()).collect();
        for image in images {
            match (self.images.get(image), now.images.get(image)) {
                (Some(a), Some(b)) if a != b => out.push(format!(
                    "image {image} now points at {} (was {})",
                    short(b),
                    short(a)
                )),
                (Some(_), None) => out.push(format!("image {image} is no longer on the engine")),
                (None, Some(b)) if !pulled.contains(image) => {
                    out.push(format!("image {image} is now on the engine ({})", short(b)));
                }
                _ => {}
            }
        }
        out
    }
}

fn digest(units: &[UnitPrint], images: &BTreeMap<String, String>) -> String {
    let bytes = serde_json::to_vec(&(units, images)).unwrap_or_default();
    format!("sha256:{}", hex(&Sha256::digest(&bytes)))
}

/// The SHA-256 of a file's bytes, in lower hex.
pub fn file_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:0123456789abcdef…` → `0123456789ab`.
fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Why a saved plan is not applied. Nothing was changed in every case.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("cannot read the saved plan {path}: {source}; nothing was changed")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a plan saved by muster plan --out: {why}; nothing was changed")]
    Damaged { path: String, why: String },
    #[error(
        "{path} has format_version {found}, and this muster reads format_version {FORMAT_VERSION}; \
         make the plan again with this muster; nothing was changed"
    )]
    Version { path: String, found: String },
    #[error("{path} is a plan for project {saved}, not for project {current}; nothing was changed")]
    OtherProject {
        path: String,
        saved: String,
        current: String,
    },
    #[error(
        "the saved plan {path} is stale:\n{}\nnothing was changed; make a new plan (muster plan --out {path})",
        .moved.iter().map(|m| format!("  - {m}")).collect::<Vec<_>>().join("\n")
    )]
    Stale { path: String, moved: Vec<String> },
}

/// A plan file, read back.
#[derive(Debug, Clone)]
pub struct SavedPlan {
    /// Where it was read from, for messages.
    pub path: String,
    pub project: String,
    /// The plan was made with `--prune`, and is applied with it.
    pub prune: bool,
    pub file_sha256: String,
    pub desired_sha256: String,
    pub fingerprint: Fingerprint,
    /// The plan's §4 JSON, as saved.
    pub plan: Map<String, Value>,
}

/// The document `plan --out` writes: the §4 JSON of the plan (`plan_json`),
/// plus `prune`, `file_sha256` (of the file's bytes as read),
/// `desired_sha256` (of what the file asks for once interpolated, see
/// [`desired_sha256`]) and
/// `fingerprint` (of `actual`, the observation the plan was made from).
pub fn document(
    plan_json: Value,
    prune: bool,
    file: &[u8],
    desired: &str,
    actual: &Actual,
) -> Value {
    let mut doc = match plan_json {
        Value::Object(map) => map,
        other => Map::from_iter([("plan".to_string(), other)]),
    };
    doc.insert("prune".into(), Value::Bool(prune));
    doc.insert("file_sha256".into(), Value::String(file_sha256(file)));
    doc.insert("desired_sha256".into(), Value::String(desired.to_string()));
    doc.insert(
        "fingerprint".into(),
        serde_json::to_value(Fingerprint::of(actual)).unwrap_or(Value::Null),
    );
    doc.insert(
        "muster_version".into(),
        Value::String(env!("CARGO_PKG_VERSION").into()),
    );
    Value::Object(doc)
}

/// What `document` adds to the plan's own JSON.
const ADDED: [&str; 5] = [
    "prune",
    "file_sha256",
    "desired_sha256",
    "fingerprint",
    "muster_version",
];

/// A digest of what the file asks for once interpolated: the project, and
/// each service's count and config hash. The file's bytes do not pin it: a
/// `${VAR}` takes its value from the environment of the command.
pub fn desired_sha256(desired: &crate::config::Desired) -> String {
    let mut text = format!("{}\n", desired.project);
    for (name, service) in &desired.services {
        text.push_str(&format!(
            "{name} {} {}\n",
            service.count,
            service.config_hash()
        ));
    }
    file_sha256(text.as_bytes())
}

impl SavedPlan {
    /// Reads a plan file's bytes; `path` names it in messages.
    ///
    /// # Errors
    /// [`SavedPlanError::Damaged`] for anything but a whole plan file,
    /// [`SavedPlanError::Version`] for another format version.
    pub fn parse(path: &str, bytes: &[u8]) -> Result<SavedPlan, SavedPlanError> {
        let damaged = |why: String| SavedPlanError::Damaged {
            path: path.to_string(),
            why,
        };
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| damaged(format!("not JSON ({e})")))?;
        let Value::Object(mut doc) = value else {
            return Err(damaged("not a JSON object".into()));
        };
        match doc.get("format_version") {
            Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(SavedPlanError::Version {
                    path: path.to_string(),
                    found: v.to_string(),
                });
            }
            None => return Err(damaged("it has no format_version".into())),
        }
        let mut take = |key: &str| {
            doc.remove(key)
                .ok_or_else(|| damaged(format!("it has no {key}")))
        };
        let prune = take("prune")?
            .as_bool()
            .ok_or_else(|| damaged("prune is not true or false".into()))?;
        let mut sha256 = |key: &str| match take(key)? {
            Value::String(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(s),
            _ => Err(damaged(format!("{key} is not a SHA-256 in hex"))),
        };
        let file_sha256 = sha256("file_sha256")?;
        let desired_sha256 = sha256("desired_sha256")?;
        let fingerprint: Fingerprint = serde_json::from_value(take("fingerprint")?)
            .map_err(|e| damaged(format!("its fingerprint is not readable ({e})")))?;
        if digest(&fingerprint.units, &fingerprint.images) != fingerprint.digest {
            return Err(damaged("its fingerprint does not match its digest".into()));
        }
        doc.remove("muster_version");
        let project = match doc.get("project") {
            Some(Value::String(p)) => p.clone(),
            _ => return Err(damaged("it has no project".into())),
        };
        for key in ["changes", "orphans", "summary"] {
            if !doc.contains_key(key) {
                return Err(damaged(format!("it has no {key}")));
            }
        }
        Ok(SavedPlan {
            path: path.to_string(),
            project,
            prune,
            file_sha256,
            desired_sha256,
            fingerprint,
            plan: doc,
        })
    }

    /// The plan is for this project, made from this file's bytes (`file`
    /// names them), interpolated to the same values (`desired`, of
    /// [`desired_sha256`]).
    ///
    /// # Errors
    /// [`SavedPlanError::OtherProject`], or [`SavedPlanError::Stale`] when
    /// the file or a value it takes from the environment changed.
    pub fn check_file(
        &self,
        project: &str,
        file: &str,
        bytes: &[u8],
        desired: &str,
    ) -> Result<(), SavedPlanError> {
        if self.project != project {
            return Err(SavedPlanError::OtherProject {
                path: self.path.clone(),
                saved: self.project.clone(),
                current: project.to_string(),
            });
        }
        if file_sha256(bytes) != self.file_sha256 {
            return Err(self.stale(vec![format!("{file} changed since the plan")]));
        }
        if desired != self.desired_sha256 {
            return Err(self.stale(vec![
                "an environment variable that the file interpolates (`${VAR}`) has another \
                 value than when the plan was made"
                    .into(),
            ]));
        }
        Ok(())
    }

    /// The engine holds what it held when the plan was made (except the
    /// images the plan pulls), and the plan made now from it (`plan_json`)
    /// is the saved one.
    ///
    /// # Errors
    /// [`SavedPlanError::Stale`] saying what moved.
    pub fn check(&self, plan_json: &Value, actual: &Actual) -> Result<(), SavedPlanError> {
        let pulled: Vec<String> = self
            .plan
            .get("missing_images")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
        let moved = self.fingerprint.moved(&Fingerprint::of(actual), &pulled);
        if !moved.is_empty() {
            return Err(self.stale(moved));
        }
        if !self.same_plan(plan_json) {
            return Err(self.stale(vec![
                "the plan made now from the same file and engine state differs from the \
                 saved one (was it saved by another muster version?)"
                    .into(),
            ]));
        }
        Ok(())
    }

    /// Equal plans, but for the images to pull: those the saved plan pulls
    /// are on the engine once it has pulled them.
    fn same_plan(&self, plan_json: &Value) -> bool {
        let strip = |doc: &Map<String, Value>| -> Map<String, Value> {
            doc.iter()
                .filter(|(k, _)| k.as_str() != "missing_images" && !ADDED.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        match plan_json {
            Value::Object(now) => strip(now) == strip(&self.plan),
            _ => false,
        }
    }

    fn stale(&self, moved: Vec<String>) -> SavedPlanError {
        SavedPlanError::Stale {
            path: self.path.clone(),
            moved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{State, Unit};

    fn unit(name: &str, id: &str, state: State) -> Unit {
        Unit {
            id: id.into(),
            name: name.into(),
            service: "web".into(),
            ordinal: Some(1),
            config_hash: "h1".into(),
            config: BTreeMap::new(),
            image_id: "sha256:aaaaaaaaaaaaaaaa".into(),
            state,
            health: None,
            status: String::new(),
            ports: Vec::new(),
            replicas: None,
            tasks: Vec::new(),
        }
    }

    fn actual(units: Vec<Unit>, image: Option<&str>) -> Actual {
        Actual {
            units,
            image_ids: image
                .map(|id| BTreeMap::from([("x:1".to_string(), id.to_string())]))
                .unwrap_or_default(),
            ..Actual::default()
        }
    }

    fn plan_json() -> Value {
        serde_json::json!({
            "format_version": 1, "project": "shop", "changes": [], "orphans": [],
            "missing_images": [], "summary": {"create": 0, "recreate": 0, "start": 0, "remove": 0}
        })
    }

    fn saved(actual: &Actual) -> SavedPlan {
        let doc = document(
            plan_json(),
            false,
            b"file",
            &file_sha256(b"desired"),
            actual,
        );
        SavedPlan::parse("plan.json", &serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    #[test]
    fn every_move_is_named() {
        let before = actual(
            vec![
                unit("shop-web-1", "c1", State::Running),
                unit("shop-web-2", "c2", State::Running),
                unit("shop-web-4", "c4", State::Running),
            ],
            Some("sha256:aaaaaaaaaaaaaaaa"),
        );
        let after = actual(
            vec![
                unit("shop-web-1", "c9", State::Running),
                unit("shop-web-2", "c2", State::Exited),
                unit("shop-web-3", "c3", State::Created),
            ],
            Some("sha256:bbbbbbbbbbbbbbbb"),
        );
        let moved = Fingerprint::of(&before).moved(&Fingerprint::of(&after), &[]);
        assert_eq!(
            moved,
            [
                "shop-web-1 was replaced (id c1 → c9)",
                "shop-web-2 is now exited (was running)",
                "shop-web-3 appeared (created)",
                "shop-web-4 is gone",
                "image x:1 now points at bbbbbbbbbbbb (was aaaaaaaaaaaa)",
            ]
        );
        let gone = Fingerprint::of(&actual(vec![], None));
        assert_eq!(
            Fingerprint::of(&before).moved(&gone, &[])[3],
            "image x:1 is no longer on the engine"
        );
    }

    #[test]
    fn an_image_the_plan_pulls_may_appear() {
        let before = Fingerprint::of(&actual(vec![], None));
        let after = Fingerprint::of(&actual(vec![], Some("sha256:cc")));
        assert_eq!(
            before.moved(&after, &[]),
            ["image x:1 is now on the engine (cc)"]
        );
        assert!(before.moved(&after, &["x:1".into()]).is_empty());
    }

    #[test]
    fn the_same_state_and_plan_pass_and_another_plan_is_refused() {
        let now = actual(vec![unit("shop-web-1", "c1", State::Running)], None);
        let s = saved(&now);
        s.check(&plan_json(), &now).unwrap();
        let mut other = plan_json();
        other["orphans"] = serde_json::json!([{"service": "old", "containers": ["shop-old-1"]}]);
        let err = s.check(&other, &now).unwrap_err().to_string();
        assert!(err.contains("differs from the saved one"), "{err}");
        assert!(err.contains("nothing was changed"), "{err}");
    }

    #[test]
    fn file_and_project_are_checked() {
        let s = saved(&actual(vec![], None));
        let desired = file_sha256(b"desired");
        s.check_file("shop", "services.toml", b"file", &desired)
            .unwrap();
        let err = s
            .check_file("shop", "services.toml", b"file2", &desired)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("services.toml changed since the plan"),
            "{err}"
        );
        let err = s
            .check_file("other", "services.toml", b"file", &desired)
            .unwrap_err();
        assert!(matches!(err, SavedPlanError::OtherProject { .. }), "{err}");
        let err = s
            .check_file("shop", "services.toml", b"file", &file_sha256(b"other"))
            .unwrap_err();
        assert!(err.to_string().contains("environment variable"), "{err}");
    }

    #[test]
    fn damaged_files_and_other_versions_are_refused() {
        let good = serde_json::to_value(document(
            plan_json(),
            false,
            b"f",
            &file_sha256(b"d"),
            &Actual::default(),
        ))
        .unwrap();
        let parse = |v: &Value| SavedPlan::parse("p.json", &serde_json::to_vec(v).unwrap());
        assert!(parse(&good).is_ok());
        assert!(matches!(
            SavedPlan::parse("p.json", b"{\"format_version\": 1, \"proj"),
            Err(SavedPlanError::Damaged { .. })
        ));
        let mut v2 = good.clone();
        v2["format_version"] = 2.into();
        assert!(matches!(parse(&v2), Err(SavedPlanError::Version { .. })));
        let mut edited = good.clone();
        edited["fingerprint"]["images"] = serde_json::json!({"x:1": "sha256:dd"});
        let err = parse(&edited).unwrap_err().to_string();
        assert!(err.contains("does not match its digest"), "{err}");
        for key in ["file_sha256", "fingerprint", "prune", "changes", "project"] {
            let mut without = good.clone();
            without.as_object_mut().unwrap().remove(key);
            assert!(
                matches!(parse(&without), Err(SavedPlanError::Damaged { .. })),
                "{key}"
            );
        }
    }
}
