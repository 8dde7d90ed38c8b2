//! The only way muster writes a file, and how it reads one that someone
//! else may have replaced. Does file I/O.
//!
//! muster often runs as root, in directories other users may write to.
//! Whatever they plant there (a symlink at the temporary name, a FIFO at
//! the target, a file of theirs) must not make muster write elsewhere,
//! change another file's owner or mode, or hang.
//!
//! # Guarantees
//! - The temporary file has a random name and is created exclusively,
//!   without following links; its mode and owner are set on the open file.
//! - A symlink at the target is written through: the link stays, its
//!   target gets the content. The target keeps its mode and owner.
//! - Readers see the old content or the new one, never half of it.
//! - With an expected old content, a file changed on disk since it was
//!   read is left as it is (an editor's save is never lost).
//! - Nothing is left behind on failure.
//! - Reading never blocks on a FIFO or a device: only regular files are read.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, Permissions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of a new file the user will edit.
const USER_MODE: u32 = 0o644;
/// The mode of a state file: only its owner reads it.
const PRIVATE_MODE: u32 = 0o600;

/// Replaces the content of `path` (a file the user edits), keeping its
/// mode and owner; a new file gets mode 0644. With `expected_old`, refuses
/// when the file no longer holds exactly that.
///
/// # Errors
/// When the target cannot be resolved, is not a regular file, changed on
/// disk meanwhile, or the temporary file cannot be written or renamed.
pub fn write_replacing(path: &Path, content: &[u8], expected_old: Option<&[u8]>) -> io::Result<()> {
    write(path, content, expected_old, Mode::KeepOr(USER_MODE))
}

/// Replaces the content of a state file that only its owner may read
/// (mode 0600 whatever it was).
///
/// # Errors
/// As [`write_replacing`].
pub fn write_private(path: &Path, content: &[u8]) -> io::Result<()> {
    write(path, content, None, Mode::Private)
}

/// Reads at most `cap` bytes of the regular file at `path`, following
/// symlinks (for files the user names, like `-f`).
///
/// # Errors
/// When the file cannot be opened or read, or is not a regular file.
pub fn read_regular(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path, 0)?;
    read_at_most(file, cap)
}

/// Reads at most `cap` bytes of a state file: a regular file, not a
/// symlink, owned by the current user.
///
/// # Errors
/// As [`read_regular`]; also when the file belongs to another user.
pub fn read_private(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path, libc::O_NOFOLLOW)?;
    if file.metadata()?.uid() != euid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "it belongs to another user",
        ));
    }
    read_at_most(file, cap)
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// The old file's mode, or this one for a new file.
    KeepOr(u32),
    Private,
}

fn write(path: &Path, content: &[u8], expected_old: Option<&[u8]>, mode: Mode) -> io::Result<()> {
    let target = resolve(path)?;
    let (dir, name) = split(&target)?;
    let old = match open_regular(&target, libc::O_NOFOLLOW) {
        Ok(f) => Some(f.metadata()?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let (tmp_path, mut tmp) = create_temp(&dir, &name)?;
    let written = (|| {
        let bits = match (mode, &old) {
            (Mode::Private, _) => PRIVATE_MODE,
            (Mode::KeepOr(_), Some(old)) => old.mode() & 0o777,
            (Mode::KeepOr(new), None) => new,
        };
        // The mode first: once the file is given away, changing its mode
        // would take CAP_FOWNER.
        tmp.set_permissions(Permissions::from_mode(bits))?;
        if let (Some(old), Mode::KeepOr(_)) = (&old, mode) {
            keep_owner(&tmp, old)?;
        }
        tmp.write_all(content)?;
        tmp.sync_all()?;
        if let Some(expected) = expected_old {
            unchanged_since_read(&target, expected)?;
        }
        std::fs::rename(&tmp_path, &target)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(e);
    }
    // The rename is durable once the directory is; a failure here does
    // not undo the write.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The file that `path` names: a symlink is written through to its target.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("resolving the symlink {}: {e}", path.display()),
            )
        }),
        _ => Ok(path.to_path_buf()),
    }
}

fn split(target: &Path) -> io::Result<(PathBuf, OsString)> {
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", target.display()),
        )
    })?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir.to_path_buf(), name.to_os_string()))
}

/// A new file next to the target, at a name no one can guess, created by
/// this call (never an existing file or a link).
fn create_temp(dir: &Path, name: &OsString) -> io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..16 {
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{:016x}.muster-tmp", random()));
        let tmp_path = dir.join(tmp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp_path)
        {
            Ok(f) => return Ok((tmp_path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("creating a temporary file in {}: {e}", dir.display()),
                ));
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// 64 unpredictable bits: std seeds each `RandomState` from the system's
/// randomness; the time and pid make each call's input distinct.
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// Gives the temporary file the old file's owner. A user who may not give
/// files away keeps at least the group when a member of it.
fn keep_owner(tmp: &File, old: &std::fs::Metadata) -> io::Result<()> {
    let now = tmp.metadata()?;
    if (now.uid(), now.gid()) == (old.uid(), old.gid()) {
        return Ok(());
    }
    match std::os::unix::fs::fchown(tmp, Some(old.uid()), Some(old.gid())) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let _ = std::os::unix::fs::fchown(tmp, None, Some(old.gid()));
            Ok(())
        }
        other => other,
    }
}

fn unchanged_since_read(target: &Path, expected: &[u8]) -> io::Result<()> {
    let now = match open_regular(target, libc::O_NOFOLLOW) {
        Ok(f) => read_at_most(f, expected.len() as u64 + 1)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    if now == expected {
        Ok(())
    } else {
        Err(io::Error::other(
            "the file changed on disk meanwhile; nothing was written, run the command again",
        ))
    }
}

/// Opens `path` for reading without blocking (a FIFO would) and checks,
/// on the open file, that it is a regular file.
fn open_regular(path: &Path, extra_flags: i32) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | extra_flags)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(e.kind(), "it is a symlink")
            } else {
                e
            }
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", describe(kind)),
        ));
    }
    Ok(file)
}

fn describe(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

fn read_at_most(file: File, cap: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(cap).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.contains("muster-tmp"))
            .collect()
    }

    #[test]
    fn a_new_user_file_gets_0644_and_a_state_file_0600() {
        let d = dir();
        let user = d.path().join("services.toml");
        write_replacing(&user, b"a", None).unwrap();
        let state = d.path().join("x.json");
        write_private(&state, b"b").unwrap();
        assert_eq!(std::fs::read(&user).unwrap(), b"a");
        assert_eq!(std::fs::metadata(&user).unwrap().mode() & 0o777, 0o644);
        assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn the_old_mode_is_kept_and_a_state_file_is_made_private() {
        let d = dir();
        let user = d.path().join("services.toml");
        std::fs::write(&user, "old").unwrap();
        std::fs::set_permissions(&user, Permissions::from_mode(0o640)).unwrap();
        write_replacing(&user, b"new", Some(b"old")).unwrap();
        assert_eq!(std::fs::metadata(&user).unwrap().mode() & 0o777, 0o640);
        let state = d.path().join("x.json");
        std::fs::write(&state, "old").unwrap();
        std::fs::set_permissions(&state, Permissions::from_mode(0o666)).unwrap();
        write_private(&state, b"new").unwrap();
        assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_concurrent_save_is_kept_and_nothing_is_left_behind() {
        let d = dir();
        let path = d.path().join("services.toml");
        std::fs::write(&path, "what muster read").unwrap();
        // An editor saves between muster's read and its write.
        std::fs::write(&path, "the editor's save").unwrap();
        let err = write_replacing(&path, b"muster's edit", Some(b"what muster read")).unwrap_err();
        assert!(
            err.to_string().contains("changed on disk meanwhile"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"the editor's save");
        assert_eq!(leftovers(d.path()), Vec::<String>::new());
        // A longer file that starts with what was read is a change too.
        std::fs::write(&path, "what muster read, and more").unwrap();
        assert!(write_replacing(&path, b"x", Some(b"what muster read")).is_err());
        write_replacing(&path, b"x", Some(b"what muster read, and more")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
    }

    #[test]
    fn a_symlink_is_written_through_to_its_target() {
        let d = dir();
        let real = d.path().join("real.toml");
        std::fs::write(&real, "old").unwrap();
        let link = d.path().join("services.toml");
        symlink("real.toml", &link).unwrap();
        write_replacing(&link, b"new", Some(b"old")).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        assert_eq!(leftovers(d.path()), Vec::<String>::new());
    }

    #[test]
    fn temporary_names_are_not_predictable() {
        let d = dir();
        let (a, _) = create_temp(d.path(), &OsString::from("f")).unwrap();
        let (b, _) = create_temp(d.path(), &OsString::from("f")).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, d.path().join(".f.muster-tmp"));
    }

    #[test]
    fn fifos_and_directories_are_refused_at_once() {
        let d = dir();
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, 10).unwrap_err();
        assert!(
            err.to_string().contains("a FIFO, not a regular file"),
            "{err}"
        );
        assert!(read_private(&fifo, 10).is_err());
        let err = write_private(&fifo, b"x").unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert_eq!(leftovers(d.path()), Vec::<String>::new());
        let err = read_regular(d.path(), 10).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
    }

    #[test]
    fn a_state_file_is_not_read_through_a_symlink() {
        let d = dir();
        let real = d.path().join("real.json");
        std::fs::write(&real, "{}").unwrap();
        let link = d.path().join("x.json");
        symlink(&real, &link).unwrap();
        let err = read_private(&link, 10).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(read_private(&real, 10).unwrap(), b"{}");
        assert_eq!(read_regular(&link, 1).unwrap(), b"{");
    }
}
