//! The files muster writes besides what it prints: `services.toml` (by
//! `scale`) and the daemon's back-off record that `muster ps` reads. Does
//! file I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::backoff::BackoffRecord;

/// Writes through a temporary file and a rename: readers see the old
/// content or the new one, never half of it.
///
/// # Errors
/// When the temporary file cannot be written or renamed.
pub fn write_atomically(path: &Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.muster-tmp"));
    std::fs::write(&tmp, text)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path)
}

/// Where the daemon tells `muster ps` which containers are backing off.
pub fn backoff_file(project: &str) -> PathBuf {
    std::env::temp_dir().join(format!("muster-{project}.backoff.json"))
}

/// The back-offs the daemon published for `project`, if any.
pub fn read_backoffs(project: &str) -> BTreeMap<String, BackoffRecord> {
    std::fs::read(backoff_file(project))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Publishes the back-offs of `project` (best effort); none: removes the file.
pub fn write_backoffs(project: &str, records: &BTreeMap<String, BackoffRecord>) {
    let path = backoff_file(project);
    if records.is_empty() {
        let _ = std::fs::remove_file(&path);
        return;
    }
    if let Ok(text) = serde_json::to_vec(records) {
        let _ = write_atomically(&path, text);
    }
}

/// Removes the back-off file of `project` (the daemon, when it stops).
pub fn clear_backoffs(project: &str) {
    let _ = std::fs::remove_file(backoff_file(project));
}
