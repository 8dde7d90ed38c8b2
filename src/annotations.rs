//! File errors as GitHub Actions workflow commands
//! (`::error file=F,line=L,col=C::message`), so that a CI run shows each
//! problem on the line of the pull request's diff. Pure.

use crate::config::Invalid;

/// Whether the environment is a GitHub Actions run (`GITHUB_ACTIONS=true`).
pub fn in_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// One `::error` line per problem of the file.
pub fn github_errors(invalid: &Invalid) -> String {
    let mut out = String::new();
    for p in &invalid.problems {
        let (path, place) = invalid.place(p);
        let mut message = format!("{} [{}]", p.message, p.code);
        if let Some(help) = &p.help {
            message.push_str(&format!("\nhelp: {help}"));
        }
        let place = place.map_or(String::new(), |(line, col)| {
            format!(",line={line},col={col}")
        });
        out.push_str(&format!(
            "::error file={}{place}::{}\n",
            escape_property(path),
            escape_data(&message)
        ));
    }
    out
}

/// The escapes of the runner's command parser (`@actions/core`'s
/// `escapeData`); other control characters, which would reach the log as
/// they are, are masked.
fn escape_data(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A property value also escapes `:` and `,` (`escapeProperty`).
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_located_error_line_per_problem() {
        let text = "[services.web]\nimage = \"x\"\ncount = -1\nfoo = 1\n";
        let invalid =
            crate::config::parse_str("dir/services.toml", text, std::path::Path::new("/"))
                .unwrap_err();
        let out = github_errors(&invalid);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), invalid.problems.len(), "{out}");
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("::error file=dir/services.toml,line=")),
            "{out}"
        );
        assert!(out.contains(",line=3,col=9::"), "{out}");
        assert!(out.contains(",line=4,col=1::"), "{out}");
    }

    #[test]
    fn a_file_that_cannot_be_read_has_no_line() {
        let invalid = crate::config::Invalid {
            path: "services.toml".into(),
            text: std::sync::Arc::from(""),
            problems: vec![
                crate::config::Problem::new(
                    "muster::config::not_found",
                    "no services.toml in /x",
                    None,
                )
                .whole_file(),
            ],
        };
        assert_eq!(
            github_errors(&invalid),
            "::error file=services.toml::no services.toml in /x [muster::config::not_found]\n"
        );
    }

    #[test]
    fn data_and_properties_are_escaped() {
        assert_eq!(escape_data("a%b\r\nc\x1b"), "a%25b%0D%0Ac\u{fffd}");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
