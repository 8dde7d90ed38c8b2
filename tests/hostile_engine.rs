//! Every error path of the command line, on the real engine (SPEC section
//! 6): each command given an invalid, missing or unreadable file, bad
//! flags, an unknown service to scale, an engine that cannot be reached,
//! a lock that is not released, a container that fails: each exits with
//! its documented code and says why on stderr, and none of them shows a
//! panic or a backtrace, even with `RUST_BACKTRACE=1`.

mod support;

use std::time::Duration;

use support::{
    Outcome, Project, block_on, docker, hold_lock, lock_name, muster_process, shows_a_panic,
};

const VALID: &str = r#"project = "{project}"

[services.web]
image = "{image}"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
"#;

/// A sequential service whose first container exits at once.
const FAILING: &str = r#"[services.db]
image = "{image}"
count = 2
mode = "sequential"
command = ["sh", "-c", "echo cannot open the database; exit 3"]
init = true
stop_grace_period = "1s"
"#;

/// Every command that reads the file, as it would be run with it.
const READERS: [&[&str]; 9] = [
    &["validate"],
    &["plan"],
    &["apply"],
    &["apply", "--dry-run", "--detailed-exitcode"],
    &["ps"],
    &["scale", "web=2"],
    &["scale", "web=2", "--apply"],
    &["down"],
    &["down", "--volumes"],
];

/// Runs muster in the project's directory with `RUST_BACKTRACE=1` and
/// checks the exit code, that stderr says something, and that no panic
/// shows on either stream.
fn expect(project: &Project, args: &[&str], env: &[(&str, &str)], code: i32) -> Outcome {
    let mut cmd = assert_cmd::Command::from_std(muster_process(project.dir()));
    cmd.env("RUST_BACKTRACE", "1")
        .env_remove("DOCKER_HOST")
        .timeout(Duration::from_secs(60))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Outcome = cmd.output().unwrap().into();
    assert_eq!(out.code, Some(code), "muster {args:?} {env:?}:\n{out}");
    if code != 0 {
        assert!(
            !out.stderr.trim().is_empty(),
            "muster {args:?}: says nothing:\n{out}"
        );
    }
    assert!(
        !shows_a_panic(&out.stdout) && !shows_a_panic(&out.stderr),
        "muster {args:?} {env:?} shows a panic:\n{out}"
    );
    out
}

fn with_file<'a>(file: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["-f", file];
    v.extend_from_slice(args);
    v
}

#[test]
fn every_error_path_exits_with_its_documented_code_and_never_shows_a_panic() {
    let project = Project::new("hostile");
    project.write(VALID);
    let dir = project.dir();
    let text = |t: &str| t.replace("{image}", support::image());
    std::fs::write(
        dir.join("bad.toml"),
        "[services.web]\nimage = \"x\"\ncount = \"2\"\ncomand = [\"sh\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("empty.toml"), "").unwrap();
    std::fs::write(
        dir.join("binary.toml"),
        [0xff, 0xfe, 0x00, 0x9f, 0x92, 0x96],
    )
    .unwrap();
    std::fs::create_dir(dir.join("dir.toml")).unwrap();
    std::fs::write(
        dir.join("swarm.toml"),
        // What a swarm cannot say: a port bound to one host address.
        text("backend = \"swarm\"\n[services.web]\nimage = \"{image}\"\nports = [\"127.0.0.1:8080:80\"]\n"),
    )
    .unwrap();
    std::fs::write(dir.join("failing.toml"), text(FAILING)).unwrap();
    let valid = std::fs::read_to_string(project.file()).unwrap();

    // 3: the file is invalid, missing or unreadable, for every command
    // that reads it; nothing else happens.
    for file in [
        "bad.toml",
        "empty.toml",
        "binary.toml",
        "missing.toml",
        "dir.toml",
        "swarm.toml",
    ] {
        // A file that cannot be read has no line: its error names it.
        let unreadable = ["missing.toml", "dir.toml"].contains(&file);
        for args in READERS {
            let out = expect(&project, &with_file(file, args), &[], 3);
            assert!(
                out.stderr.lines().any(|l| if unreadable {
                    l.starts_with("error: ") && l.contains(file)
                } else {
                    l.starts_with(&format!("error: {file}:"))
                }),
                "{file} {args:?}: no error naming the file (and where in it):\n{out}"
            );
        }
    }

    // 64: the command line is invalid.
    let bad_lines: [&[&str]; 19] = [
        &["--no-such-flag", "plan"],
        &["plan", "--parallel", "4"],
        &["plan", "--output", "yaml"],
        &["apply", "--parallel", "0"],
        &["apply", "--parallel", "many"],
        &["apply", "--lock-timeout", "forever"],
        &["apply", "--lock-timeout", "-1s"],
        &["watch", "--debounce", "5 parsecs"],
        &["watch", "--resync"],
        &["ps", "--detailed-exitcode"],
        &["down", "--volume"],
        &["scale"],
        &["scale", "web"],
        &["scale", "web=-1"],
        &["scale", "web=1001"],
        &["scale", "=3"],
        &["--color", "sometimes", "plan"],
        &["--project", "Bad Name", "plan"],
        &["--project", "../../etc", "down", "--volumes"],
    ];
    for args in bad_lines {
        expect(&project, &with_file("services.toml", args), &[], 64);
    }
    expect(
        &project,
        &["-f", "services.toml", "plan"],
        &[("MUSTER_PROJECT", "Shop")],
        64,
    );
    // A service that the file lacks: 64, and the file stays as it was.
    for args in [
        &["scale", "nosuch=1"][..],
        &["scale", "nosuch=1", "--apply"],
        &["scale", "web=2", "nosuch=1"],
    ] {
        let out = expect(&project, &with_file("services.toml", args), &[], 64);
        assert!(out.stderr.contains("nosuch"), "{out}");
        assert_eq!(std::fs::read_to_string(project.file()).unwrap(), valid);
    }

    // 1: the engine cannot be reached.
    for host in [
        "unix:///nonexistent/docker.sock",
        "tcp://127.0.0.1:1",
        "not a url",
        "ftp://example.com",
    ] {
        for args in [
            &["plan"][..],
            &["apply"],
            &["ps"],
            &["down"],
            &["scale", "web=2", "--apply"],
        ] {
            let mut all = vec!["-f", "services.toml", "--host", host];
            all.extend_from_slice(args);
            let out = expect(&project, &all, &[], 1);
            assert!(
                out.stderr
                    .starts_with("error: connecting to the Docker engine at "),
                "{out}"
            );
            std::fs::write(project.file(), &valid).unwrap();
        }
    }
    expect(
        &project,
        &["-f", "services.toml", "plan"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        1,
    );
    // 1: a directory that cannot be watched.
    let out = expect(
        &project,
        &["-f", "/nonexistent/dir/services.toml", "watch"],
        &[],
        1,
    );
    assert!(out.stderr.contains("/nonexistent/dir"), "{out}");

    // 1: the project's lock is held by a live process (this one).
    let lock = lock_name(&project);
    hold_lock(&project, "a test holding the lock");
    for args in [
        &["apply", "--lock-timeout", "1s"][..],
        &["down", "--lock-timeout", "1s"],
        &["scale", "web=2", "--apply", "--lock-timeout", "1s"],
    ] {
        let out = expect(&project, &with_file("services.toml", args), &[], 1);
        assert!(out.stderr.contains("is locked by"), "{out}");
        std::fs::write(project.file(), &valid).unwrap();
    }
    let force = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    block_on(docker().remove_container(&lock, Some(force))).unwrap();

    // 1: a container fails; its logs are shown.
    let out = expect(
        &project,
        &["-f", "failing.toml", "--project", project.name(), "apply"],
        &[],
        1,
    );
    assert!(out.stderr.contains("cannot open the database"), "{out}");
    expect(
        &project,
        &["-f", "failing.toml", "--project", project.name(), "down"],
        &[],
        0,
    );
}

/// The loader stops reading at the 1 MiB limit (`config::load`, and the
/// daemon's reload), so a huge file is never read into memory whole, and a
/// device is not read at all. Here memory is capped at 1 GiB and a sparse
/// file of 16 GiB, then `/dev/zero`, is given as the file.
#[test]
fn an_endless_file_is_refused_at_the_size_limit_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(16 << 30))
        .unwrap();
    let out = validate_capped(&huge);
    assert!(out.stderr.contains("1 MiB"), "{out}");
    let out = validate_capped(std::path::Path::new("/dev/zero"));
    assert!(out.stderr.contains("not a regular file"), "{out}");
}

/// `muster validate -f path` with 1 GiB of address space: exit 3, no panic.
fn validate_capped(path: &std::path::Path) -> Outcome {
    use std::os::unix::process::CommandExt;
    let mut cmd = muster_process(&std::env::temp_dir());
    cmd.arg("validate")
        .arg("-f")
        .arg(path)
        .env("RUST_BACKTRACE", "1");
    // SAFETY: only setrlimit(2), async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out: Outcome = cmd.output().unwrap().into();
    assert_eq!(out.code, Some(3), "{out}");
    assert!(!shows_a_panic(&out.stderr), "{out}");
    out
}
