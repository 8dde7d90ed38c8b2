//! What the reliability tests (`crash_engine`, `race_engine`,
//! `fault_engine`, `dry_engine`, `hostile_engine`, `ownership_engine`,
//! `soak_engine`) check: the invariants a project must hold once an apply
//! has finished, the weaker ones it must hold at every moment, a seeded
//! random generator, and a process's resident memory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::engine::exists;
use super::project::{ContainerInfo, Project};

/// Whether `MUSTER_SOAK` asks for the long variants.
pub fn soak() -> bool {
    std::env::var_os("MUSTER_SOAK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The file at `path` as muster reads it, under `project`'s name (as
/// `--project` gives it).
pub fn desired_of(path: &Path, project: &Project) -> muster::config::Desired {
    let mut desired = muster::config::load(path)
        .unwrap_or_else(|e| panic!("the test's file is invalid:\n{}", e.render_plain()));
    desired.project = project.name().to_string();
    desired
}

/// What is wrong with the project's containers at any moment, whoever is
/// applying: a container under a name that is neither canonical
/// (`<project>-<service>-<ordinal>`) nor a temporary one (`…-next`), or
/// two containers of one service under canonical names with one ordinal.
pub fn transient_problems(project: &Project, containers: &[ContainerInfo]) -> Vec<String> {
    let p = project.name();
    let mut problems = Vec::new();
    let mut seen: BTreeMap<(String, u32), String> = BTreeMap::new();
    for c in containers {
        let (Some(service), Some(o)) = (c.service(), c.ordinal()) else {
            problems.push(format!("{} has no service or ordinal label", c.name));
            continue;
        };
        let canonical = format!("{p}-{service}-{o}");
        if c.name == format!("{canonical}-next") {
            continue;
        }
        if c.name != canonical {
            problems.push(format!("{} holds ordinal {o} of {service}", c.name));
        }
        if let Some(other) = seen.insert((service.to_string(), o), c.name.clone()) {
            problems.push(format!("{other} and {} both hold {service}-{o}", c.name));
        }
    }
    problems
}

/// What is wrong with the project once an apply of `desired` has finished:
/// for every service, exactly containers 1..=count under their canonical
/// names, running, with the file's config hash; no temporary container;
/// nothing of another service; the lock released.
pub fn converged_problems(project: &Project, desired: &muster::config::Desired) -> Vec<String> {
    let p = project.name();
    let containers = project.containers();
    let mut problems = transient_problems(project, &containers);
    let mut want: BTreeSet<String> = BTreeSet::new();
    for s in desired.services.values() {
        let hash = muster::config::hash_shape(&s.shape());
        for o in 1..=s.count {
            let name = format!("{p}-{}-{o}", s.name);
            match containers.iter().find(|c| c.name == name) {
                None => problems.push(format!("{name} is missing")),
                Some(c) => {
                    if !c.is_running() {
                        problems.push(format!("{name} is {}", c.state));
                    }
                    if c.label("io.muster.config-hash") != Some(hash.as_str()) {
                        problems.push(format!("{name} does not have the file's config"));
                    }
                }
            }
            want.insert(name);
        }
    }
    for c in &containers {
        if !want.contains(&c.name) {
            problems.push(format!("{} should not exist ({})", c.name, c.state));
        }
    }
    if exists(&format!("{p}-muster-lock")) {
        problems.push("the project's lock is still held".into());
    }
    problems
}

/// Panics with the problems, if any, of [`converged_problems`].
pub fn assert_converged(project: &Project, desired: &muster::config::Desired, context: &str) {
    let problems = converged_problems(project, desired);
    assert!(
        problems.is_empty(),
        "{context}: the engine does not match the file:\n  {}\ncontainers: {:#?}",
        problems.join("\n  "),
        project
            .containers()
            .iter()
            .map(|c| format!("{} {}", c.name, c.state))
            .collect::<Vec<_>>()
    );
}

/// A small deterministic generator (xorshift64*), so that a failing seed
/// can be run again.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The resident memory of process `pid` in KiB (`VmRSS` of /proc/PID/status).
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"))
}

/// Whether `text` shows that a Rust panic or backtrace reached the user.
pub fn shows_a_panic(text: &str) -> bool {
    ["panicked", "stack backtrace", "RUST_BACKTRACE"]
        .iter()
        .any(|p| text.contains(p))
}
