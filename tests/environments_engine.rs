//! Environments on the real engine (SPEC §14): one base file with a staging
//! and a production overlay, `${VAR}` values from the environment and from
//! `.env`, sensitive values that no output and no label carries, and files
//! that are refused before the engine is touched.

mod support;

use std::time::Duration;

use support::{Daemon, Project, block_on, docker, muster_exits, muster_ok, record_events};

const T: Duration = Duration::from_secs(90);

/// The base: `web` takes its count and tag from the environment.
const BASE: &str = r#"[sensitive]
env = ["DB_PASSWORD", "API_*"]

[services.web]
image = "${IMAGE:-{image}}"
count = "${WEB_COUNT:-1}"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
env = { TIER = "base", DB_PASSWORD = "${DB_PASSWORD:?set DB_PASSWORD}" }
"#;

const STAGING: &str = r#"[services.web]
count = 2
env = { TIER = "staging" }
"#;

const PRODUCTION: &str = r#"[services.web]
count = 3
env = { TIER = "production", API_TOKEN = "${API_TOKEN}" }

[services.worker]
image = "{image}"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#;

fn write(project: &Project, name: &str, text: &str) {
    std::fs::write(project.dir().join(name), project.fill(text)).unwrap();
}

/// Runs `muster -f services.toml ARGS` with these environment variables.
fn muster_env(project: &Project, env: &[(&str, &str)], args: &[&str]) -> support::Outcome {
    let mut cmd = project.muster();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run muster {args:?}: {e}"))
        .into()
}

fn env_of(project: &Project, container: &str, key: &str) -> Option<String> {
    project
        .env(container)
        .into_iter()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
}

fn running(project: &Project, service: &str) -> usize {
    project
        .containers()
        .iter()
        .filter(|c| c.service() == Some(service) && c.is_running())
        .count()
}

#[test]
fn the_same_base_with_a_staging_and_a_production_overlay_gives_each_project_its_own() {
    let staging = Project::new("env-staging");
    let production = Project::new("env-production");
    for p in [&staging, &production] {
        write(p, "services.toml", BASE);
        write(p, "staging.toml", STAGING);
        write(p, "production.toml", PRODUCTION);
        write(p, ".env", "DB_PASSWORD=from-dotenv\nAPI_TOKEN='tok en'\n");
    }
    muster_ok(&staging, &["-f", "staging.toml", "apply"]);
    muster_ok(&production, &["-f", "production.toml", "apply"]);

    assert_eq!(running(&staging, "web"), 2);
    assert_eq!(running(&staging, "worker"), 0);
    assert_eq!(running(&production, "web"), 3);
    assert_eq!(running(&production, "worker"), 1);
    let web1 = |p: &Project| format!("{}-web-1", p.name());
    assert_eq!(
        env_of(&staging, &web1(&staging), "TIER").as_deref(),
        Some("staging")
    );
    assert_eq!(
        env_of(&production, &web1(&production), "TIER").as_deref(),
        Some("production")
    );
    assert_eq!(
        env_of(&production, &web1(&production), "API_TOKEN").as_deref(),
        Some("tok en")
    );
    assert_eq!(env_of(&staging, &web1(&staging), "API_TOKEN"), None);
    // `.env` supplied the secret; the process environment wins over it.
    assert_eq!(
        env_of(&staging, &web1(&staging), "DB_PASSWORD").as_deref(),
        Some("from-dotenv")
    );
    let out = muster_env(
        &staging,
        &[("WEB_COUNT", "7")],
        &["-f", "staging.toml", "plan", "--detailed-exitcode"],
    );
    assert_eq!(
        out.code,
        Some(0),
        "the overlay's count wins over WEB_COUNT:\n{out}"
    );
    let out = muster_env(
        &staging,
        &[("WEB_COUNT", "4")],
        &["plan", "--detailed-exitcode"],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stdout.contains("2 → 4"),
        "the base alone takes WEB_COUNT:\n{out}"
    );

    // MUSTER_FILE with ':' is the same chain as two -f.
    let out: support::Outcome = support::muster_process(production.dir())
        .env("MUSTER_FILE", "services.toml:production.toml")
        .args(["plan", "--detailed-exitcode"])
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, Some(0), "{out}");

    // `scale` edits the overlay that sets the count, and says so.
    let before = std::fs::read_to_string(production.dir().join("services.toml")).unwrap();
    let out = muster_ok(&production, &["-f", "production.toml", "scale", "web=4"]);
    assert!(out.stdout.contains("Changed production.toml"), "{out}");
    let overlay = std::fs::read_to_string(production.dir().join("production.toml")).unwrap();
    assert!(overlay.contains("count = 4"), "{overlay}");
    assert_eq!(
        std::fs::read_to_string(production.dir().join("services.toml")).unwrap(),
        before
    );
    // …and refuses a count written as an interpolation (the base's).
    let out = muster_exits(&staging, &["scale", "web=3"], 64);
    assert!(
        out.stderr.contains("${WEB_COUNT:-1}") && out.stderr.contains("services.toml"),
        "{out}"
    );
}

#[test]
fn a_changed_sensitive_value_recreates_the_containers_and_no_output_or_label_shows_it() {
    let project = Project::new("env-sensitive");
    write(&project, "services.toml", BASE);
    write(&project, "staging.toml", STAGING);
    let old = "old-secret-0a1b2c";
    let new = "new-secret-3d4e5f";
    let mut seen = String::new();
    let mut run = |password: &str, args: &[&str], code: i32| {
        let out = muster_env(
            &project,
            &[("DB_PASSWORD", password), ("API_KEY", password)],
            args,
        );
        assert_eq!(out.code, Some(code), "muster {args:?}:\n{out}");
        seen.push_str(&out.stdout);
        seen.push_str(&out.stderr);
        out
    };
    run(old, &["-f", "staging.toml", "apply"], 0);
    let ids_before = support::ids(&project);
    assert_eq!(ids_before.len(), 2);

    let text = run(
        new,
        &["-f", "staging.toml", "plan", "--detailed-exitcode"],
        2,
    );
    assert!(
        text.stdout
            .contains("~ env.DB_PASSWORD (sensitive value changed)"),
        "{text}"
    );
    run(new, &["-f", "staging.toml", "plan", "--output", "json"], 0);
    let md = run(
        new,
        &["-f", "staging.toml", "plan", "--output", "markdown"],
        0,
    );
    assert!(
        md.stdout
            .contains("env.DB_PASSWORD (sensitive value changed)"),
        "{md}"
    );
    // -vv: muster's own log of its engine calls too.
    run(new, &["-f", "staging.toml", "apply", "-vv"], 0);
    run(new, &["-f", "staging.toml", "ps"], 0);
    run(new, &["-f", "staging.toml", "ps", "--output", "json"], 0);
    let config = run(new, &["-f", "staging.toml", "config"], 0);
    assert!(
        config.stdout.contains("DB_PASSWORD = \"(sensitive)\""),
        "{config}"
    );
    // A missing secret is an error that names the variable, not a value.
    let out = muster_env(&project, &[], &["-f", "staging.toml", "plan"]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr.contains("DB_PASSWORD"), "{out}");

    let ids_after = support::ids(&project);
    assert_eq!(ids_after.len(), 2);
    for (name, id) in &ids_before {
        assert_ne!(ids_after.get(name), Some(id), "{name} was not recreated");
    }
    for secret in [old, new] {
        assert!(!seen.contains(secret), "an output shows {secret}:\n{seen}");
    }
    for c in project.containers() {
        let inspected = block_on(docker().inspect_container(&c.name, None)).unwrap();
        let labels = serde_json::to_string(&inspected.config.and_then(|c| c.labels)).unwrap();
        for secret in [old, new] {
            assert!(
                !labels.contains(secret),
                "a label of {} holds {secret}: {labels}",
                c.name
            );
        }
        assert!(labels.contains("sensitive:sha256:"), "{labels}");
        // The container itself gets the real value.
        assert_eq!(
            env_of(&project, &c.name, "DB_PASSWORD").as_deref(),
            Some(new)
        );
    }
    // Only --show-sensitive prints it.
    let shown = muster_env(
        &project,
        &[("DB_PASSWORD", new)],
        &["-f", "staging.toml", "config", "--show-sensitive"],
    );
    assert!(shown.stdout.contains(new), "{shown}");
}

#[test]
fn the_daemon_applies_again_when_dotenv_changes() {
    let project = Project::new("env-watch");
    write(&project, "services.toml", BASE);
    write(&project, ".env", "DB_PASSWORD=one\nWEB_COUNT=1\n");
    let d = Daemon::watch(&project, "1h");
    let web1 = format!("{}-web-1", project.name());
    d.wait_until("web-1 runs", T, || running(&project, "web") == 1);
    // Saved by rename, as editors do.
    let tmp = project.dir().join(".env.tmp");
    std::fs::write(&tmp, "DB_PASSWORD=two\nWEB_COUNT=2\n").unwrap();
    std::fs::rename(&tmp, project.dir().join(".env")).unwrap();
    d.wait_until("two containers with the new value", T, || {
        running(&project, "web") == 2
            && env_of(&project, &web1, "DB_PASSWORD").as_deref() == Some("two")
    });
    // An invalid .env is ignored: the last good configuration stays.
    let mark = d.mark();
    std::fs::write(
        project.dir().join(".env"),
        "DB_PASSWORD=three\nnot a pair\n",
    )
    .unwrap();
    d.wait_line(mark, "keeping the last good configuration", T);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(running(&project, "web"), 2);
    assert_eq!(
        env_of(&project, &web1, "DB_PASSWORD").as_deref(),
        Some("two")
    );
    // The daemon printed the plan of each change: the secret is masked there.
    let transcript = d.transcript();
    assert!(
        transcript.contains("env.DB_PASSWORD (sensitive value changed)"),
        "{transcript}"
    );
    for secret in ["\"one\"", "\"two\"", "\"three\"", "=two", "=three"] {
        assert!(!transcript.contains(secret), "{secret}: {transcript}");
    }
}

#[test]
fn hostile_overlays_and_env_files_are_refused_before_the_engine_is_touched() {
    let project = Project::new("env-hostile");
    write(&project, "services.toml", BASE);
    write(&project, ".env", "DB_PASSWORD=x\n");
    write(&project, "evil.toml", "project = \"someone-else\"\n");
    std::fs::write(
        project.dir().join("binary.env"),
        b"DB_PASSWORD=x\n\x00\x01\x02\xff\xfe ELF\x7f",
    )
    .unwrap();
    std::fs::write(
        project.dir().join("control.env"),
        b"DB_PASSWORD=x\nA=\x1b[2J\x07\n",
    )
    .unwrap();
    let huge = "A=".to_string() + &"x".repeat(10 * 1024 * 1024) + "\n";
    std::fs::write(project.dir().join("huge.env"), huge).unwrap();
    std::fs::write(
        project.dir().join("noequals.env"),
        "DB_PASSWORD=x\njust words\n",
    )
    .unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["-f", "evil.toml", "apply"],
            "evil.toml:1:11: an overlay may not change `project`",
        ),
        (&["--env-file", "binary.env", "apply"], "binary.env:"),
        (
            &["--env-file", "control.env", "apply"],
            "control.env:2:3: the .env file holds binary content",
        ),
        (&["--env-file", "huge.env", "apply"], "larger than 1 MiB"),
        (
            &["--env-file", "noequals.env", "apply"],
            "noequals.env:2:1: this line of the .env file is not KEY=VALUE",
        ),
        (&["--env-file", "missing.env", "apply"], "missing.env"),
    ];
    let events = record_events(&project, || {
        for (args, expected) in cases {
            let out = muster_exits(&project, args, 3);
            assert!(
                out.stderr.contains(expected),
                "{args:?}: expected {expected:?}:\n{out}"
            );
            assert!(
                !out.stderr.contains('\u{1b}'),
                "{args:?} prints an escape:\n{out}"
            );
        }
    });
    assert!(events.is_empty(), "the engine was touched: {events:?}");
    assert!(project.containers().is_empty());
}
