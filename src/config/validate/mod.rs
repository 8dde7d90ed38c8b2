//! Semantic checks: the rules a schema cannot say (names, durations, ports,
//! volumes, dependencies), turning a [`File`] into a [`Desired`]. Pure.
//! Every problem is collected, each located through the TOML tree.
//!
//! One file per concern: [`service`] assembles one service from the small
//! checks in [`ports`], [`volumes`], [`healthcheck`] and [`units`]; [`cross`]
//! holds the rules that span services.

mod cross;
mod healthcheck;
mod ports;
mod service;
mod swarm;
mod units;
mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::DeTable;

use super::diagnostic::Problem;
use super::file::{Backend, File};
use super::locate::{Seg, span_at};
use super::model::Desired;

pub use cross::MAX_TOTAL_CONTAINERS;
pub use units::parse_duration;

/// Checks `file` (parsed from `root`, in directory `dir`); `project`
/// (`--project`, already checked) names the project instead of the file.
///
/// # Errors
/// Every problem found, located.
/// `declared` holds every service name in the file, including those left
/// out of `file` because of problems of their own.
pub(crate) fn validate(
    file: &File,
    declared: &BTreeSet<String>,
    root: &Spanned<DeTable<'_>>,
    dir: &Path,
    project: Option<&str>,
    backend: Option<Backend>,
) -> Result<Desired, Vec<Problem>> {
    let backend = backend.or(file.backend).unwrap_or(Backend::Docker);
    let mut v = Validator {
        root,
        problems: Vec::new(),
    };
    let project = v.project(file.project.as_deref(), project, dir);
    let volumes = v.declared_volumes(file.volumes.as_ref());
    let mut services = BTreeMap::new();
    for (name, raw) in &file.services {
        if let Some(s) = v.service(name, raw, dir, &volumes) {
            services.insert(name.clone(), s);
        }
    }
    let patterns = file
        .sensitive
        .as_ref()
        .and_then(|s| s.env.clone())
        .unwrap_or_default();
    for s in services.values_mut() {
        s.sensitive = s
            .env
            .keys()
            .filter(|k| super::sensitive::is_sensitive(&patterns, k))
            .cloned()
            .collect();
    }
    v.cross_checks(file, declared, &services, backend);
    let swarm = swarm_settings(file.swarm.as_ref());
    if backend == Backend::Swarm {
        v.swarm_checks(&project, &services, swarm);
    }
    if v.problems.is_empty() {
        Ok(Desired {
            project,
            backend,
            services,
            volumes,
            swarm,
        })
    } else {
        Err(v.problems)
    }
}

/// The `[swarm]` table with its defaults.
fn swarm_settings(raw: Option<&super::file::Swarm>) -> super::model::SwarmSettings {
    let d = super::model::SwarmSettings::default();
    super::model::SwarmSettings {
        endpoint_mode: raw.and_then(|s| s.endpoint_mode).unwrap_or(d.endpoint_mode),
        publish_mode: raw.and_then(|s| s.publish_mode).unwrap_or(d.publish_mode),
    }
}

/// The default project name: the directory's name, sanitised (lower
/// case; a character other than a letter, digit, `-` or `_` becomes `-`;
/// leading `-` and `_` dropped).
///
/// # Errors
/// What is left of the name (maybe nothing) when that is empty or fewer
/// than half of the name's characters survive as they are: a name made
/// mostly of dashes is no one's idea of the project's name.
pub fn default_project(dir: &Path) -> Result<String, String> {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let kept = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let name: String = raw.chars().map(|c| if kept(c) { c } else { '-' }).collect();
    let name = name.trim_start_matches(['-', '_']).to_string();
    // `name` is ASCII: its length is the number of characters of `raw` it
    // comes from, at the end.
    let survived = raw
        .chars()
        .rev()
        .take(name.len())
        .filter(|c| kept(*c))
        .count();
    if name.is_empty() || survived * 2 < raw.chars().count() {
        Err(name)
    } else {
        Ok(name)
    }
}

/// `[a-z0-9][a-z0-9_-]*`
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Collects the problems of one file, each located in its TOML tree.
struct Validator<'r, 'i> {
    root: &'r Spanned<DeTable<'i>>,
    problems: Vec<Problem>,
}

impl Validator<'_, '_> {
    fn span(&self, path: &[Seg<'_>], key: bool) -> Option<Range<usize>> {
        span_at(self.root, path, key)
    }

    /// A problem on the value at `path`.
    fn err(&mut self, code: &'static str, msg: String, path: &[Seg<'_>], help: &str) {
        let span = self.span(path, false);
        self.problems
            .push(Problem::new(code, msg, span).label("here").help(help));
    }

    /// A problem on the key at `path` (a name rather than its value).
    fn key_err(
        &mut self,
        code: &'static str,
        msg: String,
        path: &[Seg<'_>],
        label: &str,
        help: &str,
    ) {
        let span = self.span(path, true);
        self.problems
            .push(Problem::new(code, msg, span).label(label).help(help));
    }

    /// The project's name: `chosen` (`--project`), else the file's, else
    /// the directory's.
    fn project(&mut self, given: Option<&str>, chosen: Option<&str>, dir: &Path) -> String {
        if let Some(p) = given
            && !valid_name(p)
        {
            self.err(
                "muster::config::invalid_name",
                format!("project name {p:?} is not valid"),
                &[Seg::Key("project")],
                "use lower-case letters, digits, `-` and `_`, starting with a letter or digit",
            );
        }
        if let Some(p) = chosen.or(given) {
            return p.to_string();
        }
        default_project(dir).unwrap_or_else(|left| {
            let name = dir.file_name().unwrap_or(dir.as_os_str()).to_string_lossy();
            let left = if left.is_empty() {
                "nothing is left of it".to_string()
            } else {
                format!("only {left:?} is left of it")
            };
            self.problems.push(
                Problem::new(
                    "muster::config::unnamed_project",
                    format!(
                        "the file names no project, and its directory's name {name:?} does not \
                         make one: {left} once sanitised"
                    ),
                    None,
                )
                .label("no `project` in the file")
                .help(
                    "name the project: add project = \"NAME\" at the top of the file \
                     (lower-case letters, digits, `-` and `_`), or give --project NAME",
                ),
            );
            left
        })
    }
}

/// The path of key `key` in service `name`.
fn at<'a>(name: &'a str, key: &'a str) -> [Seg<'a>; 3] {
    [Seg::Key("services"), Seg::Key(name), Seg::Key(key)]
}

/// The path of item `i` of list `key` in service `name`.
fn item<'a>(name: &'a str, key: &'a str, i: usize) -> [Seg<'a>; 4] {
    [
        Seg::Key("services"),
        Seg::Key(name),
        Seg::Key(key),
        Seg::Index(i),
    ]
}

/// The path of entry `entry` of table `key` in service `name`.
fn entry<'a>(name: &'a str, key: &'a str, entry: &'a str) -> [Seg<'a>; 4] {
    [
        Seg::Key("services"),
        Seg::Key(name),
        Seg::Key(key),
        Seg::Key(entry),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Invalid, parse_str};

    /// The codes of the problems of `text`, with the text each one points at.
    fn problems(text: &str) -> Vec<(&'static str, String)> {
        match parse_str("services.toml", text, Path::new("/srv/shop")) {
            Ok(_) => Vec::new(),
            Err(Invalid { text, problems, .. }) => problems
                .iter()
                .map(|p| {
                    (
                        p.code,
                        p.span
                            .clone()
                            .map(|s| text[s].to_string())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }

    fn services<N: AsRef<str>>(counts: &[(N, Option<u32>)]) -> String {
        let mut text = String::new();
        for (name, count) in counts {
            let name = name.as_ref();
            text.push_str(&format!("[services.{name}]\nimage = \"busybox\"\n"));
            if let Some(c) = count {
                text.push_str(&format!("count = {c}\n"));
            }
        }
        text
    }

    #[test]
    fn a_file_may_declare_exactly_the_most_containers() {
        let counts: Vec<(String, Option<u32>)> =
            (0..10).map(|i| (format!("s{i}"), Some(1000))).collect();
        assert_eq!(problems(&services(&counts)), []);
    }

    #[test]
    fn the_count_that_crosses_the_cap_is_the_one_reported() {
        let mut counts: Vec<(String, Option<u32>)> =
            (0..10).map(|i| (format!("s{i}"), Some(1000))).collect();
        // Without a `count` the service is one container, located on its name.
        counts.push(("t".into(), None));
        counts.push(("u".into(), Some(5)));
        assert_eq!(
            problems(&services(&counts)),
            [("muster::config::too_many_containers", "t".to_string())]
        );
    }

    #[test]
    fn a_service_named_after_another_services_container_is_refused() {
        let text = services(&[
            ("db", Some(2)),
            ("db-1", None),
            ("db-3", None),
            ("web-1", None),
        ]);
        assert_eq!(
            problems(&text),
            [
                ("muster::config::alias_collision", "db-1".to_string()),
                ("muster::config::alias_collision", "db-3".to_string()),
            ]
        );
    }

    #[test]
    fn project_names_are_sanitised() {
        let named = |dir: &str| default_project(Path::new(dir));
        assert_eq!(named("/x/My Shop"), Ok("my-shop".into()));
        assert_eq!(named("/x/.shop_2"), Ok("shop_2".into()));
        assert_eq!(named("/x/café"), Ok("caf-".into()));
        // Nothing, or less than half, is left: no name.
        assert_eq!(named("/"), Err(String::new()));
        assert_eq!(named("/x/日本語"), Err(String::new()));
        assert_eq!(named("/x/プロジェクト1"), Err("1".into()));
        assert_eq!(named("/x/über straße"), Ok("ber-stra-e".into()));
    }

    #[test]
    fn a_directory_name_that_makes_no_project_name_is_an_error_unless_one_is_given() {
        let text = "[services.web]\nimage = \"busybox\"\n";
        let dir = Path::new("/srv/日本語");
        let invalid = parse_str("services.toml", text, dir).unwrap_err();
        assert_eq!(invalid.problems.len(), 1);
        assert_eq!(invalid.problems[0].code, "muster::config::unnamed_project");
        let named = format!("project = \"shop\"\n{text}");
        assert_eq!(
            parse_str("services.toml", &named, dir).unwrap().project,
            "shop"
        );
        let chosen =
            crate::config::Sources::new(&dir.join("services.toml"), &[], None, Some("cli"));
        let read = crate::config::Read {
            files: vec![crate::config::ReadFile {
                shown: "services.toml".into(),
                bytes: text.as_bytes().to_vec(),
            }],
            env: None,
            dir: dir.to_path_buf(),
            project: chosen.project,
        };
        let desired = read
            .check(&crate::config::interpolate::Vars::default(), None)
            .unwrap();
        assert_eq!(desired.project, "cli");
    }
}
