//! `muster plan web` / `muster apply web api`: the file restricted to the
//! named services and what they depend on, like `terraform -target`. The
//! other services are left alone: their units are neither planned nor
//! reported as orphans. Pure.

use std::collections::BTreeSet;

use crate::config::Desired;
use crate::engine::Actual;

/// `desired` with only `targets` and their dependencies (transitively).
///
/// # Errors
/// A target that the file does not declare, with the services it does.
pub fn restrict(desired: &Desired, targets: &[String]) -> Result<Desired, String> {
    let mut keep = BTreeSet::new();
    let mut todo: Vec<&str> = Vec::new();
    for t in targets {
        if !desired.services.contains_key(t) {
            let known: Vec<&str> = desired.services.keys().map(String::as_str).collect();
            return Err(format!(
                "the file declares no service {t:?} (its services: {})",
                known.join(", ")
            ));
        }
        todo.push(t);
    }
    while let Some(name) = todo.pop() {
        if !keep.insert(name.to_string()) {
            continue;
        }
        if let Some(s) = desired.services.get(name) {
            todo.extend(s.depends_on.iter().map(String::as_str));
        }
    }
    let mut out = desired.clone();
    out.services.retain(|name, _| keep.contains(name));
    Ok(out)
}

/// Keeps in `actual` only the units of services that `desired` declares:
/// with targets, the others are not this command's business.
pub fn keep_declared(actual: &mut Actual, desired: &Desired) {
    actual
        .units
        .retain(|u| desired.services.contains_key(&u.service));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> Desired {
        let text = r#"project = "shop"
[services.db]
image = "postgres:16"
[services.api]
image = "api:1"
depends_on = ["db"]
[services.web]
image = "web:1"
depends_on = ["api"]
[services.worker]
image = "worker:1"
"#;
        crate::config::parse_bytes_as(
            "services.toml",
            text.as_bytes(),
            std::path::Path::new("."),
            None,
        )
        .unwrap()
    }

    fn names(d: &Desired) -> Vec<&str> {
        d.services.keys().map(String::as_str).collect()
    }

    #[test]
    fn a_target_brings_what_it_depends_on_and_nothing_else() {
        let d = desired();
        assert_eq!(
            names(&restrict(&d, &["web".into()]).unwrap()),
            ["api", "db", "web"]
        );
        assert_eq!(
            names(&restrict(&d, &["worker".into()]).unwrap()),
            ["worker"]
        );
        assert_eq!(
            names(&restrict(&d, &["api".into(), "worker".into()]).unwrap()),
            ["api", "db", "worker"]
        );
    }

    #[test]
    fn an_unknown_target_is_refused_naming_the_services() {
        let e = restrict(&desired(), &["wbe".into()]).unwrap_err();
        assert_eq!(
            e,
            "the file declares no service \"wbe\" (its services: api, db, web, worker)"
        );
    }
}
