//! The commands that talk to the engine: each runs the pipeline
//! load → connect → (lock) → observe → plan → print → (apply). Does file and
//! engine I/O; all output goes through [`Printer`].

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::apply::{self, ApplyError, Reporter};
use crate::cli::{ApplyArgs, Command, Global, Output, PlanArgs, exit};
use crate::config::{self, Backend, Desired};
use crate::engine::docker::DockerEngine;
use crate::engine::{Engine, EngineError};
use crate::lock::{self, LockError};
use crate::plan::{self, Change, Plan};
use crate::render::{self, Printer};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] config::Invalid),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("{0}")]
    Other(String),
}

/// Runs an engine command; its exit code.
///
/// # Errors
/// See [`Error`]; the caller maps each to an exit code.
pub async fn run(global: &Global, printer: &Printer, command: Command) -> Result<u8, Error> {
    match command {
        Command::Plan { plan } => plan_or_apply(global, printer, &plan, None).await,
        Command::Apply {
            plan,
            apply,
            dry_run,
        } => plan_or_apply(global, printer, &plan, (!dry_run).then_some(&apply)).await,
        Command::Ps { output } => ps(global, printer, output).await,
        Command::Watch {
            debounce,
            resync,
            prune,
            output,
            options,
        } => {
            let settings = crate::watch::Settings {
                file: global.file.clone(),
                project: global.project.clone(),
                host: global.host.clone(),
                debounce,
                resync: resync.max(Duration::from_secs(1)),
                parallel: usize::from(options.parallel),
                lock_timeout: options.lock_timeout,
                prune,
                json: output == Output::Json,
            };
            crate::watch::run(settings, printer)
                .await
                .map_err(Error::Other)
        }
        Command::Down { volumes, options } => down(global, printer, volumes, &options).await,
        Command::Scale {
            targets,
            apply,
            options,
        } => {
            scale(global, printer, &targets)?;
            if !apply {
                return Ok(exit::OK);
            }
            let plan_args = PlanArgs {
                output: Output::Text,
                detailed_exitcode: false,
                prune: false,
            };
            plan_or_apply(global, printer, &plan_args, Some(&options)).await
        }
        Command::Validate | Command::Schema | Command::Completions { .. } => Ok(exit::OK),
    }
}

fn load(global: &Global) -> Result<Desired, Error> {
    let desired = crate::cli::load(global)?;
    if desired.backend == Backend::Swarm {
        return Err(Error::Other(
            "backend = \"swarm\" is not supported yet by this version of muster; use backend = \"docker\"".into(),
        ));
    }
    Ok(desired)
}

async fn connect(global: &Global) -> Result<DockerEngine, Error> {
    Ok(DockerEngine::connect(global.host.as_deref()).await?)
}

/// The command line, for the lock holder's description.
fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// `plan`, `apply --dry-run` (`apply` = None) and `apply`.
async fn plan_or_apply(
    global: &Global,
    printer: &Printer,
    args: &PlanArgs,
    apply: Option<&ApplyArgs>,
) -> Result<u8, Error> {
    let desired = load(global)?;
    let engine = connect(global).await?;
    let images = desired.images();
    let Some(options) = apply else {
        let actual = engine.observe(&desired.project, &images).await?;
        let plan = plan::plan(&desired, &actual, args.prune);
        print_plan(printer, &plan, &engine.endpoint(), args.output);
        let changes = !plan.is_empty();
        return Ok(if args.detailed_exitcode && changes {
            exit::CHANGES
        } else {
            exit::OK
        });
    };
    // Pull what is missing before taking the lock or changing anything.
    let present = engine.observe(&desired.project, &images).await?.image_ids;
    for image in images.iter().filter(|i| !present.contains_key(*i)) {
        printer.info(&format!("pulling {image}"));
        engine.pull(image).await.map_err(|e| {
            Error::Other(format!(
                "{e}\nimage {image} is not on the engine and cannot be pulled; nothing was changed"
            ))
        })?;
    }
    let me = lock::me(&command_line());
    lock::acquire(&engine, &desired.project, &me, options.lock_timeout, None).await?;
    let result = apply_locked(&engine, printer, &desired, args, options).await;
    let released = engine.unlock(&desired.project).await;
    let code = result?;
    released?;
    Ok(code)
}

async fn apply_locked(
    engine: &DockerEngine,
    printer: &Printer,
    desired: &Desired,
    args: &PlanArgs,
    options: &ApplyArgs,
) -> Result<u8, Error> {
    let actual = engine.observe(&desired.project, &desired.images()).await?;
    let plan = plan::plan(desired, &actual, args.prune);
    print_plan(printer, &plan, &engine.endpoint(), args.output);
    if plan.is_empty() {
        return Ok(exit::OK);
    }
    let reporter = StepPrinter::new(printer, &plan, args.output == Output::Json);
    let opts = apply::Options::new(usize::from(options.parallel));
    apply::apply(engine, desired, &plan, &opts, &reporter).await?;
    reporter.finish();
    if args.output == Output::Text {
        printer.info(&format!("Applied: {}", render::applied_line(&plan)));
    }
    Ok(exit::OK)
}

fn print_plan(printer: &Printer, plan: &Plan, endpoint: &str, output: Output) {
    match output {
        Output::Json => {
            let text = serde_json::to_string_pretty(&render::plan_json(plan)).unwrap_or_default();
            printer.out(&format!("{text}\n"));
        }
        Output::Text if printer.quiet && plan.is_empty() => {}
        Output::Text => printer.out(&render::plan_text(plan, endpoint, printer.color_out())),
    }
}

/// Prints one line per finished step; a progress bar on a terminal for long plans.
struct StepPrinter<'a> {
    printer: &'a Printer,
    to_stderr: bool,
    bar: Option<indicatif::ProgressBar>,
    lines: Mutex<()>,
}

impl<'a> StepPrinter<'a> {
    fn new(printer: &'a Printer, plan: &Plan, to_stderr: bool) -> Self {
        let total = plan.summary().total();
        let bar = (total > 10 && std::io::stderr().is_terminal() && !printer.quiet).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed}")
            {
                bar.set_style(style);
            }
            bar
        });
        StepPrinter {
            printer,
            to_stderr,
            bar,
            lines: Mutex::new(()),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for StepPrinter<'_> {
    fn step(&self, change: &Change, elapsed: Duration, result: &Result<(), ApplyError>) {
        let _guard = self.lines.lock();
        let line = render::step_line(change, elapsed, result, self.printer.color_out());
        let print = || {
            if self.to_stderr {
                self.printer.err(&line);
            } else {
                self.printer.out(&format!("{line}\n"));
            }
        };
        match &self.bar {
            Some(bar) => {
                bar.suspend(print);
                bar.inc(1);
            }
            None => print(),
        }
    }
}

async fn ps(global: &Global, printer: &Printer, output: Output) -> Result<u8, Error> {
    let desired = load(global)?;
    let engine = connect(global).await?;
    let actual = engine.observe(&desired.project, &desired.images()).await?;
    let backoffs = crate::watch::read_backoffs(&desired.project);
    let state = render::PsView::new(&desired, &actual, &backoffs);
    match output {
        Output::Json => {
            let text = serde_json::to_string_pretty(&state).unwrap_or_default();
            printer.out(&format!("{text}\n"));
        }
        Output::Text => printer.out(&state.text(printer.color_out())),
    }
    Ok(exit::OK)
}

async fn down(
    global: &Global,
    printer: &Printer,
    volumes: bool,
    options: &ApplyArgs,
) -> Result<u8, Error> {
    let mut desired = load(global)?;
    let engine = connect(global).await?;
    let me = lock::me(&command_line());
    lock::acquire(&engine, &desired.project, &me, options.lock_timeout, None).await?;
    let result = async {
        // Down is the plan to nothing: every service at count 0, orphans pruned.
        for s in desired.services.values_mut() {
            s.count = 0;
        }
        let actual = engine.observe(&desired.project, &[]).await?;
        let plan = plan::plan(&desired, &actual, true);
        let reporter = StepPrinter::new(printer, &plan, false);
        let opts = apply::Options::new(usize::from(options.parallel));
        apply::apply(&engine, &desired, &plan, &opts, &reporter).await?;
        reporter.finish();
        engine.remove_network(&desired.project).await?;
        let mut removed_volumes = 0;
        if volumes {
            for v in engine.volumes(&desired.project).await? {
                engine.remove_volume(&v).await?;
                printer.info(&format!("  - volume {v}  removed"));
                removed_volumes += 1;
            }
        }
        printer.info(&format!(
            "Down: {} removed{}.",
            config::plural(plan.summary().remove, "container"),
            if volumes {
                format!(", {}", config::plural(removed_volumes, "volume"))
            } else {
                ", volumes kept".to_string()
            }
        ));
        Ok::<u8, Error>(exit::OK)
    }
    .await;
    let released = engine.unlock(&desired.project).await;
    let code = result?;
    released?;
    Ok(code)
}

/// Rewrites `count` of each target in the file, keeping everything else.
fn scale(global: &Global, printer: &Printer, targets: &[(String, u32)]) -> Result<(), Error> {
    let path = &global.file;
    // The file must be valid before (nothing is learned from a broken one)…
    let desired = config::load(path)?;
    for (name, _) in targets {
        if !desired.services.contains_key(name) {
            let names: Vec<&str> = desired.services.keys().map(String::as_str).collect();
            return Err(Error::Usage(format!(
                "no service `{name}` in {}; its services are: {}",
                path.display(),
                names.join(", ")
            )));
        }
    }
    let old = config::read_capped(path)
        .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
        .map_err(|e| Error::Other(format!("reading {}: {e}", path.display())))?;
    let new = rewrite_counts(&old, targets)
        .map_err(|e| Error::Other(format!("editing {}: {e}", path.display())))?;
    // …and after.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    config::parse_str(&path.display().to_string(), &new, &dir)?;
    if new == old {
        printer.info(&format!("{} already has these counts.", path.display()));
        return Ok(());
    }
    printer.out(&render::file_diff(
        &path.display().to_string(),
        &old,
        &new,
        printer.color_out(),
    ));
    crate::safe_file::write_replacing(path, new.as_bytes(), Some(old.as_bytes()))
        .map_err(|e| Error::Other(format!("writing {}: {e}", path.display())))?;
    Ok(())
}

/// Sets `services.<name>.count` for each target with toml_edit, so that
/// comments, order and layout stay as they were.
pub fn rewrite_counts(text: &str, targets: &[(String, u32)]) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string())?;
    for (name, count) in targets {
        let service = doc
            .get_mut("services")
            .and_then(|s| s.get_mut(name.as_str()))
            .and_then(toml_edit::Item::as_table_like_mut)
            .ok_or_else(|| format!("no table for service `{name}`"))?;
        match service.get_mut("count") {
            Some(item) => {
                let decor = item.as_value().map(|v| v.decor().clone());
                *item = toml_edit::value(i64::from(*count));
                if let (Some(decor), Some(v)) = (decor, item.as_value_mut()) {
                    *v.decor_mut() = decor;
                }
            }
            None => {
                service.insert("count", toml_edit::value(i64::from(*count)));
            }
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_comments_and_layout() {
        let text = "# top\n[services.web]  # the web tier\nimage = \"x\"\ncount = 2 # scaled by hand\n\n[services.db]\nimage = \"y\"\n";
        let out = rewrite_counts(text, &[("web".into(), 5), ("db".into(), 3)]).unwrap();
        assert_eq!(
            out,
            "# top\n[services.web]  # the web tier\nimage = \"x\"\ncount = 5 # scaled by hand\n\n[services.db]\nimage = \"y\"\ncount = 3\n"
        );
    }
}
