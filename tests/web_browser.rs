//! The status page in a real browser (Debian's headless chromium, driven
//! over WebDriver by chromedriver): move a service's slider, press Apply,
//! and check the engine, the file and the page, which must show the new
//! count without a reload. Saves a screenshot as `target/web-page.png`.
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them); fails,
//! saying so, when they are missing.

mod support;
mod web;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use support::Project;
use web::{FILE, T, Web};

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let binary = on_path(&["chromedriver"]).unwrap_or_else(|| {
            panic!(
                "chromedriver is not installed: the browser test needs Debian's chromium and \
                 chromium-driver (apt-get install chromium chromium-driver; .ci/run does it)"
            )
        });
        let port = web::free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        let driver = Driver { child, port };
        support::wait_until("chromedriver listens", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn browser(driver: &Driver) -> Client {
    let chromium = on_path(&["chromium", "chromium-browser"]).unwrap_or_else(|| {
        panic!(
            "chromium is not installed: the browser test needs Debian's chromium and \
             chromium-driver (apt-get install chromium chromium-driver; .ci/run does it)"
        )
    });
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            // Root in a container: no sandbox; a small /dev/shm.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1000,1100"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    support::block_on(
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port)),
    )
    .unwrap_or_else(|e| panic!("cannot start headless chromium through chromedriver: {e}"))
}

/// Polls the page until `cond` holds on the text of `selector`.
fn wait_text(c: &Client, what: &str, selector: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + T;
    loop {
        let text = support::block_on(async {
            c.find(Locator::Css(selector)).await.ok()?.text().await.ok()
        })
        .unwrap_or_default();
        if cond(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}; `{selector}` shows {text:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Finds `selector` and runs `step` on it; when the page replaced the
/// element in between (it re-renders its live part on each event), finds it
/// again and runs the step again.
fn on_fresh<R, F, Fut>(c: &Client, selector: &str, step: F) -> R
where
    F: Fn(fantoccini::elements::Element) -> Fut,
    Fut: Future<Output = Result<R, fantoccini::error::CmdError>>,
{
    let deadline = Instant::now() + T;
    loop {
        let result = support::block_on(async {
            let e = c.find(Locator::Css(selector)).await?;
            step(e).await
        });
        match result {
            Ok(v) => return v,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference
                    && Instant::now() < deadline => {}
            Err(e) => panic!("`{selector}`: {e}"),
        }
    }
}

/// The texts of column `n` (from 1) of the web service's rows, read in one
/// script run: the page re-renders its rows live, and an element found
/// before a re-render is stale.
fn web_column(c: &Client, n: usize) -> serde_json::Value {
    let script = format!(
        "return Array.from(document.querySelectorAll(\
         'article[data-service=\"web\"] tbody tr td:nth-child({n})'))\
         .map(td => td.textContent.trim());"
    );
    support::block_on(c.execute(&script, vec![])).unwrap()
}

fn running(project: &Project, service: &str) -> usize {
    project
        .containers()
        .iter()
        .filter(|c| c.service() == Some(service) && c.is_running())
        .count()
}

#[test]
fn moving_the_slider_and_pressing_apply_scales_through_the_file() {
    let driver = Driver::start();
    let project = Project::new("web-browser");
    project.write(FILE);
    let web = Web::start(&project, None);
    web.daemon
        .wait_until("2 web run", T, || running(&project, "web") == 2);
    web.daemon.wait_until("the API shows 2 of 2", T, || {
        web.services()["services"][0]["running"] == 2
    });
    let c = browser(&driver);
    support::block_on(c.goto(&web.url("/"))).unwrap();
    let count = "article[data-service=\"web\"] [data-role=\"count\"]";
    wait_text(&c, "the page shows 2 of 2", count, |t| t == "2/2 running");
    wait_text(&c, "the event stream is open", "#live-status", |t| {
        t == "live"
    });
    // Set on this document only: gone if the page reloads.
    support::block_on(c.execute("window.noReload = 'same page'; return 1;", vec![])).unwrap();

    let before = std::fs::read_to_string(project.file()).unwrap();
    // The page replaces its live part on every event: an element found
    // just before that is stale, and the step is taken again on the fresh one.
    let slider = "article[data-service=\"web\"] input[type=\"range\"]";
    let max = on_fresh(&c, slider, |e| async move { e.attr("max").await });
    assert_eq!(
        max.as_deref(),
        Some("10"),
        "the slider goes to max(2×2, 10)"
    );
    // Two steps to the right with the keyboard, as a person would.
    let right = String::from(char::from(fantoccini::key::Key::Right)).repeat(2);
    on_fresh(&c, slider, |e| {
        let keys = right.clone();
        async move { e.send_keys(&keys).await }
    });
    wait_text(
        &c,
        "the slider's number shows 4",
        "article[data-service=\"web\"] [data-role=\"target\"]",
        |t| t == "4",
    );
    let apply = "article[data-service=\"web\"] button[type=\"submit\"]";
    on_fresh(&c, apply, |e| async move { e.click().await.map(|_| ()) });

    // The file: only the count, comments and layout kept.
    web.daemon.wait_until("the file says 4", T, || {
        std::fs::read_to_string(project.file()).unwrap() != before
    });
    assert_eq!(
        std::fs::read_to_string(project.file()).unwrap(),
        before.replace("count = 2        #", "count = 4        #")
    );
    // The engine: the daemon applied the save.
    web.daemon
        .wait_until("4 web containers run", T, || running(&project, "web") == 4);
    assert_eq!(running(&project, "worker"), 1);
    // The page: the new count, live.
    wait_text(&c, "the page shows 4 of 4", count, |t| t == "4/4 running");
    let marker = support::block_on(c.execute("return window.noReload;", vec![])).unwrap();
    assert_eq!(marker, "same page", "the page was reloaded");
    // The rows' first cells.
    let expected: Vec<String> = (1..=4)
        .map(|i| format!("{}-web-{i}", project.name()))
        .collect();
    let deadline = Instant::now() + T;
    loop {
        let names = web_column(&c, 1);
        if names == serde_json::json!(expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page's web rows are {names}, not {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Their ports column: each container's own ephemeral host port for
    // 8080, once.
    let ports = web_column(&c, 4);
    let hosts: std::collections::BTreeSet<u16> = ports
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str()?.strip_suffix("→8080/tcp")?.parse().ok())
        .collect();
    assert_eq!(hosts.len(), 4, "the web rows' ports: {ports}");
    wait_text(&c, "the timeline shows the steps", "#events", |t| {
        t.contains(&format!("{}-web-4 create", project.name()))
    });

    let png = support::block_on(c.screenshot()).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/web-page.png");
    std::fs::write(&out, png).unwrap();
    eprintln!("screenshot: {}", out.display());
    let _ = support::block_on(c.close());
}
