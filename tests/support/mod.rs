//! Support for the tests that run against a real Docker engine.
//!
//! Tests are plain synchronous `#[test]` functions; this module owns one
//! shared tokio runtime and offers blocking helpers:
//!
//! - [`docker()`]: the engine, connected through `DOCKER_HOST` (or the local
//!   socket), version-negotiated and pinged. Unreachable is a failure with
//!   a clear message, never a silent skip.
//! - [`image()`]: `muster-test/busybox:latest`, imported once from the
//!   host's static busybox without any registry.
//! - [`Project`]: a unique project name and directory, the `muster` command
//!   preconfigured for it, views of its containers and of the engine events
//!   it causes, and cleanup of everything it left on the engine, even when
//!   the test panicked.
//! - [`Project::push_to_registry`], [`Project::push_other_content`]: the
//!   test image in the local registry on `127.0.0.1:5000` (see
//!   [`registry()`]), under a repository of the project's own.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{EventMessage, PushImageInfo};
use bollard::query_parameters::{
    CreateImageOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, PushImageOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptions, RemoveVolumeOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};

/// The local test image; see [`image()`].
pub const IMAGE: &str = "muster-test/busybox:latest";

/// The label that marks every object of a project.
pub const PROJECT_LABEL: &str = "io.muster.project";

/// The runtime every engine call of the tests runs on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot build the tests' tokio runtime")
    })
}

/// Runs `f` to completion on the shared runtime. Not from inside another
/// `block_on`: the other helpers here block, so call them outside futures.
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// The engine address the tests use, as the user would give it.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn connection() -> &'static Result<Docker, String> {
    static DOCKER: OnceLock<Result<Docker, String>> = OnceLock::new();
    DOCKER.get_or_init(|| {
        block_on(async {
            let docker = Docker::connect_with_defaults().map_err(|e| e.to_string())?;
            let docker = tokio::time::timeout(Duration::from_secs(20), docker.negotiate_version())
                .await
                .map_err(|_| "no answer within 20s".to_string())?
                .map_err(|e| e.to_string())?;
            tokio::time::timeout(Duration::from_secs(20), docker.ping())
                .await
                .map_err(|_| "no answer to ping within 20s".to_string())?
                .map_err(|e| e.to_string())?;
            Ok(docker)
        })
    })
}

/// The engine, connected honouring `DOCKER_HOST`, at the API version it
/// speaks.
///
/// # Panics
/// When the engine cannot be reached: these tests need one.
pub fn docker() -> &'static Docker {
    match connection() {
        Ok(docker) => docker,
        Err(e) => panic!(
            "Docker engine not reachable at {}: {e}. These tests need a running Docker engine; see README",
            docker_host()
        ),
    }
}

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
    READY.get_or_init(|| {
        let docker = docker();
        if image_exists(docker) {
            return;
        }
        // Other test processes may be here too: one imports, the others
        // wait and then find the image.
        let _lock = FileLock::acquire(&std::env::temp_dir().join("muster-test-image.lock"));
        if image_exists(docker) {
            return;
        }
        import(docker, IMAGE, build_rootfs(), &[]);
        assert!(
            image_exists(docker),
            "{IMAGE} is still missing after importing it"
        );
    });
    IMAGE
}

fn image_exists(docker: &Docker) -> bool {
    match block_on(docker.inspect_image(IMAGE)) {
        Ok(_) => true,
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => false,
        Err(e) => panic!("cannot inspect {IMAGE}: {e}"),
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

/// The image's root file system as a tar archive.
fn build_rootfs() -> Vec<u8> {
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

/// A container of a project, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// `created`, `running`, `exited`, …
    pub state: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
}

impl ContainerInfo {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The `io.muster.service` label.
    pub fn service(&self) -> Option<&str> {
        self.label("io.muster.service")
    }

    /// The `io.muster.ordinal` label.
    pub fn ordinal(&self) -> Option<u32> {
        self.label("io.muster.ordinal")?.parse().ok()
    }

    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// One test's project: a unique name, a directory named after it (so that
/// the default project name is this name too), and everything it creates
/// on the engine removed when it is dropped.
pub struct Project {
    name: String,
    dir: PathBuf,
    /// Images named in the last file written, for [`Project::events_during`].
    images: std::sync::Mutex<BTreeSet<String>>,
    /// Repositories of the registry helpers, whose local images go on drop.
    pushed: std::sync::Mutex<Vec<String>>,
    _tmp: tempfile::TempDir,
}

impl Project {
    /// A project named `mt-<prefix>-<pid>-<counter>`.
    pub fn new(prefix: &str) -> Project {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let prefix: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let name = format!(
            "mt-{}-{}-{}",
            prefix.trim_matches('-'),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = tempfile::Builder::new()
            .prefix("muster-test-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let dir = tmp.path().join(&name);
        std::fs::create_dir(&dir).unwrap();
        Project {
            name,
            dir,
            images: Default::default(),
            pushed: Default::default(),
            _tmp: tmp,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory that holds `services.toml`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `services.toml`.
    pub fn file(&self) -> PathBuf {
        self.dir.join("services.toml")
    }

    /// Writes `services.toml`, with `{image}` replaced by the test image
    /// (imported if needed) and `{project}` by the project's name.
    pub fn write(&self, toml: &str) {
        let mut text = toml.replace("{project}", &self.name);
        if text.contains("{image}") {
            text = text.replace("{image}", image());
        }
        if let Ok(desired) = muster::config::parse_str("services.toml", &text, &self.dir) {
            *self.images.lock().unwrap() = desired
                .services
                .values()
                .map(|s| with_tag(&s.image))
                .collect();
        }
        std::fs::write(self.file(), text).unwrap();
    }

    /// The images named in the file last written (with their tags).
    pub fn images(&self) -> BTreeSet<String> {
        self.images.lock().unwrap().clone()
    }

    /// The project's repository in the local registry, at `tag`:
    /// `127.0.0.1:5000/muster-test/<project>:<tag>`.
    pub fn registry_image(&self, tag: &str) -> String {
        format!("{}/muster-test/{}:{tag}", registry(), self.name)
    }

    /// Pushes the test image to [`Project::registry_image`]`(tag)` and
    /// removes the local tag again, so that the image is only in the
    /// registry and an apply must pull it. The reference.
    pub fn push_to_registry(&self, tag: &str) -> String {
        let reference = self.registry_image(tag);
        let (repo, tag) = reference.rsplit_once(':').unwrap();
        let options = bollard::query_parameters::TagImageOptionsBuilder::default()
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
        let marker = format!("pushed again for {}\n", self.name);
        append_file(
            &mut rootfs,
            "etc/muster-test-content",
            marker.as_bytes(),
            0o644,
        );
        let mut base = tar::Archive::new(std::io::Cursor::new(build_rootfs()));
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
            &[&format!("LABEL io.muster.test.content={}", self.name)],
        );
        let id = block_on(docker().inspect_image(reference))
            .unwrap_or_else(|e| panic!("cannot inspect {reference} after importing it: {e}"))
            .id
            .unwrap_or_default();
        push(reference);
        untag(reference);
        id
    }

    /// `muster -f services.toml`, run in [`Project::dir`], without colour,
    /// without `MUSTER_PROJECT`, killed after 5 minutes.
    pub fn muster(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("muster").unwrap();
        cmd.current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env_remove("MUSTER_PROJECT")
            .env_remove("MUSTER_FILE")
            .env_remove("CLICOLOR_FORCE")
            .timeout(Duration::from_secs(300))
            .args(["-f", "services.toml"]);
        cmd
    }

    /// Every container (running or not) labelled with this project, sorted
    /// by name.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        let filters = HashMap::from([("label", vec![format!("{PROJECT_LABEL}={}", self.name)])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = block_on(docker().list_containers(Some(options)))
            .unwrap_or_else(|e| panic!("cannot list the containers of {}: {e}", self.name));
        let mut out: Vec<ContainerInfo> = list
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The names of [`Project::containers`].
    pub fn container_names(&self) -> Vec<String> {
        self.containers().into_iter().map(|c| c.name).collect()
    }

    /// The environment (`KEY=value`) of container `name`, as inspected.
    pub fn env(&self, name: &str) -> Vec<String> {
        let c = block_on(docker().inspect_container(name, None))
            .unwrap_or_else(|e| panic!("cannot inspect container {name}: {e}"));
        c.config.and_then(|c| c.env).unwrap_or_default()
    }

    /// The networks of this project (by label or by name), sorted.
    pub fn networks(&self) -> Vec<String> {
        let mut out: Vec<String> = block_on(docker().list_networks(None))
            .unwrap_or_else(|e| panic!("cannot list networks: {e}"))
            .into_iter()
            .filter(|n| {
                self.owns(
                    n.name.as_deref().unwrap_or_default(),
                    n.labels.as_ref().and_then(|l| l.get(PROJECT_LABEL)),
                )
            })
            .filter_map(|n| n.name)
            .collect();
        out.sort();
        out
    }

    /// The volumes of this project (by label or by name), sorted.
    pub fn volumes(&self) -> Vec<String> {
        let mut out: Vec<String> =
            block_on(docker().list_volumes(None::<bollard::query_parameters::ListVolumesOptions>))
                .unwrap_or_else(|e| panic!("cannot list volumes: {e}"))
                .volumes
                .unwrap_or_default()
                .into_iter()
                .filter(|v| self.owns(&v.name, v.labels.get(PROJECT_LABEL)))
                .map(|v| v.name)
                .collect();
        out.sort();
        out
    }

    /// The engine's events caused while `f` ran that concern this project:
    /// objects labelled with it or named after it (`<name>-…`, `<name>_…`),
    /// and the images its file names. One `"<type> <action> <object>"` per
    /// event, e.g. `"container create mt-x-1-0-web-1"`. Healthcheck
    /// executions (`exec_*`, `health_status`) are the engine's own doing
    /// and are left out.
    ///
    /// The window is measured on the engine's clock. The engine keeps only
    /// its last 256 events for such queries, so `f` should be short.
    pub fn events_during<F: FnOnce()>(&self, f: F) -> Vec<String> {
        let docker = docker();
        let since = engine_time(docker);
        f();
        let until = engine_time(docker);
        let options = EventsOptionsBuilder::default()
            .since(&since)
            .until(&until)
            .build();
        let events: Vec<EventMessage> = block_on(docker.events(Some(options)).try_collect())
            .unwrap_or_else(|e| panic!("cannot read the engine's events: {e}"));
        let images = self.images.lock().unwrap().clone();
        events
            .into_iter()
            .filter_map(|e| {
                let kind = e.typ.map(|t| t.to_string()).unwrap_or_default();
                let action = e.action.unwrap_or_default();
                if action.starts_with("exec_") || action.starts_with("health_status") {
                    return None;
                }
                let actor = e.actor.unwrap_or_default();
                let attributes = actor.attributes.unwrap_or_default();
                let id = actor.id.unwrap_or_default();
                let object = attributes
                    .get("name")
                    .cloned()
                    .unwrap_or_else(|| id.clone());
                let ours = match kind.as_str() {
                    "image" => [&id, &object].iter().any(|n| images.contains(&with_tag(n))),
                    "volume" => self.owns(&id, attributes.get(PROJECT_LABEL)),
                    _ => self.owns(&object, attributes.get(PROJECT_LABEL)),
                };
                ours.then(|| format!("{kind} {action} {object}"))
            })
            .collect()
    }

    /// Whether an object with this name and project label is this project's.
    fn owns(&self, name: &str, label: Option<&String>) -> bool {
        let name = name.trim_start_matches('/');
        label.is_some_and(|l| *l == self.name)
            || name == self.name
            || name
                .strip_prefix(self.name.as_str())
                .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('_'))
    }

    /// Removes every container, network and volume of this project.
    fn clean_up(&self, docker: &Docker) -> Result<(), DockerError> {
        block_on(async {
            let options = ListContainersOptionsBuilder::default().all(true).build();
            for c in docker.list_containers(Some(options)).await? {
                let name = c
                    .names
                    .unwrap_or_default()
                    .first()
                    .cloned()
                    .unwrap_or_default();
                let label = c.labels.as_ref().and_then(|l| l.get(PROJECT_LABEL));
                if self.owns(&name, label) {
                    let id = c.id.unwrap_or_default();
                    let force = RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build();
                    if let Err(e) = docker.remove_container(&id, Some(force)).await {
                        eprintln!("cleanup: cannot remove container {name}: {e}");
                    }
                }
            }
            for n in docker.list_networks(None).await? {
                let name = n.name.unwrap_or_default();
                if self.owns(&name, n.labels.as_ref().and_then(|l| l.get(PROJECT_LABEL))) {
                    if let Err(e) = docker.remove_network(&name).await {
                        eprintln!("cleanup: cannot remove network {name}: {e}");
                    }
                }
            }
            let volumes = docker
                .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>)
                .await?;
            for v in volumes.volumes.unwrap_or_default() {
                if self.owns(&v.name, v.labels.get(PROJECT_LABEL)) {
                    let force = RemoveVolumeOptionsBuilder::default().force(true).build();
                    if let Err(e) = docker.remove_volume(&v.name, Some(force)).await {
                        eprintln!("cleanup: cannot remove volume {}: {e}", v.name);
                    }
                }
            }
            // A pulled image keeps a digest reference (`repo@sha256:…`)
            // besides its tag: both go.
            let pushed = self
                .pushed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for repo in &pushed {
                let filters = HashMap::from([("reference", vec![repo.clone()])]);
                let options = ListImagesOptionsBuilder::default()
                    .filters(&filters)
                    .build();
                for image in docker.list_images(Some(options)).await? {
                    let references = image.repo_tags.iter().chain(&image.repo_digests);
                    for reference in references.filter(|r| {
                        r.strip_prefix(repo.as_str())
                            .is_some_and(|rest| rest.starts_with([':', '@']))
                    }) {
                        let removed = docker
                            .remove_image(reference, None::<RemoveImageOptions>, None)
                            .await;
                        if let Err(e) = removed {
                            eprintln!("cleanup: cannot remove image {reference}: {e}");
                        }
                    }
                }
            }
            Ok(())
        })
    }
}

impl Drop for Project {
    /// Runs when the test ends, panicked or not; must not panic itself.
    fn drop(&mut self) {
        match connection() {
            Ok(docker) => {
                if let Err(e) = self.clean_up(docker) {
                    eprintln!("cleanup of project {} failed: {e}", self.name);
                }
            }
            Err(e) => eprintln!(
                "cleanup of project {} skipped: engine unreachable: {e}",
                self.name
            ),
        }
    }
}

/// The engine's current time as the events API takes it (`seconds.nanos`).
fn engine_time(docker: &Docker) -> String {
    let reported = block_on(docker.info())
        .ok()
        .and_then(|i| i.system_time)
        .unwrap_or_else(|| panic!("the engine did not report its time"));
    unix_time(&reported)
        .unwrap_or_else(|| panic!("cannot read the engine's time {reported:?} (RFC 3339 expected)"))
}

/// `2024-05-01T12:00:00.5+02:00` → `1714557600.500000000`.
fn unix_time(rfc3339: &str) -> Option<String> {
    let (date, rest) = rfc3339.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (hms.next()??, hms.next()??, hms.next()??);
    let digits: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    let nanos: u32 = digits.parse().ok()?;
    let offset = match zone.as_bytes().first()? {
        b'Z' | b'z' => 0,
        sign => {
            let (oh, om) = zone[1..].split_once(':')?;
            let minutes = oh.parse::<i64>().ok()? * 60 + om.parse::<i64>().ok()?;
            if *sign == b'-' {
                -minutes * 60
            } else {
                minutes * 60
            }
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 + sec - offset;
    Some(format!("{secs}.{nanos:09}"))
}

/// An image reference with its tag (`:latest` when it has none).
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}
