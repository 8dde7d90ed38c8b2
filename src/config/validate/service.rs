//! One service: its own keys checked one by one and assembled into a
//! [`Service`]. The port, volume, healthcheck and duration rules live in
//! their sibling files. Pure.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::super::file::{self, Command, EnvValue, Mode, UpdateOrder};
use super::super::model::{DeclaredVolume, Port, Restart, Service, Update};
use super::{Validator, at, entry, valid_name};
use crate::config::locate::Seg;

impl Validator<'_, '_> {
    /// The checked service, or `None` when it has a problem (then recorded).
    pub(super) fn service(
        &mut self,
        name: &str,
        raw: &file::Service,
        dir: &Path,
        declared: &BTreeMap<String, DeclaredVolume>,
    ) -> Option<Service> {
        let before = self.problems.len();
        self.service_name(name);
        self.image(name, &raw.image);
        let command = self.command(raw.command.as_ref(), name, "command");
        let entrypoint = self.command(raw.entrypoint.as_ref(), name, "entrypoint");
        let env = self.env(name, raw.env.as_ref());
        let count = self.count(name, raw.count.as_ref());
        let (ports, expose) = self.ports(name, raw);
        let volumes = self.volumes(name, raw.volumes.as_deref(), dir, declared);
        let labels = self.labels(name, raw.labels.as_ref());
        let restart = self.restart(name, raw.restart.as_deref());
        self.stop_signal(name, raw.stop_signal.as_deref());
        self.user_and_working_dir(name, raw);
        let stop_grace_period = self.duration(
            raw.stop_grace_period.as_deref(),
            &at(name, "stop_grace_period"),
            name,
            Duration::from_secs(10),
        );
        let ready_timeout = self.ready_timeout(name, raw.ready_timeout.as_deref());
        self.cpus(name, raw.cpus);
        let memory = self.memory(name, raw.memory.as_deref());
        let healthcheck = raw.healthcheck.as_ref().map(|h| self.healthcheck(name, h));
        let update = self.update(name, raw.update.as_ref(), &ports);
        if self.problems.len() > before {
            return None;
        }
        Some(Service {
            name: name.to_string(),
            image: raw.image.clone(),
            count,
            mode: raw.mode.unwrap_or(Mode::Parallel),
            command,
            entrypoint,
            env,
            sensitive: std::collections::BTreeSet::new(),
            ports,
            expose,
            volumes,
            labels,
            depends_on: raw.depends_on.clone().unwrap_or_default(),
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
            placement: raw
                .placement
                .as_ref()
                .map(|p| super::super::model::Placement {
                    constraints: p.constraints.clone().unwrap_or_default(),
                    max_replicas_per_node: p.max_replicas_per_node.map(|n| n.clamp(1, 1000) as u32),
                })
                .unwrap_or_default(),
        })
    }

    /// An interpolated count is range-checked here; a written integer was
    /// by the schema walk.
    fn count(&mut self, name: &str, raw: Option<&file::Count>) -> u32 {
        let n = raw.map_or(1, file::Count::value);
        if matches!(raw, Some(file::Count::Text(_))) && !(0..=1000).contains(&n) {
            self.err(
                "muster::config::out_of_range",
                format!("`services.{name}.count` is out of range: it must be from 0 to 1000, and is {n} once interpolated"),
                &at(name, "count"),
                "set the variable to a value from 0 to 1000",
            );
        }
        n.clamp(0, 1000) as u32
    }

    fn service_name(&mut self, name: &str) {
        if !valid_name(name) || name.len() > 50 {
            self.key_err(
                "muster::config::invalid_name",
                format!("service name {name:?} is not valid"),
                &[Seg::Key("services"), Seg::Key(name)],
                "this name",
                "use at most 50 lower-case letters, digits, `-` and `_`, starting with a letter or digit",
            );
        }
    }

    fn image(&mut self, name: &str, image: &str) {
        if !image_reference(image) {
            self.err(
                "muster::config::invalid_value",
                format!("service `{name}`: image {image:?} is not an image reference"),
                &at(name, "image"),
                "write an image reference such as `nginx:1.27`: a lower-case name, then `:tag` and/or `@sha256:<64 hex digits>`",
            );
        }
    }

    /// `command` or `entrypoint`: an array as given, a string split like a shell does.
    fn command(&mut self, c: Option<&Command>, service: &str, key: &str) -> Option<Vec<String>> {
        match c? {
            Command::Args(a) => Some(a.clone()),
            Command::Shell(s) => match shell_words::split(s) {
                Ok(words) => Some(words),
                Err(_) => {
                    self.err(
                        "muster::config::invalid_command",
                        format!("service `{service}`: {key} has an unclosed quote"),
                        &at(service, key),
                        "close the quote, or write the command as an array of strings",
                    );
                    None
                }
            },
        }
    }

    fn env(
        &mut self,
        name: &str,
        raw: Option<&BTreeMap<String, EnvValue>>,
    ) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for (k, val) in raw.into_iter().flatten() {
            if !valid_env_name(k) {
                self.key_err(
                    "muster::config::invalid_env_name",
                    format!("service `{name}`: {k:?} is not a valid environment variable name"),
                    &entry(name, "env", k),
                    "this name",
                    "use letters, digits and `_`, not starting with a digit",
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
        env
    }

    fn labels(
        &mut self,
        name: &str,
        raw: Option<&BTreeMap<String, String>>,
    ) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        for (k, val) in raw.into_iter().flatten() {
            if k.starts_with("io.muster.") {
                self.key_err(
                    "muster::config::reserved_label",
                    format!("service `{name}`: label `{k}` is reserved for muster"),
                    &entry(name, "labels", k),
                    "reserved",
                    "choose a label outside the `io.muster.` namespace",
                );
            }
            labels.insert(k.clone(), val.clone());
        }
        labels
    }

    fn restart(&mut self, name: &str, raw: Option<&str>) -> Restart {
        match raw {
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
                        &at(name, "restart"),
                        "use `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`",
                    );
                    Restart::No
                }
            },
        }
    }

    fn stop_signal(&mut self, name: &str, raw: Option<&str>) {
        let Some(sig) = raw else { return };
        // The names the engine knows on Linux (moby's signal map).
        const NAMES: &[&str] = &[
            "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
            "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
            "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
            "XFSZ", "RTMIN", "RTMAX",
        ];
        let real_time = |s: &str, sign: char| {
            s.split_once(sign).is_some_and(|(base, n)| {
                (base == "RTMIN" && sign == '+' || base == "RTMAX" && sign == '-')
                    && n.parse::<u8>().is_ok_and(|n| (1..=15).contains(&n))
                    && !n.starts_with('0')
            })
        };
        let ok = sig.parse::<u32>().is_ok_and(|n| (1..=64).contains(&n))
            || sig
                .strip_prefix("SIG")
                .is_some_and(|s| NAMES.contains(&s) || real_time(s, '+') || real_time(s, '-'));
        if !ok {
            self.err(
                "muster::config::invalid_value",
                format!("service `{name}`: {sig:?} is not a signal"),
                &at(name, "stop_signal"),
                "write a signal name such as `SIGTERM` or `SIGQUIT`",
            );
        }
    }

    fn user_and_working_dir(&mut self, name: &str, raw: &file::Service) {
        for (key, value) in [("user", &raw.user), ("working_dir", &raw.working_dir)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                self.err(
                    "muster::config::invalid_value",
                    format!("service `{name}`: `{key}` is empty"),
                    &at(name, key),
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
                &at(name, "working_dir"),
                "start it with `/`",
            );
        }
    }

    fn ready_timeout(&mut self, name: &str, raw: Option<&str>) -> Duration {
        let path = at(name, "ready_timeout");
        let timeout = self.duration(raw, &path, name, Duration::from_secs(60));
        if raw.is_some() && timeout.is_zero() {
            self.err(
                "muster::config::out_of_range",
                format!("service `{name}`: ready_timeout must be more than 0s"),
                &path,
                "give containers time to become ready, e.g. \"60s\"",
            );
        }
        timeout
    }

    fn update(&mut self, name: &str, raw: Option<&file::Update>, ports: &[Port]) -> Update {
        let update = Update {
            parallelism: raw.and_then(|u| u.parallelism).unwrap_or(1).clamp(1, 1000) as u32,
            order: raw.and_then(|u| u.order).unwrap_or(UpdateOrder::StopFirst),
        };
        if update.order == UpdateOrder::StartFirst && ports.iter().any(|p| p.host_port.is_some()) {
            self.err(
                "muster::config::start_first_fixed_port",
                format!("service `{name}`: start-first updates cannot publish a fixed host port"),
                &entry(name, "update", "order"),
                "the replacement would need the port while the old container still holds it; use stop-first or an ephemeral port",
            );
        }
        update
    }
}

fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `image` is a reference the engine accepts (the grammar of
/// distribution's `reference` package): `[host[:port]/]path[:tag][@digest]`,
/// each path component lower-case letters and digits joined by `.`, `_`,
/// `__` or dashes.
fn image_reference(image: &str) -> bool {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    let digest_ok = digest.is_none_or(|d| {
        d.split_once(':').is_some_and(|(algo, hex)| {
            let hex_ok = hex.chars().all(|c| c.is_ascii_hexdigit());
            match algo {
                "sha256" => {
                    hex.len() == 64 && hex_ok && !hex.chars().any(|c| c.is_ascii_uppercase())
                }
                "sha384" => hex.len() == 96 && hex_ok,
                "sha512" => hex.len() == 128 && hex_ok,
                _ => false,
            }
        })
    });
    // A tag follows the last `:` after the last `/` (a registry's port
    // comes before a `/`).
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let tag_ok = tag.is_none_or(|t| {
        t.len() <= 128
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    });
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a registry when it has a `.` or a `:`, or is
    // `localhost` (Docker 20.10's rule; later engines also take one with
    // upper-case letters).
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let domain = parts.remove(0);
        let (host, port) = match domain.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        };
        let host_ok = !host.is_empty()
            && host.split('.').all(|c| {
                !c.is_empty()
                    && !c.starts_with('-')
                    && !c.ends_with('-')
                    && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
            });
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if !host_ok || !port_ok {
            return false;
        }
    }
    let component = |c: &str| {
        let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
        let bytes: Vec<char> = c.chars().collect();
        if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return false;
        }
        // Separators between runs of letters and digits: `.`, `_`, `__`
        // or any number of `-`.
        c.split(|ch: char| alnum(ch)).all(|sep| {
            sep.is_empty()
                || sep == "."
                || sep == "_"
                || sep == "__"
                || sep.chars().all(|ch| ch == '-')
        }) && c.chars().all(|ch| alnum(ch) || "._-".contains(ch))
    };
    name.len() <= 255 && parts.iter().all(|c| component(c)) && tag_ok && digest_ok
}

#[cfg(test)]
mod tests {
    use super::image_reference;

    #[test]
    fn image_references_the_engine_accepts_and_those_it_refuses() {
        for ok in [
            "busybox",
            "nginx:1.27",
            "library/nginx:1.27-alpine",
            "127.0.0.1:5000/shop/web:v1",
            "localhost/web",
            "registry.example.com/a/b/c:latest",
            "Registry.Example.com/web",
            "my_app__x/web-app---2:1.0_rc.1",
            "x:_tag",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "busybox:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(image_reference(ok), "{ok} should be accepted");
        }
        for bad in [
            "",
            "a b",
            "UPPER/img:1",
            "Web",
            "a:b:c",
            "busybox@sha256:xyz",
            "busybox@md5:0123",
            "web:",
            "web:.x",
            "/web",
            "web/",
            "a..b",
            "a_-b",
            "-web",
            "host:port/web",
            "web:1.0/x",
        ] {
            assert!(!image_reference(bad), "{bad:?} should be refused");
        }
    }
}
