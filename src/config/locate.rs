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

/// What a key from docker compose means in muster, for an unknown `key`
/// in the service table (`in_service`) or at the top level.
pub(crate) fn compose_hint(key: &str, in_service: bool) -> Option<&'static str> {
    let hint = match (in_service, key) {
        (true, "replicas" | "scale") => "did you mean `count`? (compose's `replicas` and `scale`)",
        (true, "environment") => "did you mean `env`? (compose's `environment`)",
        (true, "deploy") => {
            "muster has no `deploy` table: `deploy.replicas` is `count`, `deploy.update_config` is `update`, `deploy.resources.limits` are `cpus` and `memory`, `deploy.placement` is `placement`"
        }
        (true, "container_name") => "muster names containers `<project>-<service>-<n>`; remove it",
        (true, "build") => {
            "muster does not build images: build and tag the image first, then name it in `image`"
        }
        (true, "networks" | "network_mode") => {
            "muster puts every service of a project on one network named after the project; remove it"
        }
        (true, "env_file") => {
            "list the variables in `env`, with `${VAR}` values read from the environment or a .env file beside the first file"
        }
        (true, "links") => "did you mean `depends_on`? every service reaches the others by name",
        (true, "mem_limit") => "did you mean `memory`? (compose's `mem_limit`)",
        (true, "hostname") => "muster names each container's host after the container; remove it",
        (true, "healthcheck_test" | "test") => {
            "a check goes in `[services.NAME.healthcheck]`, as `test`"
        }
        (false, "version") => "a muster file has no version; remove it",
        (false, "name") => "did you mean `project`? (compose's `name`)",
        (false, "networks") => "muster makes one network per project, named after it; remove it",
        (false, "secrets" | "configs") => {
            "muster has no secrets or configs: pass values in `env` with `${VAR}`, and mark them in `[sensitive]`"
        }
        _ => return None,
    };
    Some(hint)
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
