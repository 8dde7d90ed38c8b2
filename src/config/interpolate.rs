//! `${VAR}` interpolation (SPEC §14) in the string values of a parsed file,
//! and the `.env` file the values may come from. Pure: the process
//! environment is passed in as [`Vars`].
//!
//! Values are substituted once: a value taken from the environment or from
//! `.env` is never interpolated again, so references cannot form a cycle.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::Problem;

/// Where `${VAR}` finds VAR: the process environment first, then `.env`.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub process: BTreeMap<String, String>,
    pub dotenv: BTreeMap<String, String>,
}

impl Vars {
    /// The process's environment (values that are not UTF-8 read lossily).
    pub fn from_process() -> Self {
        Vars {
            process: std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
            dotenv: BTreeMap::new(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.process
            .get(name)
            .or_else(|| self.dotenv.get(name))
            .map(String::as_str)
    }
}

/// Why a string does not interpolate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `${VAR:?message}` with VAR unset (or empty).
    Required { name: String, message: String },
    /// `${A:-${B}}`.
    Nested { name: String },
    /// `${` without a closing `}`, an empty or invalid name, an unknown operator.
    Malformed { why: String },
}

impl Error {
    /// The error as a problem of the string at `span`.
    pub fn problem(&self, path: &str, span: Range<usize>) -> Problem {
        match self {
            Error::Required { name, message } => {
                let why = if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                };
                Problem::new(
                    "muster::config::required_variable",
                    format!("`{path}` needs the variable {name}, which is not set{why}"),
                    Some(span),
                )
                .label(format!("{name} is required here"))
                .help(format!(
                    "set {name} in the environment or in the .env file beside the first file"
                ))
            }
            Error::Nested { name } => Problem::new(
                "muster::config::nested_interpolation",
                format!("`{path}`: the default of ${{{name}…}} holds another `${{…}}`"),
                Some(span),
            )
            .label("nested interpolation")
            .help("muster does not nest defaults; set the variable, or write the default as text"),
            Error::Malformed { why } => Problem::new(
                "muster::config::bad_interpolation",
                format!("`{path}`: {why}"),
                Some(span),
            )
            .label("malformed ${…}")
            .help("write ${VAR}, ${VAR:-default}, ${VAR-default} or ${VAR:?message}; $$ is a literal $"),
        }
    }
}

/// `text` with every `${…}` replaced and `$$` made `$`; a `$` followed by
/// anything else is kept as it is (`$HOME` in a command is the container's).
///
/// # Errors
/// The first form that cannot be substituted.
pub fn interpolate<'t>(text: &'t str, vars: &Vars) -> Result<Cow<'t, str>, Error> {
    if !text.contains('$') {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let (value, tail) = substitute(body, vars)?;
            out.push_str(&value);
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// One `${…}` whose text after `${` is `body`: its value and the text after
/// its closing `}`.
fn substitute<'b>(body: &'b str, vars: &Vars) -> Result<(String, &'b str), Error> {
    let name_len = body
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map_or(body.len(), |(i, _)| i);
    let name = &body[..name_len];
    let unclosed = || Error::Malformed {
        why: format!(
            "`${{{}` is not closed with `}}`",
            body.chars().take(40).collect::<String>()
        ),
    };
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(match body.find('}') {
            None => unclosed(),
            Some(end) => Error::Malformed {
                why: format!(
                    "`${{{}}}` does not start with a variable name ([A-Za-z_][A-Za-z0-9_]*)",
                    &body[..end]
                ),
            },
        });
    }
    let rest = &body[name_len..];
    let value = vars.get(name);
    if let Some(tail) = rest.strip_prefix('}') {
        return Ok((value.unwrap_or_default().to_string(), tail));
    }
    let (op, arg_start) = [":-", ":?", "-", "?"]
        .iter()
        .find(|op| rest.starts_with(**op))
        .map(|op| (*op, op.len()))
        .ok_or_else(|| match rest.chars().next() {
            None => unclosed(),
            Some(c) => Error::Malformed {
                why: format!("`${{{name}{c}…` is not a form muster knows"),
            },
        })?;
    let arg_and_tail = &rest[arg_start..];
    let end = arg_and_tail.find('}').ok_or_else(unclosed)?;
    let arg = &arg_and_tail[..end];
    if arg.contains("${") {
        return Err(Error::Nested {
            name: name.to_string(),
        });
    }
    let arg = arg.replace("$$", "$");
    let tail = &arg_and_tail[end + 1..];
    let unset_or_empty = value.is_none_or(str::is_empty);
    let chosen = match op {
        ":-" if unset_or_empty => arg,
        "-" if value.is_none() => arg,
        ":?" if unset_or_empty => {
            return Err(Error::Required {
                name: name.to_string(),
                message: arg,
            });
        }
        "?" if value.is_none() => {
            return Err(Error::Required {
                name: name.to_string(),
                message: arg,
            });
        }
        _ => value.unwrap_or_default().to_string(),
    };
    Ok((chosen, tail))
}

/// Interpolates every string value of `root` in place (keys are names and
/// are left alone); a `count` string must read as an integer.
/// Returns the problems, each at the string that held the form.
pub(crate) fn interpolate_tree(root: &mut Spanned<DeTable<'_>>, vars: &Vars) -> Vec<Problem> {
    let mut problems = Vec::new();
    walk_table(root.get_mut(), "", vars, &mut problems);
    problems
}

fn walk_table(t: &mut DeTable<'_>, path: &str, vars: &Vars, problems: &mut Vec<Problem>) {
    for (k, v) in t.iter_mut() {
        let sub = if path.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{path}.{}", k.get_ref())
        };
        walk(v, &sub, vars, problems);
    }
}

fn walk(v: &mut Spanned<DeValue<'_>>, path: &str, vars: &Vars, problems: &mut Vec<Problem>) {
    let span = v.span();
    let is_count =
        path.starts_with("services.") && path.ends_with(".count") && path.matches('.').count() == 2;
    match v.get_mut() {
        DeValue::String(s) if is_count && !s.contains("${") => {
            let help = match s.trim().parse::<i64>() {
                Ok(n) => format!("write the number without quotes: {n}"),
                Err(_) => {
                    "write a whole number, or a ${VAR} string that interpolates to one".into()
                }
            };
            problems.push(
                Problem::new(
                    "muster::config::wrong_type",
                    format!("`{path}` must be an integer, found a string"),
                    Some(span),
                )
                .label("this is a string")
                .help(help),
            );
        }
        DeValue::String(s) => match interpolate(s, vars) {
            Ok(Cow::Borrowed(_)) => {}
            Ok(new) => {
                let new = new.into_owned();
                if is_count && new.trim().parse::<i64>().is_err() {
                    problems.push(
                        Problem::new(
                            "muster::config::count_not_integer",
                            format!("`{path}` must be an integer, and {new:?} is not one"),
                            Some(span),
                        )
                        .label("not an integer after interpolation")
                        .help("set the variable to a whole number from 0 to 1000"),
                    );
                } else {
                    *s = Cow::Owned(new);
                }
            }
            Err(e) => problems.push(e.problem(path, span)),
        },
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &format!("{path}[{i}]"), vars, problems);
            }
        }
        DeValue::Table(t) => walk_table(t, path, vars, problems),
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {}
    }
}

/// A `.env` file larger than this is refused.
pub const MAX_DOTENV_BYTES: usize = 1024 * 1024;

/// Reads `.env` text: `KEY=VALUE` lines, `#` comments, blank lines, an
/// optional `export ` prefix, values optionally in single quotes (taken as
/// written) or double quotes (`\n`, `\"`, `\\` escaped). Values are not
/// interpolated.
///
/// # Errors
/// Each line that is not one of these, located by its byte range.
pub fn parse_dotenv(text: &str) -> Result<BTreeMap<String, String>, Vec<Problem>> {
    let mut vars = BTreeMap::new();
    let mut problems = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let span = start..start + line.len();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((key, value)) = body.split_once('=') else {
            problems.push(
                Problem::new(
                    "muster::env::no_equals",
                    "this line of the .env file is not KEY=VALUE",
                    Some(span),
                )
                .label("no `=`")
                .help("write KEY=VALUE, or start the line with # to make it a comment"),
            );
            continue;
        };
        let key = key.trim();
        let valid = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            problems.push(
                Problem::new(
                    "muster::env::bad_name",
                    format!("{key:?} is not a variable name"),
                    Some(span),
                )
                .label("not [A-Za-z_][A-Za-z0-9_]*")
                .help("variable names are letters, digits and _, not starting with a digit"),
            );
            continue;
        }
        match unquote(value.trim()) {
            Some(v) => {
                vars.insert(key.to_string(), v);
            }
            None => problems.push(
                Problem::new(
                    "muster::env::unclosed_quote",
                    format!("the value of {key} opens a quote it does not close"),
                    Some(span),
                )
                .label("unclosed quote")
                .help("close the quote on the same line"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(vars)
    } else {
        Err(problems)
    }
}

/// The `.env` text as a diagnostic may quote it: each line's value (what
/// follows its name) replaced by `*`, byte for byte, so that the spans of
/// [`parse_dotenv`]'s problems still point where they did. A `.env` file
/// holds secrets, and an error's quoted line would print them in a CI log.
pub fn redact_dotenv(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = body.len() - body.trim_start().len();
        if body.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let rest = &body[indent..];
        let after_export = rest.strip_prefix("export ").map_or(0, |_| "export ".len());
        // The name: up to the first `=` or blank.
        let name_len = rest[after_export..]
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len() - after_export);
        let keep = indent + after_export + name_len;
        out.push_str(&body[..keep]);
        for c in body[keep..].chars() {
            if c == '=' || c == ' ' {
                out.push(c);
            } else {
                out.extend(std::iter::repeat_n('*', c.len_utf8()));
            }
        }
        out.push_str(&line[body.len()..]);
    }
    out
}

/// A `.env` value without its quotes; an unquoted one loses a trailing
/// ` # comment`. `None` for an unclosed quote.
fn unquote(v: &str) -> Option<String> {
    if let Some(inner) = v.strip_prefix('\'') {
        let end = inner.find('\'')?;
        return Some(inner[..end].to_string());
    }
    if let Some(inner) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        return None;
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Some(v.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars {
            process: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dotenv: BTreeMap::from([
                ("FROM_DOTENV".into(), "dot".into()),
                ("SET".into(), "dotenv loses".into()),
            ]),
        }
    }

    #[test]
    fn every_form() {
        let v = vars(&[("SET", "x"), ("EMPTY", ""), ("UNI", "é日本")]);
        let table: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("${SET}", "x"),
            ("a${SET}b${SET}c", "axbxc"),
            ("${UNSET}", ""),
            ("${SET:-d}", "x"),
            ("${EMPTY:-d}", "d"),
            ("${UNSET:-d}", "d"),
            ("${SET-d}", "x"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${UNSET:-}", ""),
            ("${UNSET:-a b:c-d}", "a b:c-d"),
            ("${SET:?must be set}", "x"),
            ("${EMPTY?only unset fails}", ""),
            ("$$", "$"),
            ("$${SET}", "${SET}"),
            ("$$$${SET}", "$${SET}"),
            ("$$${SET}", "$x"),
            ("cost: 5$", "cost: 5$"),
            ("$HOME stays", "$HOME stays"),
            ("${UNSET:-$$5}", "$5"),
            ("${FROM_DOTENV}", "dot"),
            ("${UNI}/ü", "é日本/ü"),
            ("ü${UNSET:-日本}ü", "ü日本ü"),
        ];
        for (input, want) in table {
            assert_eq!(interpolate(input, &v).as_deref(), Ok(*want), "{input}");
        }
    }

    #[test]
    fn the_process_environment_wins_over_dotenv() {
        assert_eq!(
            interpolate("${SET}", &vars(&[("SET", "process")])).as_deref(),
            Ok("process")
        );
        assert_eq!(
            interpolate("${SET}", &vars(&[])).as_deref(),
            Ok("dotenv loses")
        );
    }

    #[test]
    fn errors() {
        let v = vars(&[("EMPTY", "")]);
        let required = |name: &str, message: &str| Error::Required {
            name: name.into(),
            message: message.into(),
        };
        assert_eq!(
            interpolate("${UNSET:?say why}", &v),
            Err(required("UNSET", "say why"))
        );
        assert_eq!(interpolate("${EMPTY:?}", &v), Err(required("EMPTY", "")));
        assert_eq!(interpolate("${UNSET?}", &v), Err(required("UNSET", "")));
        assert_eq!(
            interpolate("${A:-${B}}", &v),
            Err(Error::Nested { name: "A".into() })
        );
        assert_eq!(
            interpolate("${A-x${B:-c}}", &v),
            Err(Error::Nested { name: "A".into() })
        );
        for bad in [
            "${", "${A", "${A:-x", "${}", "${1A}", "${A B}", "${A:x}", "x ${ y", "${-d}",
        ] {
            assert!(
                matches!(interpolate(bad, &v), Err(Error::Malformed { .. })),
                "{bad}: {:?}",
                interpolate(bad, &v)
            );
        }
    }

    #[test]
    fn very_long_values() {
        let long = "é".repeat(200_000);
        let v = vars(&[("LONG", &long)]);
        let out = interpolate("<${LONG}>", &v).unwrap_or_default();
        assert_eq!(out.len(), long.len() + 2);
        let many = "${LONG:-}".repeat(50);
        assert_eq!(interpolate(&many, &v).map(|s| s.len()), Ok(long.len() * 50));
        // A long unclosed form is reported briefly.
        let unclosed = format!("${{{}", "A".repeat(100_000));
        match interpolate(&unclosed, &v) {
            Err(Error::Malformed { why }) => assert!(why.len() < 100, "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dotenv_lines() {
        let text = "# a comment\n\nA=1\nexport B = two words # note\nC='single # kept'\nD=\"dq \\\"x\\\"\\n\"\nE=\nF=a=b\r\n";
        let vars = parse_dotenv(text).unwrap_or_default();
        let get = |k: &str| vars.get(k).map(String::as_str);
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("single # kept"));
        assert_eq!(get("D"), Some("dq \"x\"\n"));
        assert_eq!(get("E"), Some(""));
        assert_eq!(get("F"), Some("a=b"));
    }

    #[test]
    fn a_redacted_dotenv_keeps_names_and_byte_offsets_not_values() {
        let text =
            "# keep: a comment\nDB_PASSWORD=\"S3cr\u{e9}t\n  export K = v w\r\nSECRET S3cr3t\n";
        let shown = redact_dotenv(text);
        assert_eq!(shown.len(), text.len());
        assert_eq!(
            shown,
            "# keep: a comment\nDB_PASSWORD=********\n  export K = * *\r\nSECRET ******\n"
        );
    }

    #[test]
    fn dotenv_errors_are_located_per_line() {
        let text = "A=1\nnot a pair\n1BAD=x\nQ=\"open\n";
        let problems = parse_dotenv(text).err().unwrap_or_default();
        let codes: Vec<(&str, usize)> = problems
            .iter()
            .map(|p| (p.code, p.span.clone().map_or(0, |s| s.start)))
            .collect();
        assert_eq!(
            codes,
            [
                ("muster::env::no_equals", 4),
                ("muster::env::bad_name", 15),
                ("muster::env::unclosed_quote", 22)
            ]
        );
    }
}
