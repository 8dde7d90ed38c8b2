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

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client key pair, in the
/// file names DOCKER_CERT_PATH uses (ca.pem, cert.pem, key.pem).
fn certificates(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=muster-test-ca",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=client",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    );
    let bundle = [
        std::fs::read(dir.join("server.pem")).unwrap(),
        std::fs::read(dir.join("server-key.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("server-bundle.pem"), bundle).unwrap();
}

#[test]
fn plan_works_over_tls_and_checks_the_engine_certificate() {
    support::image();
    let project = Project::new("tls");
    project.write(
        "[services.web]\nimage = \"{image}\"\ncommand = [\"sleep\", \"3600\"]\ninit = true\n",
    );
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = support::docker_host();
    let socket = host
        .strip_prefix("unix://")
        .unwrap_or("/var/run/docker.sock");
    let _tls = Bridge(
        Command::new("socat")
            .current_dir(certs.path())
            .arg(format!("OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert=server-bundle.pem,verify=0"))
            .arg(format!("UNIX-CONNECT:{socket}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is needed"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "socat did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = format!("tcp://127.0.0.1:{port}");
    let plan = |cert_path: &std::path::Path| {
        project
            .muster()
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", cert_path)
            .args(["--host", &host, "plan", "--detailed-exitcode"])
            .output()
            .unwrap()
    };
    let out = plan(certs.path());
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("+ web"));
    // An engine whose certificate the CA did not sign is refused.
    let other = tempfile::tempdir().unwrap();
    certificates(other.path());
    let out = plan(other.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ca = other.path().join("ca.pem");
    let refused_by_tls = |out: &std::process::Output| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("TLS handshake with {host}"))
                && stderr.contains(&format!("certificate not signed by {}", ca.display()))
                && !stderr.contains("does not answer"),
            "{stderr}"
        );
    };
    refused_by_tls(&out);
    // The engine's CA is trusted by the system (SSL_CERT_FILE) but is not
    // ca.pem: refused all the same, as the docker CLI does.
    let out = project
        .muster()
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", other.path())
        .env("SSL_CERT_FILE", certs.path().join("ca.pem"))
        .args(["--host", &host, "plan", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a certificate signed by a system root was accepted:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    refused_by_tls(&out);
}
