//! `backend = "swarm"` on a real swarm of two nodes (SPEC section 10): two
//! `dockerd`s in network namespaces of their own, joined as a manager and
//! a worker by `tests/support/cluster.rs`. muster drives the manager; the
//! tasks land on both nodes, and a sequential service whose ordinals run on
//! different nodes still reaches the earlier ones by their link addresses
//! across the overlay network (`dnsrr`: this kernel has no IPVS); `exec`
//! reaches the tasks of the manager's node and names the node of others.

#[path = "support/cluster.rs"]
mod cluster;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster::Cluster;
use support::{Outcome, Project};

const T: Duration = Duration::from_secs(120);

fn muster(project: &Project, swarm: &Cluster, args: &[&str]) -> Outcome {
    let out: Outcome = project
        .muster()
        .env("DOCKER_HOST", swarm.manager_host())
        .args(args)
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, Some(0), "muster {args:?}:\n{out}");
    out
}

#[test]
fn a_two_node_swarm_runs_the_file_on_both_nodes_and_links_reach_across_them() {
    let swarm = Cluster::start();
    let image = swarm.registry_image(support::image());
    let project = Project::new("swarm-two");
    let p = project.name();
    project.write(&format!(
        "backend = \"swarm\"\n[swarm]\nendpoint_mode = \"dnsrr\"\n\
         [services.web]\nimage = \"{image}\"\ncount = 4\ncommand = [\"sleep\", \"3600\"]\ninit = true\nstop_grace_period = \"1s\"\n\
         [services.web.placement]\nmax_replicas_per_node = 2\n\
         [services.db]\nimage = \"{image}\"\nmode = \"sequential\"\ncount = 2\nexpose = [\"7000\"]\n\
         command = [\"sh\", \"-c\", \"while true; do echo hi-from-$(hostname) | nc -l -p 7000; done\"]\n\
         init = true\nstop_grace_period = \"1s\"\n"
    ));
    let out = muster(&project, &swarm, &["apply"]);
    assert!(out.stdout.contains("(swarm, 2 nodes)"), "{out}");

    let web = swarm.wait_running(&format!("{p}_web"), 4, T);
    let nodes: BTreeSet<usize> = web.iter().map(|t| swarm.node_of_task(t)).collect();
    assert_eq!(nodes.len(), 2, "web's tasks run on both nodes: {web:?}");

    let db1 = swarm.wait_running(&format!("{p}_db-1"), 1, T);
    let db2 = swarm.wait_running(&format!("{p}_db-2"), 1, T);
    let (n1, n2) = (swarm.node_of_task(&db1[0]), swarm.node_of_task(&db2[0]));
    assert_ne!(n1, n2, "the two ordinals run on different nodes");
    // Names take a moment to spread between the nodes.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = swarm.exec(
            &db2[0],
            &[
                "sh",
                "-c",
                "echo | nc -w 2 $DB_1_PORT_7000_TCP_ADDR $DB_1_PORT_7000_TCP_PORT",
            ],
        );
        if code == 0 && text.contains("hi-from-db-1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "db-2 (node {n2}) does not reach db-1 (node {n1}) by its link address: {code} {text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // `muster exec` reaches the tasks of the node it talks to (the
    // manager, node 0), and names the node of a task elsewhere.
    for (k, node) in [(1, n1), (2, n2)] {
        let db = format!("db-{k}");
        let out: Outcome = project
            .muster()
            .env("DOCKER_HOST", swarm.manager_host())
            .args(["exec", &db, "--", "hostname"])
            .output()
            .unwrap()
            .into();
        if node == 0 {
            assert_eq!(out.code, Some(0), "{out}");
            assert_eq!(out.stdout.trim(), db, "{out}");
        } else {
            assert_eq!(out.code, Some(1), "{out}");
            assert!(
                out.stderr.contains("it runs on node") && out.stderr.contains("point DOCKER_HOST"),
                "{out}"
            );
        }
    }

    // A worker cannot be driven: muster says what to do instead.
    let worker: Outcome = project
        .muster()
        .env("DOCKER_HOST", &swarm.hosts()[1])
        .arg("plan")
        .output()
        .unwrap()
        .into();
    assert_eq!(worker.code, Some(1), "{worker}");
    assert!(
        worker.stderr.contains("a swarm worker, not a manager")
            && worker.stderr.contains("point DOCKER_HOST"),
        "{worker}"
    );

    let ps = muster(&project, &swarm, &["ps"]);
    assert!(ps.stdout.contains("4/4 replicas running"), "{ps}");
    let plan = muster(&project, &swarm, &["plan"]);
    assert!(plan.stdout.contains("No changes."), "{plan}");
    muster(&project, &swarm, &["down"]);
    let left = cluster::block_on(
        swarm
            .manager()
            .list_services(None::<bollard::query_parameters::ListServicesOptions>),
    )
    .unwrap();
    assert!(left.is_empty(), "down removed every service: {left:?}");
    let left = swarm.shut_down();
    assert!(left.is_empty(), "the cluster left {left:?}");
}
