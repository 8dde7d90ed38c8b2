//! Where muster keeps its runtime state (the daemon's back-offs that
//! `muster ps` shows), and the writer that keeps that file I/O off the
//! daemon's event loop. Does file I/O.
//!
//! # Guarantees
//! - The directory is private: a directory (not a symlink) owned by the
//!   current user, that neither group nor others may write, in a parent
//!   that only this user or root may write. Anything else is refused with
//!   an error saying why, and nothing is written.
//! - Nothing is ever kept in a world-writable directory such as `/tmp`.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::safe_file::{self, euid};

/// The runtime directory, created (mode 0700) when missing:
/// `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`), else
/// `$XDG_RUNTIME_DIR/muster`, else `/run/muster` for root, else
/// `$HOME/.local/state/muster`.
///
/// # Errors
/// When none of these is known, or the directory cannot be created or is
/// not private (see the module's guarantees).
pub fn runtime_dir() -> io::Result<PathBuf> {
    let dir = location()?;
    let (parent, name) = split(&dir)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(|e| refused_parent(&parent, &e.to_string()))?;
    let parent = checked_parent(&parent)?;
    let dir = parent.join(name);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(refused(&dir, &e.to_string()));
        }
        _ => {}
    }
    checked_dir(&dir)
}

/// The runtime directory if it exists (see [`runtime_dir`]); creates nothing.
///
/// # Errors
/// When it exists but is not private.
pub fn existing_runtime_dir() -> io::Result<Option<PathBuf>> {
    let dir = location()?;
    let (parent, name) = split(&dir)?;
    if !parent.exists() {
        return Ok(None);
    }
    let dir = checked_parent(&parent)?.join(name);
    if std::fs::symlink_metadata(&dir).is_err() {
        return Ok(None);
    }
    checked_dir(&dir).map(Some)
}

/// A directory named by an environment variable: set, absolute (the XDG
/// rule: a relative path is ignored).
fn env_dir(var: &str) -> Option<PathBuf> {
    let value = std::env::var_os(var)?;
    // systemd lists several directories when the unit asks for several.
    let first = value.as_bytes().split(|b| *b == b':').next()?;
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(first));
    path.is_absolute().then_some(path)
}

fn location() -> io::Result<PathBuf> {
    if let Some(dir) = env_dir("RUNTIME_DIRECTORY") {
        return Ok(dir);
    }
    if let Some(dir) = env_dir("XDG_RUNTIME_DIR") {
        return Ok(dir.join("muster"));
    }
    if euid() == 0 {
        return Ok(PathBuf::from("/run/muster"));
    }
    if let Some(home) = env_dir("HOME") {
        return Ok(home.join(".local/state/muster"));
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no directory for muster's runtime state: set XDG_RUNTIME_DIR or HOME",
    ))
}

fn split(dir: &Path) -> io::Result<(PathBuf, std::ffi::OsString)> {
    match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => Ok((parent.to_path_buf(), name.to_os_string())),
        _ => Err(refused(dir, "it is not a directory one can create")),
    }
}

fn refused(dir: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "refusing {} as muster's runtime directory: {why}",
            dir.display()
        ),
    )
}

fn refused_parent(parent: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "refusing {} to hold muster's runtime directory: {why}",
            parent.display()
        ),
    )
}

/// The parent with its links resolved, when only this user or root may
/// change what it holds.
fn checked_parent(parent: &Path) -> io::Result<PathBuf> {
    let real = std::fs::canonicalize(parent).map_err(|e| refused_parent(parent, &e.to_string()))?;
    let meta = std::fs::metadata(&real).map_err(|e| refused_parent(&real, &e.to_string()))?;
    if meta.uid() != euid() && meta.uid() != 0 {
        return Err(refused_parent(
            &real,
            &format!(
                "it belongs to uid {}, not to uid {} or root",
                meta.uid(),
                euid()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refused_parent(
            &real,
            "its group or other users may write to it",
        ));
    }
    Ok(real)
}

fn checked_dir(dir: &Path) -> io::Result<PathBuf> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| refused(dir, &e.to_string()))?;
    if meta.file_type().is_symlink() {
        return Err(refused(dir, "it is a symlink"));
    }
    if !meta.is_dir() {
        return Err(refused(dir, "it is not a directory"));
    }
    if meta.uid() != euid() {
        return Err(refused(
            dir,
            &format!("it belongs to uid {}, not to uid {}", meta.uid(), euid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refused(dir, "its group or other users may write to it"));
    }
    Ok(dir.to_path_buf())
}

enum Job {
    /// New content for a state file; `None` removes it.
    Put(PathBuf, Option<Vec<u8>>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Writes state files on a thread of its own, so that a slow or hostile
/// file system never stalls the caller; of several pending contents of a
/// file, only the newest is written.
pub struct StateWriter {
    tx: Option<mpsc::Sender<Job>>,
}

impl StateWriter {
    /// Starts the writer's thread; without one (the system refused it),
    /// state is not published.
    pub fn start() -> StateWriter {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("muster-state".into())
            .spawn(move || write_loop(&rx));
        StateWriter {
            tx: thread.ok().map(|_| tx),
        }
    }

    /// Queues `content` for `path` (written 0600); `None` removes the file.
    pub fn put(&self, path: PathBuf, content: Option<Vec<u8>>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Put(path, content));
        }
    }

    /// Waits, at most `timeout`, until what was queued is done.
    pub async fn flush(&self, timeout: Duration) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = tokio::sync::oneshot::channel();
        if tx.send(Job::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(timeout, wait).await;
        }
    }
}

fn write_loop(rx: &mpsc::Receiver<Job>) {
    while let Ok(mut job) = rx.recv() {
        while let Ok(next) = rx.try_recv() {
            match (&job, &next) {
                (Job::Put(a, _), Job::Put(b, _)) if a == b => {}
                _ => run(job),
            }
            job = next;
        }
        run(job);
    }
}

fn run(job: Job) {
    // Best effort: `muster ps` shows no back-off rather than a wrong one.
    match job {
        Job::Put(path, Some(content)) => {
            let _ = safe_file::write_private(&path, &content);
        }
        Job::Put(path, None) => {
            let _ = std::fs::remove_file(&path);
        }
        Job::Flush(done) => {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private_dir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("muster");
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        (t, dir)
    }

    #[test]
    fn a_private_directory_is_accepted() {
        let (t, dir) = private_dir();
        let parent = checked_parent(t.path()).unwrap();
        assert_eq!(
            checked_dir(&parent.join("muster")).unwrap(),
            parent.join("muster")
        );
        assert!(checked_dir(&dir).is_ok());
    }

    #[test]
    fn a_directory_others_may_write_or_a_symlink_is_refused() {
        let (t, dir) = private_dir();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = checked_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("other users may write"), "{err}");
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(checked_parent(t.path()).is_err());
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = checked_dir(&link).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        let file = t.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(checked_dir(&file).is_err());
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        // Only root may give a directory away (the tests run as root).
        if euid() != 0 {
            return;
        }
        let (_t, dir) = private_dir();
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        let err = checked_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("belongs to uid"), "{err}");
    }

    #[tokio::test]
    async fn the_writer_writes_the_newest_content_and_removes() {
        let (_t, dir) = private_dir();
        let path = dir.join("p.backoff.json");
        let w = StateWriter::start();
        for n in 0..50 {
            w.put(path.clone(), Some(format!("{n}").into_bytes()));
        }
        w.flush(Duration::from_secs(10)).await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "49");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        w.put(path.clone(), None);
        w.flush(Duration::from_secs(10)).await;
        assert!(!path.exists());
    }
}
