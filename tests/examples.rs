//! The examples users copy from: each validates, and each points editors at
//! the schema.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

const SCHEMA_LINE: &str = "#:schema ../../schema/services.schema.json";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `examples/*/services.toml`, sorted.
fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path().join("services.toml"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn the_documented_examples_exist() {
    let names: Vec<String> = examples()
        .iter()
        .map(|p| {
            p.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for want in ["app", "db-cluster", "quickstart", "web", "workers"] {
        assert!(
            names.iter().any(|n| n == want),
            "examples/{want}/services.toml is missing"
        );
    }
}

#[test]
fn every_example_validates() {
    for file in examples() {
        let out = Command::cargo_bin("muster")
            .unwrap()
            .current_dir(root())
            .env("NO_COLOR", "1")
            .env_remove("MUSTER_FILE")
            .env_remove("MUSTER_PROJECT")
            .arg("validate")
            .arg("-f")
            .arg(file.strip_prefix(root()).unwrap())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} is invalid:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_example_starts_with_the_schema_line() {
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(first, SCHEMA_LINE, "first line of {}", file.display());
        let schema = file
            .parent()
            .unwrap()
            .join(SCHEMA_LINE.trim_start_matches("#:schema "));
        assert!(schema.is_file(), "{} does not exist", schema.display());
    }
}

/// The quickstart must run on an engine without a registry: all its
/// services run one local image, the one `examples/image.sh` (which its
/// `up.sh` runs) imports; so does the swarm quick start.
#[test]
fn quickstart_needs_no_registry() {
    let importer = std::fs::read_to_string(root().join("examples/image.sh")).unwrap();
    for quick in ["quickstart", "swarm"] {
        let up =
            std::fs::read_to_string(root().join("examples").join(quick).join("up.sh")).unwrap();
        assert!(
            up.contains("image.sh"),
            "examples/{quick}/up.sh runs image.sh"
        );
        let desired =
            muster::config::load(&root().join("examples").join(quick).join("services.toml"))
                .unwrap();
        for s in desired.services.values() {
            assert!(
                importer.contains(&s.image),
                "examples/image.sh does not import {}",
                s.image
            );
        }
    }
    let dir = root().join("examples/quickstart");
    let desired = muster::config::load(&dir.join("services.toml")).unwrap();
    let images: std::collections::BTreeSet<&str> = desired
        .services
        .values()
        .map(|s| s.image.as_str())
        .collect();
    assert_eq!(images.len(), 1, "one local image: {images:?}");
    let image = images.first().unwrap();
    assert!(
        *image == "muster-test/busybox:latest" || importer.contains(image),
        "nothing in examples/ imports {image}"
    );
    assert!(desired.services.values().all(|s| s.init));
    assert!(
        desired
            .services
            .values()
            .any(|s| s.mode == muster::config::Mode::Sequential && s.count == 3)
    );
    assert!(
        desired
            .services
            .values()
            .any(|s| s.mode == muster::config::Mode::Parallel && s.count == 3)
    );
}

/// The command lines of `examples/ci/` that run muster: every line whose
/// command (after YAML's `- ` and `run: `) starts with `muster`, cut at the
/// first shell operator, as argument vectors.
fn muster_commands(file: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("- ").unwrap_or(line).trim_start();
        let line = line.strip_prefix("run: ").unwrap_or(line);
        if !line.starts_with("muster ") {
            continue;
        }
        let words = shell_words::split(line)
            .unwrap_or_else(|e| panic!("{}: cannot split {line:?}: {e}", file.display()));
        let args: Vec<String> = words
            .into_iter()
            .take_while(|w| !w.starts_with(['>', '<', '|', '&', ';', '#']) && !w.starts_with("2>"))
            .collect();
        out.push(args);
    }
    out
}

/// Each CI example runs `validate`, saves a markdown plan with
/// `--detailed-exitcode`, and applies the saved plan, with flags that the
/// real command line accepts.
#[test]
fn every_muster_command_of_the_ci_examples_parses() {
    use clap::Parser;
    use muster::cli::{Cli, Command};
    use muster::output::Format;

    for file in [
        "examples/ci/github/muster.yml",
        "examples/ci/gitlab/.gitlab-ci.yml",
    ] {
        let commands = muster_commands(&root().join(file));
        let (mut validate, mut plan, mut apply) = (false, false, false);
        for args in &commands {
            let cli = Cli::try_parse_from(args)
                .unwrap_or_else(|e| panic!("{file}: `{}` does not parse:\n{e}", args.join(" ")));
            match cli.command {
                Command::Validate => validate = true,
                Command::Plan {
                    plan: p,
                    out,
                    targets,
                } => {
                    assert!(targets.is_empty(), "{file}: {args:?}");
                    assert!(p.detailed_exitcode, "{file}: {args:?}");
                    assert_eq!(p.output, Format::Markdown, "{file}: {args:?}");
                    assert_eq!(out.as_deref(), Some(Path::new("plan.json")), "{file}");
                    plan = true;
                }
                Command::Apply { targets, .. } => {
                    assert_eq!(targets, ["plan.json"], "{file}");
                    apply = true;
                }
                other => panic!("{file}: unexpected command {other:?}"),
            }
        }
        assert!(
            validate && plan && apply,
            "{file} must validate, plan and apply: {commands:?}"
        );
    }
}

/// `examples/environments/`: the base alone, and the base with each
/// overlay and the variables of `.env.example`, validate; an overlay
/// without its secrets is refused, naming the variable; the CI job's
/// commands parse and plan in markdown with `--detailed-exitcode`.
#[test]
fn the_environments_example_validates_with_each_overlay() {
    use clap::Parser;
    use muster::cli::{Cli, Command as Cmd};
    use muster::output::Format;

    let dir = root().join("examples/environments");
    let run = |args: &[&str], env_file: Option<&str>| {
        let mut cmd = Command::cargo_bin("muster").unwrap();
        cmd.current_dir(&dir)
            .env("NO_COLOR", "1")
            .env_remove("MUSTER_FILE")
            .env_remove("MUSTER_PROJECT")
            .env_remove("MUSTER_ENV_FILE")
            .env_remove("API_TAG")
            .env_remove("DB_PASSWORD")
            .env_remove("PAYMENTS_TOKEN");
        if let Some(f) = env_file {
            cmd.args(["--env-file", f]);
        }
        cmd.args(args).output().unwrap()
    };
    let out = run(&["-f", "services.toml", "validate"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (overlay, containers) in [
        ("staging.toml", "4 containers"),
        ("production.toml", "25 containers"),
    ] {
        let out = run(
            &["-f", "services.toml", "-f", overlay, "validate"],
            Some(".env.example"),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{overlay}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(containers), "{overlay}: {stdout}");
        let out = run(&["-f", "services.toml", "-f", overlay, "validate"], None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{overlay}: {stderr}");
        assert!(
            stderr.contains(&format!("error: {overlay}:")) && stderr.contains("API_TAG"),
            "{stderr}"
        );
    }
    let commands = muster_commands(&dir.join("ci.yml"));
    let mut plan = false;
    for args in &commands {
        let cli = Cli::try_parse_from(args)
            .unwrap_or_else(|e| panic!("ci.yml: `{}` does not parse:\n{e}", args.join(" ")));
        if let Cmd::Plan { plan: p, .. } = cli.command {
            assert!(
                p.detailed_exitcode && p.output == Format::Markdown,
                "{args:?}"
            );
            plan = true;
        }
    }
    assert!(plan, "ci.yml must plan: {commands:?}");
}
