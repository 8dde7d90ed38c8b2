//! The rules of a file whose backend is `swarm` (SPEC section 10): what a
//! swarm cannot say.

use std::collections::BTreeMap;

use super::super::model::{EndpointMode, Mode, PublishMode, Service, SwarmSettings};
use super::{Validator, at, item};

/// A swarm service name is at most 63 characters.
const MAX_SWARM_NAME: usize = 63;

impl Validator<'_, '_> {
    pub(super) fn swarm_checks(
        &mut self,
        project: &str,
        services: &BTreeMap<String, Service>,
        swarm: SwarmSettings,
    ) {
        for (name, s) in services {
            self.swarm_ports(name, s, swarm);
            self.swarm_name_length(project, name, s);
        }
    }

    fn swarm_ports(&mut self, name: &str, s: &Service, swarm: SwarmSettings) {
        for (i, p) in s.ports.iter().enumerate() {
            if swarm.endpoint_mode == EndpointMode::Dnsrr
                && swarm.publish_mode == PublishMode::Ingress
            {
                // Swarm would refuse the service at apply time ("port
                // published with ingress mode can't be used with dnsrr
                // mode"), once the services applied before it were made.
                self.err(
                    "muster::config::swarm_dnsrr_ingress",
                    format!(
                        "service `{name}`: port {p} would be published through the ingress mesh, which a swarm refuses with endpoint_mode = \"dnsrr\""
                    ),
                    &item(name, "ports", i),
                    "publish on the node that runs the task: [swarm] publish_mode = \"host\" (or use endpoint_mode = \"vip\")",
                );
            }
            let Some(host) = p.host_port else { continue };
            if let Some(ip) = &p.host_ip {
                self.err(
                    "muster::config::swarm_host_ip",
                    format!(
                        "service `{name}`: port {p} binds host address {ip}, which a swarm cannot do"
                    ),
                    &item(name, "ports", i),
                    "on a swarm a port is published on every node (ingress) or on the node that runs the task ([swarm] publish_mode = \"host\"): write \"H:C\"",
                );
            } else if s.mode == Mode::Sequential && s.count > 1 {
                self.err(
                    "muster::config::swarm_fixed_port_sequential",
                    format!(
                        "service `{name}`: fixed host port {host} on a sequential service of count {}: each ordinal is a swarm service of its own, and they would clash",
                        s.count
                    ),
                    &item(name, "ports", i),
                    "publish the container port alone (e.g. \"80\") for an ephemeral host port",
                );
            }
        }
    }

    fn swarm_name_length(&mut self, project: &str, name: &str, s: &Service) {
        let longest = match s.mode {
            Mode::Parallel => format!("{project}_{name}"),
            Mode::Sequential => format!("{project}_{name}-{}", s.count.max(1)),
        };
        if longest.len() > MAX_SWARM_NAME {
            self.key_err(
                "muster::config::swarm_name_too_long",
                format!(
                    "service `{name}`: its swarm service name {longest:?} is longer than {MAX_SWARM_NAME} characters"
                ),
                &at(name, "image")[..2],
                "this name",
                "shorten the project or service name",
            );
        }
    }
}
