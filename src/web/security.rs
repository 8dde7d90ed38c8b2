//! Who may talk to the daemon's web face: the listen address rules, the
//! `Host` check against DNS rebinding, the bearer token and the page's CSRF
//! token. Pure, except reading the token file and the random source.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Where the web face listens and which token it wants.
#[derive(Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    /// From `--token-file`: every request must carry it.
    pub token: Option<String>,
}

impl std::fmt::Debug for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in a debug print or a log.
        f.debug_struct("Listen")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// The largest token file read: a token is a line, not a document.
const MAX_TOKEN_BYTES: u64 = 4096;

impl Listen {
    /// `--listen ADDR` with its `--token-file`.
    ///
    /// # Errors
    /// A message for the user (a usage error) when the address is not
    /// loopback and there is no token, or the token file cannot be read or
    /// holds no token.
    pub fn new(addr: SocketAddr, token_file: Option<&Path>) -> Result<Listen, String> {
        let token = match token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        if token.is_none() && !addr.ip().is_loopback() {
            return Err(format!(
                "--listen {addr} is not a loopback address: anyone who can reach it could \
                 scale your services; give a bearer token with --token-file PATH, or listen \
                 on 127.0.0.1"
            ));
        }
        Ok(Listen { addr, token })
    }
}

fn read_token(path: &Path) -> Result<String, String> {
    let bytes = crate::safe_file::read_regular(path, MAX_TOKEN_BYTES + 1)
        .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_TOKEN_BYTES {
        return Err(format!(
            "--token-file {}: longer than {MAX_TOKEN_BYTES} bytes; it should hold one token",
            path.display()
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("--token-file {}: not UTF-8", path.display()))?;
    let token = text.trim();
    if token.len() < 16 || token.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "--token-file {}: the token must be at least 16 printable characters on one line \
             (e.g. `openssl rand -hex 32 > {}`)",
            path.display(),
            path.display()
        ));
    }
    Ok(token.to_string())
}

/// `ADDR` of `--listen`: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
///
/// # Errors
/// A message naming the expected shape.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{s}`: the port must be a number from 0 to 65535"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!("`{s}` is not an address to listen on; expected e.g. 127.0.0.1:7070 or [::1]:7070")
    })
}

/// Whether a request's `Host` header names this server: `localhost` or the
/// listen address (any IP literal when listening on all addresses), with
/// the listen port if a port is given. A DNS name other than `localhost` is
/// what a rebinding attack sends, so it is refused.
pub fn host_allowed(host: Option<&str>, listen: SocketAddr) -> bool {
    let Some(host) = host else { return false };
    let (name, port) = split_host(host);
    if port.is_some_and(|p| p != listen.port()) {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) if listen.ip().is_unspecified() => !ip.is_unspecified(),
        Ok(ip) => ip == listen.ip(),
        Err(_) => false,
    }
}

/// `name[:port]` or `[v6][:port]`; an unparsable port counts as a wrong one.
fn split_host(host: &str) -> (&str, Option<u16>) {
    let bad_port = Some(0);
    if let Some(rest) = host.strip_prefix('[') {
        let Some((ip, tail)) = rest.split_once(']') else {
            return (host, bad_port);
        };
        return match tail.strip_prefix(':') {
            Some(p) => (ip, p.parse().ok().or(bad_port)),
            None if tail.is_empty() => (ip, None),
            None => (host, bad_port),
        };
    }
    match host.rsplit_once(':') {
        Some((name, p)) => (name, p.parse().ok().or(bad_port)),
        None => (host, None),
    }
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token (32 bytes, hex) for the page's CSRF check.
///
/// # Errors
/// When the system's random source cannot be read.
pub fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_header_must_name_this_server() {
        let lo = addr("127.0.0.1:7070");
        let cases = [
            (Some("127.0.0.1:7070"), true),
            (Some("localhost:7070"), true),
            (Some("LOCALHOST:7070"), true),
            (Some("localhost"), true),
            (Some("127.0.0.1"), true),
            (Some("localhost:7071"), false),
            (Some("evil.example:7070"), false),
            (Some("127.0.0.2:7070"), false),
            (Some("localhost:x"), false),
            (Some(""), false),
            (None, false),
        ];
        for (host, ok) in cases {
            assert_eq!(host_allowed(host, lo), ok, "{host:?}");
        }
        let v6 = addr("[::1]:7070");
        assert!(host_allowed(Some("[::1]:7070"), v6));
        assert!(host_allowed(Some("[::1]"), v6));
        assert!(!host_allowed(Some("[::2]:7070"), v6));
        assert!(!host_allowed(Some("[::1"), v6));
        let any = addr("0.0.0.0:7070");
        assert!(host_allowed(Some("192.0.2.7:7070"), any));
        assert!(!host_allowed(Some("rebind.example:7070"), any));
    }

    #[test]
    fn a_non_loopback_address_needs_a_token() {
        let err = Listen::new(addr("0.0.0.0:7070"), None).unwrap_err();
        assert!(err.contains("--token-file"), "{err}");
        assert!(Listen::new(addr("127.0.0.1:7070"), None).is_ok());
        assert!(Listen::new(addr("[::1]:7070"), None).is_ok());
    }

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(parse_listen("localhost:80").unwrap(), addr("127.0.0.1:80"));
        assert_eq!(parse_listen("[::1]:1").unwrap(), addr("[::1]:1"));
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("example.com:80").is_err());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
    }
}
