//! A `socat` proxy in front of the real engine's socket, that a test can
//! take down and bring back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::engine::docker_host;
use super::fixtures::wait_until;

/// A `socat` proxy in front of the real engine's socket, that a test can
/// take down and bring back: the daemon talks to the engine through it.
/// The proxy runs in its own process group, so that taking it down also
/// ends the children it forked for open connections.
pub struct Proxy {
    socket: PathBuf,
    child: Option<Child>,
}

impl Proxy {
    /// Listens on `socket`, forwarding to the engine's local socket.
    pub fn start(socket: &Path) -> Proxy {
        let mut proxy = Proxy {
            socket: socket.to_path_buf(),
            child: None,
        };
        proxy.up();
        proxy
    }

    /// The address to give muster: `unix://…`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Starts the proxy; returns once it accepts connections.
    pub fn up(&mut self) {
        use std::os::unix::process::CommandExt;
        assert!(self.child.is_none(), "the proxy is already up");
        let target = docker_host();
        let target = target
            .strip_prefix("unix://")
            .unwrap_or_else(|| panic!("the proxy test needs a unix:// engine, not {target}"));
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new("socat")
            .arg(format!("UNIX-LISTEN:{},fork", self.socket.display()))
            .arg(format!("UNIX-CONNECT:{target}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start socat ({e}): install it (apt-get install socat)")
            });
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_until(
            "the proxy accepts connections",
            Duration::from_secs(10),
            || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        );
    }

    /// Kills the proxy and every connection it holds open.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = i32::try_from(child.id()).unwrap();
            // SAFETY: kill(2) of the process group this proxy leads: its
            // own socat and the children it forked, nothing else.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}
