//! `volumes` of one service: the `source:target[:mode]` syntax, bind mounts
//! resolved against the file's directory, one volume per container path.
//! Pure.

use std::collections::BTreeSet;
use std::path::Path;

use super::super::model::{Volume, VolumeSource};
use super::{Validator, item};

impl Validator<'_, '_> {
    pub(super) fn volumes(
        &mut self,
        name: &str,
        raw: Option<&[String]>,
        dir: &Path,
    ) -> Vec<Volume> {
        let mut volumes = Vec::new();
        let mut targets = BTreeSet::new();
        for (i, spec) in raw.unwrap_or_default().iter().enumerate() {
            let path = item(name, "volumes", i);
            match parse_volume(spec, dir) {
                Ok(vol) => {
                    if !targets.insert(vol.target.clone()) {
                        self.err(
                            "muster::config::duplicate_volume",
                            format!(
                                "service `{name}`: two volumes are mounted at {}",
                                vol.target
                            ),
                            &path,
                            "mount one volume per container path",
                        );
                    }
                    volumes.push(vol);
                }
                Err((code, why, help)) => {
                    self.err(code, format!("service `{name}`: {why}"), &path, help)
                }
            }
        }
        volumes
    }
}

/// `source:target[:ro|:rw]`; a source starting with `/`, `./`, `../` or `~` is a bind mount.
fn parse_volume(spec: &str, dir: &Path) -> Result<Volume, (&'static str, String, &'static str)> {
    const HELP: &str = "write \"name:/path\", \"./dir:/path:ro\" or \"data-{ordinal}:/path\"";
    let bad = |why: String| ("muster::config::invalid_volume", why, HELP);
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [s, t] => (*s, *t, false),
        [s, t, "ro"] => (*s, *t, true),
        [s, t, "rw"] => (*s, *t, false),
        [_, _, m] => {
            return Err(bad(format!(
                "volume {spec:?}: mode {m:?} is not `ro` or `rw`"
            )));
        }
        _ => return Err(bad(format!("volume {spec:?} is not `source:target[:ro]`"))),
    };
    if !target.starts_with('/') {
        return Err(bad(format!(
            "volume {spec:?}: the container path {target:?} is not absolute"
        )));
    }
    if target.contains("{ordinal}") {
        return Err(bad(format!(
            "volume {spec:?}: {{ordinal}} belongs in the source, not the container path"
        )));
    }
    let is_bind = source.starts_with('/') || source.starts_with('.') || source.starts_with('~');
    if is_bind {
        if source.contains("{ordinal}") {
            return Err((
                "muster::config::ordinal_in_bind",
                format!(
                    "volume {spec:?}: {{ordinal}} only works in a named volume, not a bind mount"
                ),
                "use a named volume such as \"data-{ordinal}:/path\" for per-container data",
            ));
        }
        let path = if let Some(rest) = source.strip_prefix("~/") {
            std::env::var_os("HOME")
                .map(|h| Path::new(&h).join(rest))
                .unwrap_or_else(|| dir.join(rest))
        } else {
            dir.join(source)
        };
        let clean: std::path::PathBuf =
            path.components()
                .fold(std::path::PathBuf::new(), |mut acc, c| {
                    match c {
                        std::path::Component::ParentDir => {
                            acc.pop();
                        }
                        std::path::Component::CurDir => {}
                        other => acc.push(other),
                    }
                    acc
                });
        return Ok(Volume {
            source: VolumeSource::Bind(clean.display().to_string()),
            target: target.to_string(),
            read_only,
        });
    }
    let sample = source.replace("{ordinal}", "1");
    let ok = sample
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && sample
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && source
            .replace("{ordinal}", "")
            .chars()
            .all(|c| c != '{' && c != '}');
    if !ok {
        return Err(bad(format!(
            "volume {spec:?}: {source:?} is not a valid volume name"
        )));
    }
    Ok(Volume {
        source: VolumeSource::Named(source.to_string()),
        target: target.to_string(),
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes() {
        let d = Path::new("/srv/app");
        let v = parse_volume("./conf:/etc/app:ro", d).unwrap();
        assert_eq!(v.source, VolumeSource::Bind("/srv/app/conf".into()));
        assert!(v.read_only);
        let v = parse_volume("data-{ordinal}:/data", d).unwrap();
        assert_eq!(v.volume_name("shop", 2).unwrap(), "shop_data-2");
        assert!(parse_volume("./d-{ordinal}:/data", d).is_err());
        assert!(parse_volume("data:relative", d).is_err());
    }
}
