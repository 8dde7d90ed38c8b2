//! Output: the one printer that knows colour and verbosity, and the
//! renderings of plans and states as text and JSON. Writes to stdout
//! (results) and stderr (diagnostics, progress).

use std::io::{IsTerminal, Write};

use crate::cli::ColorChoice;

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
