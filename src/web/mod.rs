//! The daemon's web face (`muster watch --listen ADDR`, SPEC §11): a status
//! page, a JSON API, server-sent events, Prometheus metrics and health
//! probes, served on the daemon's own runtime. Does network and file I/O.
//!
//! # Guarantees
//! - The file stays the only truth: a scale rewrites `services.toml` as
//!   `muster scale` does (counts only, comments and layout kept, written
//!   whole, never with content that does not validate, never over a save
//!   made meanwhile) and the daemon applies it as any save. Nothing here
//!   changes the engine.
//! - While the file is invalid, a scale is refused (409): an edit in
//!   progress is never overwritten.
//! - Every request names this server in `Host` (`localhost` or the listen
//!   address): a DNS-rebinding page cannot reach it. With `--token-file`,
//!   every request carries the token. A change carries the page's CSRF
//!   token or the bearer token in `Authorization`, which a cross-site page
//!   cannot send. Bodies over 64 KiB are refused; requests time out.

mod metrics;
mod page;
mod security;
mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State as Shared};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::broadcast::error::RecvError;

pub use security::{Listen, parse_listen};
pub use state::{State, View};

/// The largest request body read.
const BODY_LIMIT: usize = 64 * 1024;
/// A request that has not been answered by then gets 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest count the API sets; more is a typo, not a scale.
const MAX_COUNT: i64 = 1000;
/// Event streams open at once; more get 503, so that forgotten tabs
/// cannot pile up.
const MAX_STREAMS: usize = 64;
/// The cookie a browser gets from `/?token=…`, when a token is set.
const TOKEN_COOKIE: &str = "muster_token";
/// The header that carries the page's CSRF token.
const CSRF_HEADER: &str = "x-muster-csrf";

/// The running server; it stops when dropped.
pub struct Server {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the web face when `--listen` was given: the state for the
/// daemon to tell, and the server, which serves on the current runtime.
///
/// # Errors
/// When the address cannot be bound (in use, not this host's, no right),
/// or no CSRF token can be made.
pub async fn launch(
    listen: Option<&Listen>,
    sources: crate::config::Sources,
    prune: bool,
    clock: fn() -> String,
) -> Result<Option<(Arc<State>, Server)>, String> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let state = State::new(listen.clone(), sources, prune, clock)
        .map_err(|e| format!("cannot make the page's CSRF token: {e}"))?;
    let state = Arc::new(state);
    let server = start(state.clone()).await?;
    Ok(Some((state, server)))
}

async fn start(state: Arc<State>) -> Result<Server, String> {
    let addr = state.listen.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let app = router(state.clone());
    let serve = tokio::spawn(serve(listener, app));
    let follow = tokio::spawn(state.follow());
    Ok(Server {
        tasks: vec![serve, follow],
    })
}

/// Serves each connection with HTTP/1.1, as `axum::serve` would, and a
/// header read timeout that it lacks: a client that never ends its
/// headers (slowloris) is cut off after [`REQUEST_TIMEOUT`], as a request
/// whose body never ends gets 408.
async fn serve(listener: tokio::net::TcpListener, app: Router) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // A connection reset before it was accepted, or no descriptor
            // left: the next accept may succeed (as axum::serve does).
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn router(state: Arc<State>) -> Router {
    let streams = Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS));
    Router::new()
        .route("/", get(page))
        .route("/assets/page.css", get(css))
        .route("/assets/page.js", get(js))
        .route("/api/v1/services", get(services))
        .route("/api/v1/services/{name}/scale", post(scale))
        .route("/api/v1/plan", get(plan))
        .route(
            "/api/v1/events",
            get(move |s: Shared<Arc<State>>| events(s, streams.clone())),
        )
        .route("/api/v1/csrf", get(csrf))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(middleware::map_response(close_after_too_large))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

/// A body refused for its size is left unread, and the server then closes
/// the connection: say so, or a client reuses it and its next request
/// meets a closed socket.
async fn close_after_too_large(mut response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A refusal or failure: the status and one line saying why, as JSON.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.1});
        (self.0, axum::Json(body)).into_response()
    }
}

/// Host, token and CSRF checks, in that order; then security headers on
/// every answer.
async fn guard(Shared(state): Shared<Arc<State>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    // One Host header, as HTTP/1.1 requires: with two, a proxy and this
    // server could each read another.
    if headers.get_all(header::HOST).iter().count() > 1 {
        return Refusal(
            StatusCode::BAD_REQUEST,
            "a request has one Host header".into(),
        )
        .into_response();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !security::host_allowed(host, state.listen.addr) {
        let listen = if state.listen.addr.ip().is_unspecified() {
            "an IP address of this host".to_string()
        } else {
            state.listen.addr.to_string()
        };
        return Refusal(
            StatusCode::MISDIRECTED_REQUEST,
            format!("the Host header must be localhost or {listen} (DNS rebinding protection)"),
        )
        .into_response();
    }
    let bearer = bearer(headers);
    if let Some(token) = &state.listen.token {
        if let Some(response) = token_login(&request, token) {
            return response;
        }
        let by_header = bearer.is_some_and(|b| security::same_secret(b, token));
        let by_cookie =
            cookie(headers, TOKEN_COOKIE).is_some_and(|c| security::same_secret(c, token));
        if !by_header && !by_cookie {
            let mut r = Refusal(
                StatusCode::UNAUTHORIZED,
                "this daemon wants `Authorization: Bearer <token>` (the token of --token-file)"
                    .into(),
            )
            .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    if request.method() != axum::http::Method::GET && request.method() != axum::http::Method::HEAD {
        // The right bearer token, not any: a cookie alone is what a
        // cross-site form sends.
        let by_bearer = state
            .listen
            .token
            .as_ref()
            .is_some_and(|token| bearer.is_some_and(|b| security::same_secret(b, token)));
        let by_csrf = headers
            .get(CSRF_HEADER)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|c| security::same_secret(c, &state.csrf));
        if !by_bearer && !by_csrf {
            return Refusal(
                StatusCode::FORBIDDEN,
                "a change needs the page's CSRF token in X-Muster-Csrf (GET /api/v1/csrf) \
                 or the bearer token in Authorization"
                    .into(),
            )
            .into_response();
        }
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `GET /?token=T` with the right token: a browser gets it as a cookie
/// (HttpOnly, SameSite=Strict) and is sent back to `/`, so that the token
/// leaves the address bar.
fn token_login(request: &Request, token: &str) -> Option<Response> {
    if request.uri().path() != "/" {
        return None;
    }
    let given = request
        .uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))?;
    if !security::same_secret(given, token) {
        return None;
    }
    let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Some(r)
}

async fn page(Shared(state): Shared<Arc<State>>) -> Response {
    let html = page::render(&state.view(), &state.csrf);
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        page::CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        page::JS,
    )
        .into_response()
}

async fn services(Shared(state): Shared<Arc<State>>) -> Response {
    axum::Json(state.view()).into_response()
}

async fn plan(Shared(state): Shared<Arc<State>>) -> Response {
    match state.pending() {
        Some(plan) => axum::Json(plan).into_response(),
        None => Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "no plan yet: the daemon has not observed the engine with a valid file".into(),
        )
        .into_response(),
    }
}

async fn csrf(Shared(state): Shared<Arc<State>>) -> Response {
    axum::Json(serde_json::json!({"csrf": state.csrf})).into_response()
}

async fn metrics(Shared(state): Shared<Arc<State>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn healthz(Shared(state): Shared<Arc<State>>) -> Response {
    if state.is_running() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
    }
}

async fn readyz(Shared(state): Shared<Arc<State>>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the first pass has not ended\n",
        )
            .into_response()
    }
}

async fn events(
    Shared(state): Shared<Arc<State>>,
    streams: Arc<tokio::sync::Semaphore>,
) -> Response {
    let Ok(permit) = streams.try_acquire_owned() else {
        return Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} event streams are open already"),
        )
        .into_response();
    };
    let rx = state.subscribe();
    let stream = futures_util::stream::unfold((rx, permit), |(mut rx, permit)| async move {
        loop {
            match rx.recv().await {
                Ok(text) => {
                    let event = SseEvent::default().data(&*text);
                    return Some((Ok::<_, std::convert::Infallible>(event), (rx, permit)));
                }
                // A slow reader misses events; the next one still tells it
                // to look again.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleBody {
    count: i64,
}

/// What a scale did.
#[derive(serde::Serialize)]
struct Scaled {
    service: String,
    count: u32,
    file: String,
    /// False when the file already had that count.
    changed: bool,
    /// The file's unified diff.
    diff: String,
    /// What the daemon will do once it has read the file (`plan --output
    /// json`), from its last look at the engine.
    plan: Option<serde_json::Value>,
}

async fn scale(
    Shared(state): Shared<Arc<State>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Response {
    // An object only: serde's derive would also take `[N]` for the struct.
    let object = serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(|v| match v {
            serde_json::Value::Object(_) => {
                serde_json::from_value::<ScaleBody>(v).map_err(|e| e.to_string())
            }
            _ => Err("not an object".to_string()),
        });
    let count = match object {
        Ok(b) => b.count,
        Err(e) => {
            let e = e.lines().next().unwrap_or("");
            return Refusal(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"count\": N}}: {e}"),
            )
            .into_response();
        }
    };
    let Some(count) = u32::try_from(count)
        .ok()
        .filter(|c| i64::from(*c) <= MAX_COUNT)
    else {
        return Refusal(
            StatusCode::BAD_REQUEST,
            format!("count {count} is out of range: 0 to {MAX_COUNT}"),
        )
        .into_response();
    };
    match rewrite(&state, &name, count) {
        Ok(scaled) => axum::Json(scaled).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// The steps of `muster scale` ([`crate::environments::scale_edits`]): the
/// files must be valid before and after, only the count changes, in the
/// file of the chain that sets it, and the write is refused if that file
/// changed since it was read.
fn rewrite(state: &State, name: &str, count: u32) -> Result<Scaled, Refusal> {
    use crate::environments::ScaleRefusal;
    let sources = &state.sources;
    let (edits, mut after) =
        crate::environments::scale_edits(sources, &[(name.to_string(), count)]).map_err(
            |refusal| match refusal {
                ScaleRefusal::Before(invalid) => Refusal(
                    StatusCode::CONFLICT,
                    format!(
                        "{} is invalid; fix it before scaling ({})",
                        sources.shown(),
                        first_line(&invalid.render_plain())
                    ),
                ),
                ScaleRefusal::Usage(text) => Refusal(StatusCode::BAD_REQUEST, text),
                ScaleRefusal::After(invalid) => Refusal(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{name} = {count} would make the file invalid: {}",
                        first_line(&invalid.render_plain())
                    ),
                ),
                ScaleRefusal::Other(text) => Refusal(StatusCode::INTERNAL_SERVER_ERROR, text),
            },
        )?;
    // One target: one file, the one that sets its count.
    let Some(edit) = edits.into_iter().next() else {
        return Err(Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no file of {} sets the count of {name}", sources.shown()),
        ));
    };
    let shown = edit.shown.clone();
    if edit.changed() {
        crate::environments::write_edit(sources, &edit).map_err(|e| {
            // safe_file's refusal of a file changed since it was read.
            let status = if e.kind() == std::io::ErrorKind::Other {
                StatusCode::CONFLICT
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            Refusal(status, format!("writing {shown}: {e}"))
        })?;
    }
    let (current, actual) = state.desired_and_actual();
    let plan = match (current, actual) {
        (Some(current), Some(actual)) => {
            // The daemon's --project and --backend apply to the new file too.
            after.project = current.project;
            after.backend = current.backend;
            Some(crate::render::plan_json(&crate::plan::plan(
                &after,
                &actual,
                state.prune,
            )))
        }
        _ => None,
    };
    Ok(Scaled {
        service: name.to_string(),
        count,
        file: shown.clone(),
        changed: edit.changed(),
        diff: crate::render::file_diff(&shown, &edit.old, &edit.new, false),
        plan,
    })
}

fn first_line(text: &str) -> &str {
    text.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
}
