//! Commands without a usable file, on the real engine: `down` and `ps`
//! with `--project` find a project by its labels when `services.toml` is
//! missing or invalid (as `docker compose -p NAME down` does), and touch
//! nothing of another project; `scale --apply` never leaves the file
//! ahead of the engine without saying so.

mod support;

use support::{
    Project, create_volume, hold_lock, muster_exits, muster_ok, record_events, run_foreign,
    sleepers_of_project,
};

/// Two sleepers with a volume each, and a volume declared external that
/// carries the project's label (muster made it before it was declared so).
const STORE: &str = r#"project = "{project}"

[volumes.legacy]
external = true
name = "{project}-legacy"

[services.web]
image = "{image}"
count = 2
command = ["sleep", "3600"]
volumes = ["data-{ordinal}:/data", "legacy:/legacy"]
init = true
stop_grace_period = "1s"
"#;

#[test]
fn down_and_ps_with_project_go_by_the_labels_when_the_file_is_missing_or_invalid() {
    let project = Project::new("nofile");
    let p = project.name();
    let legacy = format!("{p}-legacy");
    create_volume(&legacy, &[("io.muster.project", p)]);
    project.write(STORE);
    muster_ok(&project, &["apply"]);
    // Another project's container, and one that only looks like this
    // project's by its name.
    let other = Project::new("nofile-other");
    run_foreign(
        &format!("{}-web-1", other.name()),
        &[("io.muster.project", other.name())],
    );
    run_foreign(&format!("{p}-web-9"), &[]);

    // An invalid file: without --project, the file's located error, exit 3.
    std::fs::write(project.file(), "[services.web]\ncount = \"two\"\n").unwrap();
    for args in [&["down"][..], &["ps"]] {
        let out = muster_exits(&project, args, 3);
        assert!(out.stderr.starts_with("error: services.toml:"), "{out}");
    }
    assert_eq!(project.container_names().len(), 2);

    // With --project: the engine's view, and nothing changes.
    let mut text = None;
    let mut json = None;
    let events = record_events(&project, || {
        text = Some(muster_ok(&project, &["--project", p, "ps"]));
        json = Some(muster_ok(
            &project,
            &["--project", p, "ps", "--output", "json"],
        ));
    });
    assert!(events.is_empty(), "ps changed the engine: {events:?}");
    let text = text.unwrap();
    let lines: Vec<&str> = text.stdout.lines().map(str::trim_end).collect();
    assert_eq!(
        lines[..3],
        [
            format!("project {p}").as_str(),
            "(the engine's view only: no file to compare with)",
            "web  parallel  2/2 running",
        ],
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("    {p}-web-2  running"))),
        "{text}"
    );
    assert!(
        !text.stdout.contains("out of date") && !text.stdout.contains("orphan"),
        "{text}"
    );
    assert!(
        text.stderr.contains("services.toml is invalid")
            && text
                .stderr
                .contains(&format!("going by the labels of project {p}")),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&json.unwrap().stdout).unwrap();
    assert_eq!(json["engine_only"], true);
    assert_eq!(json["services"][0]["desired"], serde_json::Value::Null);
    assert_eq!(
        json["services"][0]["containers"].as_array().unwrap().len(),
        2
    );

    // No file at all: down --volumes --project removes what carries the
    // label, keeps the external volume, and leaves the others alone.
    std::fs::remove_file(project.file()).unwrap();
    let out = muster_ok(&project, &["--project", p, "down", "--volumes"]);
    let here = project.dir().canonicalize().unwrap();
    assert!(
        out.stderr
            .contains(&format!("note: no services.toml in {}; ", here.display())),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("going by the labels of project {p}")),
        "{out}"
    );
    assert!(
        out.stdout.contains("Down: 2 containers removed, 2 volumes"),
        "{out}"
    );
    assert!(
        project.containers().is_empty(),
        "{:?}",
        project.container_names()
    );
    assert!(
        support::exists(&format!("{p}-web-9")),
        "down removed a container without the label"
    );
    assert!(project.networks().is_empty(), "{:?}", project.networks());
    assert_eq!(project.volumes(), [legacy]);
    assert_eq!(other.container_names(), [format!("{}-web-1", other.name())]);
    assert!(other.containers()[0].is_running());
}

#[test]
fn scale_apply_checks_the_engine_before_the_file_and_says_when_the_file_is_ahead() {
    let project = Project::new("scale-ahead");
    project.write(&sleepers_of_project(1));
    muster_ok(&project, &["apply"]);
    let before = std::fs::read_to_string(project.file()).unwrap();

    // The engine does not answer: the file stays as it was.
    let out = muster_exits(
        &project,
        &[
            "--host",
            "unix:///nonexistent/docker.sock",
            "scale",
            "web=2",
            "--apply",
        ],
        1,
    );
    assert!(
        out.stderr
            .starts_with("error: connecting to the Docker engine at "),
        "{out}"
    );
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(std::fs::read_to_string(project.file()).unwrap(), before);

    // The engine answers, the file changes, then the apply fails (another
    // muster holds the lock): it says the file is ahead, and how to finish.
    hold_lock(&project, "a test holding the lock");
    let out = muster_exits(
        &project,
        &["scale", "web=3", "--apply", "--lock-timeout", "1s"],
        1,
    );
    assert!(out.stderr.contains("is locked by"), "{out}");
    assert!(
        out.stderr.trim_end().ends_with(
            "services.toml now says web=3, and the engine does not yet: run `muster apply` to finish"
        ),
        "{out}"
    );
    assert!(
        std::fs::read_to_string(project.file())
            .unwrap()
            .contains("count = 3")
    );
    assert_eq!(project.container_names().len(), 1);

    support::remove_force(&support::lock_name(&project));
    muster_ok(&project, &["apply"]);
    assert_eq!(project.container_names().len(), 3);
}
