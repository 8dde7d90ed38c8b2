//! A two-node Docker Swarm of the tests' own, on this one machine.
//!
//! Tests include it with `#[path = "support/cluster.rs"] mod cluster;` beside
//! `mod support;` (whose `exec_on` it uses), and build one with
//! [`Cluster::start`]. It needs root, `ip` (iproute2), `nsenter`
//! (util-linux), `socat`, `dockerd` and `fuse-overlayfs`.
//!
//! Layout of one cluster, named `mcl-<pid>-<n>`:
//! - two network namespaces `<name>-1` and `<name>-2`, joined by one veth
//!   pair (`eth0` in each, `198.18.0.1/24` and `198.18.0.2/24`). Nothing
//!   else: no link to the host, no default route, so nothing a node does
//!   can leave the machine. The pair is private to the two namespaces, so
//!   clusters of concurrent tests use the same addresses without meeting.
//! - in each namespace a `dockerd` with its own config file, data root,
//!   exec root, pid file, socket, containerd namespace and UTS namespace
//!   (the host name is the node's name). It is started with `nsenter
//!   --net=…`, not `ip netns exec`, which remounts `/sys` and hides the
//!   cgroup mounts from the daemon.
//! - node 1 runs `swarm init` advertising `198.18.0.1`; node 2 joins as a
//!   worker advertising `198.18.0.2`.
//! - the host's registry `127.0.0.1:5000` appears at `127.0.0.1:5000` in
//!   both namespaces: a `socat` on each namespace's loopback forwards to a
//!   unix socket in the cluster's directory, where a `socat` on the host
//!   forwards to the registry. One image name then works on both nodes,
//!   and both daemons treat it as an insecure loopback registry.
//!
//! Everything lives in one directory under the temporary directory, and is
//! torn down on drop, even when the test panicked: swarm leave, daemons
//! stopped (killed after a grace period, with every process they left),
//! mounts under the directory detached, namespaces deleted (the veth pair
//! goes with them), directory removed. A cluster left by a test process
//! that was killed is swept by the next [`Cluster::start`].

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{SwarmInitRequest, SwarmJoinRequest, TaskState};
use bollard::query_parameters::{
    LeaveSwarmOptionsBuilder, ListNodesOptions, ListTasksOptionsBuilder, PushImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures_util::StreamExt;

use crate::support::engine::exec_on;

/// Where the namespaces' mount points live (`ip netns add`).
const NETNS_DIR: &str = "/var/run/netns";
/// Every cluster's name, namespace and directory starts with this.
const PREFIX: &str = "mcl-";
/// The link between the nodes; see the module documentation.
const ADDRESSES: [&str; 2] = ["198.18.0.1", "198.18.0.2"];
/// The host's registry, and where it appears inside the namespaces.
pub const REGISTRY: &str = "127.0.0.1:5000";
/// How long a daemon has to answer, and a node to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a daemon has to stop on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot build the cluster helper's tokio runtime")
    })
}

/// Runs `f` on the cluster helper's runtime, where its clients live.
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// One node: a daemon in its own namespace.
pub struct Node {
    /// The node's name: its namespace's, and its host name.
    pub name: String,
    /// `unix://…` of its socket, for `DOCKER_HOST`.
    pub host: String,
    /// Its address on the link between the nodes.
    pub address: String,
    /// Its swarm node id.
    pub id: String,
    docker: Option<Docker>,
    daemon: Child,
    dir: PathBuf,
}

impl Node {
    /// A client of the node's daemon.
    pub fn docker(&self) -> &Docker {
        self.docker
            .as_ref()
            .unwrap_or_else(|| panic!("node {} never answered", self.name))
    }
}

/// A task of a swarm service, as the manager reports it.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    pub id: String,
    pub slot: Option<i64>,
    /// Index into [`Cluster::nodes`] of the node that runs it.
    pub node: Option<usize>,
    pub state: Option<TaskState>,
    pub desired_state: Option<TaskState>,
    pub container: Option<String>,
    pub error: Option<String>,
}

impl TaskInfo {
    pub fn is_running(&self) -> bool {
        self.state == Some(TaskState::RUNNING) && self.desired_state == Some(TaskState::RUNNING)
    }
}

/// A two-node swarm: node 1 is the manager, node 2 a worker.
pub struct Cluster {
    name: String,
    dir: PathBuf,
    nodes: Vec<Node>,
    forwarders: Vec<Child>,
    torn_down: bool,
}

impl Cluster {
    /// Builds the two namespaces and daemons and forms the swarm. Also
    /// sweeps what killed test processes left behind.
    ///
    /// # Panics
    /// When a step fails, with the command, its error and the daemons' last
    /// log lines. What was built by then is torn down.
    pub fn start() -> Cluster {
        sweep_stale();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(&name);
        let mut cluster = Cluster {
            name,
            dir,
            nodes: Vec::new(),
            forwarders: Vec::new(),
            torn_down: false,
        };
        // On a panic below, dropping `cluster` tears down the part built.
        cluster.build();
        cluster
    }

    fn build(&mut self) {
        fs::create_dir_all(&self.dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.dir.display()));
        let config = self.dir.join("daemon.json");
        // The machine's /etc/docker/daemon.json fixes the host's data root.
        fs::write(&config, "{}\n")
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));

        let names = [format!("{}-1", self.name), format!("{}-2", self.name)];
        for ns in &names {
            run("ip", &["netns", "add", ns]);
        }
        let [ns1, ns2] = &names;
        run(
            "ip",
            &[
                "link", "add", "eth0", "netns", ns1, "type", "veth", "peer", "name", "eth0",
                "netns", ns2,
            ],
        );
        for (ns, address) in names.iter().zip(ADDRESSES) {
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            let cidr = format!("{address}/24");
            run("ip", &["-n", ns, "addr", "add", &cidr, "dev", "eth0"]);
            run("ip", &["-n", ns, "link", "set", "eth0", "up"]);
        }

        self.start_forwarders(&names);
        let mut daemons = Vec::new();
        for (i, ns) in names.iter().enumerate() {
            daemons.push(spawn_daemon(&self.dir, &config, ns, i + 1));
        }
        for (i, ((ns, address), daemon)) in names.iter().zip(ADDRESSES).zip(daemons).enumerate() {
            let dir = self.dir.join(format!("n{}", i + 1));
            let socket = dir.join("docker.sock");
            let host = format!("unix://{}", socket.display());
            let mut node = Node {
                name: ns.to_string(),
                host,
                address: address.to_string(),
                id: String::new(),
                docker: None,
                daemon,
                dir,
            };
            node.docker = connect(&mut node);
            // Kept before the check so that a failure tears the daemon down.
            let answered = node.docker.is_some();
            self.nodes.push(node);
            if !answered {
                let node = &self.nodes[i];
                panic!(
                    "dockerd of node {} did not answer at {} within {START_TIMEOUT:?}:\n{}",
                    node.name,
                    node.host,
                    log_tail(&node.dir)
                );
            }
        }
        self.form_swarm();
    }

    fn start_forwarders(&mut self, namespaces: &[String]) {
        let socket = self.dir.join("registry.sock");
        let host_side = Command::new("socat")
            .arg(format!("UNIX-LISTEN:{},fork", socket.display()))
            .arg(format!("TCP:{REGISTRY}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start socat (apt-get install socat): {e}"));
        self.forwarders.push(host_side);
        for ns in namespaces {
            let inside = Command::new("nsenter")
                .arg(format!("--net={NETNS_DIR}/{ns}"))
                .arg("socat")
                .arg("TCP-LISTEN:5000,bind=127.0.0.1,fork,reuseaddr")
                .arg(format!("UNIX-CONNECT:{}", socket.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start socat in namespace {ns}: {e}"));
            self.forwarders.push(inside);
        }
    }

    fn form_swarm(&mut self) {
        let [manager, worker] = &mut self.nodes[..] else {
            unreachable!("a cluster has two nodes")
        };
        let token =
            block_on(async {
                let init = SwarmInitRequest {
                    listen_addr: Some(format!("{}:2377", manager.address)),
                    advertise_addr: Some(manager.address.clone()),
                    ..Default::default()
                };
                manager.docker().init_swarm(init).await.map_err(|e| {
                    format!("swarm init advertising {} failed: {e}", manager.address)
                })?;
                let swarm = manager
                    .docker()
                    .inspect_swarm()
                    .await
                    .map_err(|e| format!("cannot inspect the new swarm: {e}"))?;
                swarm
                    .join_tokens
                    .and_then(|t| t.worker)
                    .ok_or_else(|| "the new swarm has no worker join token".to_string())
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&manager.dir)));
        block_on(async {
            let join = SwarmJoinRequest {
                listen_addr: Some(format!("{}:2377", worker.address)),
                advertise_addr: Some(worker.address.clone()),
                remote_addrs: Some(vec![format!("{}:2377", manager.address)]),
                join_token: Some(token),
                ..Default::default()
            };
            worker.docker().join_swarm(join).await
        })
        .unwrap_or_else(|e| {
            panic!(
                "swarm join of {} advertising {} failed: {e}\n{}",
                worker.name,
                worker.address,
                log_tail(&worker.dir)
            )
        });
        for node in [&mut *manager, &mut *worker] {
            node.id = block_on(node.docker().info())
                .ok()
                .and_then(|i| i.swarm)
                .and_then(|s| s.node_id)
                .unwrap_or_else(|| panic!("node {} has no swarm node id", node.name));
        }
        self.wait_nodes_ready();
    }

    fn wait_nodes_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let nodes =
                block_on(self.manager().list_nodes(None::<ListNodesOptions>)).unwrap_or_default();
            let ready = nodes
                .iter()
                .filter(|n| {
                    n.status.as_ref().and_then(|s| s.state)
                        == Some(bollard::models::NodeState::READY)
                })
                .count();
            if ready == 2 {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{ready} of 2 swarm nodes ready after {START_TIMEOUT:?}: {nodes:#?}\n{}",
                    log_tail(&self.nodes[1].dir)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The cluster's name; its nodes are `<name>-1` and `<name>-2`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory that holds everything of the cluster on disk.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Both nodes, the manager first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The manager's client.
    pub fn manager(&self) -> &Docker {
        self.nodes[0].docker()
    }

    /// `unix://…` of the manager's socket: `DOCKER_HOST` for muster.
    pub fn manager_host(&self) -> &str {
        &self.nodes[0].host
    }

    /// `unix://…` of each node's socket, the manager first.
    pub fn hosts(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.host.clone()).collect()
    }

    /// Index into [`Cluster::nodes`] of the node with this swarm id.
    pub fn node_index(&self, node_id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == node_id)
    }

    /// The tasks of a service (by name or id), as the manager lists them,
    /// in slot order.
    pub fn tasks(&self, service: &str) -> Vec<TaskInfo> {
        let options = ListTasksOptionsBuilder::default()
            .filters(&[("service", vec![service])].into())
            .build();
        let tasks = block_on(self.manager().list_tasks(Some(options)))
            .unwrap_or_else(|e| panic!("cannot list the tasks of service {service}: {e}"));
        let mut tasks: Vec<TaskInfo> = tasks
            .into_iter()
            .map(|t| {
                let status = t.status.unwrap_or_default();
                TaskInfo {
                    id: t.id.unwrap_or_default(),
                    slot: t.slot,
                    node: t.node_id.as_deref().and_then(|id| self.node_index(id)),
                    state: status.state,
                    desired_state: t.desired_state,
                    container: status.container_status.and_then(|c| c.container_id),
                    error: status.err,
                }
            })
            .collect();
        tasks.sort_by_key(|t| t.slot);
        tasks
    }

    /// The running tasks of a service.
    pub fn running_tasks(&self, service: &str) -> Vec<TaskInfo> {
        let mut tasks = self.tasks(service);
        tasks.retain(TaskInfo::is_running);
        tasks
    }

    /// Waits until `count` tasks of the service run, and returns them.
    ///
    /// # Panics
    /// After `timeout`, with every task's state and error.
    pub fn wait_running(&self, service: &str, count: usize, timeout: Duration) -> Vec<TaskInfo> {
        let deadline = Instant::now() + timeout;
        loop {
            let running = self.running_tasks(service);
            if running.len() == count {
                return running;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} of {count} tasks of {service} running after {timeout:?}: {:#?}",
                    running.len(),
                    self.tasks(service)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Index into [`Cluster::nodes`] of the node that runs the task.
    pub fn node_of_task(&self, task: &TaskInfo) -> usize {
        task.node
            .unwrap_or_else(|| panic!("task {} is on no node of this cluster", task.id))
    }

    /// Runs `cmd` in the task's container through the daemon of the node
    /// that runs it: the exit code and the output (stdout and stderr).
    pub fn exec(&self, task: &TaskInfo, cmd: &[&str]) -> (i64, String) {
        let node = &self.nodes[self.node_of_task(task)];
        let container = task
            .container
            .as_deref()
            .unwrap_or_else(|| panic!("task {} has no container yet", task.id));
        block_on(exec_on(node.docker(), container, cmd))
    }

    /// Pushes an image of the host's engine to the host's registry and
    /// returns the name both nodes pull it by from `127.0.0.1:5000`, as a
    /// real cluster would. The name follows the image id, so that pushing
    /// again, from any test process, changes nothing: the host's engine
    /// keeps that one tag and the registry one tag per image.
    ///
    /// # Panics
    /// When the host's engine lacks the image or the registry refuses it.
    pub fn registry_image(&self, host_image: &str) -> String {
        let host = host_docker();
        let repo = format!("{REGISTRY}/muster-cluster/image");
        block_on(async {
            let id = host
                .inspect_image(host_image)
                .await
                .ok()
                .and_then(|i| i.id)
                .unwrap_or_else(|| panic!("the host's engine has no image {host_image}"));
            let tag: String = id.trim_start_matches("sha256:").chars().take(12).collect();
            let name = format!("{repo}:{tag}");
            let options = TagImageOptionsBuilder::default()
                .repo(&repo)
                .tag(&tag)
                .build();
            host.tag_image(host_image, Some(options))
                .await
                .unwrap_or_else(|e| panic!("cannot tag {host_image} as {name}: {e}"));
            let options = PushImageOptionsBuilder::default().tag(&tag).build();
            let mut push = host.push_image(&repo, Some(options), None);
            while let Some(step) = push.next().await {
                let error = match step {
                    Ok(info) => info.error_detail.and_then(|d| d.message),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(e) = error {
                    panic!(
                        "cannot push {name} to the registry at {REGISTRY} \
                         (.ci/run starts one): {e}"
                    );
                }
            }
            name
        })
    }

    /// Copies an image of the host's engine into both nodes through the
    /// image export and load API, for services that must not need a
    /// registry. A node still tries to pull it first and fails at once: it
    /// has no route out.
    pub fn load_image(&self, host_image: &str) {
        let host = host_docker();
        let tar = block_on(async {
            let mut out = Vec::new();
            let mut export = host.export_image(host_image);
            while let Some(chunk) = export.next().await {
                let chunk = chunk
                    .unwrap_or_else(|e| panic!("cannot export {host_image} from the host: {e}"));
                out.extend_from_slice(&chunk);
            }
            out
        });
        for node in &self.nodes {
            block_on(async {
                let options = bollard::query_parameters::ImportImageOptionsBuilder::default()
                    .quiet(true)
                    .build();
                let body = bollard::body_full(tar.clone().into());
                let mut load = node.docker().import_image(options, body, None);
                while let Some(step) = load.next().await {
                    let error = match step {
                        Ok(info) => info.error_detail.and_then(|d| d.message),
                        Err(e) => Some(e.to_string()),
                    };
                    if let Some(e) = error {
                        panic!("cannot load {host_image} into node {}: {e}", node.name);
                    }
                }
            });
        }
    }

    /// Tears the cluster down now, and returns what is left of it on the
    /// machine (see [`leftovers`]); empty when the teardown was complete.
    pub fn shut_down(mut self) -> Vec<String> {
        self.tear_down();
        leftovers(&self.name, &self.dir)
    }

    fn tear_down(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        // Leaving stops the node's tasks; the worker leaves first so that the
        // manager does not wait for it.
        for docker in self.nodes.iter().rev().filter_map(|n| n.docker.as_ref()) {
            let options = LeaveSwarmOptionsBuilder::default().force(true).build();
            let leave = docker.leave_swarm(Some(options));
            let _ = block_on(async { tokio::time::timeout(STOP_GRACE, leave).await });
        }
        for node in &mut self.nodes {
            stop(&mut node.daemon);
        }
        for forwarder in &mut self.forwarders {
            let _ = forwarder.kill();
            let _ = forwarder.wait();
        }
        destroy(&self.name, &self.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.tear_down();
    }
}

fn spawn_daemon(dir: &Path, config: &Path, ns: &str, index: usize) -> Child {
    let node_dir = dir.join(format!("n{index}"));
    fs::create_dir_all(&node_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", node_dir.display()));
    let log = fs::File::create(node_dir.join("dockerd.log"))
        .unwrap_or_else(|e| panic!("cannot create the log of node {ns}: {e}"));
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot share the log of node {ns}: {e}"));
    // nsenter, unshare and sh each exec the next, so the child's pid is
    // dockerd's. The node's own UTS namespace gives it its own host name,
    // which swarm reports as the node's.
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={NETNS_DIR}/{ns}"))
        .args(["unshare", "--uts", "sh", "-c"])
        .arg(r#"printf %s "$0" > /proc/sys/kernel/hostname && exec dockerd "$@""#)
        .arg(ns)
        .arg(format!("--config-file={}", config.display()))
        .arg(format!("--data-root={}", node_dir.join("data").display()))
        .arg(format!("--exec-root={}", node_dir.join("exec").display()))
        .arg(format!(
            "--pidfile={}",
            node_dir.join("docker.pid").display()
        ))
        .arg(format!(
            "--host=unix://{}",
            node_dir.join("docker.sock").display()
        ))
        .arg(format!("--storage-driver={}", storage_driver()))
        // Only has to differ from the link: the bridge is inside the node's
        // namespace, out of the host's sight.
        .arg("--bip=172.31.254.1/24")
        // Should the machine run a shared containerd, the nodes' containers
        // must not meet each other's or the host's there.
        .arg(format!("--containerd-namespace={ns}"))
        .arg(format!("--containerd-plugins-namespace={ns}-plugins"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start dockerd of node {ns} through nsenter: {e}"))
}

/// A client of the node's daemon once it answers; `None` when it exited
/// or did not answer within [`START_TIMEOUT`].
fn connect(node: &mut Node) -> Option<Docker> {
    let socket = node.dir.join("docker.sock");
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(node.daemon.try_wait(), Ok(Some(_))) {
            return None;
        }
        // bollard refuses a socket path that does not exist yet.
        if socket.exists() {
            let docker =
                Docker::connect_with_unix(&node.host, 120, bollard::API_DEFAULT_VERSION).ok()?;
            if block_on(docker.ping()).is_ok() {
                return Some(docker);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The host engine's storage driver when it is one a nested daemon can use
/// on this file system, else fuse-overlayfs, which works everywhere FUSE
/// does.
fn storage_driver() -> String {
    let host = block_on(host_docker().info())
        .ok()
        .and_then(|i| i.driver)
        .unwrap_or_default();
    match host.as_str() {
        "overlay2" | "fuse-overlayfs" | "vfs" => host,
        _ => "fuse-overlayfs".to_string(),
    }
}

fn host_docker() -> &'static Docker {
    static HOST: OnceLock<Docker> = OnceLock::new();
    HOST.get_or_init(|| {
        Docker::connect_with_defaults()
            .unwrap_or_else(|e| panic!("cannot make a client for the host's engine: {e}"))
    })
}

/// Runs a setup command.
///
/// # Panics
/// When it fails, with the command and its error output.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} {}: {e}", args.join(" ")));
    if !out.status.success() {
        panic!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`].
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child.id(), "TERM");
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Removes whatever is left of cluster `name`: processes still in its
/// namespaces or naming its directory (and their children, such as task
/// containers under a shim), mounts under its directory, its namespaces,
/// its directory.
fn destroy(name: &str, dir: &Path) {
    let pids = processes(name, dir);
    for pid in &pids {
        signal(*pid, "KILL");
    }
    let deadline = Instant::now() + STOP_GRACE;
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Deepest first, detached: a mount still busy goes once it is free.
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in mounts {
        let _ = Command::new("umount")
            .args(["-l", &mount])
            .stderr(Stdio::null())
            .status();
    }
    for ns in namespaces(name) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &ns])
            .stderr(Stdio::null())
            .status();
    }
    let _ = fs::remove_dir_all(dir);
}

/// What is left of cluster `name` on the machine: its namespaces, mounts
/// under its directory, processes, the directory itself. Empty after a
/// complete teardown.
pub fn leftovers(name: &str, dir: &Path) -> Vec<String> {
    let mut left: Vec<String> = namespaces(name)
        .into_iter()
        .map(|ns| format!("network namespace {ns}"))
        .collect();
    left.extend(mounts_under(dir).into_iter().map(|m| format!("mount {m}")));
    left.extend(
        processes(name, dir)
            .into_iter()
            .map(|p| format!("process {p}: {}", cmdline(p).replace('\0', " "))),
    );
    if dir.exists() {
        left.push(format!("directory {}", dir.display()));
    }
    left
}

/// The namespaces of cluster `name` (`<name>-1`, `<name>-2`).
fn namespaces(name: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|ns| {
            ns.strip_prefix(name)
                .is_some_and(|rest| rest == "-1" || rest == "-2")
        })
        .collect();
    found.sort();
    found
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&prefix) || *point == prefix.trim_end_matches('/'))
        .map(str::to_string)
        .collect()
}

/// Processes of the cluster: those in one of its network namespaces or
/// naming its directory, and all their descendants.
fn processes(name: &str, dir: &Path) -> BTreeSet<u32> {
    let own = std::process::id();
    let ns_inodes: Vec<u64> = namespaces(name)
        .iter()
        .filter_map(|ns| fs::metadata(format!("{NETNS_DIR}/{ns}")).ok())
        .map(|m| m.ino())
        .collect();
    // With the slash: cluster mcl-1-1 must not match mcl-1-10.
    let marker = format!("{}/", dir.display());
    let mut parents = Vec::new();
    let mut found = BTreeSet::new();
    for pid in all_pids() {
        if pid == own {
            continue;
        }
        let in_ns =
            fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| ns_inodes.contains(&m.ino()));
        if in_ns || cmdline(pid).contains(&marker) {
            found.insert(pid);
        }
        if let Some(ppid) = parent(pid) {
            parents.push((pid, ppid));
        }
    }
    loop {
        let before = found.len();
        for (pid, ppid) in &parents {
            if found.contains(ppid) && *pid != own {
                found.insert(*pid);
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// Destroys clusters whose test process is gone (killed before it could
/// tear its cluster down).
fn sweep_stale() {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else {
        return;
    };
    let mut stale = BTreeSet::new();
    for ns in entries.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
        let Some(rest) = ns.strip_prefix(PREFIX) else {
            continue;
        };
        let mut parts = rest.split('-');
        let (Some(pid), Some(n)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            stale.insert(format!("{PREFIX}{pid}-{n}"));
        }
    }
    for name in stale {
        destroy(&name, &std::env::temp_dir().join(&name));
    }
}

fn log_tail(node_dir: &Path) -> String {
    let log = fs::read_to_string(node_dir.join("dockerd.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    format!("last lines of {}/dockerd.log:\n{tail}", node_dir.display())
}
