//! Rules that span services: a fixed host port has one owner, and
//! `depends_on` names declared services without a cycle. Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::super::file::File;
use super::super::locate::{Seg, nearest};
use super::super::model::{Proto, Service};
use super::{Validator, item};

/// A fixed host port: the address it binds, its number and protocol.
type HostBinding = (String, u16, Proto);

impl Validator<'_, '_> {
    pub(super) fn cross_checks(
        &mut self,
        file: &File,
        declared: &BTreeSet<String>,
        services: &BTreeMap<String, Service>,
    ) {
        self.fixed_host_ports(services);
        self.dependencies_declared(file, declared);
        self.no_dependency_cycle(file);
    }

    /// One container per binding, one service per binding.
    fn fixed_host_ports(&mut self, services: &BTreeMap<String, Service>) {
        let mut owners: BTreeMap<HostBinding, &str> = BTreeMap::new();
        for (name, s) in services {
            for (i, p) in s.ports.iter().enumerate() {
                let Some(host) = p.host_port else { continue };
                let path = item(name, "ports", i);
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
