//! `muster apply` against the real engine, parallel services: what it
//! creates (names, labels, host names, network aliases), what a scale or a
//! config change does to the containers that exist, per-ordinal volumes,
//! `down`, `ps` and `scale`. Every test asserts on the engine's state.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{
    Project, block_on, config_hash, docker, exec, exists, ids, inspect, muster, muster_exits,
    muster_ok, names, record_events, remove_force, sleepers_of_project, volume_labels,
};

fn sleepers(project: &Project, count: u32) {
    project.write(&sleepers_of_project(count));
}

/// The project's containers are exactly `web-1..=count`, running, each
/// with muster's labels, its host name, and both aliases on the project
/// network.
fn assert_web_containers(project: &Project, count: u32) {
    let p = project.name();
    assert_eq!(
        project.container_names(),
        names(project, "web", 1..=count),
        "containers after applying count = {count}"
    );
    let hash = config_hash(project, "web");
    let network = format!("{p}_default");
    for c in project.containers() {
        let ordinal = c.ordinal().expect("an ordinal label");
        assert_eq!(c.name, format!("{p}-web-{ordinal}"));
        assert_eq!(c.label("io.muster.project"), Some(p));
        assert_eq!(c.label("io.muster.service"), Some("web"));
        assert_eq!(
            c.label("io.muster.ordinal"),
            Some(ordinal.to_string().as_str())
        );
        assert_eq!(c.label("io.muster.config-hash"), Some(hash.as_str()));
        assert!(c.is_running(), "{} is {}", c.name, c.state);

        let inspected = inspect(&c.name);
        let hostname = inspected.config.and_then(|c| c.hostname);
        assert_eq!(hostname.as_deref(), Some(format!("web-{ordinal}").as_str()));
        let networks = inspected
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        assert_eq!(
            networks.keys().collect::<Vec<_>>(),
            [&network],
            "{} should be on the project network only",
            c.name
        );
        let aliases = networks[&network].aliases.clone().unwrap_or_default();
        for alias in ["web".to_string(), format!("web-{ordinal}")] {
            assert!(
                aliases.contains(&alias),
                "{} lacks the alias {alias} on {network}: {aliases:?}",
                c.name
            );
        }
    }
}

#[test]
fn parallel_scale_0_5_2_0_keeps_exactly_ordinals_1_to_count_with_labels_names_and_aliases() {
    let project = Project::new("par-scale");
    let p = project.name();

    sleepers(&project, 0);
    let out = muster_ok(&project, &["apply"]);
    assert!(out.stdout.contains("No changes."), "{out}");
    assert!(project.containers().is_empty());

    sleepers(&project, 5);
    muster_ok(&project, &["apply"]);
    assert_web_containers(&project, 5);
    assert_eq!(project.networks(), [format!("{p}_default")]);
    let network = block_on(docker().inspect_network(&format!("{p}_default"), None)).unwrap();
    assert_eq!(network.driver.as_deref(), Some("bridge"));
    assert_eq!(
        network.labels.unwrap_or_default().get("io.muster.project"),
        Some(&p.to_string())
    );
    let before = ids(&project);

    sleepers(&project, 2);
    muster_ok(&project, &["apply"]);
    assert_web_containers(&project, 2);
    let ordinals: BTreeSet<u32> = project
        .containers()
        .iter()
        .filter_map(|c| c.ordinal())
        .collect();
    assert_eq!(ordinals, BTreeSet::from([1, 2]));
    let after = ids(&project);
    for (name, id) in &after {
        assert_eq!(
            Some(id),
            before.get(name),
            "{name} was recreated by a scale-down"
        );
    }

    sleepers(&project, 0);
    muster_ok(&project, &["apply"]);
    assert!(
        project.containers().is_empty(),
        "left: {:?}",
        project.container_names()
    );
    let out = muster_ok(&project, &["plan"]);
    assert!(out.stdout.contains("No changes."), "{out}");
}

/// muster's record of what it applied: a container removed outside muster
/// is planned as "missing" (not a scale-up), a service scaled up from 0 is
/// `~` (it is not new), and `down` removes the record.
/// A parallel container whose command fails at once fails the apply
/// (exit 1), named with its exit and its last lines, though nothing waits
/// for it: the settle check at the end of its service catches it, whether
/// the engine's events or the list call tell it.
#[test]
fn a_parallel_container_that_exits_at_once_fails_the_apply() {
    let project = Project::new("settle");
    project.write(&format!(
        "project = \"{{project}}\"\n\n{}\n[services.bad]\nimage = \"{{image}}\"\ncount = 2\ncommand = [\"sh\", \"-c\", \"echo cannot bind the port; exit 3\"]\n",
        support::sleeper_service("web", "{image}", 3)
    ));
    let out = muster_exits(&project, &["apply"], 1);
    let p = project.name();
    assert!(
        out.stderr.contains("exited right after it started")
            && out.stderr.contains(&format!("{p}-bad-")),
        "{out}"
    );
    assert!(out.stderr.contains("cannot bind the port"), "{out}");
    assert!(
        out.stderr.contains("(exit code 3)") || out.stderr.contains("(Exited (3)"),
        "{out}"
    );
    // The sleepers are up; the failed ones are left exited for the next apply.
    let states: Vec<(String, String)> = project
        .containers()
        .into_iter()
        .map(|c| (c.name, c.state))
        .collect();
    for k in 1..=3 {
        assert!(
            states.contains(&(format!("{p}-web-{k}"), "running".into())),
            "{states:?}"
        );
    }
    assert!(
        states
            .iter()
            .any(|(n, s)| n.starts_with(&format!("{p}-bad-")) && s == "exited"),
        "{states:?}"
    );
}

#[test]
fn a_vanished_container_is_missing_and_a_scale_up_from_zero_is_not_new() {
    let project = Project::new("vanish");
    let p = project.name();
    let record = format!("{p}-muster-record");
    sleepers(&project, 3);
    let out = muster_ok(&project, &["apply"]);
    assert!(out.stdout.contains("+ web  parallel  0 → 3"), "{out}");
    let labels = inspect(&record).config.and_then(|c| c.labels);
    assert_eq!(
        labels.unwrap_or_default().get("io.muster.applied"),
        Some(&r#"{"web":3}"#.to_string()),
        "the record after the apply"
    );

    remove_force(&format!("{p}-web-3"));
    let out = muster_ok(&project, &["plan"]);
    assert!(
        out.stdout.contains("~ web  parallel  3 containers"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(&format!("+ {p}-web-3  create  (missing)")),
        "{out}"
    );
    let out = muster_ok(&project, &["plan", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["changes"][0]["reason"], "missing", "{out}");
    muster_ok(&project, &["apply"]);
    assert_web_containers(&project, 3);

    sleepers(&project, 0);
    muster_ok(&project, &["apply"]);
    sleepers(&project, 2);
    let out = muster_ok(&project, &["plan"]);
    assert!(out.stdout.contains("~ web  parallel  0 → 2"), "{out}");
    let out = muster_ok(&project, &["ps"]);
    assert!(
        !out.stdout.contains("muster-record"),
        "the record is not a unit: {out}"
    );

    muster_ok(&project, &["down"]);
    assert!(!exists(&record), "down left the record");
    let out = muster_ok(&project, &["plan"]);
    assert!(out.stdout.contains("+ web  parallel  0 → 2"), "{out}");
}

const ENV_FILE: &str = r#"project = "{project}"

[services.web]
image = "{image}"
count = COUNT
command = ["sleep", "3600"]
env = { X = "VALUE" }
init = true
stop_grace_period = "1s"
"#;

fn env_file(project: &Project, count: u32, value: &str) {
    project.write(
        &ENV_FILE
            .replace("COUNT", &count.to_string())
            .replace("VALUE", value),
    );
}

#[test]
fn config_change_recreates_every_container_and_count_change_recreates_none() {
    let project = Project::new("recreate");
    env_file(&project, 2, "a");
    muster_ok(&project, &["apply"]);
    let first = ids(&project);
    let first_hash = config_hash(&project, "web");
    assert_eq!(first.len(), 2);

    env_file(&project, 2, "b");
    let plan = muster_ok(&project, &["plan"]);
    let lines: Vec<&str> = plan.stdout.lines().map(str::trim).collect();
    for want in [
        r#"- env.X = "a""#,
        r#"+ env.X = "b""#,
        &format!("~ {}-web-1  recreate", project.name()),
        &format!("~ {}-web-2  recreate", project.name()),
        "Plan: 0 to create, 2 to recreate, 0 to start, 0 to remove.",
    ] {
        assert!(lines.contains(&want), "the plan lacks {want:?}:\n{plan}");
    }

    muster_ok(&project, &["apply"]);
    let second = ids(&project);
    let second_hash = config_hash(&project, "web");
    assert_ne!(first_hash, second_hash);
    assert_eq!(
        second.keys().collect::<Vec<_>>(),
        first.keys().collect::<Vec<_>>()
    );
    for (name, id) in &second {
        assert_ne!(&first[name], id, "{name} was not recreated");
    }
    for c in project.containers() {
        assert_eq!(c.label("io.muster.config-hash"), Some(second_hash.as_str()));
        assert!(c.is_running(), "{} is {}", c.name, c.state);
        assert!(project.env(&c.name).contains(&"X=b".to_string()));
    }

    env_file(&project, 3, "b");
    muster_ok(&project, &["apply"]);
    let third = ids(&project);
    assert_eq!(
        third.keys().cloned().collect::<Vec<_>>(),
        names(&project, "web", 1..=3)
    );
    for (name, id) in &second {
        assert_eq!(&third[name], id, "{name} was recreated by a count change");
    }
    let out = muster_ok(&project, &["plan"]);
    assert!(out.stdout.contains("No changes."), "{out}");
}

/// Each container remembers in its volume who it was the first time:
/// its host name and a random id.
const STORE: &str = r#"project = "{project}"

[services.store]
image = "{image}"
count = COUNT
command = ["sh", "-c", "[ -f /data/x ] || { hostname; cat /proc/sys/kernel/random/uuid; } > /data/x; exec sleep 3600"]
volumes = ["data-{ordinal}:/data"]
init = true
stop_grace_period = "1s"
"#;

/// The content of /data/x in `container`, once the container wrote it.
fn data_of(container: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out) = exec(container, &["cat", "/data/x"]);
        if code == 0 && out.lines().count() == 2 {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{container} did not write /data/x: {code} {out:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn per_ordinal_volume_gives_a_recreated_container_its_own_data_back() {
    let project = Project::new("ordvol");
    let p = project.name();
    let [one, two]: [String; 2] = names(&project, "store", 1..=2).try_into().unwrap();
    let volumes = [format!("{p}_data-1"), format!("{p}_data-2")];

    project.write(&STORE.replace("COUNT", "2"));
    muster_ok(&project, &["apply"]);
    let data_one = data_of(&one);
    let data_two = data_of(&two);
    assert!(data_one.starts_with("store-1\n"), "{data_one:?}");
    assert!(data_two.starts_with("store-2\n"), "{data_two:?}");
    assert_eq!(project.volumes(), volumes);
    for v in &volumes {
        assert_eq!(
            volume_labels(v)
                .get("io.muster.project")
                .map(String::as_str),
            Some(p)
        );
    }
    let first_two = ids(&project)[&two].clone();

    project.write(&STORE.replace("COUNT", "1"));
    muster_ok(&project, &["apply"]);
    assert_eq!(project.container_names(), std::slice::from_ref(&one));
    assert_eq!(project.volumes(), volumes, "apply removed a volume");

    project.write(&STORE.replace("COUNT", "2"));
    muster_ok(&project, &["apply"]);
    assert_eq!(project.container_names(), [one.clone(), two.clone()]);
    assert_ne!(
        ids(&project)[&two],
        first_two,
        "{two} was not created again"
    );
    assert_eq!(data_of(&two), data_two, "{two} lost its data");
    assert_eq!(data_of(&one), data_one);
    assert_eq!(project.volumes(), volumes);
    let mounts = inspect(&two).mounts.unwrap_or_default();
    assert!(
        mounts
            .iter()
            .any(|m| m.name.as_deref() == Some(volumes[1].as_str())
                && m.destination.as_deref() == Some("/data")),
        "{two} mounts {mounts:?}"
    );
}

#[test]
fn down_keeps_volumes_and_down_volumes_removes_them() {
    let project = Project::new("down");
    let p = project.name();
    project.write(&STORE.replace("COUNT", "2").replace(
        r#"["data-{ordinal}:/data"]"#,
        r#"["data-{ordinal}:/data", "shared:/shared"]"#,
    ));
    muster_ok(&project, &["apply"]);
    let volumes = [
        format!("{p}_data-1"),
        format!("{p}_data-2"),
        format!("{p}_shared"),
    ];
    assert_eq!(project.volumes(), volumes);
    assert_eq!(project.container_names().len(), 2);

    muster_ok(&project, &["down"]);
    assert!(
        project.containers().is_empty(),
        "{:?}",
        project.container_names()
    );
    assert!(project.networks().is_empty(), "{:?}", project.networks());
    assert_eq!(project.volumes(), volumes, "down without --volumes");
    assert!(!exists(&format!("{p}-muster-lock")), "down left its lock");

    muster_ok(&project, &["down", "--volumes"]);
    assert!(project.volumes().is_empty(), "{:?}", project.volumes());
    assert!(project.containers().is_empty());
    assert!(project.networks().is_empty());
}

#[test]
fn ps_shows_desired_against_actual_and_apply_starts_a_stopped_container() {
    let project = Project::new("ps");
    let p = project.name();
    let with_port = |count| {
        sleepers_of_project(count).replace("init = true", "ports = [\"8080\"]\ninit = true")
    };
    project.write(&with_port(2));
    muster_ok(&project, &["apply"]);
    let [one, two]: [String; 2] = names(&project, "web", 1..=2).try_into().unwrap();
    let stop = bollard::query_parameters::StopContainerOptionsBuilder::default()
        .t(1)
        .build();
    block_on(docker().stop_container(&two, Some(stop))).unwrap();
    // The file now asks for one more than there is.
    project.write(&with_port(3));

    let host_port: u16 = inspect(&one)
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|ports| ports.get("8080/tcp").cloned().flatten())
        .and_then(|bindings| bindings.first().and_then(|b| b.host_port.clone()))
        .and_then(|port| port.parse().ok())
        .expect("8080/tcp of web-1 is published");

    let mut text = None;
    let mut json = None;
    let events = record_events(&project, || {
        text = Some(muster_ok(&project, &["ps"]));
        json = Some(muster_ok(&project, &["ps", "--output", "json"]));
    });
    assert!(events.is_empty(), "ps changed the engine: {events:?}");

    let text = text.unwrap();
    let lines: Vec<&str> = text.stdout.lines().map(str::trim_end).collect();
    assert!(lines.contains(&"web  parallel  1/3 running"), "{text}");
    let line_of = |name: &str| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("ps does not list {name}:\n{text}"))
            .trim()
            .to_string()
    };
    let web1 = line_of(&one);
    assert!(
        web1.starts_with(&format!("{one}  running")),
        "{web1:?}\n{text}"
    );
    assert!(
        web1.contains(&format!(":{host_port}->8080/tcp")),
        "{web1:?} lacks port {host_port}"
    );
    // Stopped with the current config: ps says what plan does, start.
    assert_eq!(
        line_of(&two),
        format!("{two}  exited  (needs start)"),
        "{text}"
    );
    assert!(!web1.contains("needs"), "{web1:?}");

    let doc: serde_json::Value = serde_json::from_str(&json.unwrap().stdout).unwrap();
    assert_eq!(doc["project"], p);
    let services = doc["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    let web = &services[0];
    assert_eq!(web["service"], "web");
    assert_eq!(web["mode"], "parallel");
    assert_eq!(web["desired"], 3);
    assert_eq!(web["running"], 1);
    let containers = web["containers"].as_array().unwrap();
    let listed: Vec<&str> = containers
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [one.as_str(), two.as_str()]);
    assert_eq!(containers[0]["state"], "running");
    assert_eq!(containers[0]["ordinal"], 1);
    let ports = containers[0]["ports"].as_array().unwrap();
    assert!(
        ports.iter().any(|p| p["container_port"] == 8080
            && p["host_port"] == host_port
            && p["proto"] == "tcp"),
        "{ports:?}"
    );
    assert_eq!(containers[1]["state"], "exited");
    assert_eq!(containers[1]["ports"].as_array().map(Vec::len), Some(0));
    assert_eq!(containers[0]["needs"], serde_json::Value::Null);
    assert_eq!(containers[1]["needs"]["action"], "start", "{doc}");

    // apply starts the stopped container (the same one) and creates the third.
    let before = ids(&project);
    let plan = muster_ok(&project, &["plan"]);
    assert!(
        plan.stdout
            .contains("Plan: 1 to create, 0 to recreate, 1 to start, 0 to remove."),
        "{plan}"
    );
    assert!(plan.stdout.contains(&format!("{two}  start")), "{plan}");
    muster_ok(&project, &["apply"]);
    let after = ids(&project);
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        names(&project, "web", 1..=3)
    );
    assert_eq!(after[&one], before[&one]);
    assert_eq!(
        after[&two], before[&two],
        "{two} was recreated, not started"
    );
    assert!(project.containers().iter().all(|c| c.is_running()));
    let json = muster_ok(&project, &["ps", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["services"][0]["running"], 3);
}

const COMMENTED: &str = r#"# The shop's services. Keep this comment.
project = "{project}"

[services.web]   # the front
image = "{image}"
count   =   1    # scaled by hand, see the runbook
command = [ "sleep",  "3600" ]   # odd spacing stays
init = true
stop_grace_period = "1s"

# a trailing comment
[services.worker]
image = "{image}"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#;

#[test]
fn scale_rewrites_only_the_count_line_prints_a_diff_and_changes_nothing_until_apply() {
    let project = Project::new("scale");
    let p = project.name();
    project.write(COMMENTED);
    muster_ok(&project, &["apply"]);
    let before_ids = ids(&project);
    let before = std::fs::read_to_string(project.file()).unwrap();

    let mut out = None;
    let events = record_events(&project, || {
        out = Some(muster_ok(&project, &["scale", "web=3"]));
    });
    let out = out.unwrap();
    assert!(events.is_empty(), "scale without --apply: {events:?}");
    assert_eq!(ids(&project), before_ids);

    // Byte for byte the same file, but for the count.
    let old_count = "count   =   1    # scaled by hand, see the runbook";
    let new_count = "count   =   3    # scaled by hand, see the runbook";
    let after = std::fs::read_to_string(project.file()).unwrap();
    assert_eq!(before.matches(old_count).count(), 1);
    assert_eq!(after, before.replace(old_count, new_count));

    let diff: Vec<&str> = out.stdout.lines().collect();
    assert!(diff.contains(&"--- a/services.toml"), "{out}");
    assert!(diff.contains(&"+++ b/services.toml"), "{out}");
    assert!(diff.iter().any(|l| l.starts_with("@@")), "{out}");
    assert!(diff.contains(&format!("-{old_count}").as_str()), "{out}");
    assert!(diff.contains(&format!("+{new_count}").as_str()), "{out}");
    let edits = diff
        .iter()
        .filter(|l| {
            (l.starts_with('-') && !l.starts_with("---"))
                || (l.starts_with('+') && !l.starts_with("+++"))
        })
        .count();
    assert_eq!(edits, 2, "{out}");

    muster_ok(&project, &["scale", "web=3", "--apply"]);
    assert_eq!(
        project.container_names(),
        [
            format!("{p}-web-1"),
            format!("{p}-web-2"),
            format!("{p}-web-3"),
            format!("{p}-worker-1"),
        ]
    );
    let now = ids(&project);
    for (name, id) in &before_ids {
        assert_eq!(&now[name], id, "{name} was recreated");
    }

    let out = muster_exits(&project, &["scale", "nosuch=1"], 64);
    assert!(out.stderr.contains("nosuch"), "{out}");
    let out = muster(&project, &["plan"]);
    assert!(out.stdout.contains("No changes."), "{out}");
    assert_eq!(std::fs::read_to_string(project.file()).unwrap(), after);
}

/// A sub-second `stop_grace_period` still gives the process its stop
/// signal first: the engine counts whole seconds, and muster rounds up
/// (800ms used to become 0 s: a SIGKILL at once).
#[test]
fn a_sub_second_stop_grace_period_lets_the_process_handle_its_signal() {
    let project = Project::new("grace");
    project.write(
        "project = \"{project}\"\n[services.web]\nimage = \"{image}\"\n\
         command = [\"sh\", \"-c\", \"trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done\"]\n\
         stop_grace_period = \"800ms\"\n",
    );
    muster_ok(&project, &["apply"]);
    let name = format!("{}-web-1", project.name());
    assert_eq!(inspect(&name).config.unwrap().stop_timeout, Some(1));
    muster_ok(&project, &["restart"]);
    let logs = std::process::Command::new("docker")
        .args(["logs", &name])
        .output()
        .expect("docker logs");
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("got TERM"),
        "{logs:?}"
    );
}
