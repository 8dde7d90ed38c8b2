//! Rolling updates on the real engine, read from the engine's own events:
//! a sliding window of `update.parallelism` (the next replacement starts
//! as soon as any one in flight is ready, not when its whole batch is),
//! never more than `parallelism` containers down with `stop-first`, never
//! fewer than `count` running with `start-first`; a replacement that never
//! becomes ready stops the rollout where it is.

mod support;

use std::collections::BTreeSet;

use support::{Event, Project, Recorder, id_and_state, ids, muster_exits, muster_ok};

/// Six containers of `web`; container 1 becomes healthy `slow` seconds
/// after its start, the others at once (the healthcheck runs every second),
/// each within `ready_timeout` seconds.
fn file(project: &Project, order: &str, generation: u32, slow: u32, ready_timeout: u32) -> String {
    format!(
        r#"project = "{p}"

[services.web]
image = "{image}"
count = 6
command = ["sh", "-c", "n=$${{HOSTNAME##*-}}; if [ $$n = 1 ]; then sleep {slow}; fi; touch /tmp/ready; exec sleep 3600"]
init = true
stop_grace_period = "1s"
ready_timeout = "{ready_timeout}s"
env = {{ GEN = "{generation}" }}

[services.web.healthcheck]
test = ["CMD", "test", "-f", "/tmp/ready"]
interval = "1s"
timeout = "1s"
retries = 60

[services.web.update]
parallelism = 2
order = "{order}"
"#,
        p = project.name(),
        image = support::image(),
    )
}

/// The index of the first event of `action` on container `name`.
fn first(events: &[Event], action: &str, name: &str) -> usize {
    first_from(events, 0, action, name)
}

/// The index of the first event of `action` on container `name` at or
/// after index `from`.
fn first_from(events: &[Event], from: usize, action: &str, name: &str) -> usize {
    events
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, e)| e.kind == "container" && e.action == action && e.name == name)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no `{action}` of {name} from event {from} in {events:#?}"))
}

/// The containers of the project running after each event, by name (a
/// rename moves a running container to its new name).
fn running_after_each(events: &[Event], initially: &BTreeSet<String>) -> Vec<usize> {
    let mut running = initially.clone();
    let mut counts = Vec::new();
    for e in events.iter().filter(|e| e.kind == "container") {
        match e.action.as_str() {
            "start" => {
                running.insert(e.name.clone());
            }
            "die" | "destroy" => {
                running.remove(&e.name);
            }
            "rename" if running.remove(&format!("{}-next", e.name)) => {
                running.insert(e.name.clone());
            }
            _ => {}
        }
        counts.push(running.len());
    }
    counts
}

/// Containers 3 to 6 were replaced before the slow container 1 (or its
/// replacement) was healthy, at event `one_healthy`: the window moved on
/// while one slot was held; and the project ends with exactly `everyone`.
fn assert_window_moved_on(
    project: &Project,
    events: &[Event],
    one_healthy: usize,
    everyone: &BTreeSet<String>,
) {
    for n in 3..=6 {
        let name = format!("{}-web-{n}", project.name());
        assert!(
            first(events, "destroy", &name) < one_healthy,
            "web-{n} should be replaced while web-1 is still starting: {events:#?}"
        );
    }
    let names: BTreeSet<String> = project.container_names().into_iter().collect();
    assert_eq!(&names, everyone);
}

fn rolled(order: &str) -> (Project, Vec<Event>) {
    let project = Project::new(&format!("roll-{}", &order[..4]));
    project.write(&file(&project, order, 1, 0, 60));
    muster_ok(&project, &["apply"]);
    project.write(&file(&project, order, 2, 15, 60));
    let recorder = Recorder::start(&project);
    muster_ok(&project, &["apply"]);
    let events = recorder.finish();
    (project, events)
}

#[test]
fn stop_first_rolls_as_a_sliding_window_never_more_than_parallelism_down() {
    let (project, events) = rolled("stop-first");
    let web = |n: u32| format!("{}-web-{n}", project.name());
    let everyone: BTreeSet<String> = (1..=6).map(web).collect();
    let running = running_after_each(&events, &everyone);
    let fewest = running.iter().min().copied().unwrap_or(6);
    assert!(
        fewest >= 4,
        "never more than 2 of 6 down at once, saw {fewest} running: {events:#?}"
    );
    // The slow container 1 holds one slot; the other slot moves on: 3, 4, 5
    // and 6 are replaced before 1 is healthy (lockstep batches would wait
    // for 1 before touching 3). The engine reports every probe of the old
    // container 1 too, so the healthy event looked for is the first one
    // after the replacement's `create`.
    let created = first(&events, "create", &web(1));
    let one_healthy = first_from(&events, created, "health_status: healthy", &web(1));
    assert_window_moved_on(&project, &events, one_healthy, &everyone);
}

#[test]
fn start_first_rolls_as_a_sliding_window_never_fewer_than_count_running() {
    let (project, events) = rolled("start-first");
    let web = |n: u32| format!("{}-web-{n}", project.name());
    let everyone: BTreeSet<String> = (1..=6).map(web).collect();
    let running = running_after_each(&events, &everyone);
    let fewest = running.iter().min().copied().unwrap_or(0);
    assert!(
        fewest >= 6,
        "never fewer than 6 running, saw {fewest}: {events:#?}"
    );
    let one_healthy = first(
        &events,
        "health_status: healthy",
        &format!("{}-next", web(1)),
    );
    assert_window_moved_on(&project, &events, one_healthy, &everyone);
}

/// The replacement of container 1 never becomes ready (4 s ready_timeout)
/// while the other slot moves on: the apply fails naming it, and no
/// replacement begins after that, so container 6, which the other slot
/// would reach only after about four more replacements of a second or
/// more each, keeps running as it was.
fn stops_where_it_is(order: &str, failing: &str, fewest_allowed: usize) {
    let project = Project::new(&format!("rollfail-{}", &order[..4]));
    let web = |n: u32| format!("{}-web-{n}", project.name());
    project.write(&file(&project, order, 1, 0, 4));
    muster_ok(&project, &["apply"]);
    let before = ids(&project);
    project.write(&file(&project, order, 2, 3600, 4));
    let recorder = Recorder::start(&project);
    let out = muster_exits(&project, &["apply"], 1);
    let events = recorder.finish();
    let failing = failing.replace("{web-1}", &web(1));
    assert!(
        out.stderr
            .contains(&format!("error: {failing} was not ready")),
        "{out}"
    );
    assert_eq!(
        id_and_state(&web(6)),
        (before[&web(6)].clone(), "running".to_string()),
        "web-6 should be left as it was once web-1's replacement failed: {out}\n{events:#?}"
    );
    let everyone: BTreeSet<String> = (1..=6).map(web).collect();
    let fewest = running_after_each(&events, &everyone)
        .into_iter()
        .min()
        .unwrap_or(0);
    assert!(
        fewest >= fewest_allowed,
        "at least {fewest_allowed} of 6 running throughout, saw {fewest}: {events:#?}"
    );
}

#[test]
fn a_stop_first_replacement_that_never_becomes_ready_stops_the_rollout_where_it_is() {
    stops_where_it_is("stop-first", "{web-1}", 4);
}

#[test]
fn a_start_first_replacement_that_never_becomes_ready_stops_the_rollout_where_it_is() {
    stops_where_it_is("start-first", "{web-1}-next", 6);
}
