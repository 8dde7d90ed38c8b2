//! The quick starts as a user runs them after `cargo install`: a copy of
//! `examples/quickstart` (or `examples/swarm`) outside the source tree,
//! with an installed `muster` on `PATH` and no cargo there, against the
//! real engine.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::InspectServiceOptions;
use support::{
    Project, block_on, docker, exec, muster_ok, replicas, swarm_manager, task_containers,
    wait_until,
};

/// Copies `examples/<example>` into `project`'s directory as a user would:
/// up.sh and its file there, image.sh one level up, as in the repository;
/// `edit` changes the file's text. Runs up.sh with "installed" muster: a
/// directory on PATH that holds `muster`, and no cargo on that PATH, so a
/// fall-back to `cargo run` fails. Returns up.sh's stdout, having checked
/// that it succeeded.
fn run_up(project: &Project, example: &str, edit: impl FnOnce(String) -> String) -> String {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = project.dir();
    let above = dir.parent().unwrap();
    let text = std::fs::read_to_string(examples.join(example).join("services.toml")).unwrap();
    std::fs::write(dir.join("services.toml"), edit(text)).unwrap();
    for (from, to) in [
        (format!("{example}/up.sh"), dir.join("up.sh")),
        ("image.sh".to_string(), above.join("image.sh")),
    ] {
        std::fs::copy(examples.join(&from), &to)
            .unwrap_or_else(|e| panic!("cannot copy {from}: {e}"));
    }
    let bin = above.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_muster"), bin.join("muster")).unwrap();
    let path = std::env::join_paths([
        bin.as_path(),
        Path::new("/usr/local/sbin"),
        Path::new("/usr/local/bin"),
        Path::new("/usr/sbin"),
        Path::new("/usr/bin"),
        Path::new("/sbin"),
        Path::new("/bin"),
    ])
    .unwrap();
    let out = std::process::Command::new(dir.join("up.sh"))
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("MUSTER_FILE")
        .env_remove("MUSTER_PROJECT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "up.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

#[test]
fn the_quick_start_runs_from_a_copy_with_an_installed_muster() {
    // No `project =`, so the directory names the project.
    let project = Project::new("quick");
    let stdout = run_up(&project, "quickstart", |text| text);
    assert!(
        stdout.contains("Plan: 6 to create") && stdout.contains("Applied: 6 created"),
        "{stdout}"
    );
    let p = project.name();
    let mut running: Vec<String> = project
        .containers()
        .into_iter()
        .filter(|c| c.is_running())
        .map(|c| c.name)
        .collect();
    running.sort();
    let want: Vec<String> = [
        "ring-1",
        "ring-2",
        "ring-3",
        "sleeper-1",
        "sleeper-2",
        "sleeper-3",
    ]
    .iter()
    .map(|n| format!("{p}-{n}"))
    .collect();
    assert_eq!(running, want, "{stdout}");
}

/// The swarm quick start, as the README gives it, on the engine (a swarm
/// manager, as `.ci/run` makes it): every task runs, each web task answers
/// over HTTP on the port published on its node, and a web task reaches
/// each db ordinal by its name (dnsrr, on any kernel).
#[test]
fn the_swarm_quick_start_runs_and_answers_on_its_published_ports() {
    swarm_manager();
    let project = Project::new("swarmquick");
    let p = project.name().to_string();
    let stdout = run_up(&project, "swarm", |text| {
        assert!(text.contains("project = \"swarmdemo\""), "{text}");
        text.replace("project = \"swarmdemo\"", &format!("project = \"{p}\""))
    });
    assert!(
        stdout.contains("Plan: 5 to create") && stdout.contains("Applied: 5 created"),
        "{stdout}"
    );
    let web = format!("{p}_web");
    assert_eq!(replicas(&web), Some(3), "{stdout}");

    // Each task's 8080, published on this node's ephemeral port (which
    // `muster ps` shows on the task's row, as the engine does on its
    // container), serves its own /etc: /hostname is the task's host name.
    let tasks = task_containers(&web);
    let engine_ports: BTreeSet<u16> = tasks
        .iter()
        .flat_map(|t| t.ports.iter().flatten())
        .filter(|port| port.private_port == 8080)
        .filter_map(|port| port.public_port)
        .collect();
    let ps = muster_ok(&project, &["ps"]);
    let slots: Vec<(String, u16)> = ps
        .stdout
        .lines()
        .filter_map(|line| {
            let slot = line.trim_start().strip_prefix("slot ")?.split(' ').next()?;
            let (_, port) = line.split_once("0.0.0.0:")?;
            let port = port.strip_suffix("->8080/tcp")?.parse().ok()?;
            Some((format!("web-{slot}"), port))
        })
        .collect();
    assert_eq!(slots.len(), 3, "a port on each task's row:\n{ps}");
    let shown: BTreeSet<u16> = slots.iter().map(|(_, port)| *port).collect();
    assert_eq!(shown, engine_ports, "{ps}");
    for (host, port) in slots {
        let mut name = String::new();
        wait_until(
            "the task answers on its port",
            Duration::from_secs(30),
            || {
                name = http_get(port, "/hostname").unwrap_or_default();
                !name.is_empty()
            },
        );
        assert_eq!(name.trim(), host, "port {port}:\n{ps}");
    }

    // A web task reaches db-1 and db-2 by name over the overlay network.
    let task = tasks[0].names.as_ref().unwrap()[0]
        .trim_start_matches('/')
        .to_string();
    for db in ["db-1", "db-2"] {
        let script = format!("echo | nc -w 2 {db} 7000");
        let mut said = String::new();
        wait_until(&format!("{db} answers"), Duration::from_secs(30), || {
            said = exec(&task, &["sh", "-c", &script]).1;
            said.contains(&format!("hello from {db}"))
        });
    }

    muster_ok(&project, &["down"]);
    for service in [web, format!("{p}_db-1"), format!("{p}_db-2")] {
        assert!(
            block_on(docker().inspect_service(&service, None::<InspectServiceOptions>)).is_err(),
            "down left {service}"
        );
    }
}

/// The body of `GET path` on 127.0.0.1:`port`, or `None` while nothing
/// answers there with 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    (head.split(' ').nth(1) == Some("200")).then(|| body.to_string())
}
