//! The commands that know a run reads several files (SPEC §14): `muster
//! config`, the effective file; and `scale`, which edits the file of the
//! chain that sets a service's count. Reads and writes those files.

use std::collections::BTreeMap;

use crate::config::interpolate::Vars;
use crate::config::{Backend, Sources};
use crate::error::Error;
use crate::output::Printer;

/// `muster config`: the effective file after interpolation and merge, each
/// value with the file it came from; sensitive values masked unless
/// `show_sensitive`.
///
/// # Errors
/// An unreadable or invalid file.
pub fn config(
    sources: &Sources,
    backend: Option<Backend>,
    printer: &Printer,
    show_sensitive: bool,
) -> Result<(), Error> {
    let read = sources.read()?;
    let text = read.effective(&Vars::from_process(), backend, show_sensitive)?;
    printer.out(&text);
    Ok(())
}

/// `scale SVC=N…`: sets each target's `count` in the file that sets it
/// (the last of the chain that does, else the first that declares the
/// service), prints each file's diff and says which file changed.
///
/// # Errors
/// [`Error::Usage`] for a service the files lack or a count written as
/// `${…}`; an invalid chain before or after; a file that cannot be written.
pub fn scale(sources: &Sources, printer: &Printer, targets: &[(String, u32)]) -> Result<(), Error> {
    let read = sources.read()?;
    let vars = Vars::from_process();
    // The files must be valid before (nothing is learned from broken ones)…
    let desired = read.check(&vars, None)?;
    let mut per_file: BTreeMap<usize, Vec<(String, u32)>> = BTreeMap::new();
    for (name, count) in targets {
        if !desired.services.contains_key(name) {
            let names: Vec<&str> = desired.services.keys().map(String::as_str).collect();
            return Err(Error::Usage(format!(
                "no service `{name}` in {}; its services are: {}",
                read.files[0].shown,
                names.join(", ")
            )));
        }
        let (i, written) = read.count_owner(name);
        if let Some(written) = written {
            return Err(Error::Usage(format!(
                "the count of `{name}` is {written:?} in {}: muster does not replace an \
                 interpolation with a number; set the variable instead, or write a number there",
                read.files[i].shown
            )));
        }
        per_file.entry(i).or_default().push((name.clone(), *count));
    }
    let mut after = read.clone();
    let mut edits = Vec::new();
    for (i, targets) in per_file {
        let shown = &read.files[i].shown;
        let old = String::from_utf8(read.files[i].bytes.clone())
            .map_err(|e| Error::Other(format!("reading {shown}: {e}")))?;
        let new = rewrite_counts(&old, &targets)
            .map_err(|e| Error::Other(format!("editing {shown}: {e}")))?;
        after.files[i].bytes = new.clone().into_bytes();
        edits.push((i, old, new));
    }
    // …and after.
    after.check(&vars, None)?;
    edits.retain(|(_, old, new)| old != new);
    if edits.is_empty() {
        let names: Vec<&str> = read.files.iter().map(|f| f.shown.as_str()).collect();
        let verb = if names.len() == 1 { "has" } else { "have" };
        printer.info(&format!(
            "{} already {verb} these counts.",
            names.join(" + ")
        ));
        return Ok(());
    }
    for (i, old, new) in edits {
        let shown = &read.files[i].shown;
        printer.out(&crate::render::file_diff(
            shown,
            &old,
            &new,
            printer.color_out(),
        ));
        crate::safe_file::write_replacing(&sources.files[i], new.as_bytes(), Some(old.as_bytes()))
            .map_err(|e| Error::Other(format!("writing {shown}: {e}")))?;
        printer.info(&format!("Changed {shown}."));
    }
    Ok(())
}

/// Sets `services.<name>.count` for each target with toml_edit, so that
/// comments, order and layout stay as they were.
///
/// # Errors
/// When the text is not TOML or lacks a table for a target.
pub fn rewrite_counts(text: &str, targets: &[(String, u32)]) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string())?;
    for (name, count) in targets {
        let service = doc
            .get_mut("services")
            .and_then(|s| s.get_mut(name.as_str()))
            .and_then(toml_edit::Item::as_table_like_mut)
            .ok_or_else(|| format!("no table for service `{name}`"))?;
        match service.get_mut("count") {
            Some(item) => {
                let decor = item.as_value().map(|v| v.decor().clone());
                *item = toml_edit::value(i64::from(*count));
                if let (Some(decor), Some(v)) = (decor, item.as_value_mut()) {
                    *v.decor_mut() = decor;
                }
            }
            None => {
                service.insert("count", toml_edit::value(i64::from(*count)));
            }
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_comments_and_layout() {
        let text = "# top\n[services.web]  # the web tier\nimage = \"x\"\ncount = 2 # scaled by hand\n\n[services.db]\nimage = \"y\"\n";
        let out = rewrite_counts(text, &[("web".into(), 5), ("db".into(), 3)]).unwrap();
        assert_eq!(
            out,
            "# top\n[services.web]  # the web tier\nimage = \"x\"\ncount = 5 # scaled by hand\n\n[services.db]\nimage = \"y\"\ncount = 3\n"
        );
    }
}
