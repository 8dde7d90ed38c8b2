//! Running muster: the one way the tests start the binary, and what a run
//! did ([`Outcome`]); the names, hashes and ids muster gives a project's
//! containers.

use std::collections::BTreeMap;
use std::path::Path;

use super::project::Project;

/// What one run of muster did.
#[derive(Debug)]
pub struct Outcome {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl From<std::process::Output> for Outcome {
    fn from(o: std::process::Output) -> Self {
        Outcome {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `project`'s muster (`-f services.toml`) with `args`.
pub fn muster(project: &Project, args: &[&str]) -> Outcome {
    project
        .muster()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run muster {args:?}: {e}"))
        .into()
}

/// Like [`muster`], and the run must exit with `code`.
pub fn muster_exits(project: &Project, args: &[&str], code: i32) -> Outcome {
    let out = muster(project, args);
    assert_eq!(
        out.code,
        Some(code),
        "muster {args:?} in project {} should exit {code}:\n{out}",
        project.name()
    );
    out
}

/// Like [`muster`], and the run must succeed.
pub fn muster_ok(project: &Project, args: &[&str]) -> Outcome {
    muster_exits(project, args, 0)
}

/// `muster` as a plain process in `dir`: without colour and without the
/// `MUSTER_…`, `CLICOLOR_FORCE` and `RUST_LOG` settings of whoever runs
/// the tests, output piped. Every run of muster in the tests starts here
/// ([`Project::muster`], [`Daemon`](super::Daemon), runs in the background).
pub fn muster_process(dir: &Path) -> std::process::Command {
    muster_binary(Path::new(env!("CARGO_BIN_EXE_muster")), dir)
}

/// [`muster_process`] with another build of muster (e.g. a release build).
pub fn muster_binary(binary: &Path, dir: &Path) -> std::process::Command {
    plain(std::process::Command::new(binary), dir)
}

/// Runs the shell command `line` in `project`'s directory on a
/// pseudo-terminal (`script`, from util-linux), with this build of muster first
/// on its `PATH` and the environment of [`muster_process`]: what the
/// terminal showed (with its `\r\n`s) and the exit code of `line`.
pub fn on_a_terminal(project: &Project, line: &str) -> Outcome {
    let muster = Path::new(env!("CARGO_BIN_EXE_muster"));
    let path = std::env::join_paths(
        std::iter::once(muster.parent().unwrap().to_path_buf()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap();
    let mut script = std::process::Command::new("script");
    script.args(["-qec", line, "/dev/null"]).env("PATH", path);
    assert_cmd::Command::from_std(plain(script, project.dir()))
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {line:?} under script (bsdutils): {e}"))
        .into()
}

/// `cmd` in `dir`, without colour and the caller's muster settings.
fn plain(mut cmd: std::process::Command, dir: &Path) -> std::process::Command {
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("MUSTER_PROJECT")
        .env_remove("MUSTER_FILE")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// The service `name` as muster reads it from the project's current file.
pub fn service_of(project: &Project, name: &str) -> muster::config::Service {
    let text = std::fs::read_to_string(project.file()).unwrap();
    let desired = muster::config::parse_str("services.toml", &text, project.dir())
        .unwrap_or_else(|e| panic!("the test's file is invalid:\n{}", e.render_plain()));
    desired.services[name].clone()
}

/// The config hash muster puts on the containers of service `name`.
pub fn config_hash(project: &Project, name: &str) -> String {
    muster::config::hash_shape(&service_of(project, name).shape())
}

/// `<project>-<service>-<ordinal>` for each ordinal.
pub fn names(
    project: &Project,
    service: &str,
    ordinals: impl IntoIterator<Item = u32>,
) -> Vec<String> {
    ordinals
        .into_iter()
        .map(|o| format!("{}-{service}-{o}", project.name()))
        .collect()
}

/// Container name → id, for the project's containers.
pub fn ids(project: &Project) -> BTreeMap<String, String> {
    project
        .containers()
        .into_iter()
        .map(|c| (c.name, c.id))
        .collect()
}
