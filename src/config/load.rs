//! Checking one parsed tree: bytes → text, TOML syntax errors, then the
//! shape checks against the JSON Schema → [`File`] →
//! [`validate`](super::validate). Does file I/O only in [`read_capped`];
//! reading and merging the files of a run is `chain`'s.
//!
//! Every problem is collected, not only the first: the schema walk below
//! visits the whole tree and reports each unknown key, wrong type and value
//! out of range with its span.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Invalid, Problem};
use super::file::{self, Backend, File};
use super::locate::{compose_hint, nearest};
use super::model::Desired;
use super::validate;

/// Files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Reads at most one byte more than [`MAX_FILE_BYTES`], so that an endless
/// or huge file is refused at the limit without being read whole; a FIFO
/// or a device is refused at once instead of blocking.
///
/// # Errors
/// When the file cannot be opened or read, or is not a regular file.
pub fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::safe_file::read_regular(path, MAX_FILE_BYTES as u64 + 1)
}

/// The file's text, with a byte order mark (not TOML, but editors on
/// Windows write one) left out; or why the bytes are not a file to parse.
pub(crate) fn text_of<'b>(shown: &str, bytes: &'b [u8]) -> Result<&'b str, Invalid> {
    let invalid = |text: Arc<str>, problems| Invalid {
        path: shown.to_string(),
        text,
        problems,
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(invalid(
            Arc::from(""),
            vec![
                Problem::new(
                    "muster::config::too_large",
                    "the file is larger than 1 MiB, the limit".to_string(),
                    None,
                )
                .help("a services.toml this large is almost certainly not one; check the path"),
            ],
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(t) => Ok(t.strip_prefix('\u{feff}').unwrap_or(t)),
        Err(e) => {
            let valid = e.valid_up_to();
            let lossy: Arc<str> = Arc::from(String::from_utf8_lossy(bytes).as_ref());
            let at = String::from_utf8_lossy(&bytes[..valid]).len();
            Err(invalid(
                lossy,
                vec![
                    Problem::new(
                        "muster::config::not_utf8",
                        format!("the file is not UTF-8 (byte 0x{:02x})", bytes[valid]),
                        Some(at..at + char::REPLACEMENT_CHARACTER.len_utf8()),
                    )
                    .label("invalid byte")
                    .help("save the file as UTF-8"),
                ],
            ))
        }
    }
}

/// The TOML syntax errors of a parse, as problems.
pub(crate) fn syntax_problems(errors: &[toml::de::Error]) -> Vec<Problem> {
    errors
        .iter()
        .map(|e| {
            let msg = e.message().trim().to_string();
            Problem::new(
                "muster::config::syntax",
                format!("TOML syntax: {msg}"),
                e.span(),
            )
            .label("here")
            .help("see https://toml.io for the syntax")
        })
        .collect()
}

/// Checks a parsed (interpolated, merged) tree: its shape against the JSON
/// Schema, then the rules of [`validate`]; `project` (`--project`)
/// instead of the file's name.
///
/// # Errors
/// Every problem found, located in the tree's spans.
pub(crate) fn check_tree(
    root: &Spanned<DeTable<'_>>,
    dir: &Path,
    project: Option<&str>,
    backend: Option<Backend>,
) -> Result<Desired, Vec<Problem>> {
    let schema = file::schema();
    let mut walker = Walker {
        root: &schema,
        problems: Vec::new(),
        bad_services: BTreeSet::new(),
        in_services: 0,
        bad_keys: BTreeSet::new(),
        unknown_top: BTreeSet::new(),
    };
    walker.check_table(root.get_ref(), root.span(), &schema, "", None);
    if walker.problems.is_empty() {
        let no_services = match root.get_ref().get("services") {
            None => Some(root.span()),
            Some(v) => match v.get_ref() {
                DeValue::Table(t) if t.is_empty() => Some(v.span()),
                _ => None,
            },
        };
        if let Some(span) = no_services {
            let span = if span.is_empty() { 0..0 } else { span };
            walker.problems.push(
                Problem::new("muster::config::no_services", "the file declares no service", Some(span))
                    .label("no [services.NAME] table")
                    .help("declare at least one [services.NAME] with an image; an empty file never removes anything"),
            );
        }
    }
    let mut problems = walker.problems;
    // A problem outside any service leaves no sound file to check further.
    // (Counted, not located: `[services.x]` headers give `services` a span
    // that does not cover the services' bodies.)
    // An unknown top-level key says nothing about the rest: it is left out.
    if problems.len() > walker.in_services + walker.unknown_top.len() {
        return Err(problems);
    }
    let declared: BTreeSet<String> = match root.get_ref().get("services").map(Spanned::get_ref) {
        Some(DeValue::Table(t)) => t.iter().map(|(k, _)| k.get_ref().to_string()).collect(),
        _ => BTreeSet::new(),
    };
    // A service whose problems are all in some of its keys is checked
    // without those keys, so that its other problems are reported too;
    // when that leaves it unreadable, it is left out whole.
    let without = |whole: bool| {
        let mut sound = root.clone();
        for key in &walker.unknown_top {
            sound.get_mut().remove(key.as_str());
        }
        if let Some(services) = sound.get_mut().get_mut("services")
            && let DeValue::Table(t) = services.get_mut()
        {
            for name in &walker.bad_services {
                let partly = walker.bad_keys.iter().any(|(s, _)| s == name);
                if whole || !partly {
                    t.remove(name.as_str());
                }
            }
            if !whole {
                for (name, key) in &walker.bad_keys {
                    if let Some(svc) = t.get_mut(name.as_str())
                        && let DeValue::Table(st) = svc.get_mut()
                    {
                        st.remove(key.as_str());
                    }
                }
            }
        }
        serde::Deserialize::deserialize(toml::de::Deserializer::from(sound))
    };
    let file: File = match without(false).or_else(|_| without(true)) {
        Ok(f) => f,
        Err(e) => {
            problems.push(Problem::new(
                "muster::config::invalid_value",
                e.message().trim().to_string(),
                e.span(),
            ));
            return Err(problems);
        }
    };
    match validate::validate(&file, &declared, root, dir, project, backend) {
        Ok(desired) if problems.is_empty() => Ok(desired),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            problems.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
            Err(problems)
        }
    }
}

/// Walks the TOML tree along the JSON Schema, collecting every mismatch.
struct Walker<'s> {
    root: &'s Json,
    problems: Vec<Problem>,
    /// Services with a problem of their own; the others still get the
    /// semantic checks, so that one run reports everything.
    bad_services: BTreeSet<String>,
    /// How many of `problems` are inside a service.
    in_services: usize,
    /// (service, key): a key of a service with a problem of its own.
    bad_keys: BTreeSet<(String, String)>,
    /// Unknown keys at the top level.
    unknown_top: BTreeSet<String>,
}

impl<'s> Walker<'s> {
    fn resolve(&self, mut schema: &'s Json) -> &'s Json {
        while let Some(r) = schema.get("$ref").and_then(Json::as_str) {
            match r.strip_prefix('#').and_then(|p| self.root.pointer(p)) {
                Some(s) => schema = s,
                None => break,
            }
        }
        schema
    }

    /// `key_span` is the span of the key that holds this value, if any.
    fn check(
        &mut self,
        v: &Spanned<DeValue<'_>>,
        schema: &'s Json,
        path: &str,
        key_span: Option<Range<usize>>,
    ) {
        self.check_table_or_value(v.get_ref(), v.span(), schema, path, key_span);
    }

    fn check_table_or_value(
        &mut self,
        v: &DeValue<'_>,
        span: Range<usize>,
        schema: &'s Json,
        path: &str,
        key_span: Option<Range<usize>>,
    ) {
        let schema = self.resolve(schema);
        if let Some(all) = schema.get("allOf").and_then(Json::as_array) {
            for s in all {
                self.check_table_or_value(v, span.clone(), s, path, key_span.clone());
            }
            return;
        }
        if let Some(names) = self.enum_names(schema) {
            match v {
                DeValue::String(s) if !names.contains(&s.as_ref()) => {
                    let mut p = Problem::new(
                        "muster::config::invalid_value",
                        format!("`{path}` must be one of {}, not {s:?}", quote_list(&names)),
                        Some(span),
                    )
                    .label("not allowed here");
                    if let Some(near) = nearest(s, &names) {
                        p = p.help(format!("did you mean `{near}`?"));
                    }
                    self.problems.push(p);
                }
                DeValue::String(_) => {}
                _ => self.type_error(
                    v,
                    span,
                    &format!("one of {}", quote_list(&names)),
                    schema,
                    path,
                ),
            }
            return;
        }
        if let Some(alts) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Json::as_array)
        {
            let mut best: Option<Vec<Problem>> = None;
            for alt in alts {
                let alt = self.resolve(alt);
                if !type_matches(v, alt) {
                    continue;
                }
                let mut sub = Walker {
                    root: self.root,
                    problems: Vec::new(),
                    bad_services: BTreeSet::new(),
                    in_services: 0,
                    bad_keys: BTreeSet::new(),
                    unknown_top: BTreeSet::new(),
                };
                sub.check_table_or_value(v, span.clone(), alt, path, key_span.clone());
                if sub.problems.is_empty() {
                    return;
                }
                best.get_or_insert(sub.problems);
            }
            match best {
                Some(problems) => self.problems.extend(problems),
                None => {
                    let expected: Vec<String> = alts
                        .iter()
                        .map(|a| describe(self.resolve(a)))
                        .filter(|d| d != "null")
                        .collect();
                    self.type_error(v, span, &expected.join(" or "), schema, path);
                }
            }
            return;
        }
        if !type_matches(v, schema) {
            self.type_error(v, span, &describe(schema), schema, path);
            return;
        }
        match v {
            DeValue::Integer(i) => {
                let n = i64::from_str_radix(i.as_str(), i.radix()).ok();
                let min = schema.get("minimum").and_then(Json::as_f64);
                let max = schema.get("maximum").and_then(Json::as_f64);
                let out_of_range = match n {
                    None => true,
                    Some(n) => {
                        min.is_some_and(|m| (n as f64) < m) || max.is_some_and(|m| (n as f64) > m)
                    }
                };
                if out_of_range && (min.is_some() || max.is_some() || n.is_none()) {
                    let range = match (min, max) {
                        (Some(a), Some(b)) => format!("from {a} to {b}"),
                        (Some(a), None) => format!("at least {a}"),
                        (None, Some(b)) => format!("at most {b}"),
                        (None, None) => "a 64-bit integer".into(),
                    };
                    self.problems.push(
                        Problem::new(
                            "muster::config::out_of_range",
                            format!("`{path}` is out of range: it must be {range}"),
                            Some(span),
                        )
                        .label("out of range")
                        .help(format!("use a value {range}")),
                    );
                }
            }
            DeValue::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, item_schema, &format!("{path}[{i}]"), None);
                    }
                }
            }
            DeValue::Table(t) => self.check_table(t, span, schema, path, key_span),
            DeValue::String(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {
            }
        }
    }

    fn check_table(
        &mut self,
        t: &DeTable<'_>,
        span: Range<usize>,
        schema: &'s Json,
        path: &str,
        key_span: Option<Range<usize>>,
    ) {
        let props = schema.get("properties").and_then(Json::as_object);
        let additional = schema.get("additionalProperties");
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let sub_path = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            let before = self.problems.len();
            if let Some(s) = props.and_then(|p| p.get(key)) {
                self.check(v, s, &sub_path, Some(k.span()));
                continue;
            }
            match additional {
                Some(Json::Bool(false)) => {
                    let names: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let place = if path.is_empty() {
                        "at the top level".to_string()
                    } else {
                        format!("in `{path}`")
                    };
                    if path.is_empty() {
                        self.unknown_top.insert(key.to_string());
                    }
                    let mut p = Problem::new(
                        "muster::config::unknown_key",
                        format!("unknown key `{key}` {place}"),
                        Some(k.span()),
                    )
                    .label("unknown key");
                    let in_service = path
                        .strip_prefix("services.")
                        .is_some_and(|s| !s.contains('.'));
                    p = match (compose_hint(key, in_service), nearest(key, &names)) {
                        (Some(hint), _) if in_service || path.is_empty() => p.help(hint),
                        (_, Some(near)) => p.help(format!("did you mean `{near}`?")),
                        _ => p.help(format!("valid keys here: {}", quote_list(&names))),
                    };
                    self.problems.push(p);
                }
                Some(s) if s.is_object() => self.check(v, s, &sub_path, Some(k.span())),
                _ => {}
            }
            let added = self.problems.len() - before;
            if added > 0 && path == "services" {
                self.bad_services.insert(key.to_string());
                self.in_services += added;
            }
            if added > 0
                && let Some(service) = path.strip_prefix("services.")
                && !service.contains('.')
            {
                self.bad_keys.insert((service.to_string(), key.to_string()));
            }
        }
        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for r in required.iter().filter_map(Json::as_str) {
                if r == "services" {
                    continue; // reported as "declares no service" with its own hint
                }
                if t.get(r).is_none() {
                    let at = key_span.clone().unwrap_or(span.clone());
                    let what = if path.is_empty() {
                        "the file".to_string()
                    } else {
                        format!("`{path}`")
                    };
                    self.problems.push(
                        Problem::new(
                            "muster::config::missing_key",
                            format!("{what} has no `{r}`"),
                            Some(at),
                        )
                        .label(format!("`{r}` is required here"))
                        .help(format!("add `{r} = …`")),
                    );
                }
            }
        }
    }

    /// The allowed strings, for an `enum` or a `oneOf` of `const`s.
    fn enum_names(&self, schema: &'s Json) -> Option<Vec<&'s str>> {
        if let Some(options) = schema.get("enum").and_then(Json::as_array) {
            return Some(options.iter().filter_map(Json::as_str).collect());
        }
        let alts = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))?
            .as_array()?;
        alts.iter()
            .map(|a| self.resolve(a).get("const").and_then(Json::as_str))
            .collect()
    }

    fn type_error(
        &mut self,
        v: &DeValue<'_>,
        span: Range<usize>,
        expected: &str,
        schema: &Json,
        path: &str,
    ) {
        let found = found_type(v);
        let mut p = Problem::new(
            "muster::config::wrong_type",
            format!("`{path}` must be {expected}, found {found}"),
            Some(span),
        )
        .label(format!("this is {found}"));
        let help = match v {
            DeValue::String(s)
                if expected.contains("integer") && s.trim().parse::<i64>().is_ok() =>
            {
                Some(format!("write the number without quotes: {}", s.trim()))
            }
            // Not where a string stands only for a `${VAR}` form (`count`).
            DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_)
                if expected.contains("string") && !expected.contains("integer") =>
            {
                Some("put the value in quotes".to_string())
            }
            _ => schema
                .get("description")
                .and_then(Json::as_str)
                // Its first paragraph, as one line.
                .map(|d| d.split("\n\n").next().unwrap_or(d).replace('\n', " ")),
        };
        if let Some(h) = help {
            p = p.help(h);
        }
        self.problems.push(p);
    }
}

fn types_of(schema: &Json) -> Vec<&str> {
    match schema.get("type") {
        Some(Json::String(s)) => vec![s.as_str()],
        Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_matches(v: &DeValue<'_>, schema: &Json) -> bool {
    let types = types_of(schema);
    if types.is_empty() {
        return !is_enum(schema) || matches!(v, DeValue::String(_));
    }
    types.iter().any(|t| match *t {
        "string" => matches!(v, DeValue::String(_)),
        "integer" => matches!(v, DeValue::Integer(_)),
        "number" => matches!(v, DeValue::Integer(_) | DeValue::Float(_)),
        "boolean" => matches!(v, DeValue::Boolean(_)),
        "array" => matches!(v, DeValue::Array(_)),
        "object" => matches!(v, DeValue::Table(_)),
        _ => false,
    })
}

fn is_enum(schema: &Json) -> bool {
    schema.get("enum").is_some()
        || schema
            .get("oneOf")
            .and_then(Json::as_array)
            .is_some_and(|a| a.iter().all(|x| x.get("const").is_some()))
}

fn describe(schema: &Json) -> String {
    let consts: Option<Vec<&str>> = match schema.get("enum").and_then(Json::as_array) {
        Some(options) => Some(options.iter().filter_map(Json::as_str).collect()),
        None => schema.get("oneOf").and_then(Json::as_array).and_then(|a| {
            a.iter()
                .map(|x| x.get("const").and_then(Json::as_str))
                .collect()
        }),
    };
    if let Some(names) = consts {
        return format!("one of {}", quote_list(&names));
    }
    let types = types_of(schema);
    let names: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "string" => "a string",
            "integer" => "an integer",
            "number" => "a number",
            "boolean" => "a boolean",
            "array" => "an array",
            "object" => "a table",
            other => other,
        })
        .collect();
    if names.is_empty() && types.contains(&"null") {
        return "null".into();
    }
    names.join(" or ")
}

fn found_type(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn quote_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
