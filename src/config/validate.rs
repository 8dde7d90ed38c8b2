//! Semantic checks: the rules a schema cannot say (names, durations, ports,
//! volumes, dependencies), turning a [`File`] into a [`Desired`]. Pure.
//! Every problem is collected, each located through the TOML tree.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::DeTable;

use super::diagnostic::Problem;
use super::file::{self, Backend, Command, EnvValue, File, Mode, PortValue, UpdateOrder};
use super::locate::{Seg, nearest, span_at};
use super::model::{
    ContainerPort, Desired, Healthcheck, Port, Proto, Restart, Service, Update, Volume,
    VolumeSource,
};

/// Checks `file` (parsed from `root`, in directory `dir`).
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
) -> Result<Desired, Vec<Problem>> {
    let mut v = Validator {
        root,
        problems: Vec::new(),
    };
    let project = match &file.project {
        Some(p) => {
            if !valid_name(p) {
                v.err(
                    "muster::config::invalid_name",
                    format!("project name {p:?} is not valid"),
                    &[Seg::Key("project")],
                    "use lower-case letters, digits, `-` and `_`, starting with a letter or digit",
                );
            }
            p.clone()
        }
        None => default_project(dir),
    };
    let mut services = BTreeMap::new();
    for (name, raw) in &file.services {
        if let Some(s) = v.service(name, raw, dir) {
            services.insert(name.clone(), s);
        }
    }
    v.cross_checks(file, declared, &services);
    if v.problems.is_empty() {
        Ok(Desired {
            project,
            backend: file.backend.unwrap_or(Backend::Docker),
            services,
        })
    } else {
        Err(v.problems)
    }
}

/// The default project name: the directory's name, sanitised.
pub fn default_project(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_start_matches(['-', '_']).to_string();
    if out.is_empty() {
        "default".into()
    } else {
        out
    }
}

/// `[a-z0-9][a-z0-9_-]*`
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Validator<'r, 'i> {
    root: &'r Spanned<DeTable<'i>>,
    problems: Vec<Problem>,
}

/// A fixed host port: the address it binds and who declared it.
type HostBinding = (String, u16, Proto);

impl Validator<'_, '_> {
    fn span(&self, path: &[Seg<'_>], key: bool) -> Option<Range<usize>> {
        span_at(self.root, path, key)
    }

    fn err(&mut self, code: &'static str, msg: String, path: &[Seg<'_>], help: &str) {
        let span = self.span(path, false);
        self.problems
            .push(Problem::new(code, msg, span).label("here").help(help));
    }

    fn service(&mut self, name: &str, raw: &file::Service, dir: &Path) -> Option<Service> {
        let before = self.problems.len();
        let base = [Seg::Key("services"), Seg::Key(name)];
        let at = |k: &'static str| [base[0], base[1], Seg::Key(k)];
        if !valid_name(name) || name.len() > 50 {
            let span = self.span(&base, true);
            self.problems.push(
                Problem::new(
                    "muster::config::invalid_name",
                    format!("service name {name:?} is not valid"),
                    span,
                )
                .label("this name")
                .help("use at most 50 lower-case letters, digits, `-` and `_`, starting with a letter or digit"),
            );
        }
        if raw.image.trim().is_empty() || raw.image.chars().any(char::is_whitespace) {
            self.err(
                "muster::config::invalid_value",
                format!(
                    "service `{name}`: image {:?} is not an image reference",
                    raw.image
                ),
                &at("image"),
                "write an image reference such as `nginx:1.27`",
            );
        }
        let mode = raw.mode.unwrap_or(Mode::Parallel);
        let count = raw.count.unwrap_or(1).clamp(0, 1000) as u32;
        let command = self.command(raw.command.as_ref(), &at("command"), name, "command");
        let entrypoint = self.command(
            raw.entrypoint.as_ref(),
            &at("entrypoint"),
            name,
            "entrypoint",
        );

        let mut env = BTreeMap::new();
        for (k, val) in raw.env.iter().flatten() {
            if !valid_env_name(k) {
                let span = self.span(&[base[0], base[1], Seg::Key("env"), Seg::Key(k)], true);
                self.problems.push(
                    Problem::new(
                        "muster::config::invalid_env_name",
                        format!("service `{name}`: {k:?} is not a valid environment variable name"),
                        span,
                    )
                    .label("this name")
                    .help("use letters, digits and `_`, not starting with a digit"),
                );
            }
            let text = match val {
                EnvValue::Text(s) => s.clone(),
                EnvValue::Integer(i) => i.to_string(),
                EnvValue::Float(f) => f.to_string(),
                EnvValue::Bool(b) => b.to_string(),
            };
            env.insert(k.clone(), text);
        }

        let mut ports = Vec::new();
        for (i, p) in raw.ports.iter().flatten().enumerate() {
            let path = [base[0], base[1], Seg::Key("ports"), Seg::Index(i)];
            match parse_port(p) {
                Ok(port) => ports.push(port),
                Err(why) => self.err(
                    "muster::config::invalid_port",
                    format!("service `{name}`: {why}"),
                    &path,
                    PORT_HELP,
                ),
            }
        }
        let mut expose = Vec::new();
        for (i, p) in raw.expose.iter().flatten().enumerate() {
            let path = [base[0], base[1], Seg::Key("expose"), Seg::Index(i)];
            match parse_port(p) {
                Ok(Port {
                    host_port: None,
                    host_ip: None,
                    container,
                }) => expose.push(container),
                Ok(_) => self.err(
                    "muster::config::invalid_port",
                    format!("service `{name}`: `expose` takes container ports only"),
                    &path,
                    "write `9000` or `9000/udp`; publish host ports with `ports`",
                ),
                Err(why) => self.err(
                    "muster::config::invalid_port",
                    format!("service `{name}`: {why}"),
                    &path,
                    PORT_HELP,
                ),
            }
        }
        let mut seen_ports = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            if !seen_ports.insert(p.container) {
                self.err(
                    "muster::config::duplicate_port",
                    format!(
                        "service `{name}`: container port {} is published twice",
                        p.container
                    ),
                    &[base[0], base[1], Seg::Key("ports"), Seg::Index(i)],
                    "publish each container port once",
                );
            }
        }

        let mut volumes = Vec::new();
        let mut targets = BTreeSet::new();
        for (i, spec) in raw.volumes.iter().flatten().enumerate() {
            let path = [base[0], base[1], Seg::Key("volumes"), Seg::Index(i)];
            match parse_volume(spec, dir) {
                Ok(vol) => {
                    if !targets.insert(vol.target.clone()) {
                        self.err(
                            "muster::config::duplicate_volume",
                            format!(
                                "service `{name}`: two volumes are mounted at {}",
                                vol.target
                            ),
                            &path,
                            "mount one volume per container path",
                        );
                    }
                    volumes.push(vol);
                }
                Err((code, why, help)) => {
                    self.err(code, format!("service `{name}`: {why}"), &path, help)
                }
            }
        }

        let mut labels = BTreeMap::new();
        for (k, val) in raw.labels.iter().flatten() {
            if k.starts_with("io.muster.") {
                let span = self.span(&[base[0], base[1], Seg::Key("labels"), Seg::Key(k)], true);
                self.problems.push(
                    Problem::new(
                        "muster::config::reserved_label",
                        format!("service `{name}`: label `{k}` is reserved for muster"),
                        span,
                    )
                    .label("reserved")
                    .help("choose a label outside the `io.muster.` namespace"),
                );
            }
            labels.insert(k.clone(), val.clone());
        }

        let restart = match raw.restart.as_deref() {
            None | Some("no") => Restart::No,
            Some("always") => Restart::Always,
            Some("unless-stopped") => Restart::UnlessStopped,
            Some("on-failure") => Restart::OnFailure(None),
            Some(other) => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
                Some(Ok(n)) => Restart::OnFailure(Some(n)),
                _ => {
                    self.err(
                        "muster::config::invalid_value",
                        format!("service `{name}`: restart policy {other:?} is not known"),
                        &at("restart"),
                        "use `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`",
                    );
                    Restart::No
                }
            },
        };

        if let Some(sig) = &raw.stop_signal {
            let ok = sig.parse::<u32>().is_ok_and(|n| (1..=64).contains(&n))
                || sig.strip_prefix("SIG").is_some_and(|s| {
                    !s.is_empty()
                        && s.chars().all(|c| {
                            c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-'
                        })
                });
            if !ok {
                self.err(
                    "muster::config::invalid_value",
                    format!("service `{name}`: {sig:?} is not a signal"),
                    &at("stop_signal"),
                    "write a signal name such as `SIGTERM` or `SIGQUIT`",
                );
            }
        }
        for (key, value) in [("user", &raw.user), ("working_dir", &raw.working_dir)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                self.err(
                    "muster::config::invalid_value",
                    format!("service `{name}`: `{key}` is empty"),
                    &at(key),
                    "remove the key or give it a value",
                );
            }
        }
        if raw
            .working_dir
            .as_deref()
            .is_some_and(|w| !w.is_empty() && !w.starts_with('/'))
        {
            self.err(
                "muster::config::invalid_value",
                format!("service `{name}`: working_dir must be an absolute path"),
                &at("working_dir"),
                "start it with `/`",
            );
        }

        let stop_grace_period = self.duration(
            raw.stop_grace_period.as_deref(),
            &at("stop_grace_period"),
            name,
            Duration::from_secs(10),
        );
        let ready_timeout = self.duration(
            raw.ready_timeout.as_deref(),
            &at("ready_timeout"),
            name,
            Duration::from_secs(60),
        );
        if raw.ready_timeout.is_some() && ready_timeout.is_zero() {
            self.err(
                "muster::config::out_of_range",
                format!("service `{name}`: ready_timeout must be more than 0s"),
                &at("ready_timeout"),
                "give containers time to become ready, e.g. \"60s\"",
            );
        }
        if let Some(c) = raw.cpus
            && !(c > 0.0 && c <= 1024.0)
        {
            self.err(
                "muster::config::out_of_range",
                format!("service `{name}`: cpus must be more than 0 and at most 1024"),
                &at("cpus"),
                "write a CPU share such as 0.5 or 2",
            );
        }
        let memory = raw.memory.as_deref().and_then(|m| match parse_memory(m) {
            Ok(b) if b >= 6 * 1024 * 1024 => Some(b),
            Ok(_) => {
                self.err(
                    "muster::config::out_of_range",
                    format!("service `{name}`: memory {m:?} is below the engine's minimum of 6MiB"),
                    &at("memory"),
                    "give at least \"6MiB\"",
                );
                None
            }
            Err(why) => {
                self.err(
                    "muster::config::invalid_memory",
                    format!("service `{name}`: {why}"),
                    &at("memory"),
                    "write a size such as \"256MiB\", \"1GiB\" or \"512MB\"",
                );
                None
            }
        });

        let healthcheck = raw.healthcheck.as_ref().map(|h| {
            let hc = |k: &'static str| [base[0], base[1], Seg::Key("healthcheck"), Seg::Key(k)];
            let test = match &h.test {
                Command::Shell(s) if !s.trim().is_empty() => {
                    vec!["CMD-SHELL".to_string(), s.clone()]
                }
                Command::Args(a) if !a.is_empty() => {
                    if matches!(a[0].as_str(), "CMD" | "CMD-SHELL" | "NONE") {
                        a.clone()
                    } else {
                        let mut t = vec!["CMD".to_string()];
                        t.extend(a.iter().cloned());
                        t
                    }
                }
                _ => {
                    self.err(
                        "muster::config::invalid_value",
                        format!("service `{name}`: healthcheck.test is empty"),
                        &hc("test"),
                        "write a check such as [\"CMD\", \"pg_isready\"] or a shell string",
                    );
                    Vec::new()
                }
            };
            let d = |v: &mut Self, k: &'static str, val: Option<&str>, def: u64| {
                v.duration(val, &hc(k), name, Duration::from_secs(def))
            };
            let interval = d(self, "interval", h.interval.as_deref(), 30);
            let timeout = d(self, "timeout", h.timeout.as_deref(), 30);
            let start_period = d(self, "start_period", h.start_period.as_deref(), 0);
            for (k, val) in [("interval", interval), ("timeout", timeout)] {
                if val < Duration::from_millis(1) {
                    self.err(
                        "muster::config::out_of_range",
                        format!("service `{name}`: healthcheck.{k} must be at least 1ms"),
                        &hc(k),
                        "write a duration such as \"2s\"",
                    );
                }
            }
            Healthcheck {
                test,
                interval,
                timeout,
                retries: h.retries.unwrap_or(3).clamp(1, 100) as u32,
                start_period,
            }
        });

        let update = Update {
            parallelism: raw
                .update
                .as_ref()
                .and_then(|u| u.parallelism)
                .unwrap_or(1)
                .clamp(1, 1000) as u32,
            order: raw
                .update
                .as_ref()
                .and_then(|u| u.order)
                .unwrap_or(UpdateOrder::StopFirst),
        };
        let fixed: Vec<&Port> = ports.iter().filter(|p| p.host_port.is_some()).collect();
        if !fixed.is_empty() && update.order == UpdateOrder::StartFirst {
            self.err(
                "muster::config::start_first_fixed_port",
                format!("service `{name}`: start-first updates cannot publish a fixed host port"),
                &[base[0], base[1], Seg::Key("update"), Seg::Key("order")],
                "the replacement would need the port while the old container still holds it; use stop-first or an ephemeral port",
            );
        }

        let depends_on = raw.depends_on.clone().unwrap_or_default();
        if self.problems.len() > before {
            return None;
        }
        Some(Service {
            name: name.to_string(),
            image: raw.image.clone(),
            count,
            mode,
            command,
            entrypoint,
            env,
            ports,
            expose,
            volumes,
            labels,
            depends_on,
            restart,
            init: raw.init.unwrap_or(false),
            user: raw.user.clone(),
            working_dir: raw.working_dir.clone(),
            stop_signal: raw.stop_signal.clone(),
            stop_grace_period,
            ready_timeout,
            cpus: raw.cpus,
            memory,
            healthcheck,
            update,
        })
    }

    fn command(
        &mut self,
        c: Option<&Command>,
        path: &[Seg<'_>],
        service: &str,
        key: &str,
    ) -> Option<Vec<String>> {
        match c? {
            Command::Args(a) => Some(a.clone()),
            Command::Shell(s) => match shell_words::split(s) {
                Ok(words) => Some(words),
                Err(_) => {
                    self.err(
                        "muster::config::invalid_command",
                        format!("service `{service}`: {key} has an unclosed quote"),
                        path,
                        "close the quote, or write the command as an array of strings",
                    );
                    None
                }
            },
        }
    }

    fn duration(
        &mut self,
        v: Option<&str>,
        path: &[Seg<'_>],
        service: &str,
        default: Duration,
    ) -> Duration {
        let Some(text) = v else { return default };
        match parse_duration(text) {
            Ok(d) => d,
            Err(why) => {
                self.err(
                    "muster::config::invalid_duration",
                    format!("service `{service}`: {why}"),
                    path,
                    "write a duration such as \"500ms\", \"10s\" or \"1m30s\"",
                );
                default
            }
        }
    }

    fn cross_checks(
        &mut self,
        file: &File,
        declared: &BTreeSet<String>,
        services: &BTreeMap<String, Service>,
    ) {
        // Fixed host ports: one container per binding, one service per binding.
        let mut owners: BTreeMap<HostBinding, &str> = BTreeMap::new();
        for (name, s) in services {
            for (i, p) in s.ports.iter().enumerate() {
                let Some(host) = p.host_port else { continue };
                let path = [
                    Seg::Key("services"),
                    Seg::Key(name),
                    Seg::Key("ports"),
                    Seg::Index(i),
                ];
                if s.count > 1 {
                    self.err(
                        "muster::config::fixed_port_with_count",
                        format!("service `{name}`: fixed host port {host} with count = {}", s.count),
                        &path,
                        "only one container can bind a host port; publish the container port alone (e.g. \"80\") for an ephemeral host port",
                    );
                }
                let ip = p.host_ip.clone().unwrap_or_default();
                let wildcard = ip.is_empty() || ip == "0.0.0.0";
                let clash = owners.iter().find(|((oip, op, oproto), _)| {
                    *op == host
                        && *oproto == p.container.proto
                        && (wildcard || oip.is_empty() || oip == "0.0.0.0" || *oip == ip)
                });
                if let Some((_, other)) = clash {
                    let other = other.to_string();
                    self.err(
                        "muster::config::port_conflict",
                        format!(
                            "services `{other}` and `{name}` both publish host port {host}/{}",
                            p.container.proto.as_str()
                        ),
                        &path,
                        "give each service its own host port",
                    );
                } else {
                    owners.insert((ip, host, p.container.proto), name);
                }
            }
        }
        // depends_on: every name exists; no cycle.
        for (name, raw) in &file.services {
            for (i, dep) in raw.depends_on.iter().flatten().enumerate() {
                let path = [
                    Seg::Key("services"),
                    Seg::Key(name),
                    Seg::Key("depends_on"),
                    Seg::Index(i),
                ];
                if dep == name {
                    self.err(
                        "muster::config::dependency_cycle",
                        format!("service `{name}` depends on itself"),
                        &path,
                        "remove it from its own depends_on",
                    );
                } else if !declared.contains(dep) {
                    let names: Vec<&str> = declared.iter().map(String::as_str).collect();
                    let help = match nearest(dep, &names) {
                        Some(n) => format!("did you mean `{n}`?"),
                        None => format!("declared services: {}", names.join(", ")),
                    };
                    self.err(
                        "muster::config::unknown_dependency",
                        format!("service `{name}` depends on `{dep}`, which is not declared"),
                        &path,
                        &help,
                    );
                }
            }
        }
        if let Some(cycle) = find_cycle(file) {
            let first = &cycle[0];
            let second = &cycle[1];
            let idx = file.services[first]
                .depends_on
                .iter()
                .flatten()
                .position(|d| d == second)
                .unwrap_or(0);
            self.err(
                "muster::config::dependency_cycle",
                format!("depends_on forms a cycle: {}", cycle.join(" → ")),
                &[
                    Seg::Key("services"),
                    Seg::Key(first),
                    Seg::Key("depends_on"),
                    Seg::Index(idx),
                ],
                "break the cycle: a service cannot wait, through others, for itself",
            );
        }
    }
}

/// A cycle of length ≥ 2 in depends_on, as `a → b → … → a`.
fn find_cycle(file: &File) -> Option<Vec<String>> {
    fn visit<'a>(
        n: &'a str,
        file: &'a File,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| *s == n) {
            let mut c: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
            c.push(n.to_string());
            return (c.len() > 2).then_some(c);
        }
        if !done.insert(n) {
            return None;
        }
        stack.push(n);
        for d in file
            .services
            .get(n)
            .and_then(|s| s.depends_on.as_ref())
            .into_iter()
            .flatten()
        {
            if d != n
                && file.services.contains_key(d)
                && let Some(c) = visit(d, file, stack, done)
            {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for n in file.services.keys() {
        if let Some(c) = visit(n, file, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

const PORT_HELP: &str = "write \"80\", \"80/udp\", \"8080:80\" or \"127.0.0.1:8080:80\"";

/// `C[/proto]`, `H:C[/proto]`, `IP:H:C[/proto]`, or a bare number.
pub fn parse_port(v: &PortValue) -> Result<Port, String> {
    let text = match v {
        PortValue::Number(n) => n.to_string(),
        PortValue::Text(t) => t.clone(),
    };
    let (body, proto) = match text.rsplit_once('/') {
        Some((b, "tcp")) => (b, Proto::Tcp),
        Some((b, "udp")) => (b, Proto::Udp),
        Some((_, p)) => return Err(format!("port protocol {p:?} is not tcp or udp")),
        None => (text.as_str(), Proto::Tcp),
    };
    let num = |s: &str, what: &str| -> Result<u16, String> {
        match s.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            _ => Err(format!(
                "{what} {s:?} in port {text:?} is not a port number (1-65535)"
            )),
        }
    };
    let parts: Vec<&str> = body.rsplitn(3, ':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => (None, None, num(c, "container port")?),
        [c, h] => (None, Some(num(h, "host port")?), num(c, "container port")?),
        [c, h, ip] => {
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("{ip:?} in port {text:?} is not an IP address"));
            }
            (
                Some(ip.to_string()),
                Some(num(h, "host port")?),
                num(c, "container port")?,
            )
        }
        _ => return Err(format!("port {text:?} is not valid")),
    };
    Ok(Port {
        host_ip: ip,
        host_port: host,
        container: ContainerPort {
            port: container,
            proto,
        },
    })
}

/// `source:target[:ro|:rw]`; a source starting with `/`, `./`, `../` or `~` is a bind mount.
fn parse_volume(spec: &str, dir: &Path) -> Result<Volume, (&'static str, String, &'static str)> {
    const HELP: &str = "write \"name:/path\", \"./dir:/path:ro\" or \"data-{ordinal}:/path\"";
    let bad = |why: String| ("muster::config::invalid_volume", why, HELP);
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [s, t] => (*s, *t, false),
        [s, t, "ro"] => (*s, *t, true),
        [s, t, "rw"] => (*s, *t, false),
        [_, _, m] => {
            return Err(bad(format!(
                "volume {spec:?}: mode {m:?} is not `ro` or `rw`"
            )));
        }
        _ => return Err(bad(format!("volume {spec:?} is not `source:target[:ro]`"))),
    };
    if !target.starts_with('/') {
        return Err(bad(format!(
            "volume {spec:?}: the container path {target:?} is not absolute"
        )));
    }
    if target.contains("{ordinal}") {
        return Err(bad(format!(
            "volume {spec:?}: {{ordinal}} belongs in the source, not the container path"
        )));
    }
    let is_bind = source.starts_with('/') || source.starts_with('.') || source.starts_with('~');
    if is_bind {
        if source.contains("{ordinal}") {
            return Err((
                "muster::config::ordinal_in_bind",
                format!(
                    "volume {spec:?}: {{ordinal}} only works in a named volume, not a bind mount"
                ),
                "use a named volume such as \"data-{ordinal}:/path\" for per-container data",
            ));
        }
        let path = if let Some(rest) = source.strip_prefix("~/") {
            std::env::var_os("HOME")
                .map(|h| Path::new(&h).join(rest))
                .unwrap_or_else(|| dir.join(rest))
        } else {
            dir.join(source)
        };
        let clean: std::path::PathBuf =
            path.components()
                .fold(std::path::PathBuf::new(), |mut acc, c| {
                    match c {
                        std::path::Component::ParentDir => {
                            acc.pop();
                        }
                        std::path::Component::CurDir => {}
                        other => acc.push(other),
                    }
                    acc
                });
        return Ok(Volume {
            source: VolumeSource::Bind(clean.display().to_string()),
            target: target.to_string(),
            read_only,
        });
    }
    let sample = source.replace("{ordinal}", "1");
    let ok = sample
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && sample
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && source
            .replace("{ordinal}", "")
            .chars()
            .all(|c| c != '{' && c != '}');
    if !ok {
        return Err(bad(format!(
            "volume {spec:?}: {source:?} is not a valid volume name"
        )));
    }
    Ok(Volume {
        source: VolumeSource::Named(source.to_string()),
        target: target.to_string(),
        read_only,
    })
}

/// `"500ms"`, `"10s"`, `"1m30s"`, `"2h"`: one or more number-unit pairs.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let per_unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "{text:?} has a number without a unit (ms, s, m or h)"
                ));
            }
            u => return Err(format!("{text:?}: unit {u:?} is not ms, s, m or h")),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(n * per_unit).map_err(|_| bad())?;
    }
    if total > Duration::from_secs(365 * 24 * 3600) {
        return Err(format!("{text:?} is longer than a year"));
    }
    Ok(total)
}

/// `"256MiB"`, `"1GiB"`, `"512MB"`, `"1024k"`, `"1048576"` (bytes).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a memory size"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" | "kiB" => 1 << 10,
        "KB" | "kB" => 1000,
        "m" | "M" | "MiB" => 1 << 20,
        "MB" => 1_000_000,
        "g" | "G" | "GiB" => 1 << 30,
        "GB" => 1_000_000_000,
        "TiB" => 1 << 40,
        "TB" => 1_000_000_000_000,
        u => {
            return Err(format!(
                "{text:?}: unit {u:?} is not one of B, KiB, MiB, GiB, TiB, KB, MB, GB, TB"
            ));
        }
    };
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes > 1e15 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 minutes").is_err());
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_memory("1GB").unwrap(), 1_000_000_000);
        assert!(parse_memory("lots").is_err());
    }

    #[test]
    fn ports() {
        let p = |s: &str| parse_port(&PortValue::Text(s.into()));
        assert_eq!(p("80").unwrap().to_string(), "80/tcp");
        assert_eq!(p("53/udp").unwrap().container.proto, Proto::Udp);
        assert_eq!(p("8080:80").unwrap().host_port, Some(8080));
        let full = p("127.0.0.1:8080:80").unwrap();
        assert_eq!(full.host_ip.as_deref(), Some("127.0.0.1"));
        assert!(p("0").is_err());
        assert!(p("80/sctp").is_err());
        assert!(p("x:1:2").is_err());
    }

    #[test]
    fn volumes() {
        let d = Path::new("/srv/app");
        let v = parse_volume("./conf:/etc/app:ro", d).unwrap();
        assert_eq!(v.source, VolumeSource::Bind("/srv/app/conf".into()));
        assert!(v.read_only);
        let v = parse_volume("data-{ordinal}:/data", d).unwrap();
        assert_eq!(v.volume_name("shop", 2).unwrap(), "shop_data-2");
        assert!(parse_volume("./d-{ordinal}:/data", d).is_err());
        assert!(parse_volume("data:relative", d).is_err());
    }

    #[test]
    fn project_names_are_sanitised() {
        assert_eq!(default_project(Path::new("/x/My Shop")), "my-shop");
        assert_eq!(default_project(Path::new("/")), "default");
    }
}
