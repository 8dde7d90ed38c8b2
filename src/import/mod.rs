//! `muster import`: a compose file → a `services.toml` text. The
//! conversion ([`convert`]) is pure: it reads `env_file`s through the
//! closure it is given, checks `${VAR}` forms with the variables it is
//! given (compose's: the environment, and the `.env` beside the compose
//! file), keeps compose's service order, and says what it
//! cannot carry over as [`Warning`]s (with the compose file's line) and as
//! comments in the output. [`run`] is the command around it.

mod yaml;

use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, Item, Table, Value as TomlValue, value};

use crate::config::interpolate::Vars;
use crate::config::{self, Invalid};
use crate::error::Error;
use crate::output::Printer;
use yaml::{Node, Value};

/// Something of the compose file that the output does not carry as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line in the compose file.
    pub line: usize,
    pub message: String,
}

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Imported {
    pub toml: String,
    pub warnings: Vec<Warning>,
}

/// Reads an `env_file` named as the compose file writes it.
pub type ReadEnvFile<'a> = &'a dyn Fn(&str) -> std::io::Result<String>;

/// Converts compose text. `dir_name` is the compose file's directory name,
/// compose's default project name; `vars` are the values its `${VAR}`
/// forms take (see [`compose_vars`]): the output keeps the forms as
/// written, and leaves out a value that muster would refuse with them.
///
/// # Errors
/// A located problem when the text is not YAML or not a compose file.
pub fn convert(
    shown: &str,
    text: &str,
    dir_name: &str,
    read_env_file: ReadEnvFile<'_>,
    vars: &Vars,
) -> Result<Imported, Invalid> {
    let root = yaml::parse(shown, text)?;
    let Some(services) = root.get("services").filter(|s| !s.entries().is_empty()) else {
        return Err(Invalid {
            path: shown.to_string(),
            text: text.into(),
            problems: vec![config::Problem::new(
                "muster::import::no_services",
                "the compose file declares no `services`",
                None,
            )],
        });
    };
    let mut c = Converter {
        warnings: Vec::new(),
        read_env_file,
        vars,
        host_ports: Vec::new(),
    };
    let name = root.get("name").and_then(Node::text);
    let project = compose_project(name.as_deref().unwrap_or(dir_name));
    let mut doc = DocumentMut::new();
    doc.decor_mut().set_prefix(format!(
        "# Imported from {shown} by `muster import`.\n# Check the comments below: they say what was not carried over.\n\n"
    ));
    if let Some(name) = &name {
        if config::valid_name(&project) {
            doc.insert("project", value(project.clone()));
        } else {
            c.warn(
                &root,
                format!("project name {name:?} cannot be used; muster picks the directory's name"),
            );
        }
    }
    c.variables(services);
    let names = c.service_names(services);
    let mut services_table = Table::new();
    services_table.set_implicit(true);
    for (i, ((compose_name, node), name)) in services.entries().iter().zip(&names).enumerate() {
        let mut table = c.service(compose_name, node, &project, &names, services);
        if name != compose_name {
            let before = table
                .decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or("")
                .to_string();
            let (blank, notes) = before.split_at(usize::from(before.starts_with('\n')));
            table.decor_mut().set_prefix(format!(
                "{blank}# compose line {}: service {compose_name:?} is named {name:?} here\n{notes}",
                node.line
            ));
        }
        if i == 0 && !doc.contains_key("project") {
            // The header already ends with a blank line.
            let notes = table
                .decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or("")
                .trim_start()
                .to_string();
            table.decor_mut().set_prefix(notes);
        }
        services_table.insert(name, Item::Table(table));
    }
    c.break_cycles(&mut services_table, services, &names);
    doc.insert("services", Item::Table(services_table));
    c.top_level(&root, &mut doc);
    let mut warnings = c.warnings;
    warnings.sort_by_key(|w| w.line);
    Ok(Imported {
        toml: doc.to_string(),
        warnings,
    })
}

/// Compose's project name rule: lower case, only `[a-z0-9_-]` kept.
fn compose_project(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Keys of a service that muster has no counterpart for.
const UNSUPPORTED_NOTE: &[(&str, &str)] = &[
    ("secrets", "mount the secret as a file with `volumes`"),
    ("configs", "mount the config as a file with `volumes`"),
    ("networks", "every service is on the project's one network"),
    (
        "network_mode",
        "every service is on the project's one network",
    ),
    (
        "container_name",
        "muster names containers <project>-<service>-<n>",
    ),
    ("profiles", "every service in services.toml runs"),
    ("extends", "write the shared keys in each service"),
];

struct Converter<'a> {
    warnings: Vec<Warning>,
    read_env_file: ReadEnvFile<'a>,
    vars: &'a Vars,
    /// Fixed host ports (`8080/tcp`) and the service that publishes them.
    host_ports: Vec<(String, String)>,
}

/// Comments that go above a service's table.
#[derive(Default)]
struct Notes(Vec<(usize, String)>);

impl Notes {
    fn decor(&self) -> String {
        let mut notes = self.0.clone();
        notes.sort_by_key(|(line, _)| *line);
        notes
            .iter()
            .map(|(line, n)| format!("# compose line {line}: {n}\n"))
            .collect()
    }
}

impl Converter<'_> {
    fn warn(&mut self, at: &Node, message: String) {
        self.warnings.push(Warning {
            line: at.line,
            message,
        });
    }

    /// Warns and notes in the output.
    fn skip(&mut self, notes: &mut Notes, at: &Node, message: String) {
        notes.0.push((at.line, message.clone()));
        self.warn(at, message);
    }

    /// Compose substitutes `$VAR` / `${VAR}` from the shell when it reads
    /// the file; the import keeps them as written, and says where.
    fn variables(&mut self, node: &Node) {
        match &node.value {
            Value::Str(s) if s.replace("$$", "").contains('$') => self.warn(
                node,
                format!("{s:?} uses compose variables: muster substitutes them as compose does when it reads services.toml, from the environment and the .env beside it"),
            ),
            Value::Seq(items) => items.iter().for_each(|n| self.variables(n)),
            Value::Map(entries) => entries.iter().for_each(|(_, n)| self.variables(n)),
            _ => {}
        }
    }

    /// muster names for compose's service names, in order: sanitised and unique.
    fn service_names(&mut self, services: &Node) -> Vec<String> {
        let clean_of = |name: &str| -> String {
            let clean: String = name
                .to_lowercase()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let clean: String = clean
                .trim_start_matches(['-', '_'])
                .chars()
                .take(50)
                .collect();
            if clean.is_empty() {
                "service".into()
            } else {
                clean
            }
        };
        let first: Vec<String> = services
            .entries()
            .iter()
            .map(|(n, _)| clean_of(n))
            .collect();
        let mut out: Vec<String> = Vec::new();
        for (name, node) in services.entries() {
            let mut clean = clean_of(name);
            let mut why = "muster names are [a-z0-9][a-z0-9_-]*, at most 50 characters";
            // `db-1` beside `db` would be the name of db's first container.
            if let Some((base, n)) = clean.rsplit_once('-')
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && first.iter().any(|f| f == base)
            {
                clean = format!("{base}_{n}");
                why = "on the project network, <service>-<n> is the name of a container of another service";
            }
            let base = clean.clone();
            let mut n = 2;
            while out.contains(&clean) {
                clean = format!("{base}{n}");
                n += 1;
            }
            if clean != *name {
                self.warn(node, format!("service {name:?} is named {clean:?}: {why}"));
            }
            out.push(clean);
        }
        out
    }

    #[allow(clippy::too_many_lines)]
    fn service(
        &mut self,
        compose_name: &str,
        node: &Node,
        project: &str,
        names: &[String],
        services: &Node,
    ) -> Table {
        let mut t = Table::new();
        let mut notes = Notes::default();
        let mut env: Vec<(String, String)> = Vec::new();
        let mut env_file_vars: Vec<(String, String)> = Vec::new();
        let mut count: Option<(i64, &Node)> = None;
        let mut health: Option<Table> = None;
        let mut update: Option<Table> = None;
        let mut placement: Option<Table> = None;
        let mut fixed_ports: Vec<&Node> = Vec::new();
        match node.get("image").and_then(Node::text) {
            Some(image) if !image.trim().is_empty() && !image.contains(char::is_whitespace) => {
                t.insert("image", value(image));
                if let Some(build) = node.get("build") {
                    self.skip(&mut notes, build, "`build` is not carried over: muster runs the image named by `image`; build it first".into());
                }
            }
            _ => {
                let image = format!("{project}-{}", compose_name.to_lowercase());
                if let Some(build) = node.get("build") {
                    self.skip(&mut notes, build, format!("`build` is not carried over: the image is {image:?}, the name compose gives the image it builds; build it first (`docker compose build`)"));
                } else {
                    self.skip(
                        &mut notes,
                        node,
                        format!("the service has no usable `image`; it is set to {image:?}"),
                    );
                }
                t.insert("image", value(image));
            }
        }
        for (key, v) in node.entries() {
            match key.as_str() {
                "image" | "build" => {}
                "command" | "entrypoint" => match command(v) {
                    Some(cmd) => {
                        t.insert(key, cmd);
                    }
                    None => self.skip(
                        &mut notes,
                        v,
                        format!("an empty `{key}` is not carried over: the image's own is used"),
                    ),
                },
                "environment" => env.extend(self.pairs(v, "environment", &mut notes)),
                "env_file" => env_file_vars.extend(self.env_files(v, &mut notes)),
                "ports" => {
                    let mut arr = Array::new();
                    let mut published: Vec<String> = Vec::new();
                    for p in seq(v) {
                        for (mut port, mut fixed) in self.port(p, &mut notes) {
                            let container = container_side(&port);
                            if published.contains(&container) {
                                self.skip(&mut notes, p, format!("container port {container} is published twice; muster publishes it once, as the first entry says"));
                                continue;
                            }
                            if fixed {
                                let host = host_port(&port);
                                if let Some((_, other)) =
                                    self.host_ports.iter().find(|(h, _)| *h == host)
                                {
                                    self.skip(&mut notes, p, format!("host port {host} is already published by service {other}; this one gets an ephemeral host port"));
                                    port.clone_from(&container);
                                    fixed = false;
                                } else {
                                    self.host_ports.push((host, compose_name.to_string()));
                                }
                            }
                            if fixed {
                                fixed_ports.push(p);
                            }
                            published.push(container);
                            arr.push(port);
                        }
                    }
                    if !arr.is_empty() {
                        t.insert("ports", value(arr));
                    }
                }
                "expose" => {
                    let mut arr = Array::new();
                    for p in seq(v) {
                        let text = p.text().unwrap_or_default();
                        if text.contains('-') {
                            self.skip(
                                &mut notes,
                                p,
                                format!(
                                    "expose range {text:?} is not carried over: list each port"
                                ),
                            );
                        } else if !text.is_empty() {
                            arr.push(text);
                        }
                    }
                    if !arr.is_empty() {
                        t.insert("expose", value(arr));
                    }
                }
                "volumes" => {
                    let mut arr = Array::new();
                    let mut targets: Vec<String> = Vec::new();
                    for vol in seq(v) {
                        let Some((spec, target)) = self.volume(vol, &mut notes) else {
                            continue;
                        };
                        if targets.contains(&target) {
                            self.skip(&mut notes, vol, format!("a second volume on {target} is not carried over: one volume per container path"));
                            continue;
                        }
                        targets.push(target);
                        arr.push(spec);
                    }
                    if !arr.is_empty() {
                        t.insert("volumes", value(arr));
                    }
                }
                "labels" => {
                    let mut labels = toml_edit::InlineTable::new();
                    for (k, val) in self.pairs(v, "labels", &mut notes) {
                        if k.starts_with("io.muster.") {
                            self.skip(&mut notes, v, format!("label {k:?} is not carried over: the io.muster. prefix is muster's own"));
                        } else {
                            labels.insert(&k, val.into());
                        }
                    }
                    if !labels.is_empty() {
                        t.insert("labels", value(labels));
                    }
                }
                "depends_on" => {
                    let mut arr = Array::new();
                    let deps: Vec<(String, &Node)> = match &v.value {
                        Value::Map(entries) => {
                            entries.iter().map(|(k, n)| (k.clone(), n)).collect()
                        }
                        _ => seq(v)
                            .iter()
                            .filter_map(|n| n.text().map(|s| (s, n)))
                            .collect(),
                    };
                    for (dep, dn) in deps {
                        let Some(i) = services.entries().iter().position(|(k, _)| *k == dep) else {
                            self.skip(
                                &mut notes,
                                dn,
                                format!(
                                    "depends_on {dep:?} names no service of the file; left out"
                                ),
                            );
                            continue;
                        };
                        arr.push(names[i].as_str());
                        match dn.get("condition").and_then(Node::text).as_deref() {
                            None | Some("service_started" | "service_healthy") => {}
                            Some(cond) => self.skip(&mut notes, dn, format!("depends_on {dep:?}: condition {cond} is not carried over: muster waits for {dep} to be ready (healthy when it has a healthcheck, else running)")),
                        }
                    }
                    if !arr.is_empty() {
                        t.insert("depends_on", value(arr));
                    }
                }
                "restart" => match v.text() {
                    Some(r) if valid_restart(&r) => {
                        t.insert("restart", value(r));
                    }
                    _ => self.skip(
                        &mut notes,
                        v,
                        "`restart` is not a restart policy muster knows; left out".into(),
                    ),
                },
                "init" => match v.value {
                    Value::Bool(b) => {
                        t.insert("init", value(b));
                    }
                    _ => self.skip(
                        &mut notes,
                        v,
                        "`init` is not true or false; left out".into(),
                    ),
                },
                "user" | "stop_signal" => match v.text() {
                    Some(s) if !s.is_empty() => {
                        t.insert(key, value(s));
                    }
                    _ => self.skip(&mut notes, v, format!("`{key}` is empty; left out")),
                },
                "working_dir" => match v.text() {
                    Some(s) if s.starts_with('/') => {
                        t.insert(key, value(s));
                    }
                    _ => self.skip(
                        &mut notes,
                        v,
                        "`working_dir` is not an absolute path; left out".into(),
                    ),
                },
                "stop_grace_period" => {
                    if let Some(d) = self.duration(v, key, &mut notes) {
                        t.insert(key, value(d));
                    }
                }
                "healthcheck" => health = self.healthcheck(v, &mut notes),
                "scale" => count = v_int(v).map(|n| (n, v)),
                "deploy" => {
                    for (dk, dv) in v.entries() {
                        match dk.as_str() {
                            "replicas" => count = v_int(dv).map(|n| (n, dv)),
                            "update_config" => update = self.update(dv, &mut notes),
                            "placement" => placement = self.placement(dv, &mut notes),
                            "resources" => self.resources(dv, &mut t, &mut notes),
                            other => self.skip(
                                &mut notes,
                                dv,
                                format!("`deploy.{other}` is not carried over"),
                            ),
                        }
                    }
                }
                "cpus" => self.cpus(v, &mut t, &mut notes),
                "mem_limit" => self.memory(v, &mut t, &mut notes),
                "networks" => {
                    let custom = match &v.value {
                        Value::Map(e) => e.iter().any(|(k, _)| k != "default"),
                        _ => seq(v)
                            .iter()
                            .any(|n| n.text().as_deref() != Some("default")),
                    };
                    if custom {
                        self.skip(&mut notes, v, "`networks` is not carried over: every service is on the project's one network".into());
                    }
                }
                k if k.starts_with("x-") => {}
                other => {
                    let why = UNSUPPORTED_NOTE
                        .iter()
                        .find(|(k, _)| *k == other)
                        .map_or(String::new(), |(_, why)| format!(" ({why})"));
                    self.skip(&mut notes, v, format!("`{other}` is not carried over{why}"));
                }
            }
        }
        // compose: `environment` wins over `env_file`.
        for (k, val) in env {
            env_file_vars.retain(|(e, _)| *e != k);
            env_file_vars.push((k, val));
        }
        if !env_file_vars.is_empty() {
            let mut table = toml_edit::InlineTable::new();
            for (k, val) in env_file_vars {
                if valid_env_name(&k) {
                    table.insert(&k, val.into());
                } else {
                    self.skip(&mut notes, compose_node(node, "env"), format!("environment variable {k:?} is not carried over: muster's names are [A-Za-z_][A-Za-z0-9_]*"));
                }
            }
            if !table.is_empty() {
                t.insert("env", value(table));
            }
        }
        if let Some((n, at)) = count {
            if !(0..=1000).contains(&n) {
                self.skip(
                    &mut notes,
                    at,
                    format!("a count of {n} is out of muster's range (0 to 1000); left out"),
                );
            } else {
                if n > 1 && !fixed_ports.is_empty() {
                    // muster refuses a fixed host port on several containers:
                    // they could not all bind it (compose fails at start).
                    self.skip(&mut notes, at, "fixed host ports with several replicas cannot all bind; the host ports are left out".into());
                    if let Some(Item::Value(TomlValue::Array(ports))) = t.get_mut("ports") {
                        let mut kept = Array::new();
                        for s in ports.iter().filter_map(TomlValue::as_str) {
                            // Without its host port, one bound to an address
                            // would be published on every address.
                            match host_address(s) {
                                Some(ip) => self.skip(&mut notes, compose_node(node, "ports"), format!("port {s:?} is published on {ip} only; without its host port it would be published on every address, so it is left out")),
                                None => kept.push(container_side(s)),
                            }
                        }
                        *ports = kept;
                    }
                    fixed_ports.clear();
                }
                t.insert("count", value(n));
            }
        }
        if let Some(h) = health {
            t.insert("healthcheck", Item::Table(h));
        }
        if let Some(mut u) = update {
            let start_first = u.get("order").and_then(Item::as_str) == Some("start-first");
            if start_first && !fixed_ports.is_empty() {
                let order = ["deploy", "update_config", "order"]
                    .iter()
                    .try_fold(node, |n, k| n.get(k))
                    .unwrap_or(node);
                self.skip(&mut notes, order, "update order start-first is not carried over: a fixed host port cannot be bound by old and new container at once".into());
                u.remove("order");
            }
            if !u.is_empty() {
                t.insert("update", Item::Table(u));
            }
        }
        if let Some(p) = placement {
            t.insert("placement", Item::Table(p));
        }
        self.keep_valid(&mut t, node, &mut notes);
        t.decor_mut().set_prefix(format!("\n{}", notes.decor()));
        t
    }

    /// Compose refuses a dependency cycle, and so does muster: each
    /// `depends_on` entry that closes one is left out, with a warning.
    fn break_cycles(&mut self, services: &mut Table, compose: &Node, names: &[String]) {
        let deps = |services: &Table, name: &str| -> Vec<String> {
            services
                .get(name)
                .and_then(|t| t.get("depends_on"))
                .and_then(Item::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        // Depth-first from each service in order; an edge to a service on
        // the current path closes a cycle.
        let mut done: Vec<String> = Vec::new();
        for start in names {
            let mut path: Vec<(String, usize)> = vec![(start.clone(), 0)];
            while let Some((name, next)) = path.last().cloned() {
                if done.contains(&name) {
                    path.pop();
                    continue;
                }
                let list = deps(services, &name);
                let Some(dep) = list.get(next) else {
                    done.push(name);
                    path.pop();
                    continue;
                };
                if let Some(last) = path.last_mut() {
                    last.1 += 1;
                }
                if path.iter().any(|(p, _)| p == dep) {
                    let at = names
                        .iter()
                        .position(|n| *n == name)
                        .and_then(|i| compose.entries().get(i))
                        .map_or(compose, |(_, n)| compose_node(n, "depends_on"));
                    let message = format!(
                        "depends_on {dep:?} of service {name} closes a dependency cycle; left out"
                    );
                    self.warn(at, message.clone());
                    if let Some(t) = services.get_mut(&name).and_then(Item::as_table_mut) {
                        let before = t
                            .decor()
                            .prefix()
                            .and_then(|p| p.as_str())
                            .unwrap_or("")
                            .to_string();
                        t.decor_mut()
                            .set_prefix(format!("{before}# compose line {}: {message}\n", at.line));
                    }
                    if let Some(Item::Value(TomlValue::Array(a))) = services
                        .get_mut(&name)
                        .and_then(|t| t.get_mut("depends_on"))
                    {
                        a.retain(|v| v.as_str() != Some(dep.as_str()));
                        if a.is_empty() {
                            if let Some(t) = services.get_mut(&name).and_then(Item::as_table_mut) {
                                t.remove("depends_on");
                            }
                        }
                    }
                    if let Some(last) = path.last_mut() {
                        last.1 -= 1;
                    }
                } else if !done.contains(dep) {
                    path.push((dep.clone(), 0));
                }
            }
        }
    }

    /// Leaves out, with muster's own reason, each value that muster's
    /// rules refuse on its own (a signal name, a duration over a year, a
    /// port, a volume…): compose accepts some of them, or fails only later.
    fn keep_valid(&mut self, t: &mut Table, node: &Node, notes: &mut Notes) {
        let keys: Vec<String> = t.iter().map(|(k, _)| k.to_string()).collect();
        for key in keys {
            let at = compose_node(node, &key);
            let Some(item) = t.get_mut(&key) else {
                continue;
            };
            match (key.as_str(), item) {
                ("image" | "depends_on", _) => {}
                ("ports" | "volumes" | "expose", Item::Value(TomlValue::Array(items))) => {
                    let mut kept = Array::new();
                    for v in items.iter() {
                        let one: Array = std::iter::once(v.clone()).collect();
                        match refused(&key, &value(one), self.vars) {
                            None => kept.push(v.clone()),
                            Some(why) => {
                                self.skip(notes, at, format!("{key} {v}: {why}; left out"))
                            }
                        }
                    }
                    *items = kept;
                }
                ("env" | "labels", Item::Value(TomlValue::InlineTable(entries))) => {
                    let names: Vec<String> = entries.iter().map(|(k, _)| k.to_string()).collect();
                    for name in names {
                        let Some(v) = entries.get(&name) else {
                            continue;
                        };
                        let mut one = toml_edit::InlineTable::new();
                        one.insert(&name, v.clone());
                        if let Some(why) = refused(&key, &value(one), self.vars) {
                            entries.remove(&name);
                            self.skip(notes, at, format!("{key} {name:?}: {why}; left out"));
                        }
                    }
                }
                (_, item) => {
                    if let Some(why) = refused(&key, item, self.vars) {
                        t.remove(&key);
                        self.skip(notes, at, format!("`{key}`: {why}; left out"));
                    }
                }
            }
        }
        for key in ["ports", "volumes", "expose", "env", "labels"] {
            let empty = match t.get(key) {
                Some(Item::Value(TomlValue::Array(a))) => a.is_empty(),
                Some(Item::Value(TomlValue::InlineTable(e))) => e.is_empty(),
                _ => false,
            };
            if empty {
                t.remove(key);
            }
        }
    }

    /// `KEY=VALUE` list or map (environment, labels).
    fn pairs(&mut self, v: &Node, what: &str, notes: &mut Notes) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match &v.value {
            Value::Map(entries) => {
                for (k, n) in entries {
                    match n.text() {
                        Some(s) => out.push((k.clone(), s)),
                        None => self.skip(notes, n, format!("{what} {k:?} has no value (compose takes it from the shell); left out")),
                    }
                }
            }
            _ => {
                for item in seq(v) {
                    let text = item.text().unwrap_or_default();
                    match text.split_once('=') {
                        Some((k, val)) => out.push((k.to_string(), val.to_string())),
                        None if what == "labels" => out.push((text, String::new())),
                        None => self.skip(notes, item, format!("{what} {text:?} has no value (compose takes it from the shell); left out")),
                    }
                }
            }
        }
        out
    }

    fn env_files(&mut self, v: &Node, notes: &mut Notes) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let files: Vec<&Node> = match &v.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        for f in files {
            let (path, required) = match f.get("path") {
                Some(p) => (
                    p.text().unwrap_or_default(),
                    f.get("required")
                        .is_none_or(|r| r.value != Value::Bool(false)),
                ),
                None => (f.text().unwrap_or_default(), true),
            };
            match (self.read_env_file)(&path) {
                Ok(text) => out.extend(parse_env_file(&text)),
                Err(e) if required => {
                    self.skip(
                        notes,
                        f,
                        format!(
                            "env_file {path:?} cannot be read ({e}); its variables are missing"
                        ),
                    );
                }
                Err(_) => {}
            }
        }
        out
    }

    /// The muster port strings for one compose port, each with whether it
    /// fixes a host port.
    fn port(&mut self, p: &Node, notes: &mut Notes) -> Vec<(String, bool)> {
        let (ip, published, target, proto) = if let Value::Map(_) = p.value {
            let Some(target) = p.get("target").and_then(Node::text) else {
                self.skip(
                    notes,
                    p,
                    "a port without `target` is not carried over".into(),
                );
                return vec![];
            };
            (
                p.get("host_ip").and_then(Node::text).unwrap_or_default(),
                p.get("published").and_then(Node::text).unwrap_or_default(),
                target,
                p.get("protocol")
                    .and_then(Node::text)
                    .unwrap_or_else(|| "tcp".into()),
            )
        } else {
            let text = p.text().unwrap_or_default();
            let (body, proto) = match text.rsplit_once('/') {
                Some((b, proto)) => (b.to_string(), proto.to_string()),
                None => (text.clone(), "tcp".to_string()),
            };
            let mut parts: Vec<&str> = body.rsplitn(3, ':').collect();
            parts.reverse();
            match parts.as_slice() {
                [c] => (String::new(), String::new(), (*c).to_string(), proto),
                [h, c] => (String::new(), (*h).to_string(), (*c).to_string(), proto),
                [ip, h, c] => ((*ip).to_string(), (*h).to_string(), (*c).to_string(), proto),
                _ => (String::new(), String::new(), String::new(), proto),
            }
        };
        let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
        if target.contains('-') || published.contains('-') {
            let range = if published.is_empty() {
                target.clone()
            } else {
                format!("{published}:{target}")
            };
            self.skip(
                notes,
                p,
                format!("port range {range} is not carried over: list each port"),
            );
            return vec![];
        }
        if target.parse::<u16>().map_or(true, |n| n == 0) || !(proto == "tcp" || proto == "udp") {
            self.skip(
                notes,
                p,
                format!(
                    "port {target}/{proto} is not a tcp or udp port muster can publish; left out"
                ),
            );
            return vec![];
        }
        let suffix = if proto == "udp" { "/udp" } else { "" };
        let spec = match (ip.is_empty() || ip == "0.0.0.0", published.is_empty()) {
            (_, true) => {
                if !ip.is_empty() && ip != "0.0.0.0" {
                    self.skip(notes, p, format!("port {target}: host address {ip} with an ephemeral host port is not carried over; published on every address"));
                }
                return vec![(format!("{target}{suffix}"), false)];
            }
            (true, false) => format!("{published}:{target}{suffix}"),
            (false, false) if ip.contains(':') => format!("[{ip}]:{published}:{target}{suffix}"),
            (false, false) => format!("{ip}:{published}:{target}{suffix}"),
        };
        vec![(spec, true)]
    }

    /// The muster volume string and its container path.
    fn volume(&mut self, v: &Node, notes: &mut Notes) -> Option<(String, String)> {
        let (source, target, read_only) = if let Value::Map(_) = v.value {
            let kind = v
                .get("type")
                .and_then(Node::text)
                .unwrap_or_else(|| "volume".into());
            let target = v.get("target").and_then(Node::text).unwrap_or_default();
            let mut source = v.get("source").and_then(Node::text).unwrap_or_default();
            match kind.as_str() {
                "volume" => {}
                "bind" => {
                    if !source.starts_with(['/', '.', '~']) {
                        source = format!("./{source}");
                    }
                }
                other => {
                    self.skip(
                        notes,
                        v,
                        format!("a `{other}` mount on {target} is not carried over"),
                    );
                    return None;
                }
            }
            let read_only = v
                .get("read_only")
                .is_some_and(|r| r.value == Value::Bool(true));
            for extra in ["bind", "volume", "tmpfs", "consistency"] {
                if let Some(n) = v.get(extra) {
                    self.skip(
                        notes,
                        n,
                        format!("volume option `{extra}` on {target} is not carried over"),
                    );
                }
            }
            (source, target, read_only)
        } else {
            let text = v.text().unwrap_or_default();
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [s, t] => ((*s).to_string(), (*t).to_string(), false),
                [s, t, mode] => {
                    let modes: Vec<&str> = mode.split(',').collect();
                    let other: Vec<&str> = modes
                        .iter()
                        .copied()
                        .filter(|m| !matches!(*m, "ro" | "rw"))
                        .collect();
                    if !other.is_empty() {
                        self.skip(
                            notes,
                            v,
                            format!(
                                "volume mode {:?} on {t} is not carried over",
                                other.join(",")
                            ),
                        );
                    }
                    ((*s).to_string(), (*t).to_string(), modes.contains(&"ro"))
                }
                _ => (String::new(), text.clone(), false),
            }
        };
        if source.is_empty() {
            self.skip(notes, v, format!("the anonymous volume on {target:?} is not carried over: give it a name (`NAME:{target}`)"));
            return None;
        }
        if !target.starts_with('/') {
            self.skip(
                notes,
                v,
                format!("volume target {target:?} is not an absolute path; left out"),
            );
            return None;
        }
        if source.contains("{ordinal}") || target.contains("{ordinal}") {
            self.skip(notes, v, format!("volume {source}:{target} is not carried over: `{{ordinal}}` means something to muster"));
            return None;
        }
        let target = if target.len() > 1 {
            target.trim_end_matches('/')
        } else {
            &target
        };
        let spec = if read_only {
            format!("{source}:{target}:ro")
        } else {
            format!("{source}:{target}")
        };
        Some((spec, target.to_string()))
    }

    fn duration(&mut self, v: &Node, what: &str, notes: &mut Notes) -> Option<String> {
        let text = v.text()?;
        if config::parse_duration(&text).is_ok() {
            Some(text)
        } else {
            self.skip(
                notes,
                v,
                format!("`{what}` {text:?} is not a duration muster reads; left out"),
            );
            None
        }
    }

    fn healthcheck(&mut self, v: &Node, notes: &mut Notes) -> Option<Table> {
        if v.get("disable")
            .is_some_and(|d| d.value == Value::Bool(true))
        {
            self.skip(notes, v, "`healthcheck.disable` is not carried over: the image's own healthcheck, if any, applies".into());
            return None;
        }
        let test = v.get("test");
        let test_value = match test.map(|t| &t.value) {
            Some(Value::Seq(items)) => {
                let words: Vec<String> = items.iter().filter_map(Node::text).collect();
                match words.first().map(String::as_str) {
                    Some("NONE") => {
                        self.skip(notes, v, "healthcheck test NONE is not carried over: the image's own healthcheck, if any, applies".into());
                        return None;
                    }
                    Some("CMD" | "CMD-SHELL") if words.len() > 1 => {
                        Some(value(words.iter().collect::<Array>()))
                    }
                    _ => None,
                }
            }
            Some(Value::Str(s)) if !s.trim().is_empty() => Some(value(s.clone())),
            _ => None,
        };
        let Some(test_value) = test_value else {
            self.skip(
                notes,
                v,
                "a healthcheck without a usable `test` is not carried over".into(),
            );
            return None;
        };
        let mut t = Table::new();
        t.insert("test", test_value);
        for (k, n) in v.entries() {
            match k.as_str() {
                "test" => {}
                "interval" | "timeout" | "start_period" => {
                    if let Some(d) = self.duration(n, &format!("healthcheck.{k}"), notes) {
                        t.insert(k, value(d));
                    }
                }
                "retries" => match v_int(n) {
                    Some(r) if (1..=100).contains(&r) => {
                        t.insert(k, value(r));
                    }
                    _ => self.skip(
                        notes,
                        n,
                        "healthcheck `retries` is not from 1 to 100; left out".into(),
                    ),
                },
                other => self.skip(
                    notes,
                    n,
                    format!("`healthcheck.{other}` is not carried over"),
                ),
            }
        }
        Some(t)
    }

    fn update(&mut self, v: &Node, notes: &mut Notes) -> Option<Table> {
        let mut t = Table::new();
        for (k, n) in v.entries() {
            match (k.as_str(), v_int(n), n.text()) {
                ("parallelism", Some(p), _) if (1..=1000).contains(&p) => {
                    t.insert(k, value(p));
                }
                ("order", _, Some(o)) if o == "stop-first" || o == "start-first" => {
                    t.insert(k, value(o));
                }
                (other, _, _) => self.skip(
                    notes,
                    n,
                    format!("`deploy.update_config.{other}` is not carried over"),
                ),
            }
        }
        (!t.is_empty()).then_some(t)
    }

    /// `deploy.placement`: its constraints and `max_replicas_per_node`
    /// (used on a swarm).
    fn placement(&mut self, v: &Node, notes: &mut Notes) -> Option<Table> {
        let mut t = Table::new();
        for (k, n) in v.entries() {
            match (k.as_str(), v_int(n)) {
                ("constraints", _) => {
                    let constraints: Vec<String> = seq(n).iter().filter_map(|c| c.text()).collect();
                    if constraints.is_empty() {
                        self.skip(
                            notes,
                            n,
                            "`deploy.placement.constraints` is not a list of strings; left out"
                                .into(),
                        );
                    } else {
                        t.insert(k, value(toml_edit::Array::from_iter(constraints)));
                    }
                }
                ("max_replicas_per_node", Some(m)) if (1..=1000).contains(&m) => {
                    t.insert(k, value(m));
                }
                (other, _) => self.skip(
                    notes,
                    n,
                    format!("`deploy.placement.{other}` is not carried over"),
                ),
            }
        }
        (!t.is_empty()).then_some(t)
    }

    fn resources(&mut self, v: &Node, t: &mut Table, notes: &mut Notes) {
        for (k, n) in v.entries() {
            if k != "limits" {
                self.skip(
                    notes,
                    n,
                    format!("`deploy.resources.{k}` is not carried over"),
                );
                continue;
            }
            for (lk, ln) in n.entries() {
                match lk.as_str() {
                    "cpus" => self.cpus(ln, t, notes),
                    "memory" => self.memory(ln, t, notes),
                    other => self.skip(
                        notes,
                        ln,
                        format!("`deploy.resources.limits.{other}` is not carried over"),
                    ),
                }
            }
        }
    }

    fn cpus(&mut self, v: &Node, t: &mut Table, notes: &mut Notes) {
        match v.text().and_then(|s| s.parse::<f64>().ok()) {
            Some(c) if c > 0.0 && c <= 1024.0 => {
                t.insert("cpus", value(c));
            }
            _ => self.skip(
                notes,
                v,
                "`cpus` is not a number in (0, 1024]; left out".into(),
            ),
        }
    }

    fn memory(&mut self, v: &Node, t: &mut Table, notes: &mut Notes) {
        match v.text().and_then(|s| memory(&s)) {
            Some(m) => {
                t.insert("memory", value(m));
            }
            None => self.skip(
                notes,
                v,
                "the memory limit is not a size of at least 6MiB muster reads; left out".into(),
            ),
        }
    }

    /// Top-level `volumes` and what has no counterpart.
    fn top_level(&mut self, root: &Node, doc: &mut DocumentMut) {
        let mut notes = Notes::default();
        let mut volumes = Table::new();
        volumes.set_implicit(true);
        for (key, v) in root.entries() {
            match key.as_str() {
                "services" | "name" | "version" => {}
                k if k.starts_with("x-") => {}
                "volumes" => {
                    for (name, vn) in v.entries() {
                        let external = vn
                            .get("external")
                            .is_some_and(|e| e.value == Value::Bool(true));
                        let engine_name = vn.get("name").and_then(Node::text);
                        if external {
                            let mut t = Table::new();
                            t.insert("external", value(true));
                            if let Some(n) = engine_name {
                                t.insert("name", value(n));
                            }
                            volumes.insert(name, Item::Table(t));
                        } else if let Some(n) = engine_name {
                            self.skip(&mut notes, vn, format!("volume {name}: `name: {n}` is not carried over: muster names it <project>_{name}"));
                        }
                        for (vk, vv) in vn.entries() {
                            if !matches!(vk.as_str(), "external" | "name") {
                                self.skip(
                                    &mut notes,
                                    vv,
                                    format!("volume {name}: `{vk}` is not carried over"),
                                );
                            }
                        }
                    }
                }
                "networks" => {
                    if v.entries().iter().any(|(k, _)| k != "default") {
                        self.skip(
                            &mut notes,
                            v,
                            "top-level `networks` is not carried over: the project has one network"
                                .into(),
                        );
                    }
                }
                other => self.skip(
                    &mut notes,
                    v,
                    format!("top-level `{other}` is not carried over"),
                ),
            }
        }
        if !volumes.is_empty() {
            doc.insert("volumes", Item::Table(volumes));
        }
        if !notes.0.is_empty() {
            doc.decor_mut().set_suffix(format!("\n{}", notes.decor()));
        }
    }
}

fn seq(v: &Node) -> &[Node] {
    match &v.value {
        Value::Seq(items) => items,
        _ => std::slice::from_ref(v),
    }
}

fn v_int(v: &Node) -> Option<i64> {
    match &v.value {
        Value::Int(i) => Some(*i),
        Value::Str(s) => s.parse().ok(),
        _ => None,
    }
}

/// `command` / `entrypoint`: a string stays a string (both split it like a
/// shell), a list stays a list.
fn command(v: &Node) -> Option<Item> {
    match &v.value {
        Value::Seq(items) if !items.is_empty() => Some(value(
            items.iter().filter_map(Node::text).collect::<Array>(),
        )),
        Value::Str(s) if !s.trim().is_empty() => Some(value(s.clone())),
        _ => None,
    }
}

/// The values compose gives `${VAR}` forms: the environment's, then those
/// of the `.env` file beside the compose file (read with `read`).
pub fn compose_vars(read: ReadEnvFile<'_>) -> Vars {
    Vars {
        dotenv: read(".env")
            .ok()
            .and_then(|text| config::interpolate::parse_dotenv(&text).ok())
            .unwrap_or_default(),
        ..Vars::from_process()
    }
}

/// Why muster refuses `key = item` in a service of its own, with `vars`
/// for its `${VAR}` forms, if it does.
fn refused(key: &str, item: &Item, vars: &Vars) -> Option<String> {
    let mut service = Table::new();
    service.insert("image", value("x"));
    service.insert(key, item.clone());
    let mut services = Table::new();
    services.insert("x", Item::Table(service));
    let mut doc = DocumentMut::new();
    doc.insert("project", value("x"));
    doc.insert("services", Item::Table(services));
    let invalid =
        config::parse_str_with("services.toml", &doc.to_string(), Path::new("."), vars).err()?;
    let why = invalid.problems.first().map(|p| {
        p.message
            .strip_prefix("service `x`: ")
            .unwrap_or(&p.message)
            .replace("`services.x.", "`")
    });
    Some(why.unwrap_or_else(|| "muster refuses it".into()))
}

/// The compose node a muster key of a service came from, for its line.
fn compose_node<'n>(service: &'n Node, key: &str) -> &'n Node {
    let from: &[&str] = match key {
        "env" => &["environment", "env_file"],
        "count" => &["deploy", "scale"],
        "update" | "placement" | "cpus" | "memory" => &["deploy", "cpus", "mem_limit"],
        other => &[other],
    };
    from.iter().find_map(|k| service.get(k)).unwrap_or(service)
}

/// `"8080:80"` → `"80"`: the container side of a port.
fn container_side(spec: &str) -> String {
    spec.rsplit(':').next().unwrap_or(spec).to_string()
}

/// `"127.0.0.1:8080:80"` → `Some("127.0.0.1")`: the address a port is
/// published on, when one is named.
fn host_address(spec: &str) -> Option<&str> {
    let body = spec.split('/').next().unwrap_or(spec);
    let mut parts = body.rsplitn(3, ':');
    let (_, _, ip) = (parts.next()?, parts.next()?, parts.next()?);
    (!ip.is_empty()).then_some(ip)
}

/// `"127.0.0.1:8080:80/udp"` → `"8080/udp"`: the host side of a fixed port.
fn host_port(spec: &str) -> String {
    let (body, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    let host = body.rsplit_once(':').map_or(body, |(h, _)| h);
    let port = host.rsplit(':').next().unwrap_or(host);
    format!("{port}/{proto}")
}

fn valid_restart(r: &str) -> bool {
    matches!(r, "no" | "always" | "unless-stopped" | "on-failure")
        || r.strip_prefix("on-failure:")
            .is_some_and(|n| n.parse::<u32>().is_ok())
}

fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Compose sizes (`256m`, `1g`, `512k`, `1024b`, `1gb`; binary units, as
/// docker reads them) → muster's (`256MiB`); `None` under 6MiB or unreadable.
fn memory(text: &str) -> Option<String> {
    let s = text.trim().to_lowercase();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let (mult, name) = match unit.trim() {
        "" | "b" => (1.0, "B"),
        "k" | "kb" => (1024.0, "KiB"),
        "m" | "mb" => (1024.0 * 1024.0, "MiB"),
        "g" | "gb" => (1024.0 * 1024.0 * 1024.0, "GiB"),
        _ => return None,
    };
    if n * mult < 6.0 * 1024.0 * 1024.0 || !(n * mult).is_finite() {
        return None;
    }
    Some(if n.fract() == 0.0 {
        format!("{n}{name}")
    } else {
        format!("{}B", (n * mult) as u64)
    })
}

/// An env file as compose reads it: `KEY=VALUE` lines, `#` comments,
/// optional `export `, optional matching quotes.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = ['"', '\'']
            .iter()
            .find_map(|q| v.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)))
            .unwrap_or(v);
        out.push((k.trim().to_string(), v.to_string()));
    }
    out
}

/// Where `muster import` writes: `-o FILE` (with `--force` to replace it), or stdout.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub compose: PathBuf,
    pub out: Option<PathBuf>,
    pub force: bool,
}

/// `muster import`: converts, prints the warnings, checks that the result
/// validates, and writes it.
///
/// # Errors
/// An unreadable or invalid compose file ([`Error::Invalid`]); an output
/// that does not validate (a bug: the diagnostics are shown); an existing
/// output file without `--force`, or one that cannot be written.
pub fn run(printer: &Printer, req: &ImportRequest) -> Result<(), Error> {
    let shown = req.compose.display().to_string();
    let unreadable = |e: std::io::Error| Invalid {
        path: shown.clone(),
        text: "".into(),
        problems: vec![config::Problem::new(
            "muster::import::unreadable",
            format!("cannot read the compose file: {e}"),
            None,
        )],
    };
    let bytes = crate::safe_file::read_regular(&req.compose, config::MAX_FILE_BYTES as u64)
        .map_err(unreadable)?;
    let text = String::from_utf8_lossy(&bytes);
    let dir = req
        .compose
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir_name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let read = |name: &str| -> std::io::Result<String> {
        let bytes = crate::safe_file::read_regular(&dir.join(name), config::MAX_FILE_BYTES as u64)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let vars = compose_vars(&read);
    let imported = convert(&shown, &text, &dir_name, &read, &vars)?;
    for w in &imported.warnings {
        printer.err(&format!(
            "warning: {shown}:{}: {}",
            w.line,
            crate::sanitize::text(&w.message)
        ));
    }
    // Absolute, so that the project name comes from the directory's name.
    let out_dir = crate::config::dir_of(req.out.as_deref().unwrap_or(Path::new("services.toml")));
    let out_shown = req
        .out
        .as_ref()
        .map_or("services.toml".to_string(), |p| p.display().to_string());
    let desired =
        config::parse_str_with(&out_shown, &imported.toml, &out_dir, &vars).map_err(|invalid| {
            let why = if imported
                .warnings
                .iter()
                .any(|w| w.message.contains("compose variables"))
            {
                "it keeps the compose file's variables as written; replace them and import again"
            } else {
                "a bug; please report it"
            };
            Error::Other(format!(
                "muster import made a file that does not validate ({why}):\n{}",
                invalid.render_plain()
            ))
        })?;
    match &req.out {
        None => printer.out(&imported.toml),
        Some(path) => {
            if !req.force && std::fs::symlink_metadata(path).is_ok() {
                return Err(Error::Other(format!(
                    "{} exists; nothing was written (--force replaces it)",
                    path.display()
                )));
            }
            crate::safe_file::write_replacing(path, imported.toml.as_bytes(), None)
                .map_err(|e| Error::Other(format!("writing {}: {e}", path.display())))?;
            printer.info(&format!(
                "wrote {} ({}, {})",
                path.display(),
                config::plural(desired.services.len(), "service"),
                config::plural(imported.warnings.len(), "warning")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_sides() {
        assert_eq!(host_port("127.0.0.1:8080:80/udp"), "8080/udp");
        assert_eq!(host_port("[::1]:6001:6001"), "6001/tcp");
        assert_eq!(host_port("8080:80"), "8080/tcp");
        assert_eq!(container_side("5353:53/udp"), "53/udp");
    }

    #[test]
    fn sizes() {
        assert_eq!(memory("256M").as_deref(), Some("256MiB"));
        assert_eq!(memory("1g").as_deref(), Some("1GiB"));
        assert_eq!(memory("1gb").as_deref(), Some("1GiB"));
        assert_eq!(memory("1.5g").as_deref(), Some("1610612736B"));
        assert_eq!(memory("1k"), None);
        assert_eq!(memory("12x"), None);
    }

    #[test]
    fn env_files() {
        let vars = parse_env_file("# c\nA=1\nexport B=\"two words\"\n\nC='x'\nbad\n");
        assert_eq!(
            vars,
            [
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into())
            ]
        );
    }
}
