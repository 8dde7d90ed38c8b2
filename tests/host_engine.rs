//! `--host tcp://…` reaches the engine over TCP: a socat bridge from a
//! loopback port to the engine's unix socket stands in for a TCP engine.

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Project;

struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port bridged to the engine's unix socket.
fn bridge() -> (Bridge, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = support::docker_host();
    let socket = host
        .strip_prefix("unix://")
        .unwrap_or("/var/run/docker.sock");
    let child = Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg(format!("UNIX-CONNECT:{socket}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat is needed (apt-get install socat; .ci/run installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "socat did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Bridge(child), port)
}

#[test]
fn apply_and_plan_work_over_a_tcp_docker_host() {
    support::image();
    let project = Project::new("tcp");
    project.write(
        "[services.web]\nimage = \"{image}\"\ncount = 2\ncommand = [\"sleep\", \"3600\"]\ninit = true\nstop_grace_period = \"1s\"\n",
    );
    let (_bridge, port) = bridge();
    let host = format!("tcp://127.0.0.1:{port}");
    let out = project
        .muster()
        .args(["--host", &host, "apply"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("on {host}")));
    assert_eq!(
        project.container_names(),
        [
            format!("{}-web-1", project.name()),
            format!("{}-web-2", project.name())
        ]
    );
    let out = project
        .muster()
        .env("DOCKER_HOST", &host)
        .args(["plan", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
