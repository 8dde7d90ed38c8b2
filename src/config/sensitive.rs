//! Sensitive values (`[sensitive] env = [...]`): which env variables are
//! sensitive, and the digest that stands for such a value wherever muster
//! keeps or shows a service's settings. Pure.

use sha2::{Digest, Sha256};

/// What a sensitive value's digest starts with, in a shape, a label, a diff.
pub const MARK: &str = "sensitive:sha256:";

/// What muster prints for a sensitive value.
pub const SHOWN: &str = "(sensitive)";

/// Whether `name` matches the glob `pattern` (`*` any text, `?` one character).
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matching with one backtrack point: linear in practice, and
    // no recursion for a hostile pattern of many stars.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether env variable `name` is sensitive under `patterns`.
pub fn is_sensitive(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| glob_matches(p, name))
}

/// What stands for the value of the sensitive variable `name`: a digest,
/// so that a changed value still changes the config hash and the diff,
/// salted with the name so that two variables with one value differ.
pub fn digest(name: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"muster sensitive\0");
    h.update(name.as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("{MARK}{hex}")
}

/// Whether a shape value is a sensitive value's digest.
pub fn is_digest(value: &str) -> bool {
    value.starts_with(MARK)
}

/// How a diff shows a setting one side of which is a sensitive value
/// (`env.DB_PASSWORD (sensitive value changed)`); `None` for any other.
pub fn masked_change(path: &str, from: Option<&str>, to: Option<&str>) -> Option<String> {
    let what = match (from, to) {
        (None, Some(t)) if is_digest(t) => "added",
        (Some(f), None) if is_digest(f) => "removed",
        (Some(f), Some(t)) if is_digest(f) || is_digest(t) => "changed",
        _ => return None,
    };
    Some(format!("{path} (sensitive value {what})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("DB_PASSWORD", "DB_PASSWORD", true),
            ("DB_PASSWORD", "DB_PASSWORD2", false),
            ("API_*", "API_KEY", true),
            ("API_*", "API_", true),
            ("API_*", "XAPI_KEY", false),
            ("*_TOKEN", "GITHUB_TOKEN", true),
            ("*", "ANY", true),
            ("A?C", "ABC", true),
            ("A?C", "AC", false),
            ("*SECRET*", "MY_SECRET_KEY", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
        ] {
            assert_eq!(glob_matches(p, n), want, "{p} {n}");
        }
        let hostile = "*".repeat(10_000) + "x";
        assert!(!glob_matches(&hostile, &"a".repeat(10_000)));
    }

    #[test]
    fn the_digest_hides_the_value_and_follows_it() {
        let d = digest("DB_PASSWORD", "hunter2");
        assert!(is_digest(&d) && !d.contains("hunter2"));
        assert_ne!(d, digest("DB_PASSWORD", "hunter3"));
        assert_ne!(d, digest("OTHER", "hunter2"));
        assert_eq!(d, digest("DB_PASSWORD", "hunter2"));
    }

    #[test]
    fn a_diff_with_a_digest_on_either_side_is_masked() {
        let d = digest("K", "v");
        assert_eq!(
            masked_change("env.K", Some(&d), Some(&digest("K", "w"))).as_deref(),
            Some("env.K (sensitive value changed)")
        );
        // A value that becomes sensitive: the old one is not shown either.
        assert_eq!(
            masked_change("env.K", Some("plain"), Some(&d)).as_deref(),
            Some("env.K (sensitive value changed)")
        );
        assert_eq!(
            masked_change("env.K", None, Some(&d)).as_deref(),
            Some("env.K (sensitive value added)")
        );
        assert_eq!(
            masked_change("env.K", Some(&d), None).as_deref(),
            Some("env.K (sensitive value removed)")
        );
        assert_eq!(masked_change("env.K", Some("a"), Some("b")), None);
    }
}
