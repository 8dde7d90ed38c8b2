//! Located problems in a `services.toml`, and their two renderings: miette's
//! graphical report for terminals, and plain `error: file:line:col: …` lines
//! for CI logs. Pure; rendering writes to a string.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};

/// One problem in the file, with where it is and how to fix it.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Stable code, e.g. `muster::config::unknown_key`.
    pub code: &'static str,
    pub message: String,
    /// Byte range in the file's text; `None` when the problem has no place
    /// (then it is reported at 1:1).
    pub span: Option<Range<usize>>,
    /// The label under the underlined text.
    pub label: String,
    /// One line on how to fix it.
    pub help: Option<String>,
    /// The file the span is in, when it is not the [`Invalid`]'s own (an
    /// overlay, the `.env` file).
    pub source: Option<Source>,
    /// A problem with the whole file (it could not be read): it has no
    /// line, and its message names the file.
    pub whole_file: bool,
}

/// A file a problem can be in: its name as shown and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: String,
    pub text: Arc<str>,
}

impl Problem {
    pub fn new(code: &'static str, message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Problem {
            code,
            message: message.into(),
            span,
            label: "here".into(),
            help: None,
            source: None,
            whole_file: false,
        }
    }

    /// A problem with the whole file, whose message names it.
    pub fn whole_file(mut self) -> Self {
        self.whole_file = true;
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every problem of one file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path} is invalid: {}", plural(problems.len(), "problem"))]
pub struct Invalid {
    pub path: String,
    /// The file's text (lossy when it was not UTF-8), for locating and quoting.
    pub text: Arc<str>,
    pub problems: Vec<Problem>,
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A single problem bound to its source, as miette wants it.
#[derive(Debug, thiserror::Error)]
#[error("{}", problem.message)]
struct Located<'a> {
    problem: &'a Problem,
    src: NamedSource<Arc<str>>,
}

impl Diagnostic for Located<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(self.problem.code))
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        (!self.problem.whole_file).then_some(&self.src as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        if self.problem.whole_file {
            return None;
        }
        let span = self.problem.span.clone().unwrap_or(0..0);
        let span = SourceSpan::from(span.start..span.end.max(span.start));
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(Some(self.problem.label.clone()), span),
        )))
    }
}

impl Invalid {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }

    /// The name and text of the file `p` is in.
    pub fn source_of<'a>(&'a self, p: &'a Problem) -> (&'a str, &'a Arc<str>) {
        match &p.source {
            Some(s) => (&s.path, &s.text),
            None => (&self.path, &self.text),
        }
    }

    /// The file, and the 1-based line and column (in characters) where `p`
    /// is; none for a problem with the whole file.
    pub fn place<'a>(&'a self, p: &'a Problem) -> (&'a str, Option<(usize, usize)>) {
        let (path, text) = self.source_of(p);
        let start = p.span.as_ref().map_or(0, |s| s.start);
        (path, (!p.whole_file).then(|| line_col(text, start)))
    }

    /// Whether the report ends with `file is invalid: N problems`: not when
    /// the file could not be read at all (its problem said so).
    fn closes(&self) -> bool {
        !self.problems.iter().all(|p| p.whole_file)
    }

    /// Plain text: per problem, one `error: file:line:col: message [code]`
    /// line, the quoted line with carets, and the hint (a problem with the
    /// whole file: `error: message [code]` and the hint). No colour, no
    /// boxes.
    pub fn render_plain(&self) -> String {
        let mut out = String::new();
        for p in &self.problems {
            if p.whole_file {
                let _ = writeln!(out, "error: {} [{}]", p.message, p.code);
                if let Some(h) = &p.help {
                    let _ = writeln!(out, "  help: {h}");
                }
                continue;
            }
            let (path, text) = self.source_of(p);
            let start = p.span.as_ref().map_or(0, |s| s.start).min(text.len());
            let start = floor_char_boundary(text, start);
            let (line, col) = line_col(text, start);
            let _ = writeln!(
                out,
                "error: {path}:{line}:{col}: {} [{}]",
                p.message, p.code
            );
            if let Some(span) = &p.span {
                let text_line = text.lines().nth(line - 1).unwrap_or("");
                let text_line = text_line.trim_end_matches('\r');
                let shown: String = text_line.chars().take(200).collect();
                let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
                let width = text[start..end]
                    .lines()
                    .next()
                    .map_or(0, |s| s.chars().count())
                    .max(1);
                let gutter = line.to_string();
                let _ = writeln!(out, "  {gutter} | {shown}");
                let _ = writeln!(
                    out,
                    "  {} | {}{} {}",
                    " ".repeat(gutter.len()),
                    " ".repeat(col - 1),
                    "^".repeat(width.min(200usize.saturating_sub(col - 1)).max(1)),
                    p.label
                );
            }
            if let Some(h) = &p.help {
                let _ = writeln!(out, "  help: {h}");
            }
        }
        if self.closes() {
            let _ = writeln!(out, "error: {self}");
        }
        // The file's own bytes are quoted: keep its control characters
        // (escape sequences included) away from the terminal.
        out.chars()
            .map(|c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    '\u{fffd}'
                } else {
                    c
                }
            })
            .collect()
    }

    /// miette's graphical report, coloured or not.
    pub fn render_graphical(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme);
        // The file's own bytes are quoted: keep its control characters
        // (escape sequences included) away from the terminal.
        let named = |path: &str, text: &Arc<str>| {
            let text = match mask_controls(text) {
                Cow::Borrowed(_) => text.clone(),
                Cow::Owned(masked) => Arc::from(masked),
            };
            let path = mask_controls(path).into_owned();
            (path.clone(), NamedSource::new(path, text))
        };
        let (path, _) = named(&self.path, &self.text);
        let mut out = String::new();
        for p in &self.problems {
            let (own_path, own_text) = self.source_of(p);
            let (shown, source) = named(own_path, own_text);
            let masked = Problem {
                message: mask_controls(&p.message).into_owned(),
                label: mask_controls(&p.label).into_owned(),
                help: p.help.as_deref().map(|h| mask_controls(h).into_owned()),
                ..p.clone()
            };
            let located = Located {
                problem: &masked,
                src: source,
            };
            if let (_, Some((line, col))) = self.place(p) {
                let _ = writeln!(out, "{shown}:{line}:{col}");
            }
            let _ = handler.render_report(&mut out, &located);
        }
        if self.closes() {
            let _ = writeln!(
                out,
                "error: {path} is invalid: {}",
                plural(self.problems.len(), "problem")
            );
        }
        out
    }
}

/// `text` with each control character other than line ends and tabs shown
/// as `?`, byte for byte, so that spans still point at the same text.
fn mask_controls(text: &str) -> Cow<'_, str> {
    let is_unsafe = |i: usize, c: char| {
        c.is_control() && c != '\n' && c != '\t' && !(c == '\r' && text[i + 1..].starts_with('\n'))
    };
    if !text.char_indices().any(|(i, c)| is_unsafe(i, c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if is_unsafe(i, c) {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_masked_byte_for_byte() {
        let t = "a\u{1b}[31m\u{85}b\r\nc\td\re";
        let masked = mask_controls(t);
        assert_eq!(masked, "a?[31m??b\r\nc\td?e");
        assert_eq!(masked.len(), t.len());
        assert!(matches!(mask_controls("plain\r\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn line_col_counts_characters() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 3));
    }
}
