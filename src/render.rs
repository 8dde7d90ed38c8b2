//! Renderings of plans, steps, errors and states as text and JSON, for
//! the printer ([`crate::output`]). Pure: returns strings and values.

use std::fmt::Write as _;

use crate::backoff::BackoffRecord;
use crate::config::plural;
use crate::error::Error;
use crate::output::Paint;
use crate::plan::{Action, Change, FieldChange, Layout, Orphan, Plan, Reason, ServicePlan};

/// The marker of an action: `+` green, `-` red, `~` yellow, `>` cyan.
fn marker(p: Paint, action: Action) -> String {
    match action {
        Action::Create => p.green("+"),
        Action::Remove => p.red("-"),
        Action::Recreate | Action::Update | Action::Scale => p.yellow("~"),
        Action::Start => p.cyan(">"),
    }
}

/// A value as the plan shows it: lists as written, text quoted.
pub(crate) fn quote(v: &str) -> String {
    if v.starts_with('[') && serde_json::from_str::<Vec<String>>(v).is_ok() {
        return v.to_string();
    }
    serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
}

fn render_diff(out: &mut String, p: Paint, diff: &[FieldChange]) {
    for d in diff {
        let d = &crate::sanitize::field_change(d);
        if let Some(line) =
            crate::config::sensitive::masked_change(&d.path, d.from.as_deref(), d.to.as_deref())
        {
            let _ = writeln!(out, "      {} {line}", p.yellow("~"));
            continue;
        }
        let multi_line = d.from.as_deref().is_some_and(|v| v.contains('\n'))
            || d.to.as_deref().is_some_and(|v| v.contains('\n'));
        if multi_line {
            let _ = writeln!(out, "      {} {}", p.yellow("~"), d.path);
            let old = d.from.clone().unwrap_or_default();
            let new = d.to.clone().unwrap_or_default();
            let text = similar::TextDiff::from_lines(&old, &new);
            for line in text.unified_diff().context_radius(2).to_string().lines() {
                let painted = if line.starts_with('+') {
                    p.green(line)
                } else if line.starts_with('-') {
                    p.red(line)
                } else {
                    line.to_string()
                };
                let _ = writeln!(out, "        {painted}");
            }
            continue;
        }
        if let Some(v) = &d.from {
            let _ = writeln!(
                out,
                "      {}",
                p.red(&format!("- {} = {}", d.path, quote(v)))
            );
        }
        if let Some(v) = &d.to {
            let _ = writeln!(
                out,
                "      {}",
                p.green(&format!("+ {} = {}", d.path, quote(v)))
            );
        }
    }
}

/// The header line of a service with changes.
fn service_header(p: Paint, sp: &ServicePlan) -> String {
    let all = |a: Action| sp.changes.iter().all(|c| c.action == a);
    let marker = if sp.service.is_none() || (all(Action::Remove) && sp.to == 0) {
        p.red("-")
    } else if all(Action::Create) && sp.new {
        p.green("+")
    } else {
        p.yellow("~")
    };
    let mut what = Vec::new();
    if sp.service.is_none() {
        what.push(format!(
            "orphan  {}, removed (--prune)",
            plural(sp.changes.len(), "container")
        ));
    } else {
        if sp.from != sp.to {
            what.push(format!("{} → {}", sp.from, sp.to));
        } else {
            what.push(plural(sp.to as usize, "container"));
        }
        if sp.config_changed {
            what.push("config changed".into());
        }
    }
    let mode = if sp.service.is_none() {
        String::new()
    } else {
        format!("  {}", sp.mode().as_str())
    };
    format!("{marker} {}{mode}  {}", p.bold(&sp.name), what.join(", "))
}

/// The header of a service that is one unit with replicas: the unit is
/// named on the line and not listed below it.
fn replicated_header(p: Paint, sp: &ServicePlan, c: &Change) -> String {
    let mark = match c.action {
        Action::Create if sp.new => p.green("+"),
        Action::Remove => p.red("-"),
        _ => p.yellow("~"),
    };
    let what = match c.action {
        Action::Update if sp.from != sp.to => {
            format!("replicas {} → {}, config changed", sp.from, sp.to)
        }
        Action::Update if c.reason == Reason::ConfigChanged => {
            format!("{}, config changed", plural(sp.to as usize, "replica"))
        }
        Action::Update => format!("{}, {}", plural(sp.to as usize, "replica"), c.reason),
        Action::Create if c.reason == Reason::Missing => {
            format!("{}, missing", plural(sp.to as usize, "replica"))
        }
        _ => format!("replicas {} → {}", sp.from, sp.to),
    };
    format!(
        "{mark} {}  {}  {what}  ({})",
        p.bold(&sp.name),
        sp.mode().as_str(),
        c.unit
    )
}

/// Reasons that the header does not already say.
fn extra_reason(sp: &ServicePlan, c: &Change) -> Option<String> {
    match (c.action, &c.reason) {
        (Action::Create | Action::Remove, Reason::Scale { .. }) => None,
        (Action::Remove, _) if sp.service.is_none() => None,
        (Action::Recreate, Reason::ConfigChanged) => None,
        _ => Some(c.reason.to_string()),
    }
}

/// The text plan of SPEC section 4.
pub fn plan_text(plan: &Plan, endpoint: impl std::fmt::Display, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let _ = writeln!(out, "project {} on {endpoint}", p.bold(&plan.project));
    let _ = writeln!(out);
    let header_len = out.len();
    for image in &plan.missing_images {
        let _ = writeln!(
            out,
            "{} image {image} is not on the engine; apply pulls it first",
            p.yellow("!")
        );
    }
    for sp in plan.services.iter().filter(|s| !s.changes.is_empty()) {
        let replicated = plan.layout == Layout::SwarmServices
            && sp.service.is_some()
            && sp.changes.iter().all(|c| c.ordinal.is_none());
        if replicated {
            for c in &sp.changes {
                let _ = writeln!(out, "{}", replicated_header(p, sp, c));
                render_diff(&mut out, p, &c.diff);
            }
            continue;
        }
        let _ = writeln!(out, "{}", service_header(p, sp));
        let recreates: Vec<&Change> = sp.changes.iter().filter(|c| !c.diff.is_empty()).collect();
        let shared = recreates.windows(2).all(|w| w[0].diff == w[1].diff);
        for (i, c) in sp.changes.iter().enumerate() {
            let reason = extra_reason(sp, c)
                .map(|r| format!("  {}", p.dim(&format!("({r})"))))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {} {}  {}{reason}",
                marker(p, c.action),
                c.unit,
                c.action.as_str()
            );
            let last_with_diff = sp.changes[i + 1..].iter().all(|n| n.diff.is_empty());
            if !c.diff.is_empty() && (!shared || last_with_diff) {
                render_diff(&mut out, p, &c.diff);
            }
        }
    }
    for o in plan.orphans.iter().filter(|_| !plan.pruned) {
        let holds = holds_suffix(o);
        let _ = writeln!(
            out,
            "{} {}  orphan  {} (use --prune to remove){holds}",
            p.yellow("!"),
            p.bold(&o.service),
            plural(o.containers.len(), "container")
        );
    }
    if out.len() > header_len {
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "{}", summary_line(plan));
    out
}

/// `Plan: 2 to create, …` or `No changes. 3 services, 7 containers up to date.`
pub fn summary_line(plan: &Plan) -> String {
    let s = plan.summary();
    if s.total() == 0 {
        let services = plan.services.iter().filter(|s| s.service.is_some()).count();
        let containers: u32 = plan.services.iter().map(|s| s.to).sum();
        format!(
            "No changes. {}, {} up to date.",
            plural(services, "service"),
            plural(containers as usize, "container")
        )
    } else {
        format!(
            "Plan: {} to create, {} to recreate, {} to start, {} to remove.",
            s.create, s.recreate, s.start, s.remove
        )
    }
}

/// The JSON plan of SPEC section 4 (`format_version` 1).
pub fn plan_json(plan: &Plan) -> serde_json::Value {
    // Diffs hold values read back from the engine's labels: masked, as in
    // the text (JSON escapes C0 controls, not C1 or bidi overrides).
    let changes: Vec<Change> = plan
        .changes()
        .map(|c| Change {
            diff: c.diff.iter().map(crate::sanitize::field_change).collect(),
            ..c.clone()
        })
        .collect();
    let orphans: Vec<&crate::plan::Orphan> = plan.orphans.iter().collect();
    serde_json::json!({
        "format_version": 1,
        "project": plan.project,
        "changes": changes,
        "orphans": orphans,
        "missing_images": plan.missing_images,
        "summary": plan.summary(),
    })
}

/// One line for a finished step: `  + shop-web-3  created  0.42s`.
pub fn step_line(
    c: &Change,
    elapsed: std::time::Duration,
    result: &Result<(), crate::apply::ApplyError>,
    color: bool,
) -> String {
    let p = Paint(color);
    let time = p.dim(&format!("{:.2}s", elapsed.as_secs_f64()));
    match result {
        Ok(()) => {
            let done = match c.action {
                Action::Create => "created",
                Action::Recreate => "recreated",
                Action::Start => "started",
                Action::Remove => "removed",
                Action::Scale => "scaled",
                Action::Update => "updated",
            };
            format!("  {} {}  {done}  {time}", marker(p, c.action), c.unit)
        }
        Err(e) => format!(
            "  {} {}  {} failed: {e}  {time}",
            p.red("!"),
            c.unit,
            c.action.as_str()
        ),
    }
}

/// What a step waits for, in words.
pub fn waiting_text(what: &crate::waiting::Waiting) -> String {
    use crate::config::format_duration as d;
    use crate::waiting::Waiting;
    match what {
        Waiting::Stop { grace } => format!(
            "stopping, waiting up to {} for it to exit (stop_grace_period)",
            d(*grace)
        ),
        Waiting::Healthy { timeout } => format!(
            "waiting for it to become healthy (healthcheck, up to ready_timeout {})",
            d(*timeout)
        ),
        Waiting::Running { timeout } => format!(
            "waiting for it to run (up to ready_timeout {})",
            d(*timeout)
        ),
        Waiting::Settled { settle } => format!(
            "waiting for the containers it started to keep running for {} (settle check)",
            d(*settle)
        ),
        Waiting::Dependency { service } => {
            format!("waiting for {service} to be ready (depends_on)")
        }
    }
}

/// One line for a wait that lasts, between the step lines:
/// `  … shop-web-2  waiting for it to become healthy (…)`.
pub fn waiting_line(who: &str, what: &crate::waiting::Waiting, color: bool) -> String {
    format!("  {} {who}  {}", Paint(color).dim("…"), waiting_text(what))
}

/// `2 created, 0 recreated, …` after an apply.
pub fn applied_line(plan: &Plan) -> String {
    let s = plan.summary();
    format!(
        "{} created, {} recreated, {} started, {} removed.",
        s.create, s.recreate, s.start, s.remove
    )
}

/// A unified diff of a file before and after an edit.
pub fn file_diff(name: &str, old: &str, new: &str, color: bool) -> String {
    let p = Paint(color);
    let diff = similar::TextDiff::from_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(2)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string();
    text.lines()
        .map(|l| {
            if l.starts_with("+++") || l.starts_with("---") {
                p.bold(l)
            } else if l.starts_with('+') {
                p.green(l)
            } else if l.starts_with('-') {
                p.red(l)
            } else if l.starts_with("@@") {
                p.cyan(l)
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect()
}

/// A failed command, as shown on stderr.
pub fn error_text(e: &Error, color: bool) -> String {
    let p = Paint(color);
    if let Error::FileAhead {
        files,
        counts,
        source,
    } = e
    {
        let verb = if files.len() == 1 { "says" } else { "say" };
        let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{s}={n}")).collect();
        let counts = counts.join(" ");
        return format!(
            "{}\n  {} now {verb} {counts}, and the engine does not yet: run `muster apply` to finish",
            error_text(source, color),
            files.join(" and "),
        );
    }
    let mut out = format!("{} {e}", p.red("error:"));
    if let Error::Apply(crate::apply::ApplyError::NotReady {
        container, logs, ..
    }) = e
    {
        let _ = write!(out, "\n{}", last_lines(container, logs));
    }
    if let Error::Pull { failed, .. } = e {
        let mut registries: Vec<&str> = failed
            .iter()
            .filter_map(|f| f.doing.strip_prefix("pulling image "))
            .map(registry_of)
            .collect();
        registries.dedup();
        let _ = write!(
            out,
            "\n  next: check each image's name and tag in the file; an image you have \
             as a file: `docker load -i FILE`; a private registry: `docker login {}`",
            registries.join("`, `docker login ")
        );
    }
    out
}

/// The registry an image reference is pulled from, as `docker login` names it.
fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// The tail of a container's output, indented under the line it explains.
pub fn last_lines(container: &str, logs: &str) -> String {
    if logs.trim().is_empty() {
        return format!("  ({container} printed nothing)");
    }
    let mut out = format!("  last lines of {container}:");
    for line in logs.lines() {
        let _ = write!(out, "\n  | {line}");
    }
    out
}

/// The orphans that a plan leaves (without `--prune`), as one clause:
/// `orphan old: 2 containers (use --prune to remove)`.
pub fn orphans_note(plan: &Plan) -> Option<String> {
    if plan.pruned || plan.orphans.is_empty() {
        return None;
    }
    let each: Vec<String> = plan
        .orphans
        .iter()
        .map(|o| {
            format!(
                "orphan {}: {}",
                o.service,
                plural(o.containers.len(), "container")
            )
        })
        .collect();
    Some(format!("{} (use --prune to remove)", each.join(", ")))
}

/// `muster ps`: desired against actual.
#[derive(Debug, serde::Serialize)]
pub struct PsView {
    pub project: String,
    /// No file to compare with (`ps --project NAME` without a usable
    /// file): what the engine runs, found by the project's labels.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub engine_only: bool,
    pub services: Vec<PsService>,
    pub orphans: Vec<crate::plan::Orphan>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PsService {
    pub service: String,
    pub mode: &'static str,
    /// The file's count; `None` in the engine's view alone.
    pub desired: Option<u32>,
    pub running: usize,
    pub containers: Vec<PsContainer>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PsContainer {
    pub name: String,
    pub ordinal: Option<u32>,
    pub state: crate::engine::State,
    pub health: Option<crate::engine::Health>,
    pub status: String,
    /// `None` in the engine's view alone.
    pub up_to_date: Option<bool>,
    /// What `muster plan` does to it (`None` when up to date, or with no file).
    pub needs: Option<Needs>,
    pub ports: Vec<crate::engine::Published>,
    /// Set while `muster watch` holds back its restarts (crash-looping).
    pub backoff: Option<BackoffRecord>,
    /// Desired and running replicas, for a unit that runs several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<crate::engine::Replicas>,
    /// Its tasks, on a swarm.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<crate::engine::Task>,
}

impl PsContainer {
    /// Its state in words: a swarm service's running and desired
    /// replicas, else the container's state.
    pub fn state_text(&self) -> String {
        match self.replicas {
            Some(r) => format!("{}/{} replicas running", r.running, r.desired),
            None => self.state.as_str().to_string(),
        }
    }
}

/// The step of the plan for one unit, as `ps` shows it: the plan's own
/// action and reason, so that `ps` and `plan` never disagree.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Needs {
    pub action: crate::plan::Action,
    pub reason: crate::plan::Reason,
}

impl Needs {
    /// What `plan` does to `unit`; `None` when it is up to date.
    fn of(plan: &crate::plan::Plan, unit: &str) -> Option<Needs> {
        plan.changes().find(|c| c.unit == unit).map(|c| Needs {
            action: c.action,
            reason: c.reason.clone(),
        })
    }
}

impl std::fmt::Display for Needs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.action {
            // Its state, shown beside it, is the reason.
            crate::plan::Action::Start => f.write_str("start"),
            action => write!(f, "{}: {}", action.as_str(), self.reason),
        }
    }
}

type Backoffs = std::collections::BTreeMap<String, BackoffRecord>;

/// Whether a unit matches the file (`None`: no file) and what the plan does to it.
type Judge<'a> = dyn Fn(&crate::engine::Unit) -> (Option<bool>, Option<Needs>) + 'a;

impl PsView {
    /// `backoffs`: what the daemon published (see [`crate::files::read_backoffs`]).
    pub fn new(
        desired: &crate::config::Desired,
        actual: &crate::engine::Actual,
        backoffs: &Backoffs,
    ) -> Self {
        let plan = crate::plan::plan(desired, actual, false);
        let services = crate::plan::service_order(desired)
            .into_iter()
            .map(|s| {
                let units = actual.units.iter().filter(|c| c.service == s.name);
                let up_to_date = |c: &crate::engine::Unit| {
                    let needs = Needs::of(&plan, &c.name);
                    (Some(needs.is_none()), needs)
                };
                PsService::of(
                    &s.name,
                    s.mode.as_str(),
                    Some(s.count),
                    units,
                    &up_to_date,
                    backoffs,
                )
            })
            .collect();
        PsView {
            project: desired.project.clone(),
            engine_only: false,
            services,
            orphans: plan.orphans,
        }
    }

    /// What the engine runs for `project`, found by its labels, with no
    /// file to compare with: no desired counts, nothing out of date.
    pub fn engine_only(project: &str, actual: &crate::engine::Actual, backoffs: &Backoffs) -> Self {
        let mut by_service: std::collections::BTreeMap<&str, Vec<&crate::engine::Unit>> =
            std::collections::BTreeMap::new();
        for u in &actual.units {
            by_service.entry(&u.service).or_default().push(u);
        }
        let services = by_service
            .into_iter()
            .map(|(name, units)| {
                // The mode the units were made with, from their labels.
                let mode = match units[0].config.get("mode").map(String::as_str) {
                    Some("sequential") => crate::config::Mode::Sequential.as_str(),
                    Some("parallel") => crate::config::Mode::Parallel.as_str(),
                    _ => "?",
                };
                PsService::of(
                    name,
                    mode,
                    None,
                    units.into_iter(),
                    &|_| (None, None),
                    backoffs,
                )
            })
            .collect();
        PsView {
            project: project.to_string(),
            engine_only: true,
            services,
            orphans: Vec::new(),
        }
    }

    pub fn text(&self, color: bool) -> String {
        let p = Paint(color);
        let mut out = format!("project {}\n", p.bold(&self.project));
        if self.engine_only {
            out.push_str("(the engine's view only: no file to compare with)\n");
        }
        for s in &self.services {
            let units: usize = s
                .containers
                .iter()
                .map(|c| c.replicas.map_or(1, |r| r.desired as usize))
                .sum();
            let counts = match s.desired {
                Some(d) if s.running == d as usize && units == d as usize => {
                    p.green(&format!("{}/{d} running", s.running))
                }
                Some(d) => p.yellow(&format!("{}/{d} running", s.running)),
                None => format!("{}/{units} running", s.running),
            };
            let _ = writeln!(out, "{}  {}  {counts}", p.bold(&s.service), s.mode);
            for c in &s.containers {
                let health = c
                    .health
                    .map(|h| format!("  {}", h.as_str()))
                    .unwrap_or_default();
                let ports = ports_text(&c.ports);
                let stale = match &c.backoff {
                    Some(b) => {
                        let left = b.next_restart.saturating_sub(crate::engine::now_secs());
                        let text = format!(
                            "crash-looping ({} failures; next restart in {left}s)",
                            b.failures
                        );
                        format!("  {}", p.red(&text))
                    }
                    None => match &c.needs {
                        Some(needs) => format!("  {}", p.yellow(&format!("(needs {needs})"))),
                        None => String::new(),
                    },
                };
                let state = c.state_text();
                let _ = writeln!(out, "    {}  {state}{health}{ports}{stale}", c.name);
                for t in &c.tasks {
                    let slot = t.slot.map_or_else(String::new, |s| format!("slot {s}  "));
                    let error = if t.error.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", p.red(&crate::sanitize::text(&t.error)))
                    };
                    let _ = writeln!(
                        out,
                        "      {slot}{}  {}{}{error}",
                        crate::sanitize::text(&t.node),
                        t.state,
                        ports_text(&t.ports)
                    );
                }
            }
        }
        for o in &self.orphans {
            let _ = writeln!(
                out,
                "{} {}  orphan  {}  (use --prune to remove)",
                p.yellow("!"),
                p.bold(&o.service),
                o.containers.join(", ")
            );
        }
        out
    }
}

impl PsService {
    /// Service `name` from its units on the engine; `up_to_date` says
    /// whether a unit matches the file (`None`: no file) and what the plan
    /// does to it.
    fn of<'u>(
        name: &str,
        mode: &'static str,
        desired: Option<u32>,
        units: impl Iterator<Item = &'u crate::engine::Unit>,
        up_to_date: &Judge<'_>,
        backoffs: &Backoffs,
    ) -> Self {
        // A back-off is current while its restart is due in the last 10 minutes or later.
        let recent = crate::engine::now_secs().saturating_sub(600);
        let mut containers: Vec<PsContainer> = units
            .map(|c| (c, up_to_date(c)))
            .map(|(c, (up_to_date, needs))| PsContainer {
                name: c.name.clone(),
                ordinal: c.ordinal,
                state: c.state,
                health: c.health,
                status: c.status.clone(),
                up_to_date,
                needs,
                ports: c.ports.clone(),
                backoff: backoffs
                    .get(&c.name)
                    .filter(|b| {
                        c.state != crate::engine::State::Running && b.next_restart >= recent
                    })
                    .cloned(),
                replicas: c.replicas,
                tasks: c.tasks.clone(),
            })
            .collect();
        containers.sort_by_key(|c| (c.ordinal, c.name.clone()));
        let running = containers
            .iter()
            .map(|c| match c.replicas {
                Some(r) => r.running as usize,
                None => usize::from(c.state == crate::engine::State::Running),
            })
            .sum();
        PsService {
            service: name.to_string(),
            mode,
            desired,
            running,
            containers,
        }
    }
}

/// `  0.0.0.0:8080->80/tcp, …` for a row of `ps`, or nothing.
fn ports_text(ports: &[crate::engine::Published]) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|pp| {
            let ip = if pp.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                &pp.host_ip
            };
            format!("{ip}:{}->{}/{}", pp.host_port, pp.container_port, pp.proto)
        })
        .collect();
    if ports.is_empty() {
        String::new()
    } else {
        format!("  {}", ports.join(", "))
    }
}

/// `it holds host port 80, which site needs` (`None` when `o` holds none).
pub fn holds(o: &Orphan) -> Option<String> {
    if o.holds.is_empty() {
        return None;
    }
    let each: Vec<String> = o
        .holds
        .iter()
        .map(|h| format!("host port {}, which {} needs", h.port, h.wanted_by))
        .collect();
    Some(format!("it holds {}", each.join(" and ")))
}

/// [`holds`] after an orphan's line: `; it holds …`, or nothing.
pub fn holds_suffix(o: &Orphan) -> String {
    holds(o).map_or(String::new(), |h| format!("; {h}"))
}
