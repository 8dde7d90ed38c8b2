//! The one printer that knows the colour and verbosity settings, and the
//! colours it paints with. Writes to stdout (results) and stderr
//! (diagnostics, progress, logs).

use std::io::{IsTerminal, Write};

/// When to colour output (`--color`); `NO_COLOR` turns it off in `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The format of results on stdout (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// For a pull-request comment (`plan`, `apply`).
    Markdown,
}

/// Where user-facing output goes.
#[derive(Debug, Clone)]
pub struct Printer {
    color_out: bool,
    color_err: bool,
    pub quiet: bool,
    pub verbose: u8,
}

impl Printer {
    pub fn new(choice: ColorChoice, quiet: bool, verbose: u8) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let pick = |terminal: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !no_color,
        };
        Printer {
            color_out: pick(std::io::stdout().is_terminal()),
            color_err: pick(std::io::stderr().is_terminal()),
            quiet,
            verbose,
        }
    }

    pub fn color_out(&self) -> bool {
        self.color_out
    }

    pub fn color_err(&self) -> bool {
        self.color_err
    }

    /// A result, on stdout, always printed.
    pub fn out(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// Information on stdout, left out with `-q`.
    pub fn info(&self, line: &str) {
        if !self.quiet {
            self.out(&format!("{line}\n"));
        }
    }

    /// An error or diagnostic, on stderr.
    pub fn err(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = err.write_all(b"\n");
        }
    }
}

/// ANSI colours, or nothing.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn green(self, t: &str) -> String {
        self.wrap("32", t)
    }
    pub fn red(self, t: &str) -> String {
        self.wrap("31", t)
    }
    pub fn yellow(self, t: &str) -> String {
        self.wrap("33", t)
    }
    pub fn cyan(self, t: &str) -> String {
        self.wrap("36", t)
    }
    pub fn bold(self, t: &str) -> String {
        self.wrap("1", t)
    }
    pub fn dim(self, t: &str) -> String {
        self.wrap("2", t)
    }
    /// The `i`th of a few colours that tell apart things of one kind
    /// (the containers of `muster logs`).
    pub fn nth(self, i: usize, t: &str) -> String {
        const CODES: [&str; 6] = ["36", "33", "32", "35", "34", "31"];
        self.wrap(CODES[i % CODES.len()], t)
    }
}
