//! Rules that span services: a fixed host port has one owner, `depends_on`
//! names declared services without a cycle, no service name is another's
//! container alias, and the file stays under [`MAX_TOTAL_CONTAINERS`]. Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::super::diagnostic::Problem;
use super::super::file::{Backend, File};
use super::super::locate::{Seg, nearest};
use super::super::model::{Proto, Service};
use super::{Validator, at, item};

/// A fixed host port: the address it binds, its number and protocol.
type HostBinding = (String, u16, Proto);

/// The most containers one file may declare, all services together: a plan
/// holds every container, so an unbounded file would be an unbounded plan.
pub const MAX_TOTAL_CONTAINERS: u64 = 10_000;

impl Validator<'_, '_> {
    pub(super) fn cross_checks(
        &mut self,
        file: &File,
        declared: &BTreeSet<String>,
        services: &BTreeMap<String, Service>,
        backend: Backend,
    ) {
        self.fixed_host_ports(services, backend);
        self.dependencies_declared(file, declared);
        self.no_dependency_cycle(file);
        self.no_name_is_a_container_alias(declared);
        self.total_containers_capped(file);
    }

    /// One container per binding (on one engine; a swarm's routing mesh
    /// spreads a published port over the tasks), one service per binding.
    fn fixed_host_ports(&mut self, services: &BTreeMap<String, Service>, backend: Backend) {
        let mut owners: BTreeMap<HostBinding, &str> = BTreeMap::new();
        for (name, s) in services {
            for (i, p) in s.ports.iter().enumerate() {
                let Some(host) = p.host_port else { continue };
                let path = item(name, "ports", i);
                if s.count > 1 && backend == Backend::Docker {
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
    }

    /// Every name in `depends_on` is another declared service.
    fn dependencies_declared(&mut self, file: &File, declared: &BTreeSet<String>) {
        for (name, raw) in &file.services {
            for (i, dep) in raw.depends_on.iter().flatten().enumerate() {
                let path = item(name, "depends_on", i);
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
    }

    fn no_dependency_cycle(&mut self, file: &File) {
        let Some(cycle) = find_cycle(file) else {
            return;
        };
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

    /// Container n of service `db` answers to `db-n` on the project network,
    /// so a service named `db-1` would share that name with it.
    fn no_name_is_a_container_alias(&mut self, declared: &BTreeSet<String>) {
        for name in declared {
            let Some(base) = alias_base(name, declared) else {
                continue;
            };
            self.key_err(
                "muster::config::alias_collision",
                format!(
                    "service `{name}` has the network name of container {} of service `{base}`",
                    &name[base.len() + 1..]
                ),
                &[Seg::Key("services"), Seg::Key(name)],
                "this name",
                &format!(
                    "containers of `{base}` answer to `{base}-1`, `{base}-2`, … on the project network; rename `{name}`"
                ),
            );
        }
    }

    /// Reported on the `count` (or, without one, the service) that takes
    /// the file past the limit.
    fn total_containers_capped(&mut self, file: &File) {
        let count = |s: &super::super::file::Service| {
            s.count.as_ref().map_or(1, |c| c.value()).clamp(0, 1000) as u64
        };
        let total: u64 = file.services.values().map(count).sum();
        if total <= MAX_TOTAL_CONTAINERS {
            return;
        }
        let mut running = 0;
        let Some(name) = file.services.iter().find_map(|(name, s)| {
            running += count(s);
            (running > MAX_TOTAL_CONTAINERS).then_some(name)
        }) else {
            return;
        };
        let span = self
            .span(&at(name, "count"), false)
            .or_else(|| self.span(&[Seg::Key("services"), Seg::Key(name)], true));
        self.problems.push(
            Problem::new(
                "muster::config::too_many_containers",
                format!(
                    "service `{name}`: this count takes the file past {MAX_TOTAL_CONTAINERS} containers"
                ),
                span,
            )
            .label("past the limit")
            .help(format!(
                "the file declares {total} containers in all; the limit is {MAX_TOTAL_CONTAINERS} per file: lower the counts, or split the services into projects"
            )),
        );
    }
}

/// The service whose container alias `name` is (`db` for `db-1`), if it is
/// declared: `<base>-<n>` with `n` a positive integer as the engine writes it.
fn alias_base<'a>(name: &str, declared: &'a BTreeSet<String>) -> Option<&'a str> {
    let (base, n) = name.rsplit_once('-')?;
    let ordinal: u32 = n.parse().ok()?;
    if ordinal == 0 || ordinal.to_string() != n {
        return None;
    }
    declared.get(base).map(String::as_str)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> BTreeSet<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_service_named_like_another_services_container_is_an_alias() {
        let declared = names(&[
            "db", "db-1", "db-0", "db-01", "web-2", "api-v2", "x-y-3", "x-y",
        ]);
        assert_eq!(alias_base("db-1", &declared), Some("db"));
        assert_eq!(alias_base("x-y-3", &declared), Some("x-y"));
        // Not an alias any container answers to.
        assert_eq!(alias_base("db-0", &declared), None);
        assert_eq!(alias_base("db-01", &declared), None);
        assert_eq!(alias_base("api-v2", &declared), None);
        // No service `web` is declared.
        assert_eq!(alias_base("web-2", &declared), None);
        assert_eq!(alias_base("db", &declared), None);
    }
}
