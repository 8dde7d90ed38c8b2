//! `ports` and `expose` of one service: their syntax, and no container port
//! published twice. Pure. Host ports shared between services are checked in
//! [`super::cross`].

use std::collections::BTreeSet;

use super::super::file::{self, PortValue};
use super::super::model::{ContainerPort, Port, Proto};
use super::{Validator, item};

const PORT_HELP: &str = "write \"80\", \"80/udp\", \"8080:80\" or \"127.0.0.1:8080:80\"";

impl Validator<'_, '_> {
    /// The published ports and the exposed container ports.
    pub(super) fn ports(
        &mut self,
        name: &str,
        raw: &file::Service,
    ) -> (Vec<Port>, Vec<ContainerPort>) {
        let ports = self.published(name, raw.ports.as_deref().unwrap_or_default());
        let expose = self.exposed(name, raw.expose.as_deref().unwrap_or_default());
        self.no_port_published_twice(name, &ports);
        (ports, expose)
    }

    fn published(&mut self, name: &str, raw: &[PortValue]) -> Vec<Port> {
        let mut ports = Vec::new();
        for (i, p) in raw.iter().enumerate() {
            match parse_port(p) {
                Ok(port) => ports.push(port),
                Err(why) => self.err(
                    "muster::config::invalid_port",
                    format!("service `{name}`: {why}"),
                    &item(name, "ports", i),
                    PORT_HELP,
                ),
            }
        }
        ports
    }

    fn exposed(&mut self, name: &str, raw: &[PortValue]) -> Vec<ContainerPort> {
        let mut expose = Vec::new();
        for (i, p) in raw.iter().enumerate() {
            let path = item(name, "expose", i);
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
        expose
    }

    fn no_port_published_twice(&mut self, name: &str, ports: &[Port]) {
        let mut seen = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            if !seen.insert(p.container) {
                self.err(
                    "muster::config::duplicate_port",
                    format!(
                        "service `{name}`: container port {} is published twice",
                        p.container
                    ),
                    &item(name, "ports", i),
                    "publish each container port once",
                );
            }
        }
    }
}

/// `C[/proto]`, `H:C[/proto]`, `IP:H:C[/proto]`, or a bare number.
fn parse_port(v: &PortValue) -> Result<Port, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
