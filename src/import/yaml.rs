//! A compose file's YAML as a small tree of our own, each node with its
//! line: the converter never sees the YAML library, and a YAML error
//! becomes a located [`config::Invalid`] (exit 3). Pure.

use std::sync::Arc;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::config::{Invalid, Problem};

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// In the document's order; `<<` merge keys already merged.
    Map(Vec<(String, Node)>),
}

/// A value and the line (1-based) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// A scalar as text, as compose reads a scalar where it wants a string.
    pub fn text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// Parses the first document of `text`.
///
/// # Errors
/// A located problem when the text is not YAML or holds no document.
pub fn parse(shown: &str, text: &str) -> Result<Node, Invalid> {
    let invalid = |message: String, span: Option<std::ops::Range<usize>>| Invalid {
        path: shown.to_string(),
        text: Arc::from(text),
        problems: vec![Problem::new("muster::import::yaml", message, span)],
    };
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let at = byte_offset(text, e.marker().index());
        invalid(format!("not valid YAML: {}", e.info()), Some(at..at))
    })?;
    let Some(doc) = docs.first() else {
        return Err(invalid("the file holds no YAML document".into(), None));
    };
    Ok(convert(doc, text))
}

/// saphyr's markers count characters; diagnostics want bytes.
fn byte_offset(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i)
}

fn convert(node: &MarkedYaml<'_>, source: &str) -> Node {
    let line = node.span.start.line();
    let value = match &node.data {
        // An integer too large for i64 is read as a float, and would be
        // written rounded: keep its digits.
        YamlData::Value(scalar @ Scalar::FloatingPoint(_)) => {
            let from = byte_offset(source, node.span.start.index());
            let to = byte_offset(source, node.span.end.index());
            let written = source.get(from..to).unwrap_or("").trim();
            let digits = written.strip_prefix(['-', '+']).unwrap_or(written);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                Value::Str(written.to_string())
            } else {
                scalar_value(scalar)
            }
        }
        YamlData::Value(scalar) => scalar_value(scalar),
        YamlData::Representation(text, _, _) => Value::Str(text.to_string()),
        YamlData::Tagged(_, inner) => return convert(inner, source),
        YamlData::Sequence(items) => Value::Seq(items.iter().map(|n| convert(n, source)).collect()),
        YamlData::Mapping(map) => {
            let mut entries: Vec<(String, Node)> = Vec::new();
            let mut merged: Vec<(String, Node)> = Vec::new();
            for (k, v) in map {
                let key = convert(k, source);
                let v = convert(v, source);
                if key.value == Value::Str("<<".into()) {
                    // A merge key (`<<: *defaults`): the anchor's entries,
                    // under the ones written here.
                    let sources = match v.value {
                        Value::Seq(items) => items,
                        _ => vec![v],
                    };
                    for source in sources {
                        for (mk, mv) in source.entries() {
                            if !merged.iter().any(|(k, _)| k == mk) {
                                merged.push((mk.clone(), mv.clone()));
                            }
                        }
                    }
                    continue;
                }
                entries.push((key.text().unwrap_or_default(), v));
            }
            for (k, v) in merged {
                if !entries.iter().any(|(e, _)| *e == k) {
                    entries.push((k, v));
                }
            }
            Value::Map(entries)
        }
        YamlData::Alias(_) | YamlData::BadValue => Value::Null,
    };
    Node { line, value }
}

fn scalar_value(scalar: &Scalar<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Int(*i),
        Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
        Scalar::String(s) => Value::Str(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_order_and_merge_keys() {
        let text = "x: &d\n  a: 1\n  b: two\nsvc:\n  <<: *d\n  b: three\n  c: [1, 'x']\n";
        let root = parse("c.yml", text).unwrap();
        let svc = root.get("svc").unwrap();
        assert_eq!(svc.line, 5);
        let keys: Vec<_> = svc.entries().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "c", "a"]);
        assert_eq!(svc.get("b").unwrap().text().unwrap(), "three");
        assert_eq!(svc.get("a").unwrap().value, Value::Int(1));
    }

    #[test]
    fn an_integer_too_large_for_i64_keeps_its_digits() {
        let text = "a: 12345678901234567890\nb: 1.5\nc: -99999999999999999999\n";
        let root = parse("c.yml", text).unwrap();
        assert_eq!(
            root.get("a").unwrap().text().unwrap(),
            "12345678901234567890"
        );
        assert_eq!(root.get("b").unwrap().value, Value::Float(1.5));
        assert_eq!(
            root.get("c").unwrap().text().unwrap(),
            "-99999999999999999999"
        );
    }

    #[test]
    fn errors_are_located() {
        let text = "services:\n  web:\n    image: [a\n";
        let e = parse("c.yml", text).unwrap_err();
        let span = e.problems[0].span.clone().unwrap();
        assert!(
            e.line_col(span.start).0 >= 3,
            "{:?}",
            e.line_col(span.start)
        );
    }
}
