//! One test's project: a unique name and directory, the `muster` command
//! preconfigured for it, views of its containers, networks and volumes,
//! and cleanup of everything it left on the engine, even when the test
//! panicked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptions, RemoveVolumeOptionsBuilder,
};

use super::engine::{block_on, connection, docker};
use super::image::image;
use super::run::muster_process;

/// The label that marks every object of a project.
pub const PROJECT_LABEL: &str = "io.muster.project";

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
    /// Images named in the last file written, for the event recorder.
    images: std::sync::Mutex<BTreeSet<String>>,
    /// Repositories of the registry helpers, whose local images go on drop.
    pub(super) pushed: std::sync::Mutex<Vec<String>>,
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

    /// Writes `services.toml`, its placeholders filled as [`Project::fill`]
    /// does.
    pub fn write(&self, toml: &str) {
        std::fs::write(self.file(), self.fill(toml)).unwrap();
    }

    /// `toml` with `{image}` replaced by the test image (imported if
    /// needed) and `{project}` by the project's name. Its images are then
    /// the ones the event recorder follows.
    pub fn fill(&self, toml: &str) -> String {
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
        text
    }

    /// The images named in the file last written (with their tags).
    pub fn images(&self) -> BTreeSet<String> {
        self.images.lock().unwrap().clone()
    }

    /// `muster -f services.toml`, run in [`Project::dir`] as
    /// [`muster_process`] runs it, killed after 5 minutes.
    pub fn muster(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::from_std(muster_process(&self.dir));
        cmd.timeout(Duration::from_secs(300))
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

    /// Whether an object with this name and project label is this
    /// project's: labelled with it, or named after it (`<name>-…`, `<name>_…`).
    pub fn owns(&self, name: &str, label: Option<&String>) -> bool {
        Project::owns_name(&self.name, name, label)
    }

    /// [`Project::owns`] for the project named `project`.
    pub fn owns_name(project: &str, name: &str, label: Option<&String>) -> bool {
        let name = name.trim_start_matches('/');
        label.is_some_and(|l| l == project)
            || name == project
            || name
                .strip_prefix(project)
                .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('_'))
    }

    /// Removes every container, network and volume of this project.
    fn clean_up(&self, docker: &Docker) -> Result<(), DockerError> {
        block_on(async {
            // Swarm services and the swarm lock first: their task
            // containers (named `<project>_…`) go with the containers below.
            // An engine that is not a swarm manager has none.
            for s in docker
                .list_services(None::<bollard::query_parameters::ListServicesOptions>)
                .await
                .unwrap_or_default()
            {
                let spec = s.spec.unwrap_or_default();
                let name = spec.name.unwrap_or_default();
                if self.owns(
                    &name,
                    spec.labels.as_ref().and_then(|l| l.get(PROJECT_LABEL)),
                ) {
                    if let Err(e) = docker.delete_service(&name).await {
                        eprintln!("cleanup: cannot remove swarm service {name}: {e}");
                    }
                }
            }
            for c in docker
                .list_configs(None::<bollard::query_parameters::ListConfigsOptions>)
                .await
                .unwrap_or_default()
            {
                let name = c.spec.and_then(|s| s.name).unwrap_or_default();
                if self.owns(&name, None) {
                    let _ = docker.delete_config(&name).await;
                }
            }
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

/// An image reference with its tag (`:latest` when it has none).
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}
