//! `muster config`: the merged, interpolated tree written back as TOML,
//! each value followed by `# from FILE`. Pure.

use std::fmt::Write as _;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::sensitive;

/// The tree as TOML: plain values first, then sub-tables under their
/// `[a.b]` headers; env values that `[sensitive]` matches shown as
/// `"(sensitive)"` unless `show_sensitive`.
pub(crate) fn render(
    root: &Spanned<DeTable<'_>>,
    origin: &dyn Fn(Range<usize>) -> String,
    show_sensitive: bool,
) -> String {
    let patterns: Vec<String> = root
        .get_ref()
        .get("sensitive")
        .and_then(|s| s.get_ref().get("env"))
        .and_then(|e| e.get_ref().as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.get_ref().as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let w = Writer {
        origin,
        patterns: if show_sensitive { Vec::new() } else { patterns },
    };
    let mut out = String::new();
    w.table(&mut out, root.get_ref(), &[]);
    out
}

struct Writer<'o> {
    origin: &'o dyn Fn(Range<usize>) -> String,
    /// Empty when sensitive values are shown.
    patterns: Vec<String>,
}

impl Writer<'_> {
    fn table(&self, out: &mut String, t: &DeTable<'_>, path: &[&str]) {
        let is_env = path.len() == 3 && path[0] == "services" && path[2] == "env";
        let mut subtables = Vec::new();
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            if let DeValue::Table(sub) = v.get_ref() {
                subtables.push((key, sub));
                continue;
            }
            let is_count = path.len() == 2 && path[0] == "services" && key == "count";
            let shown = match v.get_ref() {
                _ if is_env && sensitive::is_sensitive(&self.patterns, key) => {
                    quote(sensitive::SHOWN)
                }
                // An interpolated count is the number it became.
                DeValue::String(n) if is_count && n.trim().parse::<i64>().is_ok() => {
                    n.trim().to_string()
                }
                other => value(other),
            };
            let _ = writeln!(
                out,
                "{} = {shown}  # from {}",
                bare_or_quoted(key),
                (self.origin)(v.span())
            );
        }
        for (key, sub) in subtables {
            let mut sub_path = path.to_vec();
            sub_path.push(key);
            let has_values = sub
                .iter()
                .any(|(_, v)| !matches!(v.get_ref(), DeValue::Table(_)));
            if has_values || sub.is_empty() {
                let header: Vec<String> = sub_path.iter().map(|k| bare_or_quoted(k)).collect();
                if !out.is_empty() {
                    out.push('\n');
                }
                let _ = writeln!(out, "[{}]", header.join("."));
            }
            self.table(out, sub, &sub_path);
        }
    }
}

fn value(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => quote(s),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map_or_else(|_| i.as_str().to_string(), |n| n.to_string()),
        DeValue::Float(f) => f.as_str().to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(items) => {
            let items: Vec<String> = items.iter().map(|i| value(i.get_ref())).collect();
            format!("[{}]", items.join(", "))
        }
        DeValue::Table(t) => {
            let items: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {}", bare_or_quoted(k.get_ref()), value(v.get_ref())))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn bare_or_quoted(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        quote(key)
    }
}
