//! `muster watch --listen` against a real engine: the JSON API shows what
//! runs, a scale through it rewrites the file (comments kept) and the
//! daemon applies it; every refusal of SPEC §11 (bad body, unknown
//! service, invalid file, token, Host, CSRF, size) writes nothing; the
//! metrics follow real applies. A real HTTP client on loopback.

mod support;
mod web;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::Project;
use web::{Api, FILE, T, Web};

fn running(project: &Project, service: &str) -> usize {
    project
        .containers()
        .iter()
        .filter(|c| c.service() == Some(service) && c.is_running())
        .count()
}

/// Per service, the containers and their states on the engine…
fn engine_state(project: &Project) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for c in project.containers() {
        out.entry(c.service().unwrap_or("").to_string())
            .or_default()
            .push((c.name.clone(), c.state.clone()));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// …and in `GET /api/v1/services`.
fn api_state(json: &serde_json::Value) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    for s in json["services"].as_array().unwrap() {
        let mut v: Vec<(String, String)> = s["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        if !v.is_empty() {
            out.insert(s["service"].as_str().unwrap().to_string(), v);
        }
    }
    out
}

fn service<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {json}"))
}

fn file_text(project: &Project) -> String {
    std::fs::read_to_string(project.file()).unwrap()
}

/// Collects the server-sent events of `/api/v1/events` in the background.
fn listen_events(web: &Web) -> std::sync::Arc<std::sync::Mutex<String>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = seen.clone();
    let url = web.url("/api/v1/events");
    support::runtime().spawn(async move {
        let Ok(mut r) = reqwest::get(url).await else {
            return;
        };
        while let Ok(Some(chunk)) = r.chunk().await {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    seen
}

#[test]
fn the_api_shows_the_engine_and_a_scale_goes_through_the_file() {
    let project = Project::new("web-api");
    project.write(FILE);
    let web = Web::start(&project, None);
    let d = &web.daemon;
    d.wait_until("2 web and 1 worker run", T, || {
        running(&project, "web") == 2 && running(&project, "worker") == 1
    });
    d.wait_until("the API shows what the engine runs", T, || {
        api_state(&web.services()) == engine_state(&project)
    });
    let json = web.services();
    assert_eq!(json["project"], project.name());
    assert_eq!(json["file"]["valid"], true);
    assert_eq!(json["engine"]["connected"], true);
    assert_eq!(service(&json, "web")["desired"], 2);
    assert_eq!(service(&json, "web")["running"], 2);
    assert_eq!(service(&json, "web")["mode"], "parallel");
    assert_eq!(web.get("/readyz").status, 200);

    let events = listen_events(&web);
    let before = file_text(&project);
    let r = web.scale_raw("web", r#"{"count": 4}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let reply = r.json();
    assert_eq!(reply["changed"], true);
    let diff = reply["diff"].as_str().unwrap();
    assert!(
        diff.contains("-count = 2        # two is enough at night\n")
            && diff.contains("+count = 4        # two is enough at night\n"),
        "{diff}"
    );
    assert_eq!(reply["plan"]["summary"]["create"], 2, "{reply}");
    // Exactly the count changed: every comment and the layout stay.
    let expected = before.replace("count = 2        #", "count = 4        #");
    assert_ne!(expected, before);
    assert_eq!(file_text(&project), expected);

    // The daemon applies it as a save: the engine runs 4.
    d.wait_until("4 web containers run", T, || running(&project, "web") == 4);
    assert_eq!(running(&project, "worker"), 1);
    d.wait_until("the API shows 4 of 4", T, || {
        let j = web.services();
        service(&j, "web")["desired"] == 4
            && service(&j, "web")["running"] == 4
            && api_state(&j) == engine_state(&project)
    });
    d.wait_until("the plan is empty", T, || {
        let p = web.get("/api/v1/plan").json();
        p["format_version"] == 1 && p["changes"].as_array().is_some_and(Vec::is_empty)
    });
    let last = web.services()["last_pass"].clone();
    assert_eq!(last["outcome"], "applied", "{last}");
    assert!(
        last["trigger"]
            .as_str()
            .unwrap()
            .contains("services.toml saved"),
        "{last}"
    );
    d.wait_until("the event stream told the plan and the steps", T, || {
        let seen = events.lock().unwrap();
        seen.contains("\"event\":\"plan\"")
            && seen.contains(&format!("\"container\":\"{}-web-4\"", project.name()))
            && seen.contains("\"event\":\"step\"")
    });
}

/// With an overlay (`-f services.toml -f prod.toml`), a scale from the API
/// edits the file of the chain that sets the count, as `muster scale`
/// does: the overlay; the first file stays as it was.
#[test]
fn a_scale_edits_the_file_of_the_chain_that_sets_the_count() {
    let project = Project::new("web-chain");
    project.write(FILE);
    let overlay = project.dir().join("prod.toml");
    std::fs::write(&overlay, "[services.web]\ncount = 3 # production\n").unwrap();
    let web = Web::start_with(&project, None, &["-f", "prod.toml"]);
    let d = &web.daemon;
    d.wait_until("3 web run", T, || running(&project, "web") == 3);
    // The reply's plan is made from the daemon's last look at the engine.
    d.wait_until("the API shows what the engine runs", T, || {
        api_state(&web.services()) == engine_state(&project)
    });
    let base = file_text(&project);
    let r = web.scale_raw("web", r#"{"count": 4}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let reply = r.json();
    assert_eq!(reply["changed"], true, "{reply}");
    assert_eq!(reply["file"], "prod.toml", "{reply}");
    assert_eq!(reply["plan"]["summary"]["create"], 1, "{reply}");
    assert_eq!(
        std::fs::read_to_string(&overlay).unwrap(),
        "[services.web]\ncount = 4 # production\n"
    );
    assert_eq!(file_text(&project), base, "the first file was written");
    d.wait_until("4 web containers run", T, || running(&project, "web") == 4);
    d.wait_until("the daemon names the file that was saved", T, || {
        web.services()["last_pass"]["trigger"]
            .as_str()
            .is_some_and(|t| t.contains("prod.toml saved") && !t.contains("services.toml"))
    });
    assert_eq!(
        web.services()["file"]["path"],
        "services.toml + prod.toml",
        "the page names the whole chain"
    );
}

#[test]
fn bad_scale_requests_are_refused_and_write_nothing() {
    let project = Project::new("web-bad");
    project.write(FILE);
    let web = Web::start(&project, None);
    web.daemon
        .wait_until("2 web run", T, || running(&project, "web") == 2);
    let before = file_text(&project);
    let cases = [
        ("nope", r#"{"count": 3}"#, "no service `nope`"),
        ("web", r#"{"count": 1001}"#, "out of range"),
        ("web", r#"{"count": -1}"#, "out of range"),
        ("web", r#"{"count": "3"}"#, "the body must be"),
        ("web", r#"{"count": 3, "extra": 1}"#, "the body must be"),
        ("web", r#"{}"#, "the body must be"),
        ("web", "[3]", "the body must be"),
        ("web", "count=3", "the body must be"),
        ("web", "", "the body must be"),
    ];
    for (name, body, says) in cases {
        let r = web.scale_raw(name, body);
        assert_eq!(r.status, 400, "{name} {body}: {r:?}");
        let message = r.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(says), "{name} {body}: {message}");
        assert!(!message.contains('\n'), "one line: {message}");
        assert_eq!(file_text(&project), before, "{name} {body} wrote the file");
    }

    // Without the page's CSRF token (and no bearer token): refused.
    let r = web
        .send(
            reqwest::Method::POST,
            "/api/v1/services/web/scale",
            &[("Content-Type", "application/json")],
            Some(br#"{"count": 3}"#.to_vec()),
        )
        .unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    let r = web
        .send(
            reqwest::Method::POST,
            "/api/v1/services/web/scale",
            &[("X-Muster-Csrf", "0000")],
            Some(br#"{"count": 3}"#.to_vec()),
        )
        .unwrap();
    assert_eq!(r.status, 403, "{r:?}");

    // A body over 64 KiB.
    let csrf = web.csrf();
    let big = format!(r#"{{"count": 3, "pad": "{}"}}"#, "x".repeat(70 * 1024));
    let r = web
        .send(
            reqwest::Method::POST,
            "/api/v1/services/web/scale",
            &[("X-Muster-Csrf", &csrf)],
            Some(big.into_bytes()),
        )
        .unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    // The body is left unread and the connection closed: the answer says so,
    // or a client would send its next request on a dead connection.
    assert_eq!(
        r.headers.get("connection").and_then(|v| v.to_str().ok()),
        Some("close"),
        "{r:?}"
    );

    // A Host that is not this server (DNS rebinding), on every route.
    for path in ["/", "/api/v1/services", "/metrics", "/api/v1/csrf"] {
        let r = web
            .send(
                reqwest::Method::GET,
                path,
                &[("Host", "rebind.example:80")],
                None,
            )
            .unwrap();
        assert_eq!(r.status, 421, "{path}: {r:?}");
    }
    let r = web
        .send(
            reqwest::Method::POST,
            "/api/v1/services/web/scale",
            &[("Host", "rebind.example"), ("X-Muster-Csrf", &csrf)],
            Some(br#"{"count": 3}"#.to_vec()),
        )
        .unwrap();
    assert_eq!(r.status, 421, "{r:?}");
    let port = web.addr.rsplit(':').next().unwrap();
    let r = web
        .send(
            reqwest::Method::GET,
            "/healthz",
            &[("Host", &format!("localhost:{port}"))],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 200, "localhost is this server: {r:?}");

    // Two Host headers: 400, whichever would pass alone.
    {
        use std::io::{Read, Write};
        let mut two = std::net::TcpStream::connect(&web.addr).unwrap();
        two.write_all(
            format!(
                "GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nHost: rebind.example\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        two.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut answer = String::new();
        let _ = two.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }

    // Headers that never end (slowloris): the server hangs up once the
    // request timeout has passed, rather than holding the connection.
    {
        use std::io::{Read, Write};
        let mut slow = std::net::TcpStream::connect(&web.addr).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            .unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(90)))
            .unwrap();
        let mut answer = Vec::new();
        let read = slow.read_to_end(&mut answer);
        assert!(
            read.is_ok(),
            "the connection was still open after 90 s: {read:?} {}",
            String::from_utf8_lossy(&answer)
        );
    }

    assert_eq!(file_text(&project), before);
    assert_eq!(running(&project, "web"), 2);
}

#[test]
fn while_the_file_is_invalid_a_scale_is_refused_with_409() {
    let project = Project::new("web-409");
    project.write(FILE);
    let web = Web::start(&project, None);
    web.daemon
        .wait_until("2 web run", T, || running(&project, "web") == 2);
    let half_edited = file_text(&project).replace("count = 1\n", "count = \n");
    std::fs::write(project.file(), &half_edited).unwrap();
    web.daemon
        .wait_until("the API says the file is invalid", T, || {
            web.services()["file"]["valid"] == false
        });
    let problems = web.services()["file"]["problems"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(problems.contains("services.toml:"), "{problems}");
    let page = web.get("/");
    assert!(page.body.contains("is invalid"), "{}", page.body);
    assert_eq!(web.metric("muster_file_valid"), Some(0.0));

    let r = web.scale_raw("web", r#"{"count": 3}"#);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        r.json()["error"].as_str().unwrap().contains("invalid"),
        "{r:?}"
    );
    assert_eq!(
        file_text(&project),
        half_edited,
        "the edit in progress was overwritten"
    );
    assert_eq!(running(&project, "web"), 2);
}

#[test]
fn with_a_token_every_request_needs_it() {
    let project = Project::new("web-token");
    project.write(FILE);
    let token = "0123456789abcdef0123456789abcdef";
    let web = Web::start(&project, Some(token));
    web.daemon
        .wait_until("2 web run", T, || running(&project, "web") == 2);
    let anonymous = Api::new(&web.addr, None);
    let wrong = Api::new(&web.addr, Some("0123456789abcdef0123456789abcdeX"));
    for path in [
        "/",
        "/api/v1/services",
        "/metrics",
        "/healthz",
        "/api/v1/events",
    ] {
        assert_eq!(anonymous.get(path).status, 401, "{path} without the token");
        assert_eq!(wrong.get(path).status, 401, "{path} with a wrong token");
    }
    let before = file_text(&project);
    let csrf = web.csrf();
    let r = anonymous
        .send(
            reqwest::Method::POST,
            "/api/v1/services/web/scale",
            &[
                ("Content-Type", "application/json"),
                ("X-Muster-Csrf", &csrf),
            ],
            Some(br#"{"count": 3}"#.to_vec()),
        )
        .unwrap();
    assert_eq!(r.status, 401, "the CSRF token is no token: {r:?}");
    assert_eq!(file_text(&project), before);
    // The bearer token alone is enough for a change: a cross-site page
    // cannot send it.
    let r = web
        .send(
            reqwest::Method::POST,
            "/api/v1/services/web/scale",
            &[("Content-Type", "application/json")],
            Some(br#"{"count": 3}"#.to_vec()),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    web.daemon
        .wait_until("3 web run", T, || running(&project, "web") == 3);
    // A browser logs in once with ?token=… and gets a cookie.
    let login = anonymous.get(&format!("/?token={token}"));
    assert_eq!(login.status, 303, "{login:?}");
    let cookie = login.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with(&format!("muster_token={token};"))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let with_cookie = |path: &str| {
        anonymous
            .send(
                reqwest::Method::GET,
                path,
                &[("Cookie", &format!("muster_token={token}"))],
                None,
            )
            .unwrap()
    };
    assert_eq!(with_cookie("/").status, 200);
    assert_eq!(with_cookie("/api/v1/services").status, 200);
    // A change with the cookie needs the CSRF token, or the right bearer
    // token: not just any `Authorization` header.
    let before = file_text(&project);
    let r = anonymous
        .send(
            reqwest::Method::POST,
            "/api/v1/services/web/scale",
            &[
                ("Cookie", &format!("muster_token={token}")),
                ("Authorization", "Bearer nonsense"),
            ],
            Some(br#"{"count": 2}"#.to_vec()),
        )
        .unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(file_text(&project), before);
}

#[test]
fn a_non_loopback_address_without_a_token_exits_64() {
    let project = Project::new("web-64");
    project.write(FILE);
    let out = project
        .muster()
        .args(["watch", "--listen", "0.0.0.0:7071"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("--token-file"), "{stderr}");
    assert!(project.containers().is_empty(), "it started anyway");
    let out = project
        .muster()
        .env("MUSTER_LISTEN", "0.0.0.0:7071")
        .args(["watch"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "MUSTER_LISTEN: {stderr}");
    assert!(stderr.contains("--token-file"), "{stderr}");
    for bad in ["not-an-address", "localhost", "127.0.0.1:99999"] {
        let out = project
            .muster()
            .args(["watch", "--listen", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "--listen {bad}");
    }
    // A token that is too short to be one is a usage error too.
    std::fs::write(project.dir().join("token"), "short\n").unwrap();
    let out = project
        .muster()
        .args(["watch", "--listen", "0.0.0.0:7071", "--token-file", "token"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("at least 16"), "{stderr}");
    assert!(project.containers().is_empty(), "it started anyway");
}

#[test]
fn metrics_follow_real_applies() {
    let project = Project::new("web-metrics");
    project.write(FILE);
    let web = Web::start(&project, None);
    let d = &web.daemon;
    d.wait_until("2 web run", T, || running(&project, "web") == 2);
    let desired = |s: &str| format!("muster_containers_desired{{service=\"{s}\"}}");
    let running_metric = |s: &str| format!("muster_containers_running{{service=\"{s}\"}}");
    d.wait_until("the metrics show 2 web and 1 worker running", T, || {
        web.metric(&running_metric("web")) == Some(running(&project, "web") as f64)
            && web.metric(&running_metric("worker")) == Some(running(&project, "worker") as f64)
            && web.metric(&desired("web")) == Some(2.0)
    });
    assert_eq!(web.metric(&desired("worker")), Some(1.0));
    assert_eq!(web.metric("muster_file_valid"), Some(1.0));
    assert_eq!(web.metric("muster_engine_connected"), Some(1.0));
    let passes = "muster_reconcile_passes_total{trigger=\"start\",outcome=\"applied\"}";
    assert_eq!(web.metric(passes), Some(1.0));
    let applied_at = web
        .metric("muster_last_apply_success_timestamp_seconds")
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        applied_at > now - 300.0 && applied_at <= now + 1.0,
        "{applied_at}"
    );
    assert!(
        web.metric("muster_reconcile_duration_seconds_count")
            .unwrap()
            >= 1.0
    );

    // A save to 3: the metrics follow the engine.
    support::save_by_rename(&project, &FILE.replace("count = 2 ", "count = 3 "));
    d.wait_until("3 web run", T, || running(&project, "web") == 3);
    d.wait_until("the metrics show 3 of 3", T, || {
        web.metric(&desired("web")) == Some(3.0)
            && web.metric(&running_metric("web")) == Some(running(&project, "web") as f64)
    });
    let file_passes = "muster_reconcile_passes_total{trigger=\"file\",outcome=\"applied\"}";
    assert_eq!(web.metric(file_passes), Some(1.0));

    // A container killed outside muster is drift (of kind `kill`: the
    // daemon tells it from a crash).
    let victim = format!("{}-web-1", project.name());
    support::block_on(support::docker().kill_container(
        &victim,
        None::<bollard::query_parameters::KillContainerOptions>,
    ))
    .unwrap();
    d.wait_until("the drift is counted", T, || {
        web.metric("muster_drift_events_total{service=\"web\",kind=\"kill\"}")
            .is_some_and(|n| n >= 1.0)
    });
    d.wait_until("web-1 runs again", T, || running(&project, "web") == 3);
}

#[test]
fn a_thousand_scrapes_keep_the_daemons_memory_flat() {
    let project = Project::new("web-rss");
    project.write(FILE);
    let web = Web::start(&project, None);
    web.daemon
        .wait_until("2 web run", T, || running(&project, "web") == 2);
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", web.daemon.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    // Warm up: allocator pools and the connection.
    for _ in 0..100 {
        assert_eq!(web.get("/metrics").status, 200);
    }
    let before = rss();
    let started = Instant::now();
    for _ in 0..1000 {
        assert_eq!(web.get("/metrics").status, 200);
    }
    let took = started.elapsed();
    let after = rss();
    eprintln!(
        "1000 scrapes of /metrics in {:.2}s: daemon RSS {before} kB before, {after} kB after",
        took.as_secs_f64()
    );
    // A save while another 1000 scrapes run: the pass is reported, not
    // asserted on (timings depend on the machine).
    let scraper = {
        let api = Api::new(&web.addr, None);
        std::thread::spawn(move || {
            for _ in 0..1000 {
                assert_eq!(api.get("/metrics").status, 200);
            }
        })
    };
    let saved = Instant::now();
    support::save_by_rename(&project, &FILE.replace("count = 2 ", "count = 3 "));
    web.daemon
        .wait_until("3 web run", T, || running(&project, "web") == 3);
    let applied = saved.elapsed();
    scraper.join().unwrap();
    let passes = "muster_reconcile_passes_total{trigger=\"file\",outcome=\"applied\"}";
    web.daemon
        .wait_until("the pass is counted", T, || web.metric(passes) == Some(1.0));
    eprintln!(
        "under 1000 scrapes: a save to one more container ran in {:.2}s from save to running \
         (debounce 100ms included); mean pass {:.3}s over {} passes",
        applied.as_secs_f64(),
        web.metric("muster_reconcile_duration_seconds_sum").unwrap()
            / web
                .metric("muster_reconcile_duration_seconds_count")
                .unwrap(),
        web.metric("muster_reconcile_duration_seconds_count")
            .unwrap(),
    );
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} kB to {after} kB over 1000 scrapes"
    );
    assert!(web.daemon.is_running());
}

#[test]
fn ready_only_once_a_first_pass_ended() {
    let project = Project::new("web-ready");
    let broken = FILE.replace("count = 1\n", "count = \n");
    project.write(&broken);
    let web = Web::start(&project, None);
    // Alive, but with no valid file there is no pass to end.
    assert_eq!(web.get("/healthz").status, 200);
    web.daemon
        .wait_until("the API says the file is invalid", T, || {
            web.services()["file"]["valid"] == false
        });
    assert_eq!(web.get("/readyz").status, 503);
    assert_eq!(web.get("/api/v1/plan").status, 503);
    assert!(project.containers().is_empty());
    support::save_by_rename(&project, FILE);
    web.daemon
        .wait_until("ready", T, || web.get("/readyz").status == 200);
    web.daemon
        .wait_until("2 web run", T, || running(&project, "web") == 2);
    assert_eq!(web.services()["file"]["valid"], true);
}

#[test]
fn a_crash_loop_shows_on_the_page_the_api_and_the_metrics() {
    let project = Project::new("web-crash");
    project.write(
        r#"[services.crash]
image = "{image}"
command = ["sh", "-c", "echo boom; exit 3"]
restart = "no"
init = true
stop_grace_period = "1s"
"#,
    );
    let crash1 = format!("{}-crash-1", project.name());
    let web = Web::start(&project, None);
    web.daemon
        .wait_until("the API shows it crash-looping", T, || {
            let j = web.services();
            j["services"][0]["containers"][0]["backoff"]["failures"]
                .as_u64()
                .is_some_and(|n| n >= 2)
        });
    let j = web.services();
    let c = &j["services"][0]["containers"][0];
    assert_eq!(c["name"], crash1.as_str());
    assert_eq!(c["state"], "exited", "{c}");
    let engine: Vec<String> = project
        .containers()
        .iter()
        .map(|c| c.state.clone())
        .collect();
    assert!(engine.iter().all(|s| s != "running"), "{engine:?}");
    web.daemon
        .wait_until("the metrics count the back-off", T, || {
            web.metric("muster_crashloop_backoffs{service=\"crash\"}") == Some(1.0)
        });
    assert!(
        web.metric("muster_drift_events_total{service=\"crash\",kind=\"die\"}")
            .is_some_and(|n| n >= 2.0)
    );
    let page = web.get("/");
    assert!(page.body.contains("crash-looping"), "{}", page.body);
    assert!(page.body.contains(&crash1));
}
