//! The daemon's back-off record, which `muster ps` reads: where it lives (the
//! private [runtime directory](crate::runtime_dir)) and how it is read and
//! written ([`crate::safe_file`]). Does file I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::backoff::BackoffRecord;

/// Where the daemon tells `muster ps` which containers are backing off,
/// in the runtime directory `dir`.
pub fn backoff_file(dir: &Path, project: &str) -> PathBuf {
    dir.join(format!("{project}.backoff.json"))
}

/// The back-offs the daemon published for `project`, if any; nothing when
/// the runtime directory or the file is not safe to trust.
pub fn read_backoffs(project: &str) -> BTreeMap<String, BackoffRecord> {
    crate::runtime_dir::existing_runtime_dir()
        .ok()
        .flatten()
        .and_then(|dir| crate::safe_file::read_private(&backoff_file(&dir, project), 1 << 20).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The content of the back-off file for `records`; `None`: no file.
pub fn backoffs_content(records: &BTreeMap<String, BackoffRecord>) -> Option<Vec<u8>> {
    if records.is_empty() {
        return None;
    }
    serde_json::to_vec(records).ok()
}
