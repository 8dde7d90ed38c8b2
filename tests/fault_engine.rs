//! Engine faults on the real engine: an engine that cannot be reached, or
//! that does not answer, is a clear failure within seconds; a connection
//! cut in the middle of an apply is a clear failure, and the next apply
//! (or the daemon, once the engine is back) finishes the job; a container
//! that cannot start, or does not become ready in time, fails the apply
//! naming it and showing its last lines, and never costs a running
//! container; an engine that stops answering removals and network calls
//! (dockerd's deadlock) is named as such within a minute, while one that
//! is merely slow is waited for; a network that the engine will not remove
//! though no container uses it (its lost count) is retried, said, and
//! reused; an engine with no address pool left for a network is said so,
//! naming the networks that hold one idle. (An image that cannot be pulled
//! and a name held by a foreign container are in `safety_engine.rs`.)

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::{
    Daemon, Outcome, Project, Proxy, assert_converged, desired_of, exists, id_and_state, ids,
    muster, muster_exits, muster_ok, muster_process, remove_force, sleepers_of_project, wait_until,
};

/// The hang guard of a command that must give up at once: the engine
/// connection times out after 3 seconds.
const PROMPT: Duration = Duration::from_secs(10);

/// Runs muster with `--host host` and `args`, killed after [`PROMPT`].
fn against(project: &Project, host: &str, args: &[&str]) -> Outcome {
    within(project, host, args, PROMPT)
}

/// Runs muster with `--host host` and `args`, killed after `guard`.
fn within(project: &Project, host: &str, args: &[&str], guard: Duration) -> Outcome {
    let started = Instant::now();
    let out: Outcome = project
        .muster()
        .args(["--host", host])
        .args(args)
        .timeout(guard)
        .output()
        .unwrap()
        .into();
    assert!(
        out.code.is_some(),
        "hang guard: muster {args:?} against {host} still ran after {:?}:\n{out}",
        started.elapsed()
    );
    out
}

#[test]
fn an_engine_that_is_absent_refuses_or_does_not_answer_fails_every_command_clearly_and_at_once() {
    let project = Project::new("unreach");
    project.write(&sleepers_of_project(2));
    let file = std::fs::read_to_string(project.file()).unwrap();
    // A port nothing listens on: connections are refused.
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("tcp://{}", listener.local_addr().unwrap())
    };
    // A listener that accepts connections (the kernel completes them) and
    // never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("tcp://{}", silent.local_addr().unwrap());
    let hosts = [
        (
            "unix:///nonexistent/docker.sock",
            "unix:///nonexistent/docker.sock",
        ),
        (refused.as_str(), refused.as_str()),
        (silent_url.as_str(), "no answer within 3s"),
    ];
    let commands: [&[&str]; 6] = [
        &["plan"],
        &["apply"],
        &["apply", "--dry-run", "--detailed-exitcode"],
        &["ps"],
        &["down", "--volumes"],
        &["scale", "web=3", "--apply"],
    ];
    for (host, says) in hosts {
        // Each run against the silent listener waits out the 3s timeout.
        let commands = if says == host {
            &commands[..]
        } else {
            &commands[..2]
        };
        for &args in commands {
            let out = against(&project, host, args);
            assert_eq!(out.code, Some(1), "{host} {args:?}: {out}");
            let first = out.stderr.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("error: connecting to the Docker engine at "),
                "{host} {args:?}: the first line should say what failed:\n{out}"
            );
            assert!(
                out.stderr.contains(host) && out.stderr.contains(says),
                "{host} {args:?}: the error should name the address and why:\n{out}"
            );
            assert!(
                !support::shows_a_panic(&out.stderr),
                "{host} {args:?}: {out}"
            );
            // `scale --apply` rewrites the file before it applies it.
            std::fs::write(project.file(), &file).unwrap();
        }
    }
    drop(silent);
    assert!(project.containers().is_empty());
    assert!(project.networks().is_empty());
}

/// Sequential containers each ready half a second after their start: an
/// apply of this file runs for several seconds.
const CHAIN: &str = r#"project = "{project}"

[services.chain]
image = "{image}"
count = 8
mode = "sequential"
command = ["sleep", "3600"]
volumes = ["data-{ordinal}:/data"]
init = true
stop_grace_period = "1s"
"#;

/// What `child` printed once it ended, killed with a panic (the hang
/// guard) when it still runs `limit` after `what` happened.
fn ended_within(mut child: std::process::Child, limit: Duration, what: &str) -> Outcome {
    let since = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if since.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "hang guard: muster still ran {limit:?} after {what}:\n{}",
                Outcome::from(child.wait_with_output().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Outcome::from(child.wait_with_output().unwrap())
}

/// Starts an apply of [`CHAIN`] through `proxy`, cuts the connection once
/// chain-3 exists, and returns what the apply printed (it must end).
fn apply_cut_in_the_middle(project: &Project, proxy: &mut Proxy) -> Outcome {
    let child = muster_process(project.dir())
        .args(["-f", "services.toml", "--host", &proxy.url(), "apply"])
        .spawn()
        .unwrap();
    let third = format!("{}-chain-3", project.name());
    wait_until("chain-3 is created", Duration::from_secs(60), || {
        exists(&third)
    });
    proxy.down();
    // Hang guard: nothing answers any more, so the apply must end.
    let out = ended_within(child, Duration::from_secs(30), "its connection was cut");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(!support::shows_a_panic(&out.stderr), "{out}");
    assert!(
        project.containers().len() < 8,
        "the cut came too late to test anything:\n{out}"
    );
    out
}

/// Sequential containers each ready at their first health probe, a
/// second after their start: an apply of this file waits on health
/// events for several seconds.
const HEALTHY_CHAIN: &str = r#"project = "{project}"

[services.chain]
image = "{image}"
count = 3
mode = "sequential"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
ready_timeout = "60s"

[services.chain.healthcheck]
test = ["CMD", "true"]
interval = "1s"
timeout = "1s"
retries = 3
"#;

#[test]
fn an_apply_whose_event_stream_is_lost_midway_checks_again_and_completes() {
    let project = Project::new("evcut");
    project.write(HEALTHY_CHAIN);
    let proxy = Proxy::start(&project.dir().join("engine.sock"));
    let child = muster_process(project.dir())
        .args(["-f", "services.toml", "--host", &proxy.url(), "apply"])
        .spawn()
        .unwrap();
    let first = format!("{}-chain-1", project.name());
    let last = format!("{}-chain-3", project.name());
    wait_until("chain-1 runs", Duration::from_secs(60), || {
        exists(&first) && id_and_state(&first).1 == "running"
    });
    // The apply's one event stream is open while chain-1 waits for its
    // first health probe; from here on, no event reaches muster.
    assert!(proxy.cut_events() >= 1, "no event stream was open to cut");
    assert!(!exists(&last), "the cut came too late to test anything");
    let out = ended_within(child, Duration::from_secs(60), "its event stream was lost");
    assert_eq!(out.code, Some(0), "{out}");
    assert_converged(
        &project,
        &desired_of(&project.file(), &project),
        "after an apply that lost its event stream",
    );
    // The waits after the cut were answered by status calls, while muster
    // asked for the stream again (each time refused).
    assert!(
        proxy.event_requests() >= 2,
        "muster never asked for the events again: {} request(s)",
        proxy.event_requests()
    );
}

/// The `error: …` line of a failed run.
fn error_line(out: &Outcome) -> &str {
    out.stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{out}"))
}

#[test]
fn connection_cut_in_the_middle_of_an_apply_fails_it_and_the_next_apply_completes() {
    let project = Project::new("cut");
    project.write(CHAIN);
    let socket = project.dir().parent().unwrap().join("engine.sock");
    let mut proxy = Proxy::start(&socket);
    let out = apply_cut_in_the_middle(&project, &mut proxy);
    assert!(
        error_line(&out).contains(project.name()),
        "the error should say what muster was doing:\n{out}"
    );

    // The engine is back: the next apply takes over the lock the cut one
    // could not release, and finishes the job.
    proxy.up();
    muster_ok(
        &project,
        &["--host", &proxy.url(), "apply", "--lock-timeout", "10s"],
    );
    let desired = desired_of(&project.file(), &project);
    assert_converged(&project, &desired, "after the cut and a new apply");
    let mut volumes: Vec<String> = (1..=8)
        .map(|o| format!("{}_data-{o}", project.name()))
        .collect();
    volumes.sort();
    assert_eq!(project.volumes(), volumes);
    muster_exits(&project, &["plan", "--detailed-exitcode"], 0);
}

/// A cut is reported as the engine lost, not as the HTTP client's error
/// ("Error in the hyper legacy client: client error (Connect)") nor, when
/// it hits a start, as a container that "failed to start".
#[test]
fn connection_cut_in_the_middle_of_an_apply_is_reported_as_a_lost_engine() {
    let project = Project::new("cut-msg");
    project.write(CHAIN);
    let socket = project.dir().parent().unwrap().join("engine.sock");
    let mut proxy = Proxy::start(&socket);
    let out = apply_cut_in_the_middle(&project, &mut proxy);
    let error = error_line(&out);
    assert!(
        error.contains("Docker engine") && !error.contains("failed to start"),
        "the error should say that the engine connection was lost:\n{out}"
    );
}

/// `muster watch` of `project` through the engine at `url`, once it has
/// said its first pass (the file says no container yet).
fn daemon_through(project: &Project, url: &str) -> Daemon {
    let d = Daemon::start(
        project,
        &[
            "--host",
            url,
            "watch",
            "--debounce",
            "100ms",
            "--resync",
            "1h",
            "--lock-timeout",
            "5s",
        ],
    );
    d.wait_line(0, "start: No changes.", Duration::from_secs(30));
    d
}

/// Waits until `d` has brought `project` to its file (`what`), still
/// running then.
fn converges(d: &Daemon, project: &Project, what: &str) {
    let desired = desired_of(&project.file(), project);
    d.wait_until(what, Duration::from_secs(120), || {
        support::converged_problems(project, &desired).is_empty()
    });
    assert!(d.is_running(), "{}", d.transcript());
}

/// The pass cut in the middle cannot release the project's lock: the
/// daemon must take back its own lock, not wait for itself.
#[test]
fn the_daemon_whose_connection_is_cut_in_the_middle_of_an_apply_finishes_it_once_the_engine_is_back()
 {
    let project = Project::new("w-cut");
    project.write(&CHAIN.replace("count = 8", "count = 0"));
    let socket = project.dir().parent().unwrap().join("engine.sock");
    let mut proxy = Proxy::start(&socket);
    let d = daemon_through(&project, &proxy.url());
    support::save_by_rename(&project, CHAIN);
    let third = format!("{}-chain-3", project.name());
    d.wait_until("chain-3 is created", Duration::from_secs(60), || {
        exists(&third)
    });
    let mark = d.mark();
    proxy.down();
    d.wait_line(mark, "lost the engine", Duration::from_secs(30));
    proxy.up();
    converges(
        &d,
        &project,
        "the daemon finishes the apply once the engine is back",
    );
}

#[test]
fn a_sequential_container_whose_command_does_not_exist_fails_apply_naming_it() {
    let project = Project::new("nocmd-seq");
    project.write(
        r#"project = "{project}"

[services.db]
image = "{image}"
count = 2
mode = "sequential"
command = ["/nonexistent"]
init = true
stop_grace_period = "1s"
"#,
    );
    let out = muster_exits(&project, &["apply"], 1);
    let one = format!("{}-db-1", project.name());
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains(&one)),
        "the error does not name {one}:\n{out}"
    );
    assert!(out.stderr.contains("/nonexistent"), "no log tail:\n{out}");
    assert!(!exists(&format!("{}-db-2", project.name())), "{out}");
}

/// A parallel service waits for its new containers too, so a container
/// whose process cannot even be executed (under `init = true` the engine
/// starts the init process, which then fails) fails `apply`, named.
#[test]
fn a_parallel_container_whose_command_does_not_exist_fails_apply_naming_it() {
    let project = Project::new("nocmd-par");
    project.write(
        r#"project = "{project}"

[services.web]
image = "{image}"
count = 2
command = ["/nonexistent"]
init = true
stop_grace_period = "1s"
"#,
    );
    let out = muster(&project, &["apply"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!("{}-web-", project.name())),
        "the error does not name the container:\n{out}"
    );
}

#[test]
fn a_parallel_container_that_the_engine_cannot_start_fails_apply_naming_it() {
    let project = Project::new("nostart-par");
    project.write(
        r#"project = "{project}"

[services.web]
image = "{image}"
count = 2
command = ["/nonexistent"]
stop_grace_period = "1s"
"#,
    );
    let out = muster_exits(&project, &["apply"], 1);
    let error = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{out}"));
    assert!(
        error.contains(&format!("{}-web-", project.name()))
            && error.contains("failed to start")
            && error.contains("/nonexistent"),
        "{out}"
    );
}

#[test]
fn a_container_not_ready_within_ready_timeout_fails_apply_naming_it_with_its_last_lines() {
    let project = Project::new("notready");
    project.write(
        r#"project = "{project}"

[services.db]
image = "{image}"
count = 2
mode = "sequential"
command = ["sh", "-c", "echo warming up the cache; exec sleep 3600"]
init = true
stop_grace_period = "1s"
ready_timeout = "2s"

[services.db.healthcheck]
test = ["CMD", "false"]
interval = "1s"
timeout = "1s"
retries = 100
"#,
    );
    let started = Instant::now();
    let out = muster_exits(&project, &["apply"], 1);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "hang guard: apply took {:?} to give up after a ready_timeout of 2s",
        started.elapsed()
    );
    let one = format!("{}-db-1", project.name());
    assert!(
        out.stderr.contains(&format!(
            "error: {one} was not ready within ready_timeout (2s)"
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!("last lines of {one}:"))
            && out.stderr.contains("| warming up the cache"),
        "no log tail:\n{out}"
    );
    assert!(!exists(&format!("{}-db-2", project.name())), "{out}");
}

const ROLLING: &str = r#"project = "{project}"

[services.web]
image = "{image}"
count = 2
command = ["sh", "-c", "[ \"$V\" = good ] && touch /tmp/ready; exec sleep 3600"]
env = { V = "VALUE" }
init = true
stop_grace_period = "1s"
ready_timeout = "3s"

[services.web.healthcheck]
test = ["CMD", "test", "-f", "/tmp/ready"]
interval = "1s"
timeout = "1s"
retries = 100

[services.web.update]
order = "start-first"
"#;

#[test]
fn a_start_first_replacement_that_never_becomes_ready_leaves_the_old_containers_running() {
    let project = Project::new("badroll");
    project.write(&ROLLING.replace("VALUE", "good"));
    muster_ok(&project, &["apply"]);
    let before = ids(&project);

    project.write(&ROLLING.replace("VALUE", "bad"));
    let out = muster_exits(&project, &["apply"], 1);
    let next = format!("{}-web-1-next", project.name());
    assert!(
        out.stderr.contains(&format!("error: {next} was not ready")),
        "{out}"
    );
    // The containers that serve are still the old ones, running.
    for (name, id) in &before {
        assert_eq!(
            id_and_state(name),
            (id.clone(), "running".to_string()),
            "{out}"
        );
    }
    assert!(!exists(&format!("{}-web-2-next", project.name())), "{out}");

    // Back to the good file: the leftover replacement goes, the old
    // containers stay as they are.
    project.write(&ROLLING.replace("VALUE", "good"));
    muster_ok(&project, &["apply"]);
    assert_eq!(ids(&project), before);
    muster_exits(&project, &["plan", "--detailed-exitcode"], 0);
}

/// What `muster COMMAND` through `proxy` printed, once it failed (exit 1).
/// The hang guard is far below the client's 600 s: a grace period of 1 s,
/// 15 s overdue and 30 s for the network list make 46 s.
fn fails_through(project: &Project, proxy: &Proxy, command: &str) -> Outcome {
    let child = muster_process(project.dir())
        .args(["-f", "services.toml", "--host", &proxy.url(), command])
        .spawn()
        .unwrap();
    let out = ended_within(child, Duration::from_secs(120), &format!("{command} began"));
    assert_eq!(out.code, Some(1), "{out}");
    out
}

/// Docker 20.10 before 20.10.27 can deadlock its network controller
/// (moby#46661): from then on container stops and removals, and the network
/// list, never answer, while the container list does. The proxy plays
/// that engine: muster gives up past the grace period, a check and its
/// timeout, and says why, instead of waiting out the client's 600 s; so
/// does an apply, at the project network, before it creates anything.
#[test]
fn an_engine_whose_stops_and_network_calls_never_answer_fails_down_and_apply_naming_it() {
    let project = Project::new("stuck");
    project.write(&sleepers_of_project(2));
    muster_ok(&project, &["apply"]);
    let before = ids(&project);
    let proxy = Proxy::start(&project.dir().join("engine.sock"));
    proxy.hold("POST", "/stop", None);
    proxy.hold("GET", "/networks", None);
    let out = fails_through(&project, &proxy, "down");
    let error = error_line(&out);
    assert!(
        error.contains(&format!("stopping {}-web-", project.name()))
            && error.contains("does not list its networks")
            && error.contains("moby#46661")
            && error.contains("restart dockerd"),
        "the error should name the stuck call and the engine's deadlock:\n{out}"
    );
    // The engine never saw the stops: the containers run as they did.
    assert_eq!(ids(&project), before, "{out}");
    for name in before.keys() {
        assert_eq!(id_and_state(name).1, "running", "{out}");
    }

    // An apply that needs the project network fails the same way before it
    // creates anything.
    project.write(&sleepers_of_project(3));
    let out = fails_through(&project, &proxy, "apply");
    let error = error_line(&out);
    assert!(
        error.contains(&format!("creating network {}_default", project.name()))
            && error.contains("moby#46661"),
        "the error should name the stuck call and the engine's deadlock:\n{out}"
    );
    assert_eq!(ids(&project), before, "{out}");

    // Once the engine answers again (here: without the proxy), down
    // completes.
    drop(proxy);
    muster_ok(&project, &["down", "--lock-timeout", "10s"]);
    assert!(project.containers().is_empty());
    assert!(project.networks().is_empty());
}

/// The id of the network named `name`.
fn network_id(name: &str) -> String {
    support::block_on(support::docker().inspect_network(name, None))
        .unwrap_or_else(|e| panic!("cannot inspect network {name}: {e}"))
        .id
        .expect("a network has an id")
}

/// Docker 20.10 at times loses count of a network's endpoints, and then
/// refuses to remove the network, though no container uses it, until
/// dockerd restarts and recounts them (BENCHMARKS.md). That cannot be
/// caused on demand, so the proxy answers the network's removal as that
/// engine does: `down` removes the containers, retries the network, then
/// warns naming it and the remedy and exits 0; the next apply reuses it.
/// The engine never answers the inspect that looks for the network's users
/// either: that hint is given up, not waited for.
#[test]
fn a_network_the_engine_will_not_remove_is_retried_said_and_reused() {
    let project = Project::new("kept");
    project.write(&sleepers_of_project(2));
    muster_ok(&project, &["apply"]);
    let network = format!("{}_default", project.name());
    let id = network_id(&network);
    let proxy = Proxy::start(&project.dir().join("engine.sock"));
    proxy.refuse(
        "DELETE",
        "/networks/",
        403,
        &format!("error while removing network: network {network} id {id} has active endpoints"),
    );
    proxy.hold("GET", &format!("/networks/{id}"), None);
    let out = within(&project, &proxy.url(), &["down"], Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "warning: the engine kept network {network}: error while removing network"
        )) && out.stderr.contains("has active endpoints")
            && out.stderr.contains("No container uses it")
            && out
                .stderr
                .contains("a restart of dockerd recounts its endpoints"),
        "down should say which network the engine kept, why, and the remedy:\n{out}"
    );
    assert!(project.containers().is_empty(), "{out}");
    assert_eq!(project.networks(), vec![network.clone()], "{out}");
    assert!(
        proxy.refusals() >= 2,
        "down should retry the network: {} removal(s) asked",
        proxy.refusals()
    );

    // The next apply runs on the network the engine kept.
    muster_ok(&project, &["apply"]);
    assert_eq!(network_id(&network), id);
    assert_eq!(project.containers().len(), 2);
    drop(proxy);
    muster_ok(&project, &["down"]);
    assert!(project.networks().is_empty());
}

/// An engine whose address pools are all taken (each network holds one,
/// and one it kept for a lost count holds it until dockerd restarts)
/// refuses a new network: Docker 20.10 as not found, "could not find an
/// available, non-overlapping IPv4 address pool"; newer engines as a bad
/// parameter, "all predefined address pools have been fully subnetted".
/// Taking every pool of the shared engine would starve the other tests, so
/// the proxy answers that creation as the engine does; the network left
/// idle is real. `apply` exits 1 with nothing created, says the engine has
/// no pool left, names the muster project whose network no container uses,
/// and the remedies. When the engine then stops answering the lists that
/// find those networks, the error still comes, without the names.
#[test]
fn an_engine_without_an_address_pool_left_is_said_naming_the_idle_networks() {
    let idle = Project::new("idle");
    idle.write(&sleepers_of_project(1));
    muster_ok(&idle, &["apply"]);
    for c in idle.containers() {
        remove_force(&c.name);
    }
    let project = Project::new("nopool");
    project.write(&sleepers_of_project(2));
    for (status, words) in [
        (
            404,
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
        ),
        (
            400,
            "all predefined address pools have been fully subnetted",
        ),
    ] {
        let proxy = Proxy::start(&project.dir().join("engine.sock"));
        proxy.refuse("POST", "/networks/create", status, words);
        let out = muster_exits(&project, &["--host", &proxy.url(), "apply"], 1);
        let said = |text: &str| out.stderr.contains(text);
        assert!(
            said(&format!("creating network {}_default", project.name()))
                && said("the engine has no address pool left for another network")
                && said(words)
                && said(idle.name())
                && said("frees its pool only when dockerd restarts")
                && said("docker network prune"),
            "apply should say that no address pool is left, naming the idle network's project and the remedies:\n{out}"
        );
        assert_eq!(proxy.refusals(), 1, "{out}");
        assert!(project.containers().is_empty(), "{out}");
        assert!(project.networks().is_empty(), "{out}");
    }
    // The hint's list of bridge networks (the only list muster filters by
    // driver) never answered: muster would wait the connection's 600 s.
    let proxy = Proxy::start(&project.dir().join("engine.sock"));
    proxy.refuse(
        "POST",
        "/networks/create",
        400,
        "all predefined address pools have been fully subnetted",
    );
    proxy.hold("GET", "driver", None);
    let out = within(&project, &proxy.url(), &["apply"], Duration::from_secs(60));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("the engine has no address pool left for another network")
            && !out.stderr.contains(idle.name()),
        "apply should say that no address pool is left, without the hint it could not get:\n{out}"
    );
    assert!(project.containers().is_empty(), "{out}");
}

/// A stop that the engine answers only 25 s late, while it still lists its
/// networks, is a slow engine, not a stuck one: muster waits for it.
#[test]
fn a_down_whose_stops_answer_late_while_the_engine_lists_networks_completes() {
    let project = Project::new("slowstop");
    project.write(&sleepers_of_project(2));
    muster_ok(&project, &["apply"]);
    let proxy = Proxy::start(&project.dir().join("engine.sock"));
    proxy.hold("POST", "/stop", Some(Duration::from_secs(25)));
    let out = muster_ok(&project, &["--host", &proxy.url(), "down"]);
    assert!(!out.stderr.contains("moby#46661"), "{out}");
    assert!(project.containers().is_empty(), "{out}");
    assert!(project.networks().is_empty(), "{out}");
}

/// The daemon on a stuck engine (as above: here its network calls never
/// answer) logs the deadlock for the pass it cannot finish and keeps
/// running; once the engine answers again, it converges.
#[test]
fn the_daemon_on_a_stuck_engine_names_the_deadlock_and_converges_once_the_engine_answers() {
    let project = Project::new("w-stuck");
    project.write(&sleepers_of_project(0));
    let proxy = Proxy::start(&project.dir().join("engine.sock"));
    let d = daemon_through(&project, &proxy.url());
    let mark = d.mark();
    proxy.hold("GET", "/networks", None);
    support::save_by_rename(&project, &sleepers_of_project(2));
    d.wait_line(mark, "moby#46661", Duration::from_secs(120));
    assert!(
        !exists(&format!("{}-web-1", project.name())),
        "{}",
        d.transcript()
    );
    // Said once per failed pass, as the engine lost.
    let said = d.lines_since(mark);
    let said: Vec<&str> = said
        .iter()
        .map(|l| l.text.as_str())
        .filter(|t| t.contains("moby#46661"))
        .collect();
    assert!(
        said.iter()
            .all(|t| t.contains("error: lost the engine: creating network")),
        "{}",
        d.transcript()
    );
    assert!(d.is_running(), "{}", d.transcript());

    proxy.release();
    converges(
        &d,
        &project,
        "the daemon converges once the engine answers again",
    );
}
