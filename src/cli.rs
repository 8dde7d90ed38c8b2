//! The command line: argument parsing (clap derive) and dispatch to the
//! pipeline. The only place that decides how an error is shown and which
//! exit code it gets.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::{ArgValueCompleter, CompletionCandidate};

use crate::commands::{self, ApplyRequest, Context, Done, PlanRequest};
use crate::config;
use crate::error::Error;
use crate::output::{ColorChoice, Format, Printer};

/// Exit codes of SPEC section 6.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const CHANGES: u8 = 2;
    pub const INVALID_FILE: u8 = 3;
    pub const USAGE: u8 = 64;
}

/// Keep a Docker host in the state that services.toml declares.
#[derive(Debug, Parser)]
#[command(name = "muster", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The services file; repeat it (or separate paths with `:` in
    /// MUSTER_FILE) to merge overlays over the first file, in order.
    #[arg(
        short = 'f',
        long = "file",
        env = "MUSTER_FILE",
        default_value = "services.toml",
        value_delimiter = ':',
        action = clap::ArgAction::Append,
        global = true
    )]
    pub file: Vec<PathBuf>,
    /// Where `${VAR}` values come from after the environment (default:
    /// `.env` beside the first file, when it exists).
    #[arg(long, env = "MUSTER_ENV_FILE", global = true)]
    pub env_file: Option<PathBuf>,
    /// Project name (default: `project` in the file, else the file's directory name).
    #[arg(long, env = "MUSTER_PROJECT", global = true, value_parser = parse_project_arg)]
    pub project: Option<String>,
    /// Docker engine: unix:///path, tcp://host:port (TLS with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH).
    #[arg(long = "host", env = "DOCKER_HOST", global = true)]
    pub host: Option<String>,
    /// Where the services run; overrides `backend` in the file.
    #[arg(long, value_enum, global = true)]
    pub backend: Option<BackendArg>,
    /// When to colour output; NO_COLOR turns it off in `auto`.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// Print only changes and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail; repeat for more (-vv shows engine calls).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Docker,
    Swarm,
}

impl From<BackendArg> for config::Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Docker => config::Backend::Docker,
            BackendArg::Swarm => config::Backend::Swarm,
        }
    }
}

/// Options shared by `plan` and `apply`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Format of the plan: markdown for a pull-request comment.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Exit 2 when there are changes (plan and apply --dry-run), 0 when none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also remove the containers of services that are gone from the file.
    #[arg(long)]
    pub prune: bool,
}

/// Options of commands that change the engine.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// Engine operations at once within a parallel service (containers
    /// stop at most 4 at once on a network of more than 250).
    #[arg(long, env = "MUSTER_PARALLEL", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// How long to wait for another muster that holds the project's lock.
    #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
    pub lock_timeout: Duration,
}

fn parse_scale_arg(s: &str) -> Result<(String, u32), String> {
    let (name, count) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not SERVICE=COUNT"))?;
    let count: u32 = count
        .parse()
        .ok()
        .filter(|c| *c <= 1000)
        .ok_or_else(|| format!("{count:?} is not a count from 0 to 1000"))?;
    Ok((name.to_string(), count))
}

/// A project name names containers, networks and volumes: the file's rule applies.
fn parse_project_arg(s: &str) -> Result<String, String> {
    if config::valid_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a project name ([a-z0-9][a-z0-9_-]*)"))
    }
}

/// `--output` of the commands that print no plan: no markdown.
fn text_or_json() -> impl clap::builder::TypedValueParser<Value = Format> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["text", "json"]).map(|s| {
        if s == "json" {
            Format::Json
        } else {
            Format::Text
        }
    })
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    config::parse_duration(s)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the plan: what apply would change. Changes nothing.
    ///
    /// Example: muster plan --detailed-exitcode --output markdown --out plan.json
    Plan {
        /// Only these services and what they depend on (others are left alone).
        #[arg(value_name = "SERVICE", add = ArgValueCompleter::new(services_of_the_file))]
        targets: Vec<String>,
        #[command(flatten)]
        plan: PlanArgs,
        /// Also save the plan to FILE, for `muster apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the plan, then apply it, reporting each step.
    ///
    /// With PLAN (a file saved by `muster plan --out`), apply exactly that
    /// plan, or refuse (exit 1, nothing changed) when the file or the
    /// engine changed since it was made.
    ///
    /// Example: muster apply --prune --parallel 16
    /// Example: muster apply plan.json
    Apply {
        /// A plan saved by `muster plan --out` (a file; it carries its own
        /// --prune), or services to apply with what they depend on (others are left alone).
        #[arg(value_name = "PLAN|SERVICE", add = ArgValueCompleter::new(plan_or_service))]
        targets: Vec<String>,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        apply: ApplyArgs,
        /// Print the plan and stop (same as `muster plan`).
        #[arg(long)]
        dry_run: bool,
        /// Return only once every container is ready (healthy where a healthcheck is declared).
        #[arg(long, conflicts_with = "dry_run")]
        wait: bool,
    },
    /// The daemon: apply, then re-plan on every save of the file and on engine drift.
    ///
    /// Runs until SIGINT or SIGTERM; the containers keep running.
    /// Example: muster watch --debounce 200ms --resync 60s
    Watch {
        /// Quiet time after a file event before reloading.
        #[arg(long, default_value = "200ms", value_parser = parse_duration_arg)]
        debounce: Duration,
        /// Full resync interval.
        #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
        resync: Duration,
        /// Also remove the containers of services that are gone from the file.
        #[arg(long)]
        prune: bool,
        /// `json`: one JSON object per event, for log shippers.
        #[arg(long, default_value = "text", value_parser = text_or_json())]
        output: Format,
        /// Serve a status page, a JSON API and /metrics on ADDR (e.g. 127.0.0.1:7070).
        #[arg(long, env = "MUSTER_LISTEN", value_name = "ADDR", value_parser = crate::web::parse_listen)]
        listen: Option<std::net::SocketAddr>,
        /// A file holding the bearer token every request to --listen must carry;
        /// required for an address other than loopback.
        #[arg(long, value_name = "PATH", requires = "listen")]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        options: ApplyArgs,
    },
    /// Desired against actual, per service and container: state, health, ports.
    ///
    /// Example: muster ps --output json
    Ps {
        #[arg(long, default_value = "text", value_parser = text_or_json())]
        output: Format,
    },
    /// The containers' output, merged in time order, each line prefixed by its container.
    ///
    /// Example: muster logs web -f --tail 20 --since 10m
    Logs {
        /// Only these services.
        #[arg(add = ArgValueCompleter::new(services_of_the_file))]
        services: Vec<String>,
        /// Then follow: new lines, and containers started later, until Ctrl-C.
        /// (`-f` after `logs` means this, as in docker compose; the file is then `--file`.)
        #[arg(long)]
        follow: bool,
        /// The last N lines of each container.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Only lines written within this long, e.g. 10m.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
        since: Option<Duration>,
        /// Show the engine's timestamp of each line.
        #[arg(short, long)]
        timestamps: bool,
    },
    /// Rewrite `count` in the file (keeping comments and layout) and print the file's diff.
    ///
    /// Example: muster scale web=5 worker=2 --apply
    Scale {
        /// SERVICE=COUNT pairs.
        #[arg(
            required = true,
            value_parser = parse_scale_arg,
            add = ArgValueCompleter::new(service_counts)
        )]
        targets: Vec<(String, u32)>,
        /// Then apply the file.
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        options: ApplyArgs,
    },
    /// Remove the project's containers and network; its volumes stay unless --volumes.
    ///
    /// Example: muster down --volumes
    Down {
        /// Also remove the project's named volumes (their data is lost).
        #[arg(long)]
        volumes: bool,
        #[command(flatten)]
        options: ApplyArgs,
    },
    /// Stop and start the containers of SERVICEs (all without), sequential ones in order.
    ///
    /// On a swarm, each swarm service redeploys its tasks (a forced update)
    /// with the spec last applied.
    /// Example: muster restart web
    Restart {
        /// Services to restart (default: all).
        #[arg(value_name = "SERVICE", add = ArgValueCompleter::new(services_of_the_file))]
        services: Vec<String>,
        #[command(flatten)]
        options: ApplyArgs,
    },
    /// Run a command in a container of SERVICE (container N with SERVICE-N; default 1).
    ///
    /// Stdin is forwarded (`echo hi | muster exec web -- cat`); the command
    /// runs on a pseudo-terminal when stdin and stdout are a terminal.
    /// Exits with the command's exit code.
    /// Example: muster exec web-2 -- cat /etc/hostname
    Exec {
        /// Do not allocate a pseudo-terminal, even on a terminal.
        #[arg(short = 'T', long)]
        no_tty: bool,
        /// SERVICE or SERVICE-N.
        #[arg(add = ArgValueCompleter::new(services_of_the_file))]
        target: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Pull every image of the file, even those present; report every failure at once.
    ///
    /// Example: muster pull
    Pull,
    /// Parse and check the file; needs no engine.
    ///
    /// Example: muster validate -f examples/web/services.toml
    Validate,
    /// Print the effective file: every -f file merged, ${VAR} forms
    /// interpolated, each value followed by the file it came from.
    ///
    /// Sensitive values show as "(sensitive)". Needs no engine.
    /// Example: muster -f services.toml -f production.toml config
    Config {
        /// Print sensitive values as they are.
        #[arg(long)]
        show_sensitive: bool,
    },
    /// Write a services.toml from a docker compose file; warns of what it leaves out.
    ///
    /// Example: muster import docker-compose.yml -o services.toml
    Import {
        /// The compose file.
        compose: PathBuf,
        /// Write to FILE instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace FILE when it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the JSON Schema of the file (for editors: Taplo, Even Better TOML).
    ///
    /// Example: muster schema > schema/services.schema.json
    Schema,
    /// Print a shell completion script that also completes the file's service names.
    ///
    /// The script asks muster at each Tab (`COMPLETE=SHELL muster -- …`).
    ///
    /// Example: echo 'source <(muster completions bash)' >> ~/.bashrc
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `muster logs -f` follows, as `docker compose logs -f` does, though `-f`
/// is the global `--file`: after the `logs` subcommand, `-f` is `--follow`.
fn follow_short(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const TAKES_VALUE: [&str; 6] = [
        "-f",
        "--file",
        "--project",
        "--host",
        "--backend",
        "--color",
    ];
    let mut i = 1;
    while i < args.len() {
        let arg = args[i].to_string_lossy();
        if TAKES_VALUE.contains(&arg.as_ref()) {
            i += 2;
            continue;
        }
        if arg.starts_with('-') {
            i += 1;
            continue;
        }
        if arg == "logs" {
            for a in &mut args[i + 1..] {
                if a == "-f" {
                    *a = "--follow".into();
                }
            }
        }
        break;
    }
    args
}

/// `COMPLETE=SHELL muster -- WORDS…` (what the script of `muster
/// completions` runs): `args` with the words being completed read as
/// [`follow_short`] reads a command line.
fn completion_args(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if let Some(i) = args.iter().position(|a| a == "--") {
        let words = follow_short(args.split_off(i + 1));
        args.extend(words);
    }
    args
}

/// The services of the file of the command line being completed (`-f`,
/// `MUSTER_FILE` or `./services.toml`) that start with `current`. The file
/// is read, not checked: one in the middle of an edit still completes.
fn service_names(current: &std::ffi::OsStr) -> Vec<String> {
    let args = completion_args(std::env::args_os().collect());
    let words = args.iter().skip_while(|a| *a != "--").skip(1);
    let Ok(matches) = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(words)
    else {
        return Vec::new();
    };
    let files: Vec<PathBuf> = matches
        .get_many::<PathBuf>("file")
        .map(|f| f.cloned().collect())
        .unwrap_or_default();
    let Some((first, overlays)) = files.split_first() else {
        return Vec::new();
    };
    let Ok(read) = config::Sources::new(first, overlays, None, None).read() else {
        return Vec::new();
    };
    let current = current.to_string_lossy();
    read.service_names()
        .into_iter()
        .filter(|name| name.starts_with(current.as_ref()))
        .collect()
}

/// Completes SERVICE.
fn services_of_the_file(current: &std::ffi::OsStr) -> Vec<CompletionCandidate> {
    service_names(current)
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// Completes SERVICE=COUNT up to the `=`.
fn service_counts(current: &std::ffi::OsStr) -> Vec<CompletionCandidate> {
    service_names(current)
        .into_iter()
        .map(|name| CompletionCandidate::new(format!("{name}=")))
        .collect()
}

/// Completes `apply`'s PLAN|SERVICE: the services, and files.
fn plan_or_service(current: &std::ffi::OsStr) -> Vec<CompletionCandidate> {
    use clap_complete::engine::ValueCompleter as _;
    let mut all = services_of_the_file(current);
    all.extend(clap_complete::PathCompleter::file().complete(current));
    all
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cwd = std::env::current_dir().ok();
    match clap_complete::CompleteEnv::with_factory(Cli::command)
        .try_complete(completion_args(args.clone()), cwd.as_deref())
    {
        Ok(false) => {}
        Ok(true) => return ExitCode::from(exit::OK),
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(exit::USAGE);
        }
    }
    let cli = match Cli::try_parse_from(follow_short(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            if let Some(tip) = habit_tip(&e) {
                eprintln!("{tip}");
            }
            return ExitCode::from(code);
        }
    };
    // A bug must not print a backtrace at the user: one line, exit 1.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: muster hit an internal error ({info}); please report it");
    }));
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(_) => ExitCode::from(exit::FAILURE),
    }
}

impl Global {
    fn context(&self) -> Context {
        let (first, overlays) = self.file.split_first().map_or_else(
            || (PathBuf::from("services.toml"), Vec::new()),
            |(first, rest)| (first.clone(), rest.to_vec()),
        );
        Context {
            file: first,
            overlays,
            env_file: self.env_file.clone(),
            project: self.project.clone(),
            host: self.host.clone(),
            backend: self.backend.map(Into::into),
        }
    }
}

impl ApplyArgs {
    fn request(&self) -> ApplyRequest {
        ApplyRequest {
            parallel: usize::from(self.parallel),
            lock_timeout: self.lock_timeout,
        }
    }
}

fn run(cli: Cli) -> u8 {
    let printer = Printer::new(cli.global.color, cli.global.quiet, cli.global.verbose);
    init_logs(&cli.global, &printer);
    let ctx = cli.global.context();
    match cli.command {
        Command::Validate => match ctx.load() {
            Ok(desired) => {
                let containers: u32 = desired.services.values().map(|s| s.count).sum();
                printer.info(&format!(
                    "{} is valid: project {}, {}, {}",
                    ctx.sources().shown(),
                    desired.project,
                    config::plural(desired.services.len(), "service"),
                    config::plural(containers as usize, "container"),
                ));
                exit::OK
            }
            Err(invalid) => report(&printer, &Error::Invalid(invalid)),
        },
        Command::Import {
            compose,
            out,
            force,
        } => {
            let request = crate::import::ImportRequest {
                compose,
                out,
                force,
            };
            match crate::import::run(&printer, &request) {
                Ok(()) => exit::OK,
                Err(e) => report(&printer, &e),
            }
        }
        Command::Schema => {
            printer.out(&schema_text());
            exit::OK
        }
        Command::Config { show_sensitive } => {
            match crate::environments::config(&ctx.sources(), ctx.backend, &printer, show_sensitive)
            {
                Ok(()) => exit::OK,
                Err(e) => report(&printer, &e),
            }
        }
        Command::Completions { shell } => {
            completion_script(shell);
            exit::OK
        }
        command => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    printer.err(&format!("error: cannot start the async runtime: {e}"));
                    return exit::FAILURE;
                }
            };
            match runtime.block_on(dispatch(&ctx, &printer, command)) {
                Ok(Done::Ok) => exit::OK,
                Ok(Done::Changes) => exit::CHANGES,
                Ok(Done::Exit(code)) => code,
                Err(e) => report(&printer, &e),
            }
        }
    }
}

/// Prints the script that registers muster's completer with `shell`: the
/// shell then asks `COMPLETE=SHELL muster -- WORDS…` at each Tab, so that
/// the file's service names complete too. A shell clap_complete cannot ask
/// that way gets a static script.
fn completion_script(shell: clap_complete::Shell) {
    let mut out = std::io::stdout();
    let shells = clap_complete::env::Shells::builtins();
    let Some(dynamic) = shells.completer(&shell.to_string()) else {
        clap_complete::generate(shell, &mut Cli::command(), "muster", &mut out);
        return;
    };
    // As CompleteEnv does: a path as given, made absolute; a bare name is
    // looked up on PATH by the shell.
    let arg0 = PathBuf::from(
        std::env::args_os()
            .next()
            .unwrap_or_else(|| "muster".into()),
    );
    let completer = if arg0.components().count() > 1 {
        std::path::absolute(&arg0).unwrap_or(arg0)
    } else {
        arg0
    };
    let _ = dynamic.write_registration(
        "COMPLETE",
        "muster",
        "muster",
        &completer.to_string_lossy(),
        &mut out,
    );
}

/// Runs a command that needs the async runtime.
async fn dispatch(ctx: &Context, printer: &Printer, command: Command) -> Result<Done, Error> {
    let detailed = |args: &PlanArgs, done: Done| match done {
        Done::Changes if args.detailed_exitcode => Done::Changes,
        _ => Done::Ok,
    };
    match command {
        Command::Plan { targets, plan, out } => {
            let request = PlanRequest {
                save: out,
                targets,
                ..plan.request()
            };
            let done = commands::plan(ctx, printer, &request).await?;
            Ok(detailed(&plan, done))
        }
        Command::Apply {
            targets,
            plan,
            apply,
            dry_run,
            wait,
        } => {
            if let Some(path) = saved_plan_arg(&targets) {
                if dry_run || plan.prune {
                    return Err(Error::Usage(
                        "a saved plan is applied as it is: --dry-run and --prune do not go with PLAN"
                            .into(),
                    ));
                }
                return commands::apply_saved(
                    ctx,
                    printer,
                    &path,
                    plan.output,
                    &apply.request(),
                    wait,
                )
                .await;
            }
            let request = PlanRequest {
                targets,
                ..plan.request()
            };
            if dry_run {
                let done = commands::plan(ctx, printer, &request).await?;
                return Ok(detailed(&plan, done));
            }
            if wait {
                return commands::apply_and_wait(ctx, printer, &request, &apply.request()).await;
            }
            commands::apply(ctx, printer, &request, &apply.request()).await
        }
        Command::Ps { output } => commands::ps(ctx, printer, output).await,
        Command::Logs {
            services,
            follow,
            tail,
            since,
            timestamps,
        } => {
            let request = crate::logs::LogsRequest {
                services,
                follow,
                tail,
                since,
                timestamps,
            };
            crate::logs::run(ctx, printer, &request).await
        }
        Command::Watch {
            debounce,
            resync,
            prune,
            output,
            listen,
            token_file,
            options,
        } => {
            let listen = listen
                .map(|addr| crate::web::Listen::new(addr, token_file.as_deref()))
                .transpose()
                .map_err(Error::Usage)?;
            let settings = crate::watch::Settings {
                sources: ctx.sources(),
                backend: ctx.backend,
                debounce,
                resync: resync.max(Duration::from_secs(1)),
                parallel: usize::from(options.parallel),
                lock_timeout: options.lock_timeout,
                prune,
                json: output == Format::Json,
                listen,
            };
            let connector = crate::watch::EngineConnector(ctx.host.clone());
            crate::watch::run(settings, printer, &connector)
                .await
                .map_err(Error::Other)?;
            Ok(Done::Ok)
        }
        Command::Down { volumes, options } => {
            commands::down(ctx, printer, volumes, &options.request()).await
        }
        Command::Scale {
            targets,
            apply,
            options,
        } => {
            if let Some(service) = repeated_service(&targets) {
                return Err(Error::Usage(format!(
                    "scale: {service} is given more than once; give each service one count"
                )));
            }
            if apply {
                commands::scale_and_apply(ctx, printer, &targets, &options.request()).await
            } else {
                commands::scale(ctx, printer, &targets)
            }
        }
        Command::Pull => commands::pull(ctx, printer).await,
        Command::Exec {
            no_tty,
            target,
            command,
        } => commands::exec(ctx, &target, &command, no_tty).await,
        Command::Restart { services, options } => {
            commands::restart(ctx, printer, &services, &options.request()).await
        }
        Command::Validate
        | Command::Schema
        | Command::Config { .. }
        | Command::Import { .. }
        | Command::Completions { .. } => Ok(Done::Ok),
    }
}

impl PlanArgs {
    fn request(&self) -> PlanRequest {
        PlanRequest {
            output: self.output,
            prune: self.prune,
            save: None,
            targets: Vec::new(),
        }
    }
}

/// `apply PLAN`: one argument that is a file (or names a JSON one); service
/// names hold no dot or slash.
fn saved_plan_arg(args: &[String]) -> Option<PathBuf> {
    let [one] = args else { return None };
    let path = PathBuf::from(one);
    (path.is_file() || one.contains(['.', '/'])).then_some(path)
}

/// The first service named twice in `scale` (`web=2 web=3`: which one wins
/// would be a guess).
fn repeated_service(targets: &[(String, u32)]) -> Option<&str> {
    let mut seen = std::collections::BTreeSet::new();
    targets
        .iter()
        .map(|(name, _)| name.as_str())
        .find(|name| !seen.insert(*name))
}

/// For a command that compose, kubectl or Terraform users type out of
/// habit: muster's own, as a tip under clap's error.
fn habit_tip(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let (ErrorKind::InvalidSubcommand | ErrorKind::UnknownArgument) = e.kind() else {
        return None;
    };
    let given = [ContextKind::InvalidSubcommand, ContextKind::InvalidArg]
        .into_iter()
        .find_map(|k| match e.get(k) {
            Some(ContextValue::String(s)) => Some(s.as_str()),
            _ => None,
        })?;
    let ours = match given.split('=').next().unwrap_or(given) {
        "up" | "start" | "deploy" | "create" | "run" => "muster apply",
        "diff" => "muster plan",
        "rm" | "stop" | "destroy" | "delete" => "muster down",
        "status" | "ls" | "list" | "top" | "get" => "muster ps",
        "check" | "lint" => "muster validate",
        "--dryrun" | "--dry" | "--plan" | "--check" => "--dry-run",
        "--yes" | "-y" | "--auto-approve" | "-d" | "--detach" => {
            return Some(format!(
                "  tip: muster asks for no confirmation and does not stay attached: `muster apply` applies and returns; drop {given}"
            ));
        }
        _ => return None,
    };
    // clap's own tip may be the same (`--dryrun` → `--dry-run`).
    let said = [ContextKind::SuggestedArg, ContextKind::SuggestedSubcommand]
        .into_iter()
        .any(|k| match e.get(k) {
            Some(ContextValue::String(s)) => ours.ends_with(s.as_str()),
            Some(ContextValue::Strings(v)) => v.iter().any(|s| ours.ends_with(s.as_str())),
            _ => false,
        });
    (!said).then(|| format!("  tip: in muster that is `{ours}`"))
}

/// Shows an error and returns its exit code: the one place that decides both.
fn report(printer: &Printer, e: &Error) -> u8 {
    match e {
        Error::Invalid(invalid) => report_invalid(printer, invalid),
        Error::Usage(msg) => {
            printer.err(&format!("error: {msg}"));
            exit::USAGE
        }
        other => {
            printer.err(&crate::render::error_text(other, printer.color_err()));
            exit::FAILURE
        }
    }
}

/// Logs (tracing) go to stderr: warnings by default, `-v` info, `-vv` engine calls.
fn init_logs(global: &Global, printer: &Printer) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MUSTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("muster={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(printer.color_err())
        .with_target(false)
        .without_time()
        .try_init();
}

/// The schema as written to `schema/services.schema.json`.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&config::file::schema()).unwrap_or_default();
    text.push('\n');
    text
}

fn report_invalid(printer: &Printer, invalid: &config::Invalid) -> u8 {
    if crate::annotations::in_github_actions() {
        printer.out(&crate::annotations::github_errors(invalid));
    }
    if std::io::stderr().is_terminal() {
        printer.err(&invalid.render_graphical(printer.color_err()));
    } else {
        printer.err(&invalid.render_plain());
    }
    exit::INVALID_FILE
}
