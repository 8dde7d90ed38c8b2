//! The daemon's loop on the in-memory engine: fast, exhaustive checks of
//! what it does on saves, drift, invalid files, missing images and stop,
//! without a Docker engine. The same loop runs on the real engine in
//! `watch_files` and `watch_engine`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use muster::config::Backend as BackendKind;
use muster::engine::memory::MemoryEngine;
use muster::engine::{self, Backend, State};
use muster::output::{ColorChoice, Printer};
use muster::watch::{Connector, Inbox, Settings, serve};

const IMG: &str = "img:1";

struct Memory(Arc<MemoryEngine>);

#[async_trait::async_trait]
impl Connector for Memory {
    fn address(&self) -> String {
        "memory://".into()
    }
    async fn connect(&self, _kind: BackendKind) -> engine::Result<Arc<dyn Backend>> {
        Ok(self.0.clone())
    }
}

fn file(image: &str, count: u32) -> String {
    format!(
        "project = \"mem\"\n[services.web]\nimage = \"{image}\"\ncount = {count}\nstop_grace_period = \"0s\"\n"
    )
}

/// Saves as editors do: a new file renamed over the old one.
fn save(dir: &Path, text: &str) {
    let tmp = dir.join(".services.toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("services.toml")).unwrap();
}

fn running(engine: &MemoryEngine) -> Vec<String> {
    engine.with(|s| {
        s.containers
            .iter()
            .filter(|(_, c)| c.state == State::Running)
            .map(|(n, _)| n.clone())
            .collect()
    })
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the daemon on `engine` in `dir` on a runtime of its own; stopping
/// the returned remote ends it.
fn start(
    dir: &Path,
    engine: &Arc<MemoryEngine>,
) -> (muster::watch::Remote, std::thread::JoinHandle<()>) {
    let settings = Settings {
        sources: muster::config::Sources::single(&dir.join("services.toml")),
        backend: None,
        debounce: Duration::from_millis(50),
        resync: Duration::from_secs(3600),
        parallel: 4,
        lock_timeout: Duration::from_secs(5),
        prune: false,
        json: false,
        listen: None,
    };
    let inbox = Inbox::default();
    let remote = inbox.remote();
    let connector = Memory(engine.clone());
    let handle = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let printer = Printer::new(ColorChoice::Never, false, 0);
        runtime
            .block_on(serve(settings, &printer, &connector, inbox))
            .unwrap();
    });
    (remote, handle)
}

#[test]
fn the_daemon_applies_saves_heals_drift_ignores_invalid_files_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &file(IMG, 2));
    let engine = Arc::new(MemoryEngine::with_images(&[(IMG, "sha256:1")]));
    let (remote, handle) = start(dir.path(), &engine);

    wait_until("2 containers run", || running(&engine).len() == 2);
    save(dir.path(), &file(IMG, 3));
    wait_until("a save to count 3 is applied", || {
        running(&engine) == ["mem-web-1", "mem-web-2", "mem-web-3"]
    });

    // Removed outside muster: created again.
    engine.drift("mem-web-2", "destroy", 0);
    wait_until("the removed container is back", || {
        running(&engine).len() == 3
    });

    // An invalid save changes nothing; the next valid one is applied.
    save(dir.path(), "[services.web\nimage = ");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(running(&engine).len(), 3);
    save(dir.path(), &file(IMG, 1));
    wait_until("the valid save after an invalid one is applied", || {
        running(&engine) == ["mem-web-1"]
    });

    remote.stop("a test");
    handle.join().unwrap();
    assert_eq!(running(&engine), ["mem-web-1"], "containers keep running");
    assert!(engine.with(|s| s.lock.is_none()), "the lock is released");
}

#[test]
fn the_daemon_pulls_a_missing_image_before_it_changes_anything() {
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &file(IMG, 1));
    let engine = Arc::new(MemoryEngine::with_images(&[(IMG, "sha256:1")]));
    engine.with(|s| {
        s.registry.insert("img:2".into(), "sha256:2".into());
    });
    let (remote, handle) = start(dir.path(), &engine);
    wait_until("1 container runs", || running(&engine).len() == 1);
    engine.take_calls();

    // Not in the registry: reported, nothing changed.
    save(dir.path(), &file("img:404", 1));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(engine.take_calls(), Vec::<String>::new());

    // In the registry: pulled first, then the container is replaced.
    save(dir.path(), &file("img:2", 1));
    wait_until("the new image's container runs", || {
        engine.with(|s| s.containers.get("mem-web-1").map(|c| c.spec.image.clone()))
            == Some("img:2".into())
            && running(&engine).len() == 1
    });
    let calls = engine.take_calls();
    assert_eq!(
        calls.first().map(String::as_str),
        Some("pull img:2"),
        "{calls:?}"
    );

    remote.stop("a test");
    handle.join().unwrap();
}
