//! The commands that talk to the engine, each a thin shell over the
//! pipeline ([`crate::reconcile`]): they take plain requests, print through
//! the [`Printer`], and say how they ended ([`Done`]); `cli` turns that into
//! an exit code. Does file and engine I/O.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use crate::apply::{ApplyError, Reporter};
use crate::config::{self, Backend as BackendKind, Desired};
use crate::engine::{self, Actual, Backend, Endpoint};
use crate::error::Error;
use crate::output::{Format, Printer};
use crate::plan::{Change, Plan};
use crate::reconcile::{self, Observer, Outcome};
use crate::render;
use crate::saved_plan::{self, SavedPlan, SavedPlanError};
use crate::terminal;
use crate::waiting::Waiting;

/// What every engine command needs: the file, and where and how to run it.
#[derive(Debug, Clone)]
pub struct Context {
    pub file: PathBuf,
    /// `-f` files after the first, merged over it in order.
    pub overlays: Vec<PathBuf>,
    /// `--env-file`: instead of `.env` beside the first file.
    pub env_file: Option<PathBuf>,
    /// `--project`: overrides the file's.
    pub project: Option<String>,
    /// `--host`, else `DOCKER_HOST`, else the local socket.
    pub host: Option<String>,
    /// `--backend`: overrides the file's.
    pub backend: Option<BackendKind>,
}

/// How `plan` / `apply` print and what they include.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub output: Format,
    pub prune: bool,
    /// `plan --out`: where to save the plan for `apply PLAN`.
    pub save: Option<PathBuf>,
    /// `plan web api`: only these services and what they depend on.
    pub targets: Vec<String>,
}

/// The file restricted to `targets` (all of it without any).
fn targeted(desired: Desired, req: &PlanRequest) -> Result<Desired, Error> {
    if req.targets.is_empty() {
        return Ok(desired);
    }
    // Targets leave the other services alone, orphans included: a prune
    // there would do nothing, silently.
    if req.prune {
        return Err(Error::Usage(
            "--prune removes what the whole file no longer declares: give it without SERVICE targets"
                .into(),
        ));
    }
    crate::target::restrict(&desired, &req.targets).map_err(Error::Usage)
}

/// How a command that changes the engine runs.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    pub parallel: usize,
    pub lock_timeout: Duration,
}

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Nothing (left) to change.
    Ok,
    /// A plan with changes was printed and not applied.
    Changes,
    /// `exec`: the command's exit code.
    Exit(u8),
}

impl Context {
    /// Loads the file, with `--project` and `--backend` applied.
    ///
    /// # Errors
    /// [`config::Invalid`] with every problem of the file.
    pub fn load(&self) -> Result<Desired, config::Invalid> {
        self.load_read().map(|(desired, _)| desired)
    }

    /// Like [`Context::load`], also returning the file's bytes as read.
    ///
    /// # Errors
    /// As [`Context::load`].
    pub fn load_read(&self) -> Result<(Desired, Vec<u8>), config::Invalid> {
        self.sources().load(self.backend)
    }

    /// The file (with `true`); or, when it cannot be used and `--project`
    /// names the project, the project by its name alone (with `false`), so
    /// that `down` and `ps` find it by its labels on the engine, as
    /// `docker compose -p NAME down` does. Says so on stderr.
    ///
    /// # Errors
    /// The file's problems, without `--project`.
    fn load_or_named(&self, printer: &Printer) -> Result<(Desired, bool), config::Invalid> {
        let invalid = match self.load() {
            Ok(desired) => return Ok((desired, true)),
            Err(invalid) => invalid,
        };
        let Some(project) = &self.project else {
            return Err(invalid);
        };
        let why = match invalid.problems.as_slice() {
            [only] if only.span.is_none() => only.message.clone(),
            _ => format!("{invalid} (`muster validate` shows where)"),
        };
        printer.err(&format!(
            "note: {why}; going by the labels of project {project} on the engine"
        ));
        let backend = self.backend.unwrap_or(BackendKind::Docker);
        Ok((Desired::named(project, backend), false))
    }

    /// Every file the run reads.
    pub fn sources(&self) -> config::Sources {
        config::Sources::new(
            &self.file,
            &self.overlays,
            self.env_file.as_ref(),
            self.project.as_deref(),
        )
    }

    async fn connect(&self, desired: &Desired) -> Result<Arc<dyn Backend>, Error> {
        Ok(engine::connect(desired.backend, self.host.as_deref()).await?)
    }

    fn options(
        &self,
        prune: bool,
        apply: &ApplyRequest,
        lock_when_idle: bool,
    ) -> reconcile::Options {
        reconcile::Options {
            prune,
            parallel: apply.parallel,
            lock_timeout: apply.lock_timeout,
            stop: None,
            lock_when_idle,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            targeted: false,
        }
    }
}

/// `plan` and `apply --dry-run`: prints the plan, changes nothing on the
/// engine; with `save`, writes it to that file for `apply PLAN`.
///
/// # Errors
/// An invalid file, an engine that does not answer, a plan file that
/// cannot be written.
pub async fn plan(ctx: &Context, printer: &Printer, req: &PlanRequest) -> Result<Done, Error> {
    if !req.targets.is_empty() && req.save.is_some() {
        return Err(Error::Usage(
            "a saved plan covers the whole file: give --out or SERVICE targets, not both".into(),
        ));
    }
    if let Some(out) = &req.save {
        // `--out services.toml` would replace the file with the plan.
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if let Some(input) = ctx.sources().watched().iter().find(|f| same(f, out)) {
            return Err(Error::Usage(format!(
                "--out {} would overwrite {}, which the plan is made from: name another file",
                out.display(),
                input.display()
            )));
        }
    }
    let (desired, bytes) = ctx.load_read()?;
    let desired = targeted(desired, req)?;
    let backend = ctx.connect(&desired).await?;
    let mut actual = backend.observe(&desired.project, &desired.images()).await?;
    if !req.targets.is_empty() {
        crate::target::keep_declared(&mut actual, &desired);
    }
    let plan = crate::plan::plan(&desired, &actual, req.prune);
    print_plan(printer, &plan, &backend.endpoint(), req.output);
    if let Some(path) = &req.save {
        let pinned = saved_plan::desired_sha256(&desired);
        save_plan(path, &plan, req.prune, &bytes, &pinned, &actual)?;
    }
    Ok(if plan.is_empty() {
        Done::Ok
    } else {
        Done::Changes
    })
}

fn save_plan(
    path: &Path,
    plan: &Plan,
    prune: bool,
    file: &[u8],
    desired: &str,
    actual: &Actual,
) -> Result<(), Error> {
    let doc = saved_plan::document(render::plan_json(plan), prune, file, desired, actual);
    let mut text = serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::Other(format!("writing the plan to {}: {e}", path.display())))?;
    text.push('\n');
    crate::safe_file::write_replacing(path, text.as_bytes(), None)
        .map_err(|e| Error::Other(format!("writing the plan to {}: {e}", path.display())))
}

/// `apply PLAN`: applies the plan saved in `path` by `plan --out`, and
/// only it (see [`SavedPlan::check`]); with `wait`, then waits as
/// [`apply_and_wait`] does.
///
/// # Errors
/// [`Error::SavedPlan`] for a plan file that is not one, of another
/// project, or stale; otherwise as [`apply`].
pub async fn apply_saved(
    ctx: &Context,
    printer: &Printer,
    path: &Path,
    output: Format,
    apply: &ApplyRequest,
    wait: bool,
) -> Result<Done, Error> {
    let shown = path.display().to_string();
    let bytes =
        crate::safe_file::read_regular(path, saved_plan::MAX_PLAN_BYTES + 1).map_err(|source| {
            SavedPlanError::Unreadable {
                path: shown.clone(),
                source,
            }
        })?;
    if bytes.len() as u64 > saved_plan::MAX_PLAN_BYTES {
        return Err(SavedPlanError::Damaged {
            path: shown,
            why: "it is larger than 64 MiB".into(),
        }
        .into());
    }
    let saved = SavedPlan::parse(&shown, &bytes)?;
    let (desired, file) = ctx.load_read()?;
    saved.check_file(
        &desired.project,
        &ctx.sources().shown_with_env(),
        &file,
        &saved_plan::desired_sha256(&desired),
    )?;
    let req = PlanRequest {
        output,
        prune: saved.prune,
        save: None,
        targets: Vec::new(),
    };
    let backend = ctx.connect(&desired).await?;
    let done = run_apply(
        ctx,
        printer,
        &req,
        apply,
        backend.as_ref(),
        &desired,
        Some(&saved),
    )
    .await?;
    if wait {
        wait_ready(printer, output, backend.as_ref(), &desired).await?;
    }
    Ok(done)
}

/// `apply`: the pipeline, printing the plan and each step.
///
/// # Errors
/// See [`reconcile::pass`].
pub async fn apply(
    ctx: &Context,
    printer: &Printer,
    req: &PlanRequest,
    apply: &ApplyRequest,
) -> Result<Done, Error> {
    let desired = targeted(ctx.load()?, req)?;
    let backend = ctx.connect(&desired).await?;
    run_apply(ctx, printer, req, apply, backend.as_ref(), &desired, None).await
}

/// The apply of `desired` on `backend`, which the caller connected.
async fn run_apply(
    ctx: &Context,
    printer: &Printer,
    req: &PlanRequest,
    apply: &ApplyRequest,
    backend: &dyn Backend,
    desired: &Desired,
    saved: Option<&SavedPlan>,
) -> Result<Done, Error> {
    let observer = StepPrinter {
        saved,
        ..StepPrinter::new(printer, req.output)
    };
    let options = reconcile::Options {
        targeted: !req.targets.is_empty(),
        ..ctx.options(req.prune, apply, true)
    };
    let outcome = reconcile::pass(backend, desired, &options, &observer).await;
    observer.finish();
    match outcome? {
        Outcome::UpToDate(plan) => print_plan(printer, &plan, &backend.endpoint(), req.output),
        Outcome::Applied(plan) => {
            if req.output == Format::Text {
                printer.info(&format!("Applied: {}", render::applied_line(&plan)));
            }
        }
    }
    Ok(Done::Ok)
}

fn print_plan(printer: &Printer, plan: &Plan, endpoint: &Endpoint, output: Format) {
    match output {
        Format::Json => {
            let text = serde_json::to_string_pretty(&render::plan_json(plan)).unwrap_or_default();
            printer.out(&format!("{text}\n"));
        }
        Format::Markdown => printer.out(&crate::markdown::plan_markdown(plan, endpoint)),
        Format::Text if printer.quiet && plan.is_empty() => {}
        Format::Text => printer.out(&render::plan_text(plan, endpoint, printer.color_out())),
    }
}

/// Prints the plan, the pulls and one line per finished step; a progress
/// bar on a terminal for long plans.
struct StepPrinter<'a> {
    printer: &'a Printer,
    output: Format,
    bar: Mutex<Option<indicatif::ProgressBar>>,
    /// `apply PLAN`: the plan that may run.
    saved: Option<&'a SavedPlan>,
}

impl<'a> StepPrinter<'a> {
    fn new(printer: &'a Printer, output: Format) -> Self {
        StepPrinter {
            printer,
            output,
            bar: Mutex::new(None),
            saved: None,
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
    }
}

impl Observer for StepPrinter<'_> {
    fn plan(&self, plan: &Plan, endpoint: &Endpoint) {
        print_plan(self.printer, plan, endpoint, self.output);
        let total = plan.summary().total();
        if total > 10 && std::io::stderr().is_terminal() && !self.printer.quiet {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed}")
            {
                bar.set_style(style);
            }
            if let Ok(mut slot) = self.bar.lock() {
                *slot = Some(bar);
            }
        }
    }

    fn check(&self, plan: &Plan, actual: &Actual) -> Result<(), Error> {
        match self.saved {
            Some(saved) => Ok(saved.check(&render::plan_json(plan), actual)?),
            None => Ok(()),
        }
    }

    fn pulling(&self, image: &str) {
        let line = format!("pulling {image}");
        if self.output != Format::Text {
            self.printer.err(&line);
        } else {
            self.printer.info(&line);
        }
    }
}

impl StepPrinter<'_> {
    /// A line of the apply, above the progress bar; `step` moves the bar on.
    fn apply_line(&self, line: &str, step: bool) {
        let Ok(bar) = self.bar.lock() else { return };
        let print = || {
            if self.output != Format::Text {
                self.printer.err(line);
            } else {
                self.printer.out(&format!("{line}\n"));
            }
        };
        match bar.as_ref() {
            Some(bar) => {
                bar.suspend(print);
                if step {
                    bar.inc(1);
                }
            }
            None => print(),
        }
    }
}

impl Reporter for StepPrinter<'_> {
    fn step(&self, change: &Change, elapsed: Duration, result: &Result<(), ApplyError>) {
        let line = render::step_line(change, elapsed, result, self.printer.color_out());
        self.apply_line(&line, true);
    }

    fn waiting(&self, who: &str, what: &Waiting) {
        let line = render::waiting_line(who, what, self.printer.color_out());
        self.apply_line(&line, false);
    }
}

/// `ps`: desired against actual, per service and unit; with `--project`
/// and no usable file, the engine's view alone.
///
/// # Errors
/// An invalid file, an engine that does not answer.
pub async fn ps(ctx: &Context, printer: &Printer, output: Format) -> Result<Done, Error> {
    let (desired, from_file) = ctx.load_or_named(printer)?;
    let backend = ctx.connect(&desired).await?;
    let actual = backend.observe(&desired.project, &desired.images()).await?;
    let backoffs = crate::files::read_backoffs(&desired.project);
    let view = if from_file {
        render::PsView::new(&desired, &actual, &backoffs)
    } else {
        render::PsView::engine_only(&desired.project, &actual, &backoffs)
    };
    match output {
        Format::Json => {
            let text = serde_json::to_string_pretty(&view).unwrap_or_default();
            printer.out(&format!("{text}\n"));
        }
        // `ps` takes text or JSON only (cli).
        Format::Text | Format::Markdown => printer.out(&view.text(printer.color_out())),
    }
    Ok(Done::Ok)
}

/// `down`: removes the project's units and network; `volumes`: its volumes
/// too. With `--project` and no usable file, the units that carry the
/// project's label.
///
/// # Errors
/// See [`reconcile::down`].
pub async fn down(
    ctx: &Context,
    printer: &Printer,
    volumes: bool,
    apply: &ApplyRequest,
) -> Result<Done, Error> {
    let (desired, _) = ctx.load_or_named(printer)?;
    let backend = ctx.connect(&desired).await?;
    let observer = StepPrinter::new(printer, Format::Text);
    let options = ctx.options(true, apply, true);
    let done = reconcile::down(backend.as_ref(), &desired, volumes, &options, &observer).await;
    observer.finish();
    let done = done?;
    for v in &done.volumes {
        printer.info(&format!("  - volume {v}  removed"));
    }
    if let Some(why) = &done.network_kept {
        printer.err(&format!(
            "warning: the engine kept network {}: {why}. No container uses it: Docker 20.10 at times loses count of a network's endpoints when containers leave it at once; the next apply reuses the network, and a restart of dockerd recounts its endpoints and frees it",
            crate::engine::network_name(&desired.project)
        ));
    }
    if volumes && desired.backend == BackendKind::Swarm {
        printer.info(
            "  (the volumes of this manager were removed; those on other nodes of the swarm stay)",
        );
    }
    printer.info(&format!(
        "Down: {} removed{}.",
        config::plural(done.plan.summary().remove, "container"),
        if volumes {
            format!(", {} removed", config::plural(done.volumes.len(), "volume"))
        } else {
            ", volumes kept".to_string()
        }
    ));
    Ok(Done::Ok)
}

/// `scale SVC=N…`: rewrites `count` of each target in the file of the
/// chain that sets it, keeping everything else, and prints the file's diff
/// (see [`crate::environments::scale`]).
///
/// # Errors
/// [`Error::Usage`] for a service the files lack or a count written as
/// `${…}`; invalid files before or after; a file that cannot be written.
pub fn scale(ctx: &Context, printer: &Printer, targets: &[(String, u32)]) -> Result<Done, Error> {
    crate::environments::scale(&ctx.sources(), printer, targets)?;
    Ok(Done::Ok)
}

/// `scale SVC=N… --apply`: checks that the engine answers, then
/// [`scale`]s and applies the file.
///
/// # Errors
/// As [`scale`], or an engine that does not answer: the file is then as
/// it was. [`Error::FileAhead`] when the apply fails after the file
/// changed.
pub async fn scale_and_apply(
    ctx: &Context,
    printer: &Printer,
    targets: &[(String, u32)],
    apply: &ApplyRequest,
) -> Result<Done, Error> {
    // A file that says N beside an engine that could not be told is the
    // drift this avoids: the engine must answer before the file changes.
    let backend = ctx.connect(&ctx.load()?).await?;
    let changed = crate::environments::scale(&ctx.sources(), printer, targets)?;
    let plan = PlanRequest {
        output: Format::Text,
        prune: false,
        save: None,
        targets: Vec::new(),
    };
    // The file as the scale left it.
    let applied = async {
        let desired = ctx.load()?;
        run_apply(ctx, printer, &plan, apply, backend.as_ref(), &desired, None).await
    };
    applied.await.map_err(|e| Error::FileAhead {
        files: if changed.is_empty() {
            vec![ctx.sources().shown()]
        } else {
            changed
        },
        counts: targets.to_vec(),
        source: Box::new(e),
    })
}

/// `apply --wait`: after [`apply`], waits until every container of the
/// file's (or the targets') services is ready, healthy where declared.
///
/// # Errors
/// As [`apply`]; [`ApplyError::NotReady`] for a container that is not.
pub async fn apply_and_wait(
    ctx: &Context,
    printer: &Printer,
    req: &PlanRequest,
    apply: &ApplyRequest,
) -> Result<Done, Error> {
    let desired = targeted(ctx.load()?, req)?;
    let backend = ctx.connect(&desired).await?;
    let done = run_apply(ctx, printer, req, apply, backend.as_ref(), &desired, None).await?;
    wait_ready(printer, req.output, backend.as_ref(), &desired).await?;
    Ok(done)
}

/// `--wait`: until every container of `desired` is ready. Its lines go
/// where the apply's step lines went: stderr beside `--output json` or
/// `markdown`, whose document stdout holds alone.
async fn wait_ready(
    printer: &Printer,
    output: Format,
    backend: &dyn crate::engine::Backend,
    desired: &Desired,
) -> Result<(), Error> {
    let say = |line: &str| match output {
        Format::Text => printer.info(line),
        _ => printer.err(line),
    };
    say("waiting until every container is ready");
    let waits = |who: &str, what: &Waiting| {
        say(&render::waiting_line(who, what, printer.color_out()));
    };
    crate::readiness::wait_all(backend, desired, &waits).await?;
    say("every container is ready");
    Ok(())
}

/// Prints a wait that lasts, as apply's steps print theirs.
fn waits(printer: &Printer) -> impl Fn(&str, &Waiting) + Send + Sync + '_ {
    |who, what| printer.info(&render::waiting_line(who, what, printer.color_out()))
}

/// `muster restart [SERVICE…]`: stops and starts the containers of the
/// named services (all without names) under the project's lock.
///
/// # Errors
/// An invalid file, an unknown service (usage), the lock, the engine.
pub async fn restart(
    ctx: &Context,
    printer: &Printer,
    services: &[String],
    apply: &ApplyRequest,
) -> Result<Done, Error> {
    let mut desired = ctx.load()?;
    if !services.is_empty() {
        // Only those named: what they depend on keeps running as it is.
        let known = crate::target::restrict(&desired, services).map_err(Error::Usage)?;
        desired
            .services
            .retain(|name, _| known.services.contains_key(name) && services.contains(name));
    }
    let backend = ctx.connect(&desired).await?;
    let options = ctx.options(false, apply, true);
    let observer = StepPrinter::new(printer, Format::Text);
    let said = |name: &str, took: Duration| {
        printer.info(&format!("restarted {name} ({:.1}s)", took.as_secs_f64()));
    };
    let n = reconcile::locked(
        backend.as_ref(),
        &desired.project,
        &options,
        &observer,
        async {
            let waits = waits(printer);
            Ok(
                crate::restart::restart(backend.as_ref(), &desired, apply.parallel, &said, &waits)
                    .await?,
            )
        },
    )
    .await?;
    let unit = match desired.backend {
        config::Backend::Swarm => "swarm service",
        config::Backend::Docker => "container",
    };
    printer.info(&format!("Restarted {}.", config::plural(n, unit)));
    Ok(Done::Ok)
}

/// `muster exec SERVICE[-N] -- CMD…`: runs CMD in container N (default 1)
/// of SERVICE (on a swarm, in the task of that ordinal), stdin forwarded;
/// on a pseudo-terminal when stdin and stdout are a terminal, unless
/// `no_tty` (the local terminal is then in raw mode until the command
/// ends); the command's exit code.
///
/// # Errors
/// An invalid file, a service the file lacks or a bad ordinal (usage),
/// a terminal that cannot be put in raw mode, the engine.
pub async fn exec(
    ctx: &Context,
    target: &str,
    cmd: &[String],
    no_tty: bool,
) -> Result<Done, Error> {
    let desired = ctx.load()?;
    let (service, ordinal) = match target.rsplit_once('-') {
        Some((s, n)) if desired.services.contains_key(s) && n.parse::<u32>().is_ok() => {
            (s, n.parse::<u32>().unwrap_or(1))
        }
        _ => (target, 1),
    };
    if !desired.services.contains_key(service) {
        let known: Vec<&str> = desired.services.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "the file declares no service {service:?} (its services: {})",
            known.join(", ")
        )));
    }
    if ordinal == 0 {
        return Err(Error::Usage(format!(
            "{target}: ordinals start at 1 ({service}-1 is the first container of {service})"
        )));
    }
    let name = crate::plan::Layout::of(desired.backend).exec_target(
        &desired.project,
        &desired.services[service],
        ordinal,
    );
    let backend = ctx.connect(&desired).await?;
    let tty = !no_tty && terminal::is_terminal();
    // Restored when this function returns, before any error is printed.
    let _raw = tty
        .then(terminal::RawMode::enter)
        .transpose()
        .map_err(|e| Error::Other(format!("putting the terminal in raw mode for exec: {e}")))?;
    let request = engine::ExecRequest {
        cmd: cmd.to_vec(),
        stdin: terminal::stdin(),
        tty: tty.then(terminal::sizes),
    };
    let code = backend.exec(&name, request).await?;
    Ok(Done::Exit(u8::try_from(code).unwrap_or(1)))
}

/// `muster pull`: pulls every image of the file, even those the engine
/// has (a tag may have moved), trying them all; the failures together.
///
/// # Errors
/// [`Error::Pull`] naming every image that could not be pulled;
/// [`Error::Engine`] when the engine does not answer.
pub async fn pull(ctx: &Context, printer: &Printer) -> Result<Done, Error> {
    let desired = ctx.load()?;
    let backend = ctx.connect(&desired).await?;
    let mut failed = Vec::new();
    for image in desired.images() {
        printer.info(&format!("pulling {image}"));
        match backend.pull(&image).await {
            Ok(()) => printer.info(&format!("pulled {image}")),
            Err(e) if e.kind == engine::ErrorKind::Unreachable => return Err(e.into()),
            Err(e) => failed.push(e),
        }
    }
    if failed.is_empty() {
        Ok(Done::Ok)
    } else {
        Err(Error::Pull {
            failed,
            missing: false,
        })
    }
}
