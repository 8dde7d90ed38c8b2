//! Volumes: the top-level `[volumes.NAME]` tables, and the `volumes` of one
//! service (the `source:target[:mode]` syntax, bind mounts resolved against
//! the file's directory, sources that name an external volume, one volume
//! per container path). Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::super::file;
use super::super::locate::Seg;
use super::super::model::{DeclaredVolume, Volume, VolumeSource};
use super::{Validator, item};

const ENGINE_NAME_HELP: &str = "a Docker volume name is at least 2 letters, digits, `_`, `.` and `-`, starting with a letter or digit";

impl Validator<'_, '_> {
    /// The top-level `[volumes.NAME]` tables; one with a problem is left out
    /// (the problem is recorded).
    pub(super) fn declared_volumes(
        &mut self,
        raw: Option<&BTreeMap<String, file::Volume>>,
    ) -> BTreeMap<String, DeclaredVolume> {
        raw.into_iter()
            .flatten()
            .filter_map(|(key, v)| Some((key.clone(), self.declared_volume(key, v)?)))
            .collect()
    }

    fn declared_volume(&mut self, key: &str, v: &file::Volume) -> Option<DeclaredVolume> {
        let table = [Seg::Key("volumes"), Seg::Key(key)];
        let name_at = [table[0], table[1], Seg::Key("name")];
        if !valid_source_name(key) {
            self.key_err(
                "muster::config::invalid_volume",
                format!("volume name {key:?} is not valid"),
                &table,
                "this name",
                "use letters, digits, `_`, `.` and `-`, starting with a letter or digit",
            );
            return None;
        }
        match (v.external == Some(true), v.name.as_deref()) {
            (false, None) => Some(DeclaredVolume::Owned),
            (false, Some(_)) => {
                self.key_err(
                    "muster::config::name_without_external",
                    format!("volume `{key}`: `name` is given without `external = true`"),
                    &name_at,
                    "only for an external volume",
                    &format!(
                        "add `external = true` to use an existing volume; muster's own volume is always `<project>_{key}`"
                    ),
                );
                None
            }
            (true, name) => {
                let engine_name = name.unwrap_or(key);
                if valid_engine_volume_name(engine_name) {
                    return Some(DeclaredVolume::External {
                        name: engine_name.to_string(),
                    });
                }
                let msg =
                    format!("volume `{key}`: {engine_name:?} is not a valid Docker volume name");
                if name.is_some() {
                    self.err(
                        "muster::config::invalid_volume",
                        msg,
                        &name_at,
                        ENGINE_NAME_HELP,
                    );
                } else {
                    self.key_err(
                        "muster::config::invalid_volume",
                        msg,
                        &table,
                        "this name",
                        &format!(
                            "{ENGINE_NAME_HELP}; give the volume's engine name with `name = \"…\"`"
                        ),
                    );
                }
                None
            }
        }
    }

    pub(super) fn volumes(
        &mut self,
        name: &str,
        raw: Option<&[String]>,
        dir: &Path,
        declared: &BTreeMap<String, DeclaredVolume>,
    ) -> Vec<Volume> {
        let mut volumes = Vec::new();
        let mut targets = BTreeSet::new();
        for (i, spec) in raw.unwrap_or_default().iter().enumerate() {
            let path = item(name, "volumes", i);
            match parse_volume(spec, dir).and_then(|v| external(spec, v, declared)) {
                Ok(vol) => {
                    // `/a`, `/a/` and `/a/.` are one path to the engine.
                    if !targets.insert(container_path(&vol.target)) {
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

/// A named volume as written in a service (`data`, `data-{ordinal}`): the
/// part of the engine's name after `<project>_`.
fn valid_source_name(source: &str) -> bool {
    let sample = source.replace("{ordinal}", "1");
    sample
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && sample
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && source
            .replace("{ordinal}", "")
            .chars()
            .all(|c| c != '{' && c != '}')
}

/// The engine's own rule for a volume name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn valid_engine_volume_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

type VolumeError = (&'static str, String, &'static str);

/// `vol` mounting the engine volume by its external name when its source
/// names a volume the file declares external.
fn external(
    spec: &str,
    vol: Volume,
    declared: &BTreeMap<String, DeclaredVolume>,
) -> Result<Volume, VolumeError> {
    let VolumeSource::Named(source) = &vol.source else {
        return Ok(vol);
    };
    let is_external =
        |key: &str| matches!(declared.get(key), Some(DeclaredVolume::External { .. }));
    if source.contains("{ordinal}") {
        let named = declared
            .keys()
            .find(|key| is_external(key) && (*key == source || expands_to(source, key)));
        return match named {
            Some(key) => Err((
                "muster::config::ordinal_in_external",
                format!("volume {spec:?}: {{ordinal}} names the external volume `{key}`"),
                "an external volume is one volume, shared as it is: mount it by its name, without {ordinal}",
            )),
            None => Ok(vol),
        };
    }
    match declared.get(source) {
        Some(DeclaredVolume::External { name }) => Ok(Volume {
            source: VolumeSource::External(name.clone()),
            ..vol
        }),
        Some(DeclaredVolume::Owned) | None => Ok(vol),
    }
}

/// Whether `{ordinal}` in `source`, replaced by some positive integer, gives `key`.
fn expands_to(source: &str, key: &str) -> bool {
    let prefix = source.split("{ordinal}").next().unwrap_or_default();
    let Some(rest) = key.strip_prefix(prefix) else {
        return false;
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    (1..=digits).any(|len| {
        let n = &rest[..len];
        !n.starts_with('0') && source.replace("{ordinal}", n) == key
    })
}

/// A container path as the engine compares them: `.` and empty parts
/// dropped, `..` resolved, no trailing `/`.
fn container_path(target: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `source:target[:ro|:rw]`; a source starting with `/`, `./`, `../` or `~` is a bind mount.
fn parse_volume(spec: &str, dir: &Path) -> Result<Volume, VolumeError> {
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
    if container_path(target) == "/" {
        return Err(bad(format!(
            "volume {spec:?}: the container path {target:?} is the container's root, which the engine cannot mount over"
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
    if !valid_source_name(source) {
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

    use crate::config::{Desired, Invalid, parse_str};

    fn load(text: &str) -> Result<Desired, Vec<(&'static str, String)>> {
        parse_str("services.toml", text, Path::new("/srv/shop")).map_err(
            |Invalid { text, problems, .. }| {
                problems
                    .iter()
                    .map(|p| {
                        (
                            p.code,
                            p.span
                                .clone()
                                .map(|s| text[s].to_string())
                                .unwrap_or_default(),
                        )
                    })
                    .collect()
            },
        )
    }

    fn web_mounting(volumes: &str, declared: &str) -> String {
        format!("[services.web]\nimage = \"busybox\"\ncount = 2\nvolumes = [{volumes}]\n{declared}")
    }

    #[test]
    fn an_external_volume_is_mounted_by_its_engine_name() {
        let d = load(&web_mounting(
            r#""shared:/data", "plain:/plain", "own-{ordinal}:/own""#,
            "[volumes.shared]\nexternal = true\nname = \"legacy-data\"\n",
        ))
        .unwrap();
        let names: Vec<Option<String>> = d.services["web"]
            .volumes
            .iter()
            .map(|v| v.volume_name("shop", 2))
            .collect();
        assert_eq!(
            names,
            [
                Some("legacy-data".to_string()),
                Some("shop_plain".to_string()),
                Some("shop_own-2".to_string())
            ]
        );
        assert_eq!(d.external_volumes(), ["legacy-data"]);
        assert_eq!(
            d.volumes["shared"],
            DeclaredVolume::External {
                name: "legacy-data".into()
            }
        );
    }

    #[test]
    fn an_external_volume_without_a_name_is_the_key_on_the_engine() {
        let d = load(&web_mounting(
            r#""shared:/data:ro""#,
            "[volumes.shared]\nexternal = true\n",
        ))
        .unwrap();
        assert_eq!(
            d.services["web"].volumes[0].source,
            VolumeSource::External("shared".into())
        );
        assert_eq!(d.external_volumes(), ["shared"]);
    }

    #[test]
    fn declaring_a_volume_external_changes_the_hash_and_false_changes_nothing() {
        let hash = |declared: &str| {
            load(&web_mounting(r#""shared:/data""#, declared))
                .unwrap()
                .services["web"]
                .config_hash()
        };
        let undeclared = hash("");
        assert_eq!(hash("[volumes.shared]\nexternal = false\n"), undeclared);
        assert_eq!(hash("[volumes.shared]\n"), undeclared);
        assert_ne!(hash("[volumes.shared]\nexternal = true\n"), undeclared);
        let d = load(&web_mounting(
            r#""shared:/data""#,
            "[volumes.shared]\nexternal = false\n",
        ))
        .unwrap();
        assert_eq!(d.volumes["shared"], DeclaredVolume::Owned);
        assert!(d.external_volumes().is_empty());
    }

    #[test]
    fn external_volumes_lists_mounted_engine_names_once_sorted() {
        let text = "[services.a]\nimage = \"busybox\"\nvolumes = [\"zz:/z\", \"y:/y\"]\n\
                    [services.b]\nimage = \"busybox\"\nvolumes = [\"zz:/data\"]\n\
                    [volumes.zz]\nexternal = true\n\
                    [volumes.y]\nexternal = true\nname = \"a-legacy\"\n\
                    [volumes.unused]\nexternal = true\n";
        assert_eq!(load(text).unwrap().external_volumes(), ["a-legacy", "zz"]);
    }

    #[test]
    fn name_without_external_is_refused_on_the_name() {
        for declared in [
            "[volumes.shared]\nname = \"legacy\"\n",
            "[volumes.shared]\nexternal = false\nname = \"legacy\"\n",
        ] {
            assert_eq!(
                load(&web_mounting(r#""shared:/data""#, declared)).unwrap_err(),
                [("muster::config::name_without_external", "name".to_string())]
            );
        }
    }

    #[test]
    fn an_external_name_must_be_a_docker_volume_name() {
        for (declared, at) in [
            ("[volumes.shared]\nexternal = true\nname = \"x\"\n", "\"x\""),
            (
                "[volumes.shared]\nexternal = true\nname = \"bad name\"\n",
                "\"bad name\"",
            ),
            (
                "[volumes.shared]\nexternal = true\nname = \"-dash\"\n",
                "\"-dash\"",
            ),
            // Without `name`, the key is the engine name: one letter is too short.
            ("[volumes.s]\nexternal = true\n", "s"),
            (
                "[volumes.\"d-{ordinal}\"]\nexternal = true\n",
                "\"d-{ordinal}\"",
            ),
        ] {
            assert_eq!(
                load(&web_mounting(r#""other:/data""#, declared)).unwrap_err(),
                [("muster::config::invalid_volume", at.to_string())],
                "{declared}"
            );
        }
    }

    #[test]
    fn ordinal_cannot_name_an_external_volume() {
        for declared in [
            "[volumes.data-1]\nexternal = true\n",
            "[volumes.data-12]\nexternal = true\n",
            "[volumes.\"data-{ordinal}\"]\nexternal = true\nname = \"legacy\"\n",
        ] {
            assert_eq!(
                load(&web_mounting(r#""data-{ordinal}:/data""#, declared)).unwrap_err(),
                [(
                    "muster::config::ordinal_in_external",
                    "\"data-{ordinal}:/data\"".to_string()
                )],
                "{declared}"
            );
        }
        // An ordinary volume of the same name is per container, as before.
        for declared in [
            "[volumes.data-1]\n",
            "[volumes.data-01]\nexternal = true\n",
            "[volumes.data-x]\nexternal = true\n",
        ] {
            assert!(
                load(&web_mounting(r#""data-{ordinal}:/data""#, declared)).is_ok(),
                "{declared}"
            );
        }
    }

    #[test]
    fn ordinal_expansions() {
        assert!(expands_to("data-{ordinal}", "data-1"));
        assert!(expands_to("data-{ordinal}", "data-1000"));
        assert!(expands_to("{ordinal}-{ordinal}", "7-7"));
        assert!(expands_to("d{ordinal}0", "d10"));
        assert!(!expands_to("{ordinal}-{ordinal}", "7-8"));
        assert!(!expands_to("data-{ordinal}", "data-0"));
        assert!(!expands_to("data-{ordinal}", "data-"));
        assert!(!expands_to("data-{ordinal}", "data-1x"));
        assert!(!expands_to("data-{ordinal}", "other-1"));
    }
}
