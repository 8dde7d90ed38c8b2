//! The commands that know a run reads several files (SPEC §14): `muster
//! config`, the effective file; and `scale`, which edits the file of the
//! chain that sets a service's count. Reads and writes those files.

use std::collections::BTreeMap;

use crate::config::interpolate::Vars;
use crate::config::{Backend, Desired, Invalid, Sources};
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

/// One file of the chain as a scale would change it (`old == new` when it
/// already has the counts).
#[derive(Debug, Clone)]
pub struct FileEdit {
    /// Its index in the chain ([`Sources::files`]).
    pub index: usize,
    /// Its name as shown.
    pub shown: String,
    pub old: String,
    pub new: String,
}

impl FileEdit {
    pub fn changed(&self) -> bool {
        self.old != self.new
    }
}

/// Why a scale cannot be made; nothing was written.
#[derive(Debug)]
pub enum ScaleRefusal {
    /// The chain is invalid as it is: nothing is learned from broken files.
    Before(Invalid),
    /// A service the chain lacks, or a count written as `${…}`.
    Usage(String),
    /// The new counts would make the chain invalid.
    After(Invalid),
    Other(String),
}

impl From<ScaleRefusal> for Error {
    fn from(r: ScaleRefusal) -> Self {
        match r {
            ScaleRefusal::Before(invalid) | ScaleRefusal::After(invalid) => invalid.into(),
            ScaleRefusal::Usage(text) => Error::Usage(text),
            ScaleRefusal::Other(text) => Error::Other(text),
        }
    }
}

/// The edits that set each target's `count` in the file of the chain that
/// sets it (the last of the chain that does, else the first that declares
/// the service), one per file, with the configuration they make. The
/// chain must be valid before and after. Used by `muster scale` and by the
/// web face's scale.
///
/// # Errors
/// [`ScaleRefusal`].
pub fn scale_edits(
    sources: &Sources,
    targets: &[(String, u32)],
) -> Result<(Vec<FileEdit>, Desired), ScaleRefusal> {
    let read = sources.read().map_err(ScaleRefusal::Before)?;
    let vars = Vars::from_process();
    let desired = read.check(&vars, None).map_err(ScaleRefusal::Before)?;
    let mut per_file: BTreeMap<usize, Vec<(String, u32)>> = BTreeMap::new();
    for (name, count) in targets {
        if !desired.services.contains_key(name) {
            let names: Vec<&str> = desired.services.keys().map(String::as_str).collect();
            return Err(ScaleRefusal::Usage(format!(
                "no service `{name}` in {}; its services are: {}",
                sources.shown(),
                names.join(", ")
            )));
        }
        let (i, written) = read.count_owner(name);
        if let Some(written) = written {
            return Err(ScaleRefusal::Usage(format!(
                "the count of `{name}` is {written:?} in {}: muster does not replace an \
                 interpolation with a number; set the variable instead, or write a number there",
                read.files[i].shown
            )));
        }
        per_file.entry(i).or_default().push((name.clone(), *count));
    }
    let mut after = read.clone();
    let mut edits = Vec::new();
    for (index, targets) in per_file {
        let shown = read.files[index].shown.clone();
        let old = String::from_utf8(read.files[index].bytes.clone())
            .map_err(|e| ScaleRefusal::Other(format!("reading {shown}: {e}")))?;
        let new = rewrite_counts(&old, &targets)
            .map_err(|e| ScaleRefusal::Other(format!("editing {shown}: {e}")))?;
        after.files[index].bytes = new.clone().into_bytes();
        edits.push(FileEdit {
            index,
            shown,
            old,
            new,
        });
    }
    let desired = after.check(&vars, None).map_err(ScaleRefusal::After)?;
    Ok((edits, desired))
}

/// Writes `edit` over its file, refused when the file changed since it was
/// read.
///
/// # Errors
/// The write's: an [`std::io::ErrorKind::Other`] when the file changed.
pub fn write_edit(sources: &Sources, edit: &FileEdit) -> std::io::Result<()> {
    crate::safe_file::write_replacing(
        &sources.files[edit.index],
        edit.new.as_bytes(),
        Some(edit.old.as_bytes()),
    )
}

/// `scale SVC=N…`: [`scale_edits`], then prints each changed file's diff,
/// writes it and says so; the files it changed, as shown.
///
/// # Errors
/// As [`scale_edits`]; a file that cannot be written.
pub fn scale(
    sources: &Sources,
    printer: &Printer,
    targets: &[(String, u32)],
) -> Result<Vec<String>, Error> {
    let (mut edits, _) = scale_edits(sources, targets)?;
    edits.retain(FileEdit::changed);
    if edits.is_empty() {
        let verb = if sources.files.len() == 1 {
            "has"
        } else {
            "have"
        };
        printer.info(&format!("{} already {verb} these counts.", sources.shown()));
        return Ok(Vec::new());
    }
    let mut changed = Vec::new();
    for edit in edits {
        let shown = &edit.shown;
        printer.out(&crate::render::file_diff(
            shown,
            &edit.old,
            &edit.new,
            printer.color_out(),
        ));
        write_edit(sources, &edit).map_err(|e| Error::Other(format!("writing {shown}: {e}")))?;
        printer.info(&format!("Changed {shown}."));
        changed.push(shown.clone());
    }
    Ok(changed)
}

/// Sets `services.<name>.count` for each target with toml_edit, so that
/// comments, order and layout stay as they were, and so do a byte order
/// mark and CRLF line ends (toml_edit writes neither).
///
/// # Errors
/// When the text is not TOML or lacks a table for a target.
pub fn rewrite_counts(text: &str, targets: &[(String, u32)]) -> Result<String, String> {
    let bom = text.starts_with('\u{feff}');
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
    let mut out = doc.to_string();
    if text.contains("\r\n") {
        out = out.replace("\r\n", "\n").replace('\n', "\r\n");
    }
    if bom {
        out.insert(0, '\u{feff}');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_a_byte_order_mark_and_crlf_line_ends() {
        let text = "\u{feff}# top\r\n[services.web]\r\nimage = \"x\"\r\ncount = 2\r\n";
        let out = rewrite_counts(text, &[("web".into(), 5)]).unwrap();
        assert_eq!(out, text.replace("count = 2", "count = 5"));
        let lf = "[services.web]\nimage = \"x\"\n";
        assert_eq!(
            rewrite_counts(lf, &[("web".into(), 1)]).unwrap(),
            "[services.web]\nimage = \"x\"\ncount = 1\n"
        );
    }

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
