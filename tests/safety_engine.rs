//! The safety rules of SPEC sections 2, 4 and 9 on the real engine: `plan`
//! and `apply --dry-run` change nothing; orphans are only reported unless
//! `--prune`; objects that lack the project's label are never touched;
//! an image that cannot be pulled stops apply before any change; an
//! unreachable engine is a clear failure.

mod support;

use std::time::Duration;

use support::{
    PROJECT_LABEL, Project, SLOW, create_volume, exists, id_and_state, ids, lock_name, muster,
    muster_exits, muster_ok, names, record_events, run_foreign, sleeper_service,
};

const TWO: &str = r#"project = "{project}"

[services.web]
image = "{image}"
count = COUNT
command = ["sleep", "3600"]
env = { LEVEL = "LEVEL_VALUE" }
init = true
stop_grace_period = "1s"
"#;

fn two(project: &Project, count: u32, level: &str) {
    project.write(
        &TWO.replace("COUNT", &count.to_string())
            .replace("LEVEL_VALUE", level),
    );
}

/// Runs each read-only command and checks its exit code; none may cause
/// an engine event.
fn assert_read_only(project: &Project, changes: bool, situation: &str) {
    let with_changes = if changes { 2 } else { 0 };
    let runs: [(&[&str], i32); 6] = [
        (&["plan"], 0),
        (&["plan", "--detailed-exitcode"], with_changes),
        (
            &["plan", "--output", "json", "--detailed-exitcode"],
            with_changes,
        ),
        (&["apply", "--dry-run"], 0),
        (&["apply", "--dry-run", "--detailed-exitcode"], with_changes),
        (
            &["apply", "--dry-run", "--prune", "--detailed-exitcode"],
            with_changes,
        ),
    ];
    let before = ids(project);
    let events = record_events(project, || {
        for (args, code) in runs {
            let out = muster_exits(project, args, code);
            let summary = if changes { "Plan: " } else { "No changes." };
            if !args.contains(&"json") {
                assert!(out.stdout.contains(summary), "{situation}: {out}");
            }
        }
    });
    assert!(
        events.is_empty(),
        "{situation}: plan / apply --dry-run caused engine events: {events:#?}"
    );
    assert_eq!(ids(project), before, "{situation}");
}

#[test]
fn plan_and_dry_run_cause_no_engine_event_and_detailed_exitcode_tells_whether_there_are_changes() {
    let project = Project::new("readonly");

    two(&project, 2, "info");
    assert_read_only(&project, true, "nothing on the engine yet");
    assert!(project.containers().is_empty());
    assert!(project.networks().is_empty());
    assert!(!exists(&lock_name(&project)));

    muster_ok(&project, &["apply"]);
    assert_read_only(&project, false, "up to date");

    two(&project, 3, "debug");
    assert_read_only(&project, true, "config and count changed");
    for c in project.containers() {
        assert!(project.env(&c.name).contains(&"LEVEL=info".to_string()));
    }
}

const WITH_OLD: &str = r#"project = "{project}"

[services.web]
image = "{image}"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"

[services.old]
image = "{image}"
count = 2
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#;

/// A service renamed in the file keeps its fixed host port on the old
/// (orphaned) container: the plan says which orphan holds it, apply
/// refuses before any change (no container left created and not started),
/// and `--prune` lets the new one have it.
#[test]
fn a_host_port_held_by_an_orphan_is_named_and_refused_before_any_change() {
    let project = Project::new("port-orphan");
    let p = project.name();
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let file = |service: &str| {
        format!(
            "project = \"{{project}}\"\n[services.{service}]\nimage = \"{{image}}\"\n\
             command = [\"sleep\", \"3600\"]\ninit = true\nstop_grace_period = \"1s\"\n\
             ports = [\"{port}:80\"]\n"
        )
    };
    project.write(&file("web"));
    muster_ok(&project, &["apply"]);

    project.write(&file("site"));
    let holds = format!("it holds host port {port}, which site needs");
    let plan = muster_ok(&project, &["plan"]);
    assert!(
        plan.stdout.contains(&format!(
            "! web  orphan  1 container (use --prune to remove); {holds}"
        )),
        "{plan}"
    );
    let json = muster_ok(&project, &["plan", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["orphans"][0]["holds"][0]["port"], port, "{json}");
    assert_eq!(doc["orphans"][0]["holds"][0]["wanted_by"], "site", "{json}");

    let before = ids(&project);
    let out = muster_exits(&project, &["apply"], 1);
    assert!(out.stderr.contains(&holds), "{out}");
    assert!(out.stderr.contains("--prune"), "{out}");
    assert_eq!(ids(&project), before, "apply changed something:\n{out}");
    assert!(!exists(&format!("{p}-site-1")), "a container left behind");

    muster_ok(&project, &["apply", "--prune"]);
    assert_eq!(project.container_names(), names(&project, "site", 1..=1));
}

#[test]
fn orphaned_service_is_reported_left_alone_by_apply_and_removed_only_with_prune() {
    let project = Project::new("orphan");
    let p = project.name();
    project.write(WITH_OLD);
    muster_ok(&project, &["apply"]);
    let old = names(&project, "old", 1..=2);
    let before = ids(&project);
    assert_eq!(before.len(), 3);

    // The service goes away from the file.
    let without_old = &WITH_OLD[..WITH_OLD.find("[services.old]").unwrap()];
    project.write(without_old);
    let plan = muster_exits(&project, &["plan", "--detailed-exitcode"], 0);
    assert!(
        plan.stdout
            .lines()
            .any(|l| l == "! old  orphan  2 containers (use --prune to remove)"),
        "{plan}"
    );
    let json = muster_ok(&project, &["plan", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        doc["orphans"],
        serde_json::json!([{"service": "old", "containers": old}])
    );
    assert_eq!(doc["changes"], serde_json::json!([]));

    let events = record_events(&project, || {
        muster_ok(&project, &["apply"]);
    });
    assert!(
        !events.iter().any(|e| e.contains(&format!("{p}-old-"))),
        "apply touched the orphans: {events:#?}"
    );
    assert_eq!(ids(&project), before);
    for name in &old {
        assert_eq!(id_and_state(name).1, "running");
    }

    let out = muster_exits(
        &project,
        &["apply", "--dry-run", "--prune", "--detailed-exitcode"],
        2,
    );
    assert!(
        out.stdout
            .contains("Plan: 0 to create, 0 to recreate, 0 to start, 2 to remove."),
        "{out}"
    );
    assert_eq!(ids(&project), before);

    muster_ok(&project, &["apply", "--prune"]);
    assert_eq!(project.container_names(), [format!("{p}-web-1")]);
    assert_eq!(
        ids(&project)[&format!("{p}-web-1")],
        before[&format!("{p}-web-1")]
    );
    let out = muster_ok(&project, &["plan"]);
    assert!(!out.stdout.contains("! old"), "{out}");
}

const WEB_WITH_VOLUME: &str = r#"project = "{project}"

[services.web]
image = "{image}"
count = COUNT
command = ["sleep", "3600"]
volumes = ["data-{ordinal}:/data"]
init = true
stop_grace_period = "1s"
"#;

#[test]
fn containers_without_the_project_label_are_never_touched_by_apply_prune_or_down() {
    let project = Project::new("foreign");
    let p = project.name();
    let other = format!("{p}-other");
    // Names that look like muster's, for this project and for another.
    let foreign = [
        (
            format!("{p}-web-3"),
            run_foreign(&format!("{p}-web-3"), &[]),
        ),
        (
            format!("{p}-old-1"),
            run_foreign(&format!("{p}-old-1"), &[("team", "shop")]),
        ),
        (
            format!("{p}-web-4"),
            run_foreign(
                &format!("{p}-web-4"),
                &[
                    ("io.muster.project", other.as_str()),
                    ("io.muster.service", "web"),
                    ("io.muster.ordinal", "4"),
                    ("io.muster.config-hash", "0000000000000000"),
                ],
            ),
        ),
        // The record's name and label, but running: not muster's record.
        (
            format!("{p}-muster-record"),
            run_foreign(
                &format!("{p}-muster-record"),
                &[("io.muster.record-project", p)],
            ),
        ),
        (
            format!("{other}-web-1"),
            run_foreign(
                &format!("{other}-web-1"),
                &[
                    ("io.muster.project", other.as_str()),
                    ("io.muster.service", "web"),
                    ("io.muster.ordinal", "1"),
                    ("io.muster.config-hash", "0000000000000000"),
                ],
            ),
        ),
    ];
    let untouched = |step: &str| {
        for (name, id) in &foreign {
            assert_eq!(
                id_and_state(name),
                (id.clone(), "running".to_string()),
                "after {step}: {name} was touched"
            );
        }
    };

    // Volumes named like the project's, without its label.
    let foreign_volumes = [format!("{p}_data-9"), format!("{p}_cache")];
    create_volume(&foreign_volumes[0], &[]);
    create_volume(
        &foreign_volumes[1],
        &[("io.muster.project", other.as_str())],
    );

    project.write(&WEB_WITH_VOLUME.replace("COUNT", "2"));
    let plan = muster_ok(&project, &["plan"]);
    assert!(!plan.stdout.contains("  orphan  "), "{plan}");
    muster_ok(&project, &["apply", "--prune"]);
    assert_eq!(project.container_names(), names(&project, "web", 1..=2));
    untouched("apply --prune");

    project.write(&WEB_WITH_VOLUME.replace("COUNT", "0"));
    muster_ok(&project, &["apply", "--prune"]);
    assert!(project.containers().is_empty());
    untouched("apply --prune to count 0");

    project.write(&WEB_WITH_VOLUME.replace("COUNT", "1"));
    muster_ok(&project, &["apply"]);
    muster_ok(&project, &["down"]);
    untouched("down");
    muster_ok(&project, &["down", "--volumes"]);
    untouched("down --volumes");
    assert!(project.containers().is_empty());
    assert_eq!(
        project.volumes(),
        [foreign_volumes[1].clone(), foreign_volumes[0].clone()],
        "down --volumes removed a volume without the project's label"
    );
}

#[test]
fn foreign_network_with_the_project_network_name_fails_apply_and_survives_down() {
    let project = Project::new("foreign-net");
    let network = format!("{}_default", project.name());
    let request = bollard::models::NetworkCreateRequest {
        name: network.clone(),
        driver: Some("bridge".into()),
        ..Default::default()
    };
    let id = support::block_on(support::docker().create_network(request))
        .unwrap_or_else(|e| panic!("cannot create network {network}: {e}"))
        .id;
    project.write(&TWO.replace("COUNT", "1").replace("LEVEL_VALUE", "info"));

    let out = muster_exits(&project, &["apply"], 1);
    assert!(out.stderr.contains(&network), "{out}");
    assert!(project.containers().is_empty(), "{out}");
    muster_ok(&project, &["down"]);
    let still = support::block_on(support::docker().inspect_network(&network, None))
        .unwrap_or_else(|e| panic!("down removed the foreign network {network}: {e}"));
    assert_eq!(still.id, Some(id));
}

#[test]
fn foreign_container_holding_a_muster_name_fails_apply_and_stays_untouched() {
    let project = Project::new("squatter");
    let name = format!("{}-web-1", project.name());
    let id = run_foreign(&name, &[]);
    project.write(&TWO.replace("COUNT", "1").replace("LEVEL_VALUE", "info"));

    let out = muster_exits(&project, &["apply"], 1);
    assert!(
        out.stderr.contains(&name),
        "the error does not name {name}:\n{out}"
    );
    assert!(
        out.stderr.contains("taken") || out.stderr.contains("in use"),
        "the error does not say the name is taken:\n{out}"
    );
    assert_eq!(id_and_state(&name), (id.clone(), "running".to_string()));
    let env = project.env(&name);
    assert!(!env.iter().any(|v| v.starts_with("LEVEL=")), "{env:?}");

    // Down does not remove it either.
    muster_ok(&project, &["down"]);
    assert_eq!(id_and_state(&name), (id, "running".to_string()));
}

/// The other side of the rule above: a container that carries the
/// project's label is muster's. One that takes a name after the plan was
/// made (as the last create of a killed apply does when the engine
/// finishes it late) is replaced by the file's container; the apply does
/// not fail on the name.
#[test]
fn a_container_of_the_project_that_takes_a_planned_name_after_the_plan_is_replaced() {
    let project = Project::new("late-twin");
    // `app` waits for `slow`, healthy seconds after it starts.
    project.write(&format!(
        "{SLOW}\n{}env = {{ FROM = \"file\" }}\ndepends_on = [\"slow\"]\n",
        sleeper_service("app", "{image}", 1)
    ));
    let slow = format!("{}-slow-1", project.name());
    let app = format!("{}-app-1", project.name());
    let apply = support::muster_process(project.dir())
        .args(["-f", "services.toml", "apply"])
        .spawn()
        .unwrap();
    // The plan is made: slow is being created, app waits for its health.
    support::wait_until(&format!("{slow} to exist"), Duration::from_secs(60), || {
        exists(&slow)
    });
    let twin = run_foreign(&app, &[(PROJECT_LABEL, project.name())]);
    let out = support::Outcome::from(apply.wait_with_output().unwrap());
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains(&format!("replacing {app}")),
        "the apply does not say it replaced {app}:\n{out}"
    );
    let (id, state) = id_and_state(&app);
    assert_ne!(id, twin, "{app} is still the twin:\n{out}");
    assert_eq!(state, "running");
    assert!(
        project.env(&app).contains(&"FROM=file".to_string()),
        "{out}"
    );
    muster_exits(&project, &["plan", "--detailed-exitcode"], 0);
}

#[test]
fn image_that_cannot_be_pulled_stops_apply_before_any_change() {
    let project = Project::new("noimage");
    let missing = format!("muster-test/no-such-image-{}:1", project.name());
    let another = format!("muster-test/no-such-image-{}:2", project.name());
    project.write(&format!(
        r#"project = "{{project}}"

[services.available]
image = "{{image}}"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"

[services.missing]
image = "{missing}"
volumes = ["data:/data"]

[services.another]
image = "{another}"
"#
    ));
    let plan = muster_exits(&project, &["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains(&format!(
            "! image {missing} is not on the engine; apply pulls it first"
        )),
        "{plan}"
    );

    let mut out = None;
    let events = record_events(&project, || {
        out = Some(muster_exits(&project, &["apply"], 1));
    });
    let out = out.unwrap();
    // The plan first, then every image that cannot be pulled, and what to do.
    assert!(
        out.stdout
            .contains(&format!("! image {missing} is not on the engine")),
        "{out}"
    );
    assert!(
        out.stderr.contains(&missing) && out.stderr.contains(&another),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("next: check each image's name and tag in the file")
            && out.stderr.contains("`docker load -i FILE`")
            && out.stderr.contains("`docker login docker.io`"),
        "{out}"
    );
    assert!(
        out.stderr.contains("cannot be pulled") && out.stderr.contains("nothing was changed"),
        "{out}"
    );
    assert!(events.is_empty(), "apply changed the engine: {events:#?}");
    assert!(project.containers().is_empty());
    assert!(project.networks().is_empty());
    assert!(project.volumes().is_empty());
    assert!(!exists(&lock_name(&project)));
}

#[test]
fn a_docker_host_without_a_scheme_suggests_one() {
    let project = Project::new("noscheme");
    project.write(&TWO.replace("COUNT", "1").replace("LEVEL_VALUE", "info"));
    for (host, like) in [
        ("/var/run/docker.sock", "unix:///var/run/docker.sock"),
        ("127.0.0.1:2375", "tcp://127.0.0.1:2375"),
    ] {
        let out: support::Outcome = project
            .muster()
            .env("DOCKER_HOST", host)
            .arg("plan")
            .output()
            .unwrap()
            .into();
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stderr
                .contains(&format!("\"{host}\" has no scheme; did you mean {like}?")),
            "{out}"
        );
    }
}

#[test]
fn unreachable_engine_fails_with_exit_1_and_names_the_address() {
    let project = Project::new("unreachable");
    project.write(&TWO.replace("COUNT", "1").replace("LEVEL_VALUE", "info"));
    for command in ["plan", "apply", "ps", "down"] {
        let out: support::Outcome = project
            .muster()
            .args(["--host", "unix:///nonexistent.sock", command])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
            .into();
        assert_eq!(out.code, Some(1), "{command}: {out}");
        assert!(
            out.stderr.contains("unix:///nonexistent.sock"),
            "{command}: the error does not name the engine's address:\n{out}"
        );
        assert!(out.stderr.starts_with("error:"), "{command}: {out}");
        assert!(
            out.stderr.contains("cannot connect (no such socket)"),
            "{command}: the error does not say what happened:\n{out}"
        );
        assert!(out.stdout.is_empty(), "{command}: {out}");
    }
    // A socket nobody listens on any more.
    let socket = project.dir().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let out: support::Outcome = project
        .muster()
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .arg("plan")
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("cannot connect (connection refused)"),
        "{out}"
    );
    assert!(project.containers().is_empty());
    let out = muster(&project, &["plan"]);
    assert_eq!(out.code, Some(0), "{out}");
}
