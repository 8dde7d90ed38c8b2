//! The two-node test swarm of `tests/support/cluster.rs` proves itself:
//! tasks of one service land on both nodes, a task on the worker reaches a
//! task on the manager by its service name across the overlay network, the
//! nodes get their image from the host's registry (or loaded in advance),
//! and the teardown leaves nothing on the machine, even after a panic.

#[path = "support/cluster.rs"]
mod cluster;
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, NetworkAttachmentConfig, NetworkCreateRequest, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
};

use cluster::{Cluster, block_on};

/// A replicated service of the test image on the overlay `network`, its
/// names resolving to the tasks' own addresses: this kernel has no IPVS, so
/// virtual IPs would not carry traffic.
fn service(
    name: &str,
    image: &str,
    network: &str,
    replicas: i64,
    placement: TaskSpecPlacement,
    command: &[&str],
) -> ServiceSpec {
    ServiceSpec {
        name: Some(name.to_string()),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(replicas),
            }),
            ..Default::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.to_string()),
                command: Some(command.iter().map(|s| s.to_string()).collect()),
                // busybox as PID 1 ignores SIGTERM: the teardown would wait.
                init: Some(true),
                ..Default::default()
            }),
            placement: Some(placement),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(network.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn two_nodes_spread_a_service_and_reach_each_other_by_name_then_leave_nothing_behind() {
    let host_image = support::image();
    let started = Instant::now();
    let cluster = Cluster::start();
    eprintln!(
        "two-node swarm {} up in {:?}",
        cluster.name(),
        started.elapsed()
    );
    let manager = cluster.manager().clone();

    let nodes = block_on(manager.list_nodes(None::<bollard::query_parameters::ListNodesOptions>))
        .expect("the manager lists its nodes");
    assert_eq!(nodes.len(), 2, "both nodes are in the swarm: {nodes:#?}");
    let hostnames: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.description.as_ref()?.hostname.clone())
        .collect();
    for node in cluster.nodes() {
        assert!(
            hostnames.contains(&node.name),
            "node {} reports its own host name: {hostnames:?}",
            node.name
        );
    }

    for node in cluster.nodes() {
        let out = std::process::Command::new("ip")
            .args(["-n", &node.name, "route", "show", "default"])
            .output()
            .expect("ip runs");
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "node {} has no default route: nothing leaves the machine: {out:?}",
            node.name
        );
    }

    // The nodes have no image of their own: they pull this one from the
    // host's registry through their forwarders.
    let pushed = cluster.registry_image(host_image);
    // This one it gets loaded in advance, and runs without any registry.
    cluster.load_image(host_image);

    let network = "probe_net";
    block_on(manager.create_network(NetworkCreateRequest {
        name: network.to_string(),
        driver: Some("overlay".to_string()),
        attachable: Some(true),
        ..Default::default()
    }))
    .expect("the manager creates an attachable overlay network");

    let spread = TaskSpecPlacement {
        max_replicas: Some(2),
        ..Default::default()
    };
    block_on(manager.create_service(
        service("web", &pushed, network, 4, spread, &["sleep", "3600"]),
        None,
    ))
    .expect("the manager creates the service web");
    let on_manager = TaskSpecPlacement {
        constraints: Some(vec!["node.role == manager".to_string()]),
        ..Default::default()
    };
    let listen = "while true; do echo pong | nc -l -p 7000; done";
    block_on(manager.create_service(
        service(
            "listener",
            host_image,
            network,
            1,
            on_manager,
            &["sh", "-c", listen],
        ),
        None,
    ))
    .expect("the manager creates the service listener");

    let web = cluster.wait_running("web", 4, Duration::from_secs(120));
    let mut per_node: BTreeMap<usize, usize> = BTreeMap::new();
    for task in &web {
        *per_node.entry(cluster.node_of_task(task)).or_default() += 1;
    }
    assert_eq!(
        per_node,
        BTreeMap::from([(0, 2), (1, 2)]),
        "4 tasks at most 2 per node run 2 on each node: {web:#?}"
    );
    let repo = pushed
        .rsplit_once(':')
        .map_or(pushed.as_str(), |(repo, _)| repo);
    let digests = block_on(cluster.nodes()[1].docker().inspect_image(&pushed))
        .ok()
        .and_then(|i| i.repo_digests)
        .unwrap_or_default();
    assert!(
        digests
            .iter()
            .any(|d| d.starts_with(&format!("{repo}@sha256:"))),
        "node 2 pulled {pushed} from the registry (a pulled image has its digest): {digests:?}"
    );
    let listener = cluster.wait_running("listener", 1, Duration::from_secs(120));
    assert_eq!(
        cluster.node_of_task(&listener[0]),
        0,
        "listener runs on the manager"
    );

    // The name resolves once the worker has learnt the listener's address
    // over the swarm's gossip: retry for a while.
    let client = web
        .iter()
        .find(|t| t.node == Some(1))
        .expect("a task of web runs on node 2");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, out) = loop {
        let (code, out) = cluster.exec(client, &["sh", "-c", "echo hi | nc -w 2 listener 7000"]);
        if (code == 0 && out.contains("pong")) || Instant::now() > deadline {
            break (code, out);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        code == 0 && out.contains("pong"),
        "a task on node 2 reaches listener on node 1 by name over TCP: exit {code}, {out:?}"
    );

    let stopping = Instant::now();
    let left = cluster.shut_down();
    eprintln!("two-node swarm down in {:?}", stopping.elapsed());
    assert!(left.is_empty(), "the teardown left: {left:#?}");
}

#[test]
fn a_test_that_panics_still_tears_its_cluster_down() {
    let built: Mutex<Option<(String, PathBuf)>> = Mutex::new(None);
    let outcome = std::panic::catch_unwind(|| {
        let cluster = Cluster::start();
        *built.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((cluster.name().to_string(), cluster.dir().to_path_buf()));
        assert!(
            cluster::leftovers(cluster.name(), cluster.dir()).len() > 2,
            "a running cluster is visible as namespaces, mounts and processes"
        );
        panic!("the test fails with its cluster up");
    });
    assert!(outcome.is_err(), "the closure panicked");
    let (name, dir) = built
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .expect("the cluster was built before the panic");
    let left = cluster::leftovers(&name, &dir);
    assert!(
        left.is_empty(),
        "after the panic the teardown left: {left:#?}"
    );
}
