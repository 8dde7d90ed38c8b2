//! The round trip of `muster import` on the real engine: a compose file of
//! the test image brought up by `docker-compose`, and the same file
//! imported and applied by muster under another project name, give
//! containers with the same image, command, entrypoint, environment,
//! container ports and mounts.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use support::*;

/// `docker-compose -p NAME -f FILE`, brought down with its volumes when dropped.
struct Compose {
    name: String,
    file: std::path::PathBuf,
}

impl Compose {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker-compose")
            .args(["-p", &self.name, "-f"])
            .arg(&self.file)
            .args(args)
            .env("DOCKER_HOST", docker_host())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run docker-compose ({e}): install it (apt-get install docker-compose)"
                )
            })
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let out = self.run(&["down", "-v", "-t", "1"]);
        if !out.status.success() {
            eprintln!(
                "docker-compose down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

const COMPOSE: &str = r#"
services:
  web:
    image: IMAGE
    entrypoint: ["sh", "-c"]
    command: ["echo started; exec sleep 3600"]
    init: true
    stop_grace_period: 1s
    stop_signal: SIGTERM
    user: "1000"
    working_dir: /tmp
    environment:
      LOG_LEVEL: debug
      WORKERS: 4
    env_file: app.env
    ports:
      - "8080"
      - target: 53
        protocol: udp
    expose:
      - "9000"
    volumes:
      - data:/data
      - ./conf:/etc/conf:ro
      - type: bind
        source: ./static
        target: /srv/static
        read_only: true
    labels:
      team: shop
  worker:
    image: IMAGE
    command: sh -c 'echo working; exec sleep 3600'
    init: true
    environment:
      - MODE=worker
    depends_on:
      - web
volumes:
  data:
"#;

/// What must match: image, command, entrypoint, the file's env vars,
/// container ports, mounts (target, read-write) and the file's labels.
fn shape(container: &str, env_keys: &BTreeSet<String>) -> BTreeMap<&'static str, String> {
    let c = inspect(container);
    let config = c.config.unwrap_or_default();
    let env: BTreeSet<String> = config
        .env
        .unwrap_or_default()
        .into_iter()
        .filter(|e| env_keys.contains(e.split('=').next().unwrap_or("")))
        .collect();
    let ports: BTreeSet<String> = config
        .exposed_ports
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mounts: BTreeSet<String> = c
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            format!(
                "{:?} {} rw={:?}",
                m.typ,
                m.destination.unwrap_or_default(),
                m.rw
            )
        })
        .collect();
    let host = c.host_config.unwrap_or_default();
    BTreeMap::from([
        ("image", config.image.unwrap_or_default()),
        ("cmd", format!("{:?}", config.cmd)),
        ("entrypoint", format!("{:?}", config.entrypoint)),
        ("env", format!("{env:?}")),
        ("ports", format!("{ports:?}")),
        ("mounts", format!("{mounts:?}")),
        ("user", config.user.unwrap_or_default()),
        ("working_dir", config.working_dir.unwrap_or_default()),
        ("init", format!("{:?}", host.init)),
        (
            "team label",
            format!("{:?}", config.labels.unwrap_or_default().get("team")),
        ),
    ])
}

#[test]
fn compose_up_and_import_apply_give_the_same_containers() {
    let project = Project::new("import-rt");
    let dir = project.dir();
    std::fs::write(
        dir.join("docker-compose.yml"),
        COMPOSE.replace("IMAGE", image()),
    )
    .unwrap();
    std::fs::write(dir.join("app.env"), "FROM_FILE=yes\nLOG_LEVEL=overridden\n").unwrap();
    std::fs::create_dir(dir.join("conf")).unwrap();
    std::fs::create_dir(dir.join("static")).unwrap();

    let compose = Compose {
        name: format!("{}c", project.name().replace('-', "")),
        file: dir.join("docker-compose.yml"),
    };
    let up = compose.run(&["up", "-d", "--no-build"]);
    assert!(
        up.status.success(),
        "docker-compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let import = muster(
        &project,
        &["import", "docker-compose.yml", "-o", "services.toml"],
    );
    assert_eq!(import.code, Some(0), "{import}");
    assert_eq!(
        import.stderr, "",
        "nothing of this file is left out: {import}"
    );
    muster_ok(&project, &["apply", "-q"]);

    let env_keys: BTreeSet<String> = ["LOG_LEVEL", "WORKERS", "FROM_FILE", "MODE"]
        .map(String::from)
        .into();
    for service in ["web", "worker"] {
        let theirs = shape(&format!("{}_{service}_1", compose.name), &env_keys);
        let ours = shape(&format!("{}-{service}-1", project.name()), &env_keys);
        assert_eq!(ours, theirs, "service {service}");
    }
    let web = shape(&format!("{}-web-1", project.name()), &env_keys);
    assert!(
        web["env"].contains("LOG_LEVEL=debug") && web["env"].contains("FROM_FILE=yes"),
        "{web:?}"
    );
    assert!(
        web["mounts"].contains("/srv/static rw=Some(false)"),
        "{web:?}"
    );
    assert!(Path::new(&dir.join("services.toml")).exists());
}
