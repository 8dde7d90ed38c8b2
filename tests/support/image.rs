//! The images of the tests: `muster-test/busybox:latest`, imported once
//! from the host's static busybox without any registry, and the local
//! registry on `127.0.0.1:5000` with a project's own repository in it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::PushImageInfo;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, PushImageOptionsBuilder, RemoveImageOptions, TagImageOptionsBuilder,
};
use futures_util::StreamExt;

use super::engine::{block_on, docker};
use super::project::Project;

/// The local test image; see [`image()`].
pub const IMAGE: &str = "muster-test/busybox:latest";

/// The image of [`slow_create_image()`].
pub const SLOW_CREATE_IMAGE: &str = "muster-test/slow-create:1";

/// The local image `muster-test/busybox:latest`: Debian's static busybox
/// as `/bin/busybox`, a symlink per applet, `PATH=/usr/sbin:/usr/bin:/sbin:/bin`
/// and `CMD ["sh"]`. Imported through the engine's image-import API, so no
/// registry is needed. Idempotent, and safe when several test processes
/// call it at once: an existing image is never imported again, so its id
/// stays the same for every test.
///
/// # Panics
/// When the engine is unreachable, or the host has no static busybox.
pub fn image() -> &'static str {
    static READY: OnceLock<()> = OnceLock::new();
    imported(&READY, IMAGE, || build_rootfs(0), &[])
}

/// The test image whose containers the engine takes seconds to create:
/// 6000 empty files in `/many`, declared a `VOLUME`, which the engine copies
/// into each container's new anonymous volume before its create is done.
/// Meanwhile the engine lists the container but does not find it by name.
pub fn slow_create_image() -> &'static str {
    static READY: OnceLock<()> = OnceLock::new();
    imported(
        &READY,
        SLOW_CREATE_IMAGE,
        || build_rootfs(6000),
        &["VOLUME /many"],
    )
}

/// `reference`, imported once (across test processes too) from `rootfs`
/// with the `extra` Dockerfile instructions, unless the engine has it.
fn imported(
    ready: &OnceLock<()>,
    reference: &'static str,
    rootfs: impl FnOnce() -> Vec<u8>,
    extra: &[&str],
) -> &'static str {
    ready.get_or_init(|| {
        let docker = docker();
        if image_exists(docker, reference) {
            return;
        }
        // Other test processes may be here too: one imports, the others
        // wait and then find the image.
        let _lock = FileLock::acquire(&std::env::temp_dir().join("muster-test-image.lock"));
        if image_exists(docker, reference) {
            return;
        }
        import(docker, reference, rootfs(), extra);
        assert!(
            image_exists(docker, reference),
            "{reference} is still missing after importing it"
        );
    });
    reference
}

fn image_exists(docker: &Docker, reference: &str) -> bool {
    match block_on(docker.inspect_image(reference)) {
        Ok(_) => true,
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => false,
        Err(e) => panic!("cannot inspect {reference}: {e}"),
    }
}

/// Imports `rootfs` as image `reference`, with the test image's `PATH`
/// and `CMD` and the `extra` Dockerfile instructions.
fn import(docker: &Docker, reference: &str, rootfs: Vec<u8>, extra: &[&str]) {
    let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .message("muster test image: Debian's static busybox")
        .changes(
            ["ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", r#"CMD ["sh"]"#]
                .iter()
                .chain(extra)
                .map(|c| c.to_string())
                .collect(),
        )
        .build();
    block_on(async {
        let mut progress = docker.create_image(
            Some(options),
            Some(bollard::body_full(bytes::Bytes::from(rootfs))),
            None,
        );
        while let Some(step) = progress.next().await {
            if let Err(e) = step {
                panic!("importing {reference} failed: {e}");
            }
        }
    });
}

/// The local registry's address, `127.0.0.1:5000`, once its `/v2/`
/// answers.
///
/// # Panics
/// When nothing answers there: these tests need it.
pub fn registry() -> &'static str {
    const ADDRESS: &str = "127.0.0.1:5000";
    static ANSWERS: OnceLock<Result<(), String>> = OnceLock::new();
    let answers = ANSWERS.get_or_init(|| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(ADDRESS).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        write!(stream, "GET /v2/ HTTP/1.0\r\nHost: {ADDRESS}\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        let status = reply.lines().next().unwrap_or_default().to_string();
        if status.contains(" 200") {
            Ok(())
        } else {
            Err(format!("it answered {status:?}"))
        }
    });
    match answers {
        Ok(()) => ADDRESS,
        Err(e) => panic!(
            "no registry answers at http://{ADDRESS}/v2/ ({e}); start it as .ci/run does: .ci/registry"
        ),
    }
}

/// Pushes the local image `reference` to its registry.
fn push(reference: &str) {
    let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    block_on(async {
        // The engine wants credentials even for a registry without any.
        let mut progress = docker().push_image(repo, Some(options), Some(Default::default()));
        while let Some(step) = progress.next().await {
            match step {
                Ok(PushImageInfo {
                    error_detail: Some(e),
                    ..
                }) => panic!("pushing {reference} failed: {e:?}"),
                Ok(_) => {}
                Err(e) => panic!("pushing {reference} failed: {e}"),
            }
        }
    });
}

/// Removes the local tag `reference`, not the image it points at when
/// another tag or a container holds it.
fn untag(reference: &str) {
    block_on(docker().remove_image(reference, None::<RemoveImageOptions>, None))
        .unwrap_or_else(|e| panic!("cannot remove the local tag {reference}: {e}"));
}

/// Where Debian's `busybox-static` installs its binary.
fn busybox_binary() -> PathBuf {
    const HINT: &str = "install busybox-static (apt-get install busybox-static)";
    let path = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no busybox found at /bin/busybox or /usr/bin/busybox: {HINT}"));
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {HINT}", path.display()));
    if has_interpreter(&bytes) {
        panic!(
            "{} is dynamically linked and cannot run in an image of its own: {HINT}",
            path.display()
        );
    }
    path
}

/// Whether a 64-bit little-endian ELF file asks for a program interpreter
/// (`PT_INTERP`), that is, whether it is dynamically linked.
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        elf.get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap()) == PT_INTERP)
    })
}

/// The image's root file system as a tar archive, with `many` empty files
/// in `/many`.
fn build_rootfs(many: usize) -> Vec<u8> {
    let path = busybox_binary();
    let binary = std::fs::read(&path).unwrap();
    let listed = std::process::Command::new(&path)
        .arg("--list")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let applets: BTreeSet<String> = match &listed {
        Some(list) => list
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
            .map(String::from)
            .collect(),
        // The binary may not run here (an engine of another architecture);
        // the common applets are in every build.
        None => "sh ash sleep nc env cat echo true false ls mkdir test [ httpd wget ps kill \
                 date grep sed touch hostname id rm cp mv ln chmod head tail wc sort uniq \
                 tr cut awk find xargs seq printf pwd uname whoami tee timeout yes"
            .split_whitespace()
            .map(String::from)
            .collect(),
    };

    let mut tar = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("usr", 0o755),
    ] {
        append_dir(&mut tar, dir, mode);
    }
    append_file(&mut tar, "bin/busybox", &binary, 0o755);
    for applet in &applets {
        append_symlink(&mut tar, &format!("bin/{applet}"), "busybox");
    }
    if !applets.contains("printenv") {
        append_file(&mut tar, "bin/printenv", PRINTENV.as_bytes(), 0o755);
    }
    for (link, target) in [
        ("sbin", "bin"),
        ("usr/bin", "../bin"),
        ("usr/sbin", "../bin"),
    ] {
        append_symlink(&mut tar, link, target);
    }
    append_file(
        &mut tar,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    );
    append_file(
        &mut tar,
        "etc/group",
        b"root:x:0:\nnogroup:x:65534:\n",
        0o644,
    );
    if many > 0 {
        append_dir(&mut tar, "many", 0o755);
        for i in 0..many {
            append_file(&mut tar, &format!("many/{i}"), b"", 0o644);
        }
    }
    tar.into_inner().expect("building the image's tar")
}

/// Debian's busybox-static has no `printenv` applet.
const PRINTENV: &str = r#"#!/bin/sh
# printenv [NAME...], as in coreutils.
[ $# -eq 0 ] && exec env
status=0
for name in "$@"; do
    if eval "[ -n \"\${$name+set}\" ]"; then
        eval "printf '%s\n' \"\$$name\""
    else
        status=1
    fi
done
exit $status
"#;

fn header(kind: tar::EntryType, size: usize, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size as u64);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut h = header(tar::EntryType::Directory, 0, mode);
    tar.append_data(&mut h, path, std::io::empty()).unwrap();
}

fn append_file(tar: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut h = header(tar::EntryType::Regular, data.len(), mode);
    tar.append_data(&mut h, path, data).unwrap();
}

fn append_symlink(tar: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = header(tar::EntryType::Symlink, 0, 0o777);
    tar.append_link(&mut h, path, target).unwrap();
}

/// An exclusive `flock` on a file, released when dropped (the file closes).
struct FileLock(std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> FileLock {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open the lock file {}: {e}", path.display()));
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(
            rc,
            0,
            "cannot lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        FileLock(file)
    }
}

impl Project {
    /// The project's repository in the local registry, at `tag`:
    /// `127.0.0.1:5000/muster-test/<project>:<tag>`.
    pub fn registry_image(&self, tag: &str) -> String {
        format!("{}/muster-test/{}:{tag}", registry(), self.name())
    }

    /// Pushes the test image to [`Project::registry_image`]`(tag)` and
    /// removes the local tag again, so that the image is only in the
    /// registry and an apply must pull it. The reference.
    pub fn push_to_registry(&self, tag: &str) -> String {
        let reference = self.registry_image(tag);
        let (repo, tag) = reference.rsplit_once(':').unwrap();
        let options = TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag)
            .build();
        block_on(docker().tag_image(image(), Some(options)))
            .unwrap_or_else(|e| panic!("cannot tag {IMAGE} as {reference}: {e}"));
        self.pushed.lock().unwrap().push(repo.to_string());
        push(&reference);
        untag(&reference);
        reference
    }

    /// Pushes an image that differs from the test image (one more file,
    /// one more label) under `reference`, and removes the local tag again:
    /// the registry's tag then points at another image, as after a
    /// colleague's push. The new image's id.
    pub fn push_other_content(&self, reference: &str) -> String {
        let mut rootfs = tar::Builder::new(Vec::new());
        let marker = format!("pushed again for {}\n", self.name());
        append_file(
            &mut rootfs,
            "etc/muster-test-content",
            marker.as_bytes(),
            0o644,
        );
        let mut base = tar::Archive::new(std::io::Cursor::new(build_rootfs(0)));
        for entry in base.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut header = entry.header().clone();
            let path = entry.path().unwrap().into_owned();
            if header.entry_type() == tar::EntryType::Symlink {
                let target = entry.link_name().unwrap().unwrap().into_owned();
                rootfs.append_link(&mut header, &path, &target).unwrap();
            } else {
                rootfs.append_data(&mut header, &path, &mut entry).unwrap();
            }
        }
        let rootfs = rootfs.into_inner().unwrap();
        let repo = reference
            .rsplit_once(':')
            .map_or(reference, |(repo, _)| repo);
        self.pushed.lock().unwrap().push(repo.to_string());
        import(
            docker(),
            reference,
            rootfs,
            &[&format!("LABEL io.muster.test.content={}", self.name())],
        );
        let id = block_on(docker().inspect_image(reference))
            .unwrap_or_else(|e| panic!("cannot inspect {reference} after importing it: {e}"))
            .id
            .unwrap_or_default();
        push(reference);
        untag(reference);
        id
    }
}
