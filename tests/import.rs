//! `muster import`: the compose corpus of `tests/fixtures/compose/` converted,
//! snapshotted (output and warnings) and validated; the command's errors.

mod support;

use std::path::{Path, PathBuf};

use support::muster_process;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose")
}

/// Converts one fixture as `muster import` does and checks the result validates.
fn import(name: &str) -> String {
    let dir = corpus();
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.join(f));
    let vars = muster::import::compose_vars(&read);
    let imported = muster::import::convert(name, &text, "compose", &read, &vars).unwrap();
    if let Err(invalid) = muster::config::parse_str("services.toml", &imported.toml, &dir) {
        panic!(
            "{name}: the output does not validate:\n{}\n{}",
            invalid.render_plain(),
            imported.toml
        );
    }
    let mut out = imported.toml;
    out.push_str("\n----- warnings -----\n");
    for w in &imported.warnings {
        out.push_str(&format!("{name}:{}: {}\n", w.line, w.message));
    }
    out
}

#[test]
fn short_forms() {
    insta::assert_snapshot!(import("short_forms.yml"));
}

#[test]
fn long_forms() {
    insta::assert_snapshot!(import("long_forms.yml"));
}

#[test]
fn what_cannot_be_carried_over() {
    insta::assert_snapshot!(import("unsupported.yml"));
}

#[test]
fn every_fixture_is_in_a_test() {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["long_forms.yml", "short_forms.yml", "unsupported.yml"]
    );
}

#[test]
fn invalid_yaml_is_located_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  web:\n    image: [oops\n  db: {}\n",
    )
    .unwrap();
    let out = muster_process(dir.path())
        .args(["import", "docker-compose.yml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("docker-compose.yml:4:"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn writes_with_o_refuses_to_overwrite_and_force_replaces() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        corpus().join("short_forms.yml"),
        dir.path().join("docker-compose.yml"),
    )
    .unwrap();
    std::fs::copy(corpus().join("app.env"), dir.path().join("app.env")).unwrap();
    let run = |args: &[&str]| muster_process(dir.path()).args(args).output().unwrap();

    let first = run(&["import", "docker-compose.yml", "-o", "services.toml"]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: docker-compose.yml:18: port range"),
        "{stderr}"
    );
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(
        said.starts_with("wrote services.toml (3 services, "),
        "{said}"
    );
    let written = std::fs::read_to_string(dir.path().join("services.toml")).unwrap();
    assert!(written.contains("[services.web]"));
    let valid = run(&["validate"]);
    assert_eq!(
        valid.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );

    std::fs::write(dir.path().join("services.toml"), "# mine\n").unwrap();
    let refused = run(&["import", "docker-compose.yml", "-o", "services.toml"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("services.toml")).unwrap(),
        "# mine\n"
    );

    let forced = run(&[
        "import",
        "docker-compose.yml",
        "-o",
        "services.toml",
        "--force",
    ]);
    assert_eq!(forced.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("services.toml")).unwrap(),
        written
    );
}

#[test]
fn stdout_without_o_and_missing_file_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yml"),
        "services:\n  web:\n    image: x\n",
    )
    .unwrap();
    let out = muster_process(dir.path())
        .args(["import", "c.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[services.web]\nimage = \"x\"\n"));
    let missing = muster_process(dir.path())
        .args(["import", "nope.yml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(3));
}

mod generated {
    use proptest::prelude::*;

    /// Compose snippets, valid and not, for one service's keys.
    const SNIPPETS: &[&[&str]] = &[
        &["image: x", "image: ''", "image: 'a b'", "build: ."],
        &[
            "ports: ['80', '8080:80', '127.0.0.1:8081:80/udp']",
            "ports: ['0:80', '99999', '80/sctp', abc, '3000-3001', '']",
            "ports: [{target: 80}, {target: 80, published: 8080}, {published: 1}]",
            "ports: ['[::1]:1:1', '1.2.3.4:5:6', 'x:1:2', '1:2:3:4']",
        ],
        &[
            "volumes: ['data:/d', './c:/c:ro', /anon, 'd:rel', 'd:/d:zz']",
            "volumes: [{type: bind, source: x, target: /x}, {type: volume, target: /v}, 'd:/']",
            "volumes: ['a:/same', 'b:/same', 'c:/same/']",
            "volumes: ['x{ordinal}:/o', './b{ordinal}:/b', 'e:/e{ordinal}']",
        ],
        &[
            "environment: [A=1, '1BAD=x', B, '=x', 'C=has spaces']",
            "environment: {A: 1, B: null, 'C D': x, E: [1]}",
        ],
        &[
            "healthcheck: {test: 'x'}",
            "healthcheck: {test: []}",
            "healthcheck: {test: [CMD]}",
            "healthcheck: {test: [CMD, x], retries: 0, interval: 10}",
            "healthcheck: {test: 'a \"unclosed', timeout: 99999h}",
            "healthcheck: {disable: true}",
        ],
        &[
            "deploy: {replicas: 3}",
            "deploy: {replicas: -1}",
            "deploy: {replicas: 5000}",
            "deploy: {resources: {limits: {cpus: '0', memory: 1k}}}",
            "deploy: {resources: {limits: {cpus: 2000, memory: 99999999g}}}",
            "deploy: {update_config: {parallelism: 0, order: x}}",
            "deploy: {placement: {constraints: [node.role == worker], max_replicas_per_node: 1}}",
            "deploy: {placement: {constraints: 5, max_replicas_per_node: 0}}",
            "scale: 2",
        ],
        &[
            "stop_signal: FOO",
            "stop_signal: 9",
            "stop_signal: SIGKILL",
            "stop_grace_period: 10",
            "stop_grace_period: 99999h",
        ],
        &[
            "depends_on: [other]",
            "depends_on: [nope, web]",
            "depends_on: {other: {condition: x}}",
        ],
        &[
            "labels: ['io.muster.x=1', 'a=b', c]",
            "labels: {a: 1, '': x}",
        ],
        &[
            "command: ''",
            "command: []",
            "command: 'a \"unclosed'",
            "entrypoint: [sh, -c]",
        ],
        &["expose: [abc, 0, '80/udp', 70000]", "expose: ['9000']"],
        &[
            "restart: sometimes",
            "restart: on-failure:x",
            "user: ''",
            "working_dir: rel",
            "init: yes",
        ],
    ];

    fn service() -> impl Strategy<Value = Vec<String>> {
        let keys: Vec<_> = SNIPPETS
            .iter()
            .map(|choices| proptest::option::of(proptest::sample::select(choices.to_vec())))
            .collect();
        keys.prop_map(|picked| picked.into_iter().flatten().map(str::to_string).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Whatever compose keys a service has, the output validates.
        #[test]
        fn the_output_always_validates(web in service(), other in service()) {
            let indent = |lines: &[String]| lines.iter().map(|l| format!("    {l}\n")).collect::<String>();
            let text = format!(
                "services:\n  web:\n{}  other:\n{}",
                indent(&web),
                indent(&other)
            );
            let read = |_: &str| Err(std::io::Error::other("no env files here"));
            let imported = muster::import::convert("c.yml", &text, "dir", &read, &muster::config::interpolate::Vars::default())
                .map_err(|e| TestCaseError::fail(format!("{}\n{text}", e.render_plain())))?;
            if let Err(invalid) = muster::config::parse_str("services.toml", &imported.toml, std::path::Path::new("/tmp")) {
                return Err(TestCaseError::fail(format!(
                    "{}\n--- compose ---\n{text}\n--- toml ---\n{}",
                    invalid.render_plain(),
                    imported.toml
                )));
            }
        }
    }
}

/// `${VAR}` forms are kept as written and checked with the values compose
/// would give them: the `.env` beside the compose file (not only the shell
/// of whoever imports); a required one is not dropped.
#[test]
fn compose_variables_are_kept_and_checked_with_the_compose_files_dot_env() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "MUSTER_IMPORT_WEB_PORT=8080\nMUSTER_IMPORT_SECRET=x\n",
    )
    .unwrap();
    let text = "services:\n  web:\n    image: busybox\n    ports: [\"${MUSTER_IMPORT_WEB_PORT}:80\", \"443\"]\n    environment:\n      SECRET: \"${MUSTER_IMPORT_SECRET:?set it}\"\n";
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f));
    let vars = muster::import::compose_vars(&read);
    let imported = muster::import::convert("c.yml", text, "dir", &read, &vars).unwrap();
    assert!(
        imported
            .toml
            .contains(r#"ports = ["${MUSTER_IMPORT_WEB_PORT}:80", "443"]"#),
        "{}",
        imported.toml
    );
    assert!(
        imported
            .toml
            .contains(r#"SECRET = "${MUSTER_IMPORT_SECRET:?set it}""#),
        "{}",
        imported.toml
    );
    assert!(
        imported
            .warnings
            .iter()
            .all(|w| !w.message.contains("left out")),
        "{:?}",
        imported.warnings
    );
    let desired =
        muster::config::parse_str_with("services.toml", &imported.toml, dir.path(), &vars).unwrap();
    assert_eq!(desired.services["web"].env["SECRET"], "x");
}
