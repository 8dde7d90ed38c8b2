//! The command line: argument parsing (clap derive) and dispatch to the
//! pipeline. The only place that decides how an error is shown and which
//! exit code it gets.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config;
use crate::render::Printer;

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
    /// The services file.
    #[arg(
        short = 'f',
        long = "file",
        env = "MUSTER_FILE",
        default_value = "services.toml",
        global = true
    )]
    pub file: PathBuf,
    /// Project name (default: `project` in the file, else the file's directory name).
    #[arg(long, env = "MUSTER_PROJECT", global = true)]
    pub project: Option<String>,
    /// Docker engine: unix:///path, tcp://host:port (TLS with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH).
    #[arg(long = "host", env = "DOCKER_HOST", global = true)]
    pub host: Option<String>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check the file; needs no engine.
    ///
    /// Example: muster validate -f examples/web/services.toml
    Validate,
    /// Print the JSON Schema of the file (for editors: Taplo, Even Better TOML).
    ///
    /// Example: muster schema > schema/services.schema.json
    Schema,
    /// Print a shell completion script.
    ///
    /// Example: muster completions bash > /etc/bash_completion.d/muster
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(run(cli))
}

fn run(cli: Cli) -> u8 {
    let printer = Printer::new(cli.global.color, cli.global.quiet, cli.global.verbose);
    match cli.command {
        Command::Validate => match load(&cli.global) {
            Ok(desired) => {
                let containers: u32 = desired.services.values().map(|s| s.count).sum();
                printer.info(&format!(
                    "{} is valid: project {}, {}, {}",
                    cli.global.file.display(),
                    desired.project,
                    config::plural(desired.services.len(), "service"),
                    config::plural(containers as usize, "container"),
                ));
                exit::OK
            }
            Err(invalid) => report_invalid(&printer, &invalid),
        },
        Command::Schema => {
            printer.out(&schema_text());
            exit::OK
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "muster", &mut std::io::stdout());
            exit::OK
        }
    }
}

/// The schema as written to `schema/services.schema.json`.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&config::file::schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// Loads the file and applies `--project`.
fn load(global: &Global) -> Result<config::Desired, config::Invalid> {
    let mut desired = config::load(&global.file)?;
    if let Some(p) = &global.project {
        desired.project = p.clone();
    }
    Ok(desired)
}

fn report_invalid(printer: &Printer, invalid: &config::Invalid) -> u8 {
    if std::io::stderr().is_terminal() {
        printer.err(&invalid.render_graphical(printer.color_err()));
    } else {
        printer.err(&invalid.render_plain());
    }
    exit::INVALID_FILE
}
