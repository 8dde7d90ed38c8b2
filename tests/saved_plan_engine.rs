//! Saved plans on the real engine (SPEC §12): `muster plan --out plan.json`,
//! then `muster apply plan.json` applies exactly that plan, or refuses
//! (exit 1, saying what moved, no engine event) when the file or the
//! project's state on the engine changed since, and refuses a plan file
//! that is another project's, damaged, or of another format version.

mod support;

use support::{Outcome, ids, muster, muster_exits, muster_ok, record_events};
use support::{Project, block_on, docker};

const FILE: &str = r#"project = "{project}"

[services.web]
image = "{image}"
count = COUNT
command = ["sleep", "3600"]
env = { V = "VALUE" }
init = true
stop_grace_period = "1s"
"#;

fn write(project: &Project, count: u32, value: &str) {
    project.write(
        &FILE
            .replace("COUNT", &count.to_string())
            .replace("VALUE", value),
    );
}

/// Container name → state, for the project's containers.
fn states(project: &Project) -> Vec<(String, String)> {
    project
        .containers()
        .into_iter()
        .filter(|c| !c.name.ends_with("-muster-lock"))
        .map(|c| (c.name, c.state))
        .collect()
}

/// `apply PLAN` must exit 1 saying each of `said`, and cause no engine
/// event: nothing changed, no lock taken.
fn refused(project: &Project, plan: &str, said: &[&str]) -> Outcome {
    let before = ids(project);
    let mut out = None;
    let events = record_events(project, || {
        out = Some(muster_exits(project, &["apply", plan], 1));
    });
    let out = out.unwrap();
    for s in said.iter().chain(&["nothing was changed"]) {
        assert!(out.stderr.contains(s), "expected {s:?} in:\n{out}");
    }
    assert!(
        events.is_empty(),
        "a refused plan caused events: {events:#?}"
    );
    assert_eq!(ids(project), before);
    out
}

#[test]
fn a_saved_plan_applies_exactly_and_the_same_plan_twice_is_refused_as_stale() {
    let project = Project::new("saved-apply");
    let p = project.name().to_string();
    write(&project, 2, "a");
    let markdown = muster_exits(
        &project,
        &[
            "apply",
            "--dry-run",
            "--output",
            "markdown",
            "--detailed-exitcode",
        ],
        2,
    );
    assert!(
        markdown
            .stdout
            .starts_with("**Plan: 2 to create, 0 to recreate, 0 to start, 0 to remove.**\n"),
        "{markdown}"
    );
    let planned = muster_exits(
        &project,
        &["plan", "--out", "plan.json", "--detailed-exitcode"],
        2,
    );
    assert!(planned.stdout.contains("Plan: 2 to create"), "{planned}");
    assert!(
        project.containers().is_empty(),
        "plan --out changed the engine"
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.dir().join("plan.json")).unwrap()).unwrap();
    assert_eq!(saved["format_version"], 1);
    assert_eq!(saved["project"], p.as_str());
    assert_eq!(saved["summary"]["create"], 2);
    assert_eq!(saved["file_sha256"].as_str().unwrap().len(), 64);
    assert!(
        saved["fingerprint"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    let applied = muster_ok(&project, &["apply", "plan.json"]);
    assert!(applied.stdout.contains("2 created"), "{applied}");
    let planned_units: Vec<String> = saved["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["container"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        states(&project),
        planned_units
            .iter()
            .map(|n| (n.clone(), "running".to_string()))
            .collect::<Vec<_>>()
    );
    muster_exits(&project, &["plan", "--detailed-exitcode"], 0);

    refused(
        &project,
        "plan.json",
        &[
            "is stale",
            &format!("{p}-web-1 appeared (running)"),
            &format!("{p}-web-2 appeared (running)"),
        ],
    );
}

#[test]
fn a_changed_file_or_a_stopped_container_refuses_the_plan_naming_what_moved() {
    let project = Project::new("saved-moved");
    let p = project.name().to_string();
    write(&project, 2, "a");
    muster_ok(&project, &["apply"]);

    // A config change planned, then the file edited again.
    write(&project, 2, "b");
    muster_exits(
        &project,
        &["plan", "--out", "plan.json", "--detailed-exitcode"],
        2,
    );
    write(&project, 3, "b");
    refused(
        &project,
        "plan.json",
        &["services.toml changed since the plan"],
    );

    // The same change planned, then a container stopped behind muster's back.
    write(&project, 2, "b");
    muster_exits(
        &project,
        &["plan", "--out", "plan.json", "--detailed-exitcode"],
        2,
    );
    let stop = bollard::query_parameters::StopContainerOptionsBuilder::default()
        .t(1)
        .build();
    block_on(docker().stop_container(&format!("{p}-web-2"), Some(stop))).unwrap();
    refused(
        &project,
        "plan.json",
        &[&format!("{p}-web-2 is now exited (was running)")],
    );
    assert_eq!(
        states(&project),
        [
            (format!("{p}-web-1"), "running".to_string()),
            (format!("{p}-web-2"), "exited".to_string()),
        ]
    );

    // Planned afresh, the plan applies: both recreated with the new value.
    muster_exits(
        &project,
        &["plan", "--out", "plan.json", "--detailed-exitcode"],
        2,
    );
    muster_ok(&project, &["apply", "plan.json"]);
    for name in [format!("{p}-web-1"), format!("{p}-web-2")] {
        assert!(project.env(&name).contains(&"V=b".to_string()), "{name}");
    }
    muster_exits(&project, &["plan", "--detailed-exitcode"], 0);
}

#[test]
fn another_projects_plan_a_damaged_file_and_another_format_version_are_refused() {
    let project = Project::new("saved-bad");
    let other = Project::new("saved-other");
    write(&project, 1, "a");
    write(&other, 1, "a");
    muster_exits(&other, &["plan", "--out", "plan.json"], 0);
    let theirs = other.dir().join("plan.json");
    let theirs = theirs.to_str().unwrap();
    refused(
        &project,
        theirs,
        &[&format!(
            "is a plan for project {}, not for project {}",
            other.name(),
            project.name()
        )],
    );

    muster_exits(&project, &["plan", "--out", "plan.json"], 0);
    let good = std::fs::read_to_string(project.dir().join("plan.json")).unwrap();
    std::fs::write(project.dir().join("cut.json"), &good[..good.len() / 2]).unwrap();
    refused(
        &project,
        "cut.json",
        &["cut.json is not a plan saved by muster plan --out"],
    );

    let mut v2: serde_json::Value = serde_json::from_str(&good).unwrap();
    v2["format_version"] = 2.into();
    std::fs::write(project.dir().join("v2.json"), v2.to_string()).unwrap();
    refused(&project, "v2.json", &["format_version 2"]);

    let missing = muster(&project, &["apply", "nowhere.json"]);
    assert_eq!(missing.code, Some(1), "{missing}");
    assert!(
        missing
            .stderr
            .contains("cannot read the saved plan nowhere.json")
    );

    // The plan still applies as it was saved.
    muster_ok(&project, &["apply", "plan.json"]);
    assert_eq!(states(&project).len(), 1);
}

/// A value the file takes from the environment is pinned too: the plan
/// reviewed with `MODE=reviewed` does not create a container with
/// another `MODE`, and a changed `.env` is named as such.
#[test]
fn a_changed_environment_variable_or_env_file_refuses_the_plan() {
    let project = Project::new("saved-env");
    project.write(
        &FILE
            .replace("COUNT", "1")
            .replace("V = \"VALUE\"", "V = \"${MODE:-safe}\""),
    );
    let with_mode = |mode: &str, args: &[&str]| -> Outcome {
        project
            .muster()
            .env("MODE", mode)
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    let out = with_mode("reviewed", &["plan", "--out", "plan.json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let mut out = None;
    let events = record_events(&project, || {
        out = Some(with_mode("evil", &["apply", "plan.json"]));
    });
    let out = out.unwrap();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("an environment variable that the file interpolates")
            && out.stderr.contains("nothing was changed"),
        "{out}"
    );
    assert!(
        events.is_empty(),
        "a refused plan caused events: {events:#?}"
    );
    assert!(states(&project).is_empty());

    // The same with the .env file: named, not as services.toml alone.
    std::fs::write(project.dir().join(".env"), "MODE=a\n").unwrap();
    muster_ok(&project, &["plan", "--out", "plan.json"]);
    std::fs::write(project.dir().join(".env"), "MODE=b\n").unwrap();
    refused(
        &project,
        "plan.json",
        &["services.toml + .env changed since the plan"],
    );

    // As reviewed, it applies.
    std::fs::remove_file(project.dir().join(".env")).unwrap();
    assert_eq!(
        with_mode("reviewed", &["plan", "--out", "plan.json"]).code,
        Some(0)
    );
    let out = with_mode("reviewed", &["apply", "plan.json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let name = format!("{}-web-1", project.name());
    assert!(project.env(&name).contains(&"V=reviewed".to_string()));
}
