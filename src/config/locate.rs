//! Locating things in the parsed TOML tree (spans of keys and values), and
//! the typo hint shared by the schema walk and the semantic checks. Pure.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The closest name to `word`, when it is close enough to be a typo.
pub(crate) fn nearest<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(word, n), *n))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

/// Where the value at `path` (keys and array indices) is in the tree: the
/// value's span, or with `key` the span of the key that holds it.
pub(crate) fn span_at(
    root: &Spanned<DeTable<'_>>,
    path: &[Seg<'_>],
    key: bool,
) -> Option<Range<usize>> {
    let mut table = root.get_ref();
    let mut current: Option<&Spanned<DeValue<'_>>> = None;
    let mut key_span = None;
    for seg in path {
        let next = match (seg, current.map(Spanned::get_ref)) {
            (Seg::Key(k), None) => {
                let (ks, v) = table.get_key_value(*k)?;
                key_span = Some(ks.span());
                v
            }
            (Seg::Key(k), Some(DeValue::Table(t))) => {
                let (ks, v) = t.get_key_value(*k)?;
                key_span = Some(ks.span());
                v
            }
            (Seg::Index(i), Some(DeValue::Array(a))) => {
                key_span = None;
                a.get(*i)?
            }
            _ => return None,
        };
        if let DeValue::Table(t) = next.get_ref() {
            table = t;
        }
        current = Some(next);
    }
    if key {
        key_span.or_else(|| current.map(Spanned::span))
    } else {
        current.map(Spanned::span)
    }
}

/// One step of a path into the TOML tree.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}
