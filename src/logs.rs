//! `muster logs`: the output of the project's units, each line prefixed
//! with its unit's name, merged in the engine's time order; with `-f`, the
//! lines to come, from units started later too, until Ctrl-C. Does engine
//! I/O through the [`Backend`] only.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};

use crate::commands::{Context, Done};
use crate::engine::{self, Backend, ErrorKind, LogLine, LogRequest};
use crate::error::Error;
use crate::output::{Paint, Printer};
use crate::sanitize;

/// What `muster logs` shows.
#[derive(Debug, Clone, Default)]
pub struct LogsRequest {
    /// Only these services (all when empty).
    pub services: Vec<String>,
    pub follow: bool,
    /// The last this many lines of each unit.
    pub tail: Option<usize>,
    /// Only lines written within this long.
    pub since: Option<Duration>,
    /// Keep the engine's timestamps in front of each line.
    pub timestamps: bool,
}

/// Prefixes lines with their unit's name, each unit in its own colour.
struct Lines<'a> {
    printer: &'a Printer,
    paint: Paint,
    timestamps: bool,
    /// Units in the order first seen: their colour.
    seen: Vec<String>,
    width: usize,
}

impl Lines<'_> {
    fn know(&mut self, name: &str) {
        if !self.seen.iter().any(|n| n == name) {
            self.seen.push(name.to_string());
            self.width = self.width.max(name.chars().count());
        }
    }

    fn print(&mut self, name: &str, line: &LogLine) {
        self.know(name);
        let i = self.seen.iter().position(|n| n == name).unwrap_or(0);
        let shown = sanitize::text(name);
        let prefix = format!("{shown:<width$} |", width = self.width);
        let stamp = if self.timestamps && !line.timestamp.is_empty() {
            format!(" {}", sanitize::text(&line.timestamp))
        } else {
            String::new()
        };
        self.printer.out(&format!(
            "{}{stamp} {}\n",
            self.paint.nth(i, &prefix),
            sanitize::text(&line.text)
        ));
    }
}

/// `muster logs`.
///
/// # Errors
/// An invalid file; a SERVICE the file does not declare
/// ([`Error::Usage`]); an engine that does not answer or goes away.
pub async fn run(ctx: &Context, printer: &Printer, req: &LogsRequest) -> Result<Done, Error> {
    let desired = ctx.load()?;
    for s in &req.services {
        if !desired.services.contains_key(s) {
            return Err(Error::Usage(format!(
                "{} declares no service {s:?}",
                ctx.file.display()
            )));
        }
    }
    let backend = engine::connect(desired.backend, ctx.host.as_deref()).await?;
    let project = desired.project.clone();
    let wanted = |name: &str, service: Option<&str>| {
        let service = service
            .map(str::to_string)
            .or_else(|| service_of(&project, name, &|s| desired.services.contains_key(s)));
        req.services.is_empty() || service.is_some_and(|s| req.services.contains(&s))
    };
    // Subscribed before looking, so that a unit that starts in between is not missed.
    let starts = req.follow.then(|| backend.starts(&project));
    let started_at = now_nanos();
    let mut units: Vec<String> = backend
        .units(&project)
        .await?
        .iter()
        .filter(|u| wanted(&u.name, Some(&u.service)))
        .map(|u| u.name.clone())
        .collect();
    units.sort();
    let mut lines = Lines {
        printer,
        paint: Paint(printer.color_out()),
        timestamps: req.timestamps,
        seen: Vec::new(),
        width: 0,
    };
    for u in &units {
        lines.know(u);
    }
    let since = req
        .since
        .map(|d| engine::now_secs().saturating_sub(d.as_secs()) as i64);
    let history = LogRequest {
        since,
        tail: req.tail,
        follow: false,
    };
    let fetched = futures_util::future::join_all(
        units
            .iter()
            .map(|u| backend.log_stream(u, history).collect::<Vec<_>>()),
    )
    .await;
    let mut merged: Vec<(usize, LogLine)> = Vec::new();
    for (i, result) in fetched.into_iter().enumerate() {
        for line in result {
            match line {
                Ok(line) => merged.push((i, line)),
                // Removed since it was listed: nothing to show.
                Err(e) if e.kind == ErrorKind::NotFound => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    // Stable: lines of one unit with the same time keep their order.
    merged.sort_by_key(|(i, line)| (line.at, *i));
    let mut cutoff: HashMap<String, i64> = units.iter().map(|u| (u.clone(), started_at)).collect();
    for (i, line) in &merged {
        let c = cutoff.entry(units[*i].clone()).or_default();
        *c = (*c).max(line.at);
        lines.print(&units[*i], line);
    }
    let Some(starts) = starts else {
        return Ok(Done::Ok);
    };
    follow(backend, starts, units, cutoff, &mut lines, &wanted).await
}

/// A unit's stream of lines, then `None` when it ends.
type Tagged = BoxStream<'static, (String, Option<engine::Result<LogLine>>)>;

fn tagged(backend: &Arc<dyn Backend>, name: &str, after: Option<i64>) -> Tagged {
    let request = LogRequest {
        since: after.map(|nanos| nanos.div_euclid(1_000_000_000)),
        tail: None,
        follow: true,
    };
    let name = name.to_string();
    let end = name.clone();
    backend
        .log_stream(&name, request)
        .map(move |line| (name.clone(), Some(line)))
        .chain(futures_util::stream::once(async move { (end, None) }))
        .boxed()
}

async fn follow(
    backend: Arc<dyn Backend>,
    mut starts: BoxStream<'static, engine::Result<String>>,
    units: Vec<String>,
    mut cutoff: HashMap<String, i64>,
    lines: &mut Lines<'_>,
    wanted: &dyn Fn(&str, Option<&str>) -> bool,
) -> Result<Done, Error> {
    let mut streams: SelectAll<Tagged> = SelectAll::new();
    let mut active: HashSet<String> = HashSet::new();
    // Started again before its old stream ended: follow it again then.
    let mut restarted: HashSet<String> = HashSet::new();
    for u in units {
        streams.push(tagged(&backend, &u, cutoff.get(&u).copied()));
        active.insert(u);
    }
    let mut interrupt = std::pin::pin!(interrupted());
    loop {
        tokio::select! {
            () = &mut interrupt => return Ok(Done::Ok),
            started = starts.next() => match started {
                Some(Ok(name)) if wanted(&name, None) => {
                    if active.contains(&name) {
                        restarted.insert(name);
                    } else {
                        lines.know(&name);
                        streams.push(tagged(&backend, &name, cutoff.get(&name).copied()));
                        active.insert(name);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Error::Other("the engine closed its event stream".into())),
            },
            Some((name, item)) = streams.next(), if !streams.is_empty() => match item {
                Some(Ok(line)) => {
                    let c = cutoff.entry(name.clone()).or_insert(i64::MIN);
                    if line.at > *c || line.at == 0 {
                        *c = (*c).max(line.at);
                        lines.print(&name, &line);
                    }
                }
                Some(Err(e)) if e.kind == ErrorKind::NotFound => {}
                Some(Err(e)) => return Err(e.into()),
                None => {
                    active.remove(&name);
                    if restarted.remove(&name) {
                        streams.push(tagged(&backend, &name, cutoff.get(&name).copied()));
                        active.insert(name);
                    }
                }
            },
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The service of a container named `<project>-<service>-<n>`, or of its
/// start-first replacement (`…-<n>-next`); or of a swarm service named
/// `<project>_<service>` (one of `declared`) or `<project>_<service>-<n>`
/// (an ordinal of a sequential one).
fn service_of(project: &str, name: &str, declared: &dyn Fn(&str) -> bool) -> Option<String> {
    let rest = name.strip_prefix(project)?;
    let rest = match rest.strip_prefix('_') {
        Some(service) if declared(service) => return Some(service.to_string()),
        Some(rest) => rest,
        None => rest.strip_prefix('-')?,
    };
    let rest = rest.strip_suffix("-next").unwrap_or(rest);
    let (service, ordinal) = rest.rsplit_once('-')?;
    ordinal
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| service.to_string())
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_of_unit_names() {
        let declared = |s: &str| ["web", "web-2"].contains(&s);
        let of = |name: &str| service_of("shop", name, &declared);
        assert_eq!(of("shop-web-2").as_deref(), Some("web"));
        assert_eq!(of("shop-web-api-10").as_deref(), Some("web-api"));
        assert_eq!(of("shopx-web-1"), None);
        assert_eq!(of("shop-web-next"), None);
        assert_eq!(of("shop-web-1-next").as_deref(), Some("web"));
        // Swarm services: replicated, an ordinal, a name ending in digits.
        assert_eq!(of("shop_web").as_deref(), Some("web"));
        assert_eq!(of("shop_db-3").as_deref(), Some("db"));
        assert_eq!(of("shop_web-2").as_deref(), Some("web-2"));
        assert_eq!(of("shopx_web"), None);
    }
}
