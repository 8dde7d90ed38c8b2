//! A proxy in front of the real engine's socket, that a test can take down
//! and bring back, that cuts the engine's event streams alone, that holds
//! back some requests as a stuck engine would, or that refuses some in the
//! engine's words.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::engine::docker_host;

/// A proxy in front of the real engine's socket: muster (or the daemon)
/// talks to the engine through it. [`Proxy::down`] closes every connection
/// and stops listening, [`Proxy::up`] listens again; [`Proxy::cut_events`]
/// closes only the connections that carry `GET …/events`, and from then
/// on each new one as soon as its request comes. [`Proxy::hold`] holds
/// back the requests of one kind: the engine never answers them, or only
/// after a while, or once [`Proxy::release`] lets them through.
/// [`Proxy::refuse`] answers the requests of one kind itself, with an
/// error of the engine's, and never passes them on.
pub struct Proxy {
    socket: PathBuf,
    shared: Arc<Shared>,
    /// The thread accepting connections, while the proxy is up.
    listening: Option<JoinHandle<()>>,
}

struct Shared {
    /// The engine's socket.
    target: PathBuf,
    /// Set to stop the accepting thread.
    stopping: AtomicBool,
    events_cut: AtomicBool,
    /// `GET …/events` requests seen.
    event_requests: AtomicUsize,
    /// The open connections: number, client side, engine side, and
    /// whether it carries an event stream.
    connections: Mutex<Vec<(usize, UnixStream, UnixStream, bool)>>,
    /// The next connection's number.
    next: AtomicUsize,
    /// Requests held back: method, a part of the path, how long (`None`:
    /// for good).
    held: Mutex<Vec<(String, String, Option<Duration>)>>,
    /// Requests answered with an error: method, a part of the path, the
    /// HTTP status and the engine's message.
    refused: Mutex<Vec<(String, String, u16, String)>>,
    /// Requests answered so.
    refusals: AtomicUsize,
}

impl Proxy {
    /// Listens on `socket`, forwarding to the engine's local socket.
    pub fn start(socket: &Path) -> Proxy {
        let target = docker_host();
        let target = target
            .strip_prefix("unix://")
            .unwrap_or_else(|| panic!("the proxy test needs a unix:// engine, not {target}"));
        let mut proxy = Proxy {
            socket: socket.to_path_buf(),
            shared: Arc::new(Shared {
                target: PathBuf::from(target),
                stopping: AtomicBool::new(false),
                events_cut: AtomicBool::new(false),
                event_requests: AtomicUsize::new(0),
                connections: Mutex::default(),
                next: AtomicUsize::new(0),
                held: Mutex::default(),
                refused: Mutex::default(),
                refusals: AtomicUsize::new(0),
            }),
            listening: None,
        };
        proxy.up();
        proxy
    }

    /// The address to give muster: `unix://…`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Listens again; connections are accepted once this returns.
    pub fn up(&mut self) {
        assert!(self.listening.is_none(), "the proxy is already up");
        let _ = std::fs::remove_file(&self.socket);
        let listener = UnixListener::bind(&self.socket)
            .unwrap_or_else(|e| panic!("cannot listen on {}: {e}", self.socket.display()));
        self.shared.stopping.store(false, Ordering::SeqCst);
        let shared = self.shared.clone();
        self.listening = Some(std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { return };
                let Ok(engine) = UnixStream::connect(&shared.target) else {
                    continue;
                };
                let (c, e) = (client.try_clone().unwrap(), engine.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut &e, &mut &c);
                    let _ = c.shutdown(Shutdown::Both);
                });
                // Registered here, so that `down`, once this thread has
                // stopped, closes every connection it accepted.
                let me = shared.next.fetch_add(1, Ordering::SeqCst);
                shared.connections.lock().unwrap().push((
                    me,
                    client.try_clone().unwrap(),
                    engine.try_clone().unwrap(),
                    false,
                ));
                let shared = shared.clone();
                std::thread::spawn(move || shared.forward(me, &client, &engine));
            }
        }));
    }

    /// Stops listening and closes every connection it holds open: the
    /// engine is gone for whoever talks through it.
    pub fn down(&mut self) {
        if let Some(listening) = self.listening.take() {
            self.shared.stopping.store(true, Ordering::SeqCst);
            // Wakes the accepting thread, which then stops.
            let _ = UnixStream::connect(&self.socket);
            let _ = listening.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        for (_, client, engine, _) in self.shared.connections.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = engine.shutdown(Shutdown::Both);
        }
    }

    /// Cuts every event stream, now and from now on; how many were open.
    pub fn cut_events(&self) -> usize {
        let mut connections = self.shared.connections.lock().unwrap();
        self.shared.events_cut.store(true, Ordering::SeqCst);
        let mut cut = 0;
        for (_, client, _, events) in connections.iter() {
            if *events {
                let _ = client.shutdown(Shutdown::Both);
                cut += 1;
            }
        }
        connections.retain(|(_, _, _, events)| !events);
        cut
    }

    /// From now on, holds back every `method` request whose path contains
    /// `path` for `hold` before passing it on, or for good (`None`): the
    /// engine never sees it, and its connection stays open and silent.
    pub fn hold(&self, method: &str, path: &str, hold: Option<Duration>) {
        let rule = (format!("{method} "), path.to_string(), hold);
        self.shared.held.lock().unwrap().push(rule);
    }

    /// Passes on every request held back, and holds back no more.
    pub fn release(&self) {
        self.shared.held.lock().unwrap().clear();
    }

    /// From now on, answers every `method` request whose path contains
    /// `path` with `status` and the engine's error body carrying `message`;
    /// the engine never sees it.
    pub fn refuse(&self, method: &str, path: &str, status: u16, message: &str) {
        let rule = (
            format!("{method} "),
            path.to_string(),
            status,
            message.to_string(),
        );
        self.shared.refused.lock().unwrap().push(rule);
    }

    /// How many requests [`Proxy::refuse`] answered so far.
    pub fn refusals(&self) -> usize {
        self.shared.refusals.load(Ordering::SeqCst)
    }

    /// How many `GET …/events` requests came so far.
    pub fn event_requests(&self) -> usize {
        self.shared.event_requests.load(Ordering::SeqCst)
    }
}

impl Shared {
    /// Copies the client's requests on connection `me` to the engine,
    /// watching for the event stream's.
    fn forward(&self, me: usize, client: &UnixStream, engine: &UnixStream) {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match (&*client).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let line = buf[..n].split(|b| *b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            if line.starts_with("GET ") && line.contains("/events") {
                self.event_requests.fetch_add(1, Ordering::SeqCst);
                let mut connections = self.connections.lock().unwrap();
                if self.events_cut.load(Ordering::SeqCst) {
                    break;
                }
                for c in connections.iter_mut().filter(|c| c.0 == me) {
                    c.3 = true;
                }
            }
            if let Some(answer) = self.refusal_for(&line) {
                self.refusals.fetch_add(1, Ordering::SeqCst);
                if (&*client).write_all(answer.as_bytes()).is_err() {
                    break;
                }
                continue;
            }
            if !self.wait_if_held(me, &line) || (&*engine).write_all(&buf[..n]).is_err() {
                break;
            }
        }
        self.connections.lock().unwrap().retain(|c| c.0 != me);
        let _ = client.shutdown(Shutdown::Both);
        let _ = engine.shutdown(Shutdown::Both);
    }

    /// How long the request of this first `line` is held back, if a rule
    /// matches it.
    fn rule_for(&self, line: &str) -> Option<Option<Duration>> {
        let held = self.held.lock().unwrap();
        held.iter()
            .find(|(method, path, _)| matches(line, method, path))
            .map(|(_, _, hold)| *hold)
    }

    /// The whole HTTP answer to the request of this first `line`, if a
    /// [`Proxy::refuse`] rule matches it.
    fn refusal_for(&self, line: &str) -> Option<String> {
        let refused = self.refused.lock().unwrap();
        let (_, _, status, message) = refused
            .iter()
            .find(|(method, path, _, _)| matches(line, method, path))?;
        let body = format!("{{\"message\":{message:?}}}\n");
        Some(format!(
            "HTTP/1.1 {status} Refused\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// Holds back a request that a [`Proxy::hold`] rule matches, by its
    /// first `line`; false when it is held for good and the proxy has
    /// closed connection `me` meanwhile.
    fn wait_if_held(&self, me: usize, line: &str) -> bool {
        let Some(hold) = self.rule_for(line) else {
            return true;
        };
        let until = hold.map(|h| Instant::now() + h);
        loop {
            let released = self.rule_for(line).is_none();
            if released || until.is_some_and(|u| Instant::now() >= u) {
                return true;
            }
            let open = self.connections.lock().unwrap().iter().any(|c| c.0 == me);
            if !open {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether the request of this first `line` is a `method` (with its space)
/// on a path containing `path`.
fn matches(line: &str, method: &str, path: &str) -> bool {
    let target = line.split(' ').nth(1).unwrap_or_default();
    line.starts_with(method) && target.contains(path)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}
