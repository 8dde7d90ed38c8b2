//! Figures of `muster watch` on a real engine, printed, not asserted:
//! save-to-plan latency, and the daemon's memory and CPU when idle.
//!
//! ```sh
//! cargo test --test watch_bench -- --ignored --nocapture
//! MUSTER_BENCH_BIN=target/release/muster cargo test --test watch_bench -- --ignored --nocapture
//! ```

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{
    Daemon, Project, exactly_running, is_plan_header, lock_released, save_by_rename, sleepers,
};

const T: Duration = Duration::from_secs(60);

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which may hold spaces: state is field 3.
    let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
    // SAFETY: sysconf reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// The value of a line of /proc/PID/status, e.g. `9876 kB` for `VmRSS:`.
fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_default()
}

#[test]
#[ignore = "a measurement, not a test: run with --ignored --nocapture"]
fn watch_latency_and_idle_footprint() {
    let binary = std::env::var_os("MUSTER_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_muster")));
    let project = Project::new("w-bench");
    project.write(&sleepers(1));
    // The defaults: --debounce 200ms, --resync 60s.
    let d = Daemon::start_binary(&binary, &project, &["watch"]);
    d.wait_until("1 container runs", T, || exactly_running(&project, 1));
    d.wait_line(0, "Applied:", T);

    let mut latencies = Vec::new();
    for i in 0..10 {
        let count = if i % 2 == 0 { 2 } else { 1 };
        d.wait_until("the lock is free", T, || lock_released(&project));
        let mark = d.mark();
        let saved = Instant::now();
        save_by_rename(&project, &sleepers(count));
        d.wait_until("the plan is printed", T, || {
            d.lines_since(mark)
                .iter()
                .any(|l| is_plan_header(&l.text, &project))
        });
        let header = d
            .lines_since(mark)
            .into_iter()
            .find(|l| is_plan_header(&l.text, &project))
            .unwrap();
        latencies.push(header.at.duration_since(saved));
        d.wait_line(mark, "Applied:", T);
        d.wait_until("the count is applied", T, || {
            exactly_running(&project, count)
        });
    }
    d.wait_until("the lock is free", T, || lock_released(&project));
    latencies.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!(
        "binary: {}\nsave-to-plan latency (debounce 200ms), 10 saves: median {:.0}ms, min {:.0}ms, max {:.0}ms",
        binary.display(),
        (ms(&latencies[4]) + ms(&latencies[5])) / 2.0,
        ms(&latencies[0]),
        ms(&latencies[9]),
    );

    let pid = d.pid();
    let idle_since = Instant::now();
    d.wait_until("10s of idleness", T, || {
        idle_since.elapsed() >= Duration::from_secs(10)
    });
    println!(
        "idle after 10s: VmRSS {}, VmHWM {}, threads {}",
        status_field(pid, "VmRSS:"),
        status_field(pid, "VmHWM:"),
        status_field(pid, "Threads:")
    );
    let cpu_before = cpu_seconds(pid);
    let measured = Instant::now();
    d.wait_until("30s more of idleness", T, || {
        measured.elapsed() >= Duration::from_secs(30)
    });
    let cpu = cpu_seconds(pid) - cpu_before;
    println!(
        "CPU over {:.0}s idle: {:.3}s ({:.3}%)",
        measured.elapsed().as_secs_f64(),
        cpu,
        cpu / measured.elapsed().as_secs_f64() * 100.0
    );
    let idle_lines: Vec<String> = d
        .lines_since(0)
        .into_iter()
        .filter(|l| l.at >= idle_since)
        .map(|l| l.text)
        .collect();
    println!("printed while idle: {idle_lines:?}");
}
