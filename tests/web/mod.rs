//! Support for the tests of `muster watch --listen`: the daemon with its
//! web face on a free loopback port, and a plain HTTP client for it.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::time::Duration;

use crate::support::Daemon;
use crate::support::{self, Project};

pub const T: Duration = Duration::from_secs(60);

/// The file of the web tests: two services, with comments that a scale
/// through the page or the API must keep.
pub const FILE: &str = r#"# The shop's web tier.
[services.web]   # scaled from the page
image = "{image}"
count = 2        # two is enough at night
command = ["sleep", "3600"]
ports = ["8080"]
init = true
stop_grace_period = "1s"

# A second service, left alone.
[services.worker]
image = "{image}"
count = 1
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `muster watch --listen 127.0.0.1:PORT` on a project, with a client
/// for it (the methods of [`Api`]).
pub struct Web {
    pub daemon: Daemon,
    pub api: Api,
}

impl std::ops::Deref for Web {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Web {
    /// Starts the daemon (resync an hour: it acts on saves and events
    /// only) and waits until its web face answers.
    pub fn start(project: &Project, token: Option<&str>) -> Web {
        Web::start_with(project, token, &[])
    }

    /// [`Web::start`] with more global arguments before `watch` (`-f
    /// overlay.toml`).
    pub fn start_with(project: &Project, token: Option<&str>, global: &[&str]) -> Web {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut args = global.to_vec();
        args.extend([
            "watch",
            "--debounce",
            "100ms",
            "--resync",
            "1h",
            "--listen",
            addr.as_str(),
        ]);
        if let Some(t) = token {
            std::fs::write(project.dir().join("token"), format!("{t}\n")).unwrap();
            args.extend(["--token-file", "token"]);
        }
        let daemon = Daemon::start(project, &args);
        let web = Web {
            daemon,
            api: Api::new(&addr, token),
        };
        web.daemon
            .wait_until("its web face answers /healthz", T, || {
                web.try_get("/healthz").is_some_and(|r| r.status == 200)
            });
        web
    }
}

/// A plain HTTP client for the web face at `addr`.
pub struct Api {
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The bearer token, sent with every request, when set.
    pub token: Option<String>,
    client: reqwest::Client,
}

impl Api {
    pub fn new(addr: &str, token: Option<&str>) -> Api {
        Api {
            addr: addr.to_string(),
            token: token.map(String::from),
            // Redirects are the test's to see.
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request with the token (if any) and these extra headers.
    pub fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Option<Reply> {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        support::block_on(async {
            let r = req.send().await.ok()?;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body = r.text().await.ok()?;
            Some(Reply {
                status,
                headers,
                body,
            })
        })
    }

    fn try_get(&self, path: &str) -> Option<Reply> {
        self.send(reqwest::Method::GET, path, &[], None)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.try_get(path)
            .unwrap_or_else(|| panic!("GET {path}: no answer"))
    }

    /// The page's CSRF token.
    pub fn csrf(&self) -> String {
        let r = self.get("/api/v1/csrf");
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["csrf"].as_str().unwrap().to_string()
    }

    /// `POST /api/v1/services/NAME/scale` with the CSRF token and `body`.
    pub fn scale_raw(&self, name: &str, body: &str) -> Reply {
        let csrf = self.csrf();
        self.send(
            reqwest::Method::POST,
            &format!("/api/v1/services/{name}/scale"),
            &[
                ("Content-Type", "application/json"),
                ("X-Muster-Csrf", &csrf),
            ],
            Some(body.as_bytes().to_vec()),
        )
        .unwrap_or_else(|| panic!("POST scale {name}: no answer"))
    }

    pub fn services(&self) -> serde_json::Value {
        let r = self.get("/api/v1/services");
        assert_eq!(r.status, 200, "{r:?}");
        r.json()
    }

    /// The value of the sample `name` (with its labels, as printed) in `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "{r:?}");
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }
}
