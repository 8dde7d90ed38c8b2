//! `backend = "swarm"` on a real single-node swarm (SPEC section 10): the
//! local engine, made a swarm manager by `.ci/run`. Images come from the
//! local registry, as on a real cluster. Reachability checks use
//! `endpoint_mode = "dnsrr"`: this machine's kernel has no IPVS, so
//! virtual IPs carry no traffic here.

mod support;
mod web;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bollard::query_parameters::InspectServiceOptions;
use support::{
    Daemon, Project, block_on, docker, exec, muster, muster_exits, muster_ok, record_events,
    replicas, swarm_manager, task_containers, wait_until,
};

const T: Duration = Duration::from_secs(120);

fn project(prefix: &str) -> (Project, String) {
    swarm_manager();
    let p = Project::new(prefix);
    let image = p.push_to_registry("v1");
    (p, image)
}

/// The names of the running task containers of a swarm service (on this
/// node).
fn running_tasks(service: &str) -> Vec<String> {
    task_containers(service)
        .into_iter()
        .filter_map(|c| c.names?.first().cloned())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect()
}

/// A service `name` of `image` that sleeps, made with `docker service
/// create` and these labels (`KEY=VALUE`); its id.
fn service_by_hand(name: &str, labels: &[&str], image: &str) -> String {
    let made = std::process::Command::new("docker")
        .args(["service", "create", "--detach", "--quiet", "--name", name])
        .args(labels.iter().map(|l| format!("--label={l}")))
        .args([image, "sleep", "3600"])
        .output()
        .expect("docker service create");
    assert!(made.status.success(), "{made:?}");
    String::from_utf8_lossy(&made.stdout).trim().to_string()
}

fn web(image: &str, count: u32, extra: &str) -> String {
    format!(
        "backend = \"swarm\"\n[swarm]\nendpoint_mode = \"dnsrr\"\n\
         [services.web]\nimage = \"{image}\"\ncount = {count}\ncommand = [\"sleep\", \"3600\"]\n\
         init = true\nrestart = \"always\"\nstop_grace_period = \"1s\"\n{extra}\n"
    )
}

#[test]
fn swarm_parallel_service_scales_0_5_2_0_as_one_replicated_service() {
    let (p, image) = project("swarm-scale");
    let svc = format!("{}_web", p.name());
    for count in [5u32, 2, 0] {
        p.write(&web(&image, count, ""));
        let out = muster_ok(&p, &["apply"]);
        if count == 0 {
            assert_eq!(replicas(&svc), None, "count 0 removes the service:\n{out}");
            wait_until("its tasks are gone", T, || running_tasks(&svc).is_empty());
        } else {
            assert_eq!(replicas(&svc), Some(i64::from(count)), "{out}");
            assert_eq!(running_tasks(&svc).len(), count as usize, "{out}");
            // `ps`: a row per task, and no error column for a running one.
            let ps = muster_ok(&p, &["ps"]);
            let rows: Vec<&str> = ps
                .stdout
                .lines()
                .filter(|l| l.trim_start().starts_with("slot "))
                .collect();
            assert_eq!(rows.len(), count as usize, "{ps}");
            assert!(
                rows.iter().all(|r| r.trim_end().ends_with("  running")),
                "{ps}"
            );
        }
        let plan = muster_ok(&p, &["plan"]);
        assert!(plan.stdout.contains("No changes."), "{plan}");
    }
    // The task containers never carry the project's label.
    assert!(p.containers().is_empty());
    // Applied before at 0: a scale-up is not a new service; after `down`
    // (which removes the record) it is.
    p.write(&web(&image, 2, ""));
    let plan = muster_ok(&p, &["plan"]);
    assert!(
        plan.stdout.contains("~ web  parallel  replicas 0 → 2"),
        "{plan}"
    );
    muster_ok(&p, &["down"]);
    let record = format!("{}-muster-record", p.name());
    assert!(
        block_on(docker().inspect_config(&record)).is_err(),
        "down left the record"
    );
    let plan = muster_ok(&p, &["plan"]);
    assert!(
        plan.stdout.contains("+ web  parallel  replicas 0 → 2"),
        "{plan}"
    );
}

#[test]
fn swarm_sequential_ordinals_reach_the_earlier_ones_by_their_link_addresses() {
    let (p, image) = project("swarm-seq");
    p.write(&format!(
        "backend = \"swarm\"\n[swarm]\nendpoint_mode = \"dnsrr\"\n\
         [services.db]\nimage = \"{image}\"\nmode = \"sequential\"\ncount = 3\nexpose = [\"7000\"]\n\
         command = [\"sh\", \"-c\", \"while true; do echo hi-from-$(hostname) | nc -l -p 7000; done\"]\n\
         init = true\nrestart = \"always\"\nstop_grace_period = \"1s\"\n"
    ));
    let out = muster_ok(&p, &["apply"]);
    let created: Vec<usize> = (1..=3)
        .map(|k| {
            out.stdout
                .find(&format!("{}_db-{k}  created", p.name()))
                .unwrap()
        })
        .collect();
    assert!(created.windows(2).all(|w| w[0] < w[1]), "in order:\n{out}");
    let third = running_tasks(&format!("{}_db-3", p.name()));
    let third = third.first().expect("db-3 runs");
    for k in 1..=2 {
        let script =
            format!("echo | nc -w 2 $DB_{k}_PORT_7000_TCP_ADDR $DB_{k}_PORT_7000_TCP_PORT");
        let (code, text) = exec(third, &["sh", "-c", &script]);
        assert_eq!(code, 0, "db-3 reaches db-{k}: {text}");
        assert!(text.contains(&format!("hi-from-db-{k}")), "{text}");
    }
}

#[test]
fn swarm_start_first_update_never_drops_below_count_and_converges() {
    let (p, image) = project("swarm-update");
    let svc = format!("{}_web", p.name());
    let update = "[services.web.update]\nparallelism = 2\norder = \"start-first\"";
    p.write(&web(&image, 3, update));
    muster_ok(&p, &["apply"]);
    let stop = Arc::new(AtomicBool::new(false));
    let lowest = Arc::new(AtomicUsize::new(usize::MAX));
    let watcher = {
        let (stop, lowest, svc) = (stop.clone(), lowest.clone(), svc.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                lowest.fetch_min(running_tasks(&svc).len(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    p.write(&web(&image, 3, &format!("env = {{ V = \"2\" }}\n{update}")));
    let out = muster_ok(&p, &["apply"]);
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    assert!(out.stdout.contains("config changed"), "{out}");
    assert!(
        lowest.load(Ordering::SeqCst) >= 3,
        "running tasks dropped to {} during a start-first update:\n{out}",
        lowest.load(Ordering::SeqCst)
    );
    for c in running_tasks(&svc) {
        let env = p.env(&c);
        assert!(env.contains(&"V=2".to_string()), "{c}: {env:?}");
    }
    assert!(muster_ok(&p, &["plan"]).stdout.contains("No changes."));
}

/// `muster restart` on a swarm redeploys each named swarm service's tasks
/// (a forced update) and waits until the new ones run; what the file
/// changed since the last apply is not deployed by it.
#[test]
fn swarm_restart_redeploys_the_named_services_tasks_without_applying_the_file() {
    let (p, image) = project("swarm-restart");
    let db = "[services.db]\nmode = \"sequential\"\ncount = 2\ncommand = [\"sleep\", \"3600\"]\n\
              init = true\nstop_grace_period = \"1s\"\nimage = ";
    let file = |env: &str| format!("{}{db}\"{image}\"\n", web(&image, 2, env));
    p.write(&file(""));
    muster_ok(&p, &["apply"]);
    let services = [
        format!("{}_web", p.name()),
        format!("{}_db-1", p.name()),
        format!("{}_db-2", p.name()),
    ];
    let tasks = || -> Vec<Vec<String>> {
        services
            .iter()
            .map(|s| {
                let mut t = running_tasks(s);
                t.sort();
                t
            })
            .collect()
    };
    let before = tasks();
    assert_eq!(before.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1, 1]);

    // Only db: its ordinals get new tasks, web keeps its own.
    let out = muster_ok(&p, &["restart", "db"]);
    assert!(out.stdout.contains("Restarted 2 swarm services."), "{out}");
    let after_db = tasks();
    assert_eq!(after_db[0], before[0], "web was not named:\n{out}");
    for i in [1, 2] {
        assert_eq!(
            after_db[i].len(),
            1,
            "{}: {:?}\n{out}",
            services[i],
            after_db[i]
        );
        assert_ne!(
            after_db[i], before[i],
            "{} was not redeployed:\n{out}",
            services[i]
        );
    }

    // All, with an unapplied change in the file: web's tasks are new, of
    // the spec that was applied, and the change is still to apply.
    p.write(&file("env = { V = \"2\" }"));
    let out = muster_ok(&p, &["restart"]);
    assert!(out.stdout.contains("Restarted 3 swarm services."), "{out}");
    let after_all = tasks();
    assert_eq!(after_all[0].len(), 2, "{out}");
    for i in 0..3 {
        assert!(
            after_all[i].iter().all(|t| !after_db[i].contains(t)),
            "{} kept a task: {:?} then {:?}\n{out}",
            services[i],
            after_db[i],
            after_all[i]
        );
    }
    for c in &after_all[0] {
        let env = p.env(c);
        assert!(!env.contains(&"V=2".to_string()), "{c}: {env:?}");
    }
    let plan = muster_ok(&p, &["plan"]);
    assert!(plan.stdout.contains("config changed"), "{plan}");
}

/// `muster exec SERVICE-N` on a swarm runs in the task of slot N (of the
/// ordinal's own swarm service, for a sequential one): stdin goes in, the
/// exit code comes back, and a slot with no running task is said.
#[test]
fn swarm_exec_runs_in_the_task_of_the_ordinals_slot() {
    let (p, image) = project("swarm-exec");
    p.write(&format!(
        "{}[services.db]\nimage = \"{image}\"\nmode = \"sequential\"\ncount = 2\n\
         command = [\"sleep\", \"3600\"]\ninit = true\nstop_grace_period = \"1s\"\n",
        web(&image, 3, "")
    ));
    muster_ok(&p, &["apply"]);
    for (target, host) in [("web-2", "web-2"), ("web", "web-1"), ("db-2", "db-2")] {
        let out = muster_ok(&p, &["exec", target, "--", "cat", "/etc/hostname"]);
        assert_eq!(out.stdout.trim(), host, "{target}: {out}");
    }
    let out: support::Outcome = p
        .muster()
        .args(["exec", "web-3", "--", "cat"])
        .write_stdin("hi from stdin\n")
        .output()
        .unwrap()
        .into();
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "hi from stdin\n"),
        "{out}"
    );
    muster_exits(&p, &["exec", "web", "--", "sh", "-c", "exit 3"], 3);
    let out = muster_exits(&p, &["exec", "web-7", "--", "true"], 1);
    assert!(
        out.stderr.contains(&format!("task {}_web.7", p.name()))
            && out.stderr.contains("no task of that slot is running"),
        "{out}"
    );
}

/// Per-ordinal volumes on a swarm: `{ordinal}` is the task's slot (or
/// the sequential ordinal), `down` keeps them and the next apply mounts
/// them again, and `down --volumes` removes them, waiting for the
/// containers of the removed tasks to let go of them.
#[test]
fn swarm_per_ordinal_volumes_are_kept_by_down_and_removed_by_down_volumes() {
    let (p, image) = project("swarm-vol");
    let run = "command = [\"sh\", \"-c\", \"hostname >> /data/seen; exec sleep 3600\"]\n\
               init = true\nstop_grace_period = \"1s\"\n";
    p.write(&format!(
        "backend = \"swarm\"\n\
         [services.web]\nimage = \"{image}\"\ncount = 2\nvolumes = [\"data-{{ordinal}}:/data\"]\n{run}\
         [services.db]\nimage = \"{image}\"\nmode = \"sequential\"\ncount = 2\nvolumes = [\"dbdata-{{ordinal}}:/data\"]\n{run}"
    ));
    let name = p.name();
    let volumes: Vec<String> = ["data-1", "data-2", "dbdata-1", "dbdata-2"]
        .map(|v| format!("{name}_{v}"))
        .into();
    let seen = |target: &str| muster_ok(&p, &["exec", target, "--", "cat", "/data/seen"]).stdout;
    muster_ok(&p, &["apply"]);
    assert_eq!(p.volumes(), volumes);
    for target in ["web-1", "web-2", "db-1", "db-2"] {
        assert_eq!(seen(target), format!("{target}\n"));
    }

    muster_ok(&p, &["down"]);
    assert_eq!(p.volumes(), volumes, "down removed a volume");
    muster_ok(&p, &["apply"]);
    for target in ["web-1", "web-2", "db-1", "db-2"] {
        assert_eq!(
            seen(target),
            format!("{target}\n{target}\n"),
            "its volume again"
        );
    }

    let out = muster_ok(&p, &["down", "--volumes"]);
    assert!(out.stdout.contains("4 volumes removed"), "{out}");
    assert_eq!(p.volumes(), Vec::<String>::new(), "{out}");
}

/// `muster ps` shows the port a swarm service publishes through the
/// ingress mesh (the swarm picks it) on the service's row.
#[test]
fn swarm_ps_shows_the_port_published_through_the_mesh() {
    let (p, image) = project("swarm-ps-ports");
    p.write(&format!(
        "backend = \"swarm\"\n[services.web]\nimage = \"{image}\"\ncount = 1\n\
         command = [\"sleep\", \"3600\"]\nports = [\"8080\"]\ninit = true\nstop_grace_period = \"1s\"\n"
    ));
    muster_ok(&p, &["apply"]);
    let svc = format!("{}_web", p.name());
    let service = block_on(docker().inspect_service(&svc, None::<InspectServiceOptions>)).unwrap();
    let published: Vec<i64> = service
        .endpoint
        .and_then(|e| e.ports)
        .unwrap_or_default()
        .iter()
        .filter_map(|port| port.published_port)
        .collect();
    assert_eq!(published.len(), 1, "{published:?}");
    let ps = muster_ok(&p, &["ps"]);
    let row = ps
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&svc))
        .unwrap_or_default();
    assert!(
        row.ends_with(&format!("  0.0.0.0:{}->8080/tcp", published[0])),
        "{ps}"
    );
}

/// The status page of `muster watch --listen` on a swarm: the service's
/// row says how many replicas run, and each task has a row of its own with
/// its slot, its node, the swarm's state and the port it publishes there.
#[test]
fn swarm_status_page_shows_each_task_with_its_slot_node_and_port() {
    let (p, image) = project("swarm-page");
    p.write(&web(&image, 2, "ports = [\"9000\"]").replace(
        "endpoint_mode = \"dnsrr\"\n",
        "endpoint_mode = \"dnsrr\"\npublish_mode = \"host\"\n",
    ));
    let svc = format!("{}_web", p.name());
    let node = block_on(docker().info()).unwrap().name.unwrap();
    let page = web::Web::start(&p, None);
    page.daemon
        .wait_until("2 replicas run", T, || running_tasks(&svc).len() == 2);
    let task_ports = |slot: u32| -> Vec<u16> {
        task_containers(&svc)
            .into_iter()
            .filter(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get("com.docker.swarm.task.name"))
                    .is_some_and(|n| n.starts_with(&format!("{svc}.{slot}.")))
            })
            .flat_map(|c| c.ports.unwrap_or_default())
            .filter_map(|port| port.public_port)
            .collect()
    };
    page.daemon
        .wait_until("the page shows both tasks running", T, || {
            let html = page.get("/").body;
            html.contains(&format!(
                ">{svc}</td><td class=\"state-running\">2/2 replicas running</td>"
            )) && (1..=2).all(|slot| {
                task_ports(slot).first().is_some_and(|port| {
                    html.contains(&format!(
                        "<tr class=\"task\"><td>↳ slot {slot} on {node}</td>\
                         <td class=\"state-running\">running</td><td></td><td>{port}→9000/tcp</td>"
                    ))
                })
            })
        });
}

#[test]
fn swarm_task_that_cannot_start_fails_apply_naming_the_service_and_its_error() {
    let (p, image) = project("swarm-fail");
    p.write(&format!(
        "backend = \"swarm\"\n[services.web]\nimage = \"{image}\"\ncommand = [\"/no/such/program\"]\nready_timeout = \"60s\"\n"
    ));
    let out = muster_exits(&p, &["apply"], 1);
    let svc = format!("{}_web", p.name());
    assert!(out.stderr.contains(&svc), "{out}");
    assert!(
        out.stderr.contains("no/such/program") || out.stderr.contains("not found"),
        "the task's error is shown:\n{out}"
    );
}

/// A task whose command exits at once, behind an init (the task runs
/// before it fails): each apply fails, whether the swarm restarts it or not.
/// The swarm says the task runs before it says it failed, so its settle
/// time counts from when it is seen running, not from the create.
#[test]
fn swarm_task_that_exits_at_once_fails_every_apply() {
    let (p, image) = project("swarm-exit");
    for restart in ["no", "always", "no"] {
        p.write(&format!(
            "backend = \"swarm\"\n[services.bad]\nimage = \"{image}\"\n\
             command = [\"sh\", \"-c\", \"echo boom; exit 3\"]\ninit = true\n\
             restart = \"{restart}\"\nready_timeout = \"20s\"\n"
        ));
        let out = muster_exits(&p, &["apply"], 1);
        assert!(out.stderr.contains(&format!("{}_bad", p.name())), "{out}");
        muster_ok(&p, &["down"]);
    }
}

/// A task the swarm cannot place: the apply fails at ready_timeout with
/// the swarm's reason.
#[test]
fn swarm_task_that_cannot_be_placed_fails_apply_with_the_swarms_reason() {
    let (p, image) = project("swarm-place");
    p.write(&format!(
        "backend = \"swarm\"\n[services.web]\nimage = \"{image}\"\n\
         command = [\"sleep\", \"3600\"]\ninit = true\nready_timeout = \"5s\"\n\
         [services.web.placement]\nconstraints = [\"node.labels.muster-test-nowhere == yes\"]\n"
    ));
    let out = muster_exits(&p, &["apply"], 1);
    assert!(
        out.stderr
            .contains("was not ready within ready_timeout (5s)")
            && out.stderr.contains("no suitable node"),
        "{out}"
    );
}

#[test]
fn swarm_plan_and_dry_run_cause_no_engine_event() {
    let (p, image) = project("swarm-dry");
    p.write(&web(&image, 2, ""));
    muster_ok(&p, &["apply"]);
    p.write(&web(&image, 4, "env = { CHANGED = \"yes\" }"));
    let events = record_events(&p, || {
        let plan = muster_exits(&p, &["plan", "--detailed-exitcode"], 2);
        assert!(plan.stdout.contains("(swarm, "), "{plan}");
        muster_exits(&p, &["apply", "--dry-run", "--detailed-exitcode"], 2);
        muster_ok(&p, &["ps"]);
    });
    assert_eq!(events, Vec::<String>::new());
    assert_eq!(replicas(&format!("{}_web", p.name())), Some(2));
}

#[test]
fn swarm_apply_killed_midway_is_finished_by_the_next_apply() {
    let (p, image) = project("swarm-kill");
    p.write(&format!(
        "backend = \"swarm\"\n[services.db]\nimage = \"{image}\"\nmode = \"sequential\"\ncount = 3\n\
         command = [\"sh\", \"-c\", \"sleep 2; touch /tmp/ok; exec sleep 3600\"]\ninit = true\nrestart = \"always\"\nstop_grace_period = \"1s\"\n\
         [services.db.healthcheck]\ntest = [\"CMD\", \"test\", \"-f\", \"/tmp/ok\"]\ninterval = \"1s\"\n"
    ));
    let mut child = support::muster_process(p.dir())
        .args(["-f", "services.toml", "apply"])
        .spawn()
        .unwrap();
    let first = format!("{}_db-1", p.name());
    wait_until("db-1 exists", T, || replicas(&first).is_some());
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let out = muster_ok(&p, &["apply", "--lock-timeout", "10s"]);
    for k in 1..=3 {
        let name = format!("{}_db-{k}", p.name());
        assert_eq!(replicas(&name), Some(1), "{name}:\n{out}");
    }
    assert!(muster_ok(&p, &["plan"]).stdout.contains("No changes."));
}

#[test]
fn swarm_daemon_puts_back_a_service_scaled_by_hand() {
    let (p, image) = project("swarm-daemon");
    let svc = format!("{}_web", p.name());
    p.write(&web(&image, 3, ""));
    let d = Daemon::watch(&p, "60s");
    d.wait_until("3 replicas run", T, || running_tasks(&svc).len() == 3);
    let status = std::process::Command::new("docker")
        .args(["service", "scale", "--detach", &format!("{svc}=1")])
        .output()
        .expect("docker service scale");
    assert!(status.status.success(), "{status:?}");
    d.wait_until("the daemon scaled it back to 3", T, || {
        replicas(&svc) == Some(3) && running_tasks(&svc).len() == 3
    });
}

#[test]
fn a_project_of_the_docker_backend_is_refused_by_the_swarm_backend() {
    let (p, image) = project("swarm-both");
    p.write(&web(&image, 1, "").replace("backend = \"swarm\"\n", ""));
    muster_ok(&p, &["apply"]);
    let out = muster(&p, &["apply", "--backend", "swarm"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("docker backend"), "{out}");
    assert_eq!(replicas(&format!("{}_web", p.name())), None);
    assert_eq!(
        p.containers().len(),
        1,
        "the docker backend's container stays"
    );
}

/// And the other way round: the docker backend's plan, ps and down refuse
/// a project that runs on the swarm, naming its services, and touch
/// nothing (down used to try to remove the swarm's network).
#[test]
fn a_project_of_the_swarm_backend_is_refused_by_the_docker_backend() {
    let (p, image) = project("swarm-both-ways");
    p.write(&web(&image, 1, ""));
    muster_ok(&p, &["apply"]);
    let svc = format!("{}_web", p.name());
    for command in [&["plan"][..], &["ps"], &["down"], &["apply"]] {
        let mut args = vec!["--backend", "docker"];
        args.extend(command);
        let out = muster(&p, &args);
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.contains("with the swarm backend") && out.stderr.contains(&svc),
            "{args:?}: {out}"
        );
    }
    assert_eq!(replicas(&svc), Some(1), "the swarm service stays");
}

/// `logs -f` on the swarm backend: each service's lines prefixed by the
/// service, then those of a service created while it follows; Ctrl-C ends
/// it with 0.
#[test]
fn swarm_logs_follow_a_service_created_later() {
    let (project, image) = project("swarm-logs");
    let p = project.name().to_string();
    let service = |name: &str| {
        format!(
            "[services.{name}]\nimage = \"{image}\"\n\
             command = [\"sh\", \"-c\", \"echo hello from {name}; exec sleep 3600\"]\n\
             init = true\nstop_grace_period = \"1s\"\n"
        )
    };
    let head = "backend = \"swarm\"\n[swarm]\nendpoint_mode = \"dnsrr\"\n";
    project.write(&format!("{head}{}", service("web")));
    muster_ok(&project, &["apply", "-q"]);
    let logs = Daemon::start(&project, &["logs", "-f"]);
    logs.wait_line(0, &format!("{p}_web | hello from web"), T);

    project.write(&format!("{head}{}{}", service("web"), service("api")));
    muster_ok(&project, &["apply", "-q"]);
    logs.wait_line(0, &format!("{p}_api | hello from api"), T);
    assert!(logs.is_running(), "{}", logs.transcript());

    logs.signal(libc::SIGINT);
    let status = logs
        .wait_exit(Duration::from_secs(10))
        .expect("logs -f ends on SIGINT");
    assert_eq!(status.code(), Some(0), "{}", logs.transcript());
}

/// A service of the project that takes a planned name after the plan was
/// made (a killed apply's create committed late) is replaced by the file's
/// spec, as on the docker backend (safety_engine).
#[test]
fn a_service_of_the_project_that_takes_a_planned_name_after_the_plan_is_replaced() {
    let (p, image) = project("swarm-twin");
    // `app` waits for `db`, healthy two seconds after it starts.
    p.write(&format!(
        "backend = \"swarm\"\n[swarm]\nendpoint_mode = \"dnsrr\"\n\
         [services.db]\nimage = \"{image}\"\nmode = \"sequential\"\n\
         command = [\"sh\", \"-c\", \"sleep 2; touch /tmp/ok; exec sleep 3600\"]\ninit = true\nstop_grace_period = \"1s\"\n\
         [services.db.healthcheck]\ntest = [\"CMD\", \"test\", \"-f\", \"/tmp/ok\"]\ninterval = \"1s\"\n\
         [services.app]\nimage = \"{image}\"\ncommand = [\"sleep\", \"3600\"]\ninit = true\nstop_grace_period = \"1s\"\n\
         env = {{ FROM = \"file\" }}\ndepends_on = [\"db\"]\n"
    ));
    let app = format!("{}_app", p.name());
    let apply = support::muster_process(p.dir())
        .args(["-f", "services.toml", "apply"])
        .spawn()
        .unwrap();
    // The plan is made: db is being created, app waits for its health.
    wait_until("db-1 exists", T, || {
        replicas(&format!("{}_db-1", p.name())).is_some()
    });
    let twin = service_by_hand(&app, &[&format!("io.muster.project={}", p.name())], &image);
    let out = support::Outcome::from(apply.wait_with_output().unwrap());
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains(&format!("replacing {app}")),
        "the apply does not say it replaced {app}:\n{out}"
    );
    let service = block_on(docker().inspect_service(&app, None::<InspectServiceOptions>))
        .expect("app's service");
    assert_ne!(
        service.id.as_deref(),
        Some(twin.as_str()),
        "still the twin:\n{out}"
    );
    let env = service
        .spec
        .and_then(|s| s.task_template?.container_spec?.env)
        .unwrap_or_default();
    assert!(env.contains(&"FROM=file".to_string()), "{env:?}\n{out}");
    muster_exits(&p, &["plan", "--detailed-exitcode"], 0);
}

/// A service that is not the project's keeps its name: the apply fails
/// naming it and leaves it as it was.
#[test]
fn a_service_outside_the_project_that_holds_a_planned_name_stays() {
    let (p, image) = project("swarm-foreign");
    p.write(&web(&image, 1, ""));
    let svc = format!("{}_web", p.name());
    // Not the project's: cleaned up by the guard below, not by the project.
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = block_on(docker().delete_service(&self.0));
        }
    }
    let _guard = Remove(svc.clone());
    let foreign = service_by_hand(&svc, &[], &image);
    let out = muster_exits(&p, &["apply"], 1);
    assert!(
        out.stderr.contains(&format!("the name {svc} is taken")),
        "{out}"
    );
    let service = block_on(docker().inspect_service(&svc, None::<InspectServiceOptions>))
        .expect("the foreign service");
    assert_eq!(service.id.as_deref(), Some(foreign.as_str()), "{out}");
}
