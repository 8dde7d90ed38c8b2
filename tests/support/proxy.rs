//! A `socat` proxy in front of the real engine's socket, that a test can
//! take down and bring back.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
            || UnixStream::connect(&socket).is_ok(),
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

/// A proxy in front of the real engine's socket that passes every call
/// and can cut the engine's event streams alone: [`EventsCutter::cut`]
/// closes the connections that carry `GET …/events`, and from then on
/// closes each new one as soon as its request comes.
pub struct EventsCutter {
    socket: PathBuf,
    shared: Arc<Cutter>,
}

#[derive(Default)]
struct Cutter {
    cut: AtomicBool,
    /// `GET …/events` requests seen.
    requests: AtomicUsize,
    /// The client side of the connections that carry one, by number.
    streams: Mutex<Vec<(usize, UnixStream)>>,
    /// Connections so far: the next one's number.
    connections: AtomicUsize,
}

impl EventsCutter {
    /// Listens on `socket`, forwarding to the engine's local socket.
    pub fn start(socket: &Path) -> EventsCutter {
        let target = docker_host();
        let target = PathBuf::from(
            target
                .strip_prefix("unix://")
                .unwrap_or_else(|| panic!("the proxy test needs a unix:// engine, not {target}")),
        );
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).unwrap();
        let shared = Arc::new(Cutter::default());
        let cutter = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(engine) = UnixStream::connect(&target) else {
                    continue;
                };
                let (c, e) = (client.try_clone().unwrap(), engine.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut &e, &mut &c);
                    let _ = c.shutdown(Shutdown::Both);
                });
                let cutter = cutter.clone();
                std::thread::spawn(move || cutter.forward(&client, &engine));
            }
        });
        EventsCutter {
            socket: socket.to_path_buf(),
            shared,
        }
    }

    /// The address to give muster: `unix://…`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Cuts every event stream, now and from now on; how many were open.
    pub fn cut(&self) -> usize {
        let mut streams = self.shared.streams.lock().unwrap();
        self.shared.cut.store(true, Ordering::SeqCst);
        for (_, s) in streams.iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        std::mem::take(&mut *streams).len()
    }

    /// How many `GET …/events` requests came so far.
    pub fn event_requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Cutter {
    /// Copies the client's requests to the engine, watching for the event
    /// stream's.
    fn forward(&self, client: &UnixStream, engine: &UnixStream) {
        let me = self.connections.fetch_add(1, Ordering::SeqCst);
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match (&*client).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let line = buf[..n].split(|b| *b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            if line.starts_with("GET ") && line.contains("/events") {
                self.requests.fetch_add(1, Ordering::SeqCst);
                let mut streams = self.streams.lock().unwrap();
                if self.cut.load(Ordering::SeqCst) {
                    break;
                }
                streams.push((me, client.try_clone().unwrap()));
            }
            if (&*engine).write_all(&buf[..n]).is_err() {
                break;
            }
        }
        self.streams.lock().unwrap().retain(|(n, _)| *n != me);
        let _ = client.shutdown(Shutdown::Both);
        let _ = engine.shutdown(Shutdown::Both);
    }
}

impl Drop for EventsCutter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}
