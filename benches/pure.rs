//! Benchmarks of the pure stages (no engine): loading and validating a large
//! file, planning 100,000 containers against a drifted actual state, and
//! rendering that plan. Targets and results are in BENCHMARKS.md.
//!
//! `cargo bench --bench pure`: each benchmark twice, as wall time (group
//! `wall`) and as the thread's CPU time (group `cpu`, steadier on a busy
//! machine).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group, criterion_main};
use muster::config::{Desired, hash_shape, parse_str};
use muster::engine::{Actual, State, Unit, container_name};
use muster::plan::{Action, Plan, plan};
use muster::render::{plan_json, plan_text};

const SERVICES: usize = 10_000;
const COUNT: u32 = 10;
const IMAGE: &str = "img:1";
const IMAGE_ID: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A file of `SERVICES` services of `COUNT` containers each, with the
/// settings a real service has (env; command, exposed ports, volumes,
/// labels or a grace period on some), kept under the 1 MiB limit.
fn file_text() -> String {
    let mut text = String::from("project = \"bench\"\n");
    for i in 0..SERVICES {
        text.push_str(&format!(
            "[services.s{i:04}]\nimage = \"{IMAGE}\"\ncount = {COUNT}\nenv = {{ N = \"{i}\" }}\n"
        ));
        if i % 2 == 1 {
            text.push_str("command = \"sleep 1h\"\n");
        }
        match i % 4 {
            0 => text.push_str("expose = [\"80\"]\n"),
            1 => text.push_str("volumes = [\"d-{ordinal}:/d\"]\n"),
            2 => text.push_str("labels = { t = \"x\" }\n"),
            _ => text.push_str("stop_grace_period = \"1s\"\n"),
        }
    }
    text
}

fn load(text: &str) -> Desired {
    parse_str("services.toml", text, Path::new("/srv"))
        .unwrap_or_else(|e| panic!("{}", e.render_plain()))
}

/// What the engine would report for `desired` with 10% drift: of every 40
/// containers, one is missing, one has an old config, one has exited, and
/// one service in 40 has an extra container above its count.
fn drifted(desired: &Desired) -> Actual {
    let mut containers = Vec::new();
    let mut id = 0u64;
    for (i, s) in desired.services.values().enumerate() {
        let shape = s.shape();
        let hash = hash_shape(&shape);
        let mut old = shape.clone();
        old.insert("env.N".into(), "old".into());
        let old_hash = hash_shape(&old);
        let mut push = |ordinal: u32, config: &BTreeMap<String, String>, hash: &str, state| {
            id += 1;
            containers.push(Unit {
                id: format!("{id:064x}"),
                name: container_name(&desired.project, &s.name, ordinal),
                service: s.name.clone(),
                ordinal: Some(ordinal),
                config_hash: hash.to_string(),
                config: config.clone(),
                image_id: IMAGE_ID.into(),
                state,
                health: None,
                status: "Up 2 hours".into(),
                ports: Vec::new(),
                replicas: None,
                tasks: Vec::new(),
            });
        };
        for o in 1..=s.count {
            match (i * s.count as usize + o as usize - 1) % 40 {
                0 => {}
                10 => push(o, &old, &old_hash, State::Running),
                20 => push(o, &shape, &hash, State::Exited),
                _ => push(o, &shape, &hash, State::Running),
            }
        }
        if i % 4 == 3 {
            push(s.count + 1, &shape, &hash, State::Running);
        }
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    Actual {
        units: containers,
        image_ids: BTreeMap::from([(IMAGE.to_string(), IMAGE_ID.to_string())]),
        applied: BTreeMap::new(),
    }
}

/// The inputs, made once for both groups.
struct Data {
    text: String,
    desired: Desired,
    actual: Actual,
    plan: Plan,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let text = file_text();
        assert!(
            text.len() <= muster::config::MAX_FILE_BYTES,
            "{} bytes",
            text.len()
        );
        let desired = load(&text);
        let actual = drifted(&desired);
        let plan = plan(&desired, &actual, false);
        let s = plan.summary();
        // 10,000 of 100,000 containers drifted: the plan must say so.
        assert_eq!(
            (s.create, s.recreate, s.start, s.remove),
            (2_500, 2_500, 2_500, 2_500)
        );
        assert!(plan.changes().any(|c| c.action == Action::Recreate));
        Data {
            text,
            desired,
            actual,
            plan,
        }
    })
}

fn benches<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let d = data();
    let mut g = c.benchmark_group(group);
    g.bench_function("load_10k_services", |b| b.iter(|| load(black_box(&d.text))));
    g.bench_function("plan_100k_containers_10pct_drift", |b| {
        b.iter(|| plan(black_box(&d.desired), black_box(&d.actual), false))
    });
    g.bench_function("render_text_10k_changes", |b| {
        b.iter(|| plan_text(black_box(&d.plan), "unix:///var/run/docker.sock", false))
    });
    g.bench_function("render_json_10k_changes", |b| {
        b.iter(|| serde_json::to_string_pretty(&plan_json(black_box(&d.plan))))
    });
    g.finish();
}

/// CPU time of the benchmarking thread: on a shared machine, wall time
/// also counts the time other tenants hold the cores; this does not.
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, started: Duration) -> Duration {
        thread_cpu().saturating_sub(started)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, d: &Duration) -> f64 {
        d.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, like wall time: the same units and scaling.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn wall(c: &mut Criterion) {
    benches(c, "wall");
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    benches(c, "cpu");
}

criterion_group! {
    name = wall_time;
    config = Criterion::default().sample_size(20);
    targets = wall
}
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpu).sample_size(20);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
