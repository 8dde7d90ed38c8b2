//! The executor on the in-memory engine: apply, then plan again, must give
//! an empty plan, whatever the file and whatever was there before.

use muster::apply::{self, ApplyError, Reporter};
use muster::config::{Desired, parse_str};
use muster::engine::memory::MemoryEngine;
use muster::engine::{Backend, State, container_name, container_spec};
use muster::plan::{Change, plan};
use proptest::prelude::*;

const IMG: &str = "img:1";

/// The memory engine's containers never exit by themselves: no settle time.
fn quick(parallel: usize) -> apply::Options {
    apply::Options {
        settle: std::time::Duration::ZERO,
        ..apply::Options::new(parallel)
    }
}

struct Quiet;
impl Reporter for Quiet {
    fn step(&self, _: &Change, _: std::time::Duration, _: &Result<(), ApplyError>) {}
}

fn desired(text: &str) -> Desired {
    parse_str("t.toml", text, std::path::Path::new("/srv"))
        .unwrap_or_else(|e| panic!("{}\n{text}", e.render_plain()))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[derive(Debug, Clone)]
struct Svc {
    count: u32,
    sequential: bool,
    env: u8,
    start_first: bool,
    parallelism: u32,
}

fn file_text(services: &[Svc]) -> String {
    let mut text = String::from("project = \"p\"\n");
    for (i, s) in services.iter().enumerate() {
        let depends = if i > 0 {
            format!("depends_on = [\"s{}\"]", i - 1)
        } else {
            String::new()
        };
        text.push_str(&format!(
            "[services.s{i}]\nimage = \"{IMG}\"\ncount = {}\nmode = \"{}\"\nenv = {{ V = \"{}\" }}\nexpose = [\"80\"]\nvolumes = [\"d-{{ordinal}}:/d\"]\n{depends}\n[services.s{i}.update]\norder = \"{}\"\nparallelism = {}\n",
            s.count,
            if s.sequential { "sequential" } else { "parallel" },
            s.env,
            if s.start_first { "start-first" } else { "stop-first" },
            s.parallelism,
        ));
    }
    text
}

fn svc() -> impl Strategy<Value = Svc> {
    (0u32..6, any::<bool>(), 0u8..3, any::<bool>(), 1u32..4).prop_map(
        |(count, sequential, env, start_first, parallelism)| Svc {
            count,
            sequential,
            env,
            start_first,
            parallelism,
        },
    )
}

/// Something already on the engine: (service index, ordinal, state, env variant, leftover name).
fn existing() -> impl Strategy<Value = Vec<(usize, u32, u8, u8, bool)>> {
    prop::collection::vec(
        (
            0usize..4,
            1u32..9,
            0u8..4,
            0u8..3,
            prop::bool::weighted(0.1),
        ),
        0..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn apply_then_plan_is_empty_and_ordinals_are_contiguous(
        now in prop::collection::vec(svc(), 1..4),
        before in prop::collection::vec(svc(), 4..5),
        there in existing(),
    ) {
        let want = desired(&file_text(&now));
        let old = desired(&file_text(&before));
        let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
        for (i, ordinal, state, env, leftover) in there {
            // Service s3 may be absent from `want`: an orphan.
            let mut service = old.services[&format!("s{i}")].clone();
            service.env.insert("V".into(), env.to_string());
            let mut name = container_name("p", &service.name, ordinal);
            if leftover {
                name.push_str("-next");
            }
            if engine.with(|s| s.containers.contains_key(&name)) {
                continue;
            }
            let state = [State::Running, State::Exited, State::Created, State::Dead][state as usize];
            engine.insert(container_spec("p", &service, ordinal, &name), state);
        }
        let images = vec![IMG.to_string()];
        let first = plan(&want, &engine.snapshot("p", &images), true);
        block_on(apply::apply(&engine, &want, &first, &quick(3), &Quiet, async {})).unwrap();
        let again = plan(&want, &engine.snapshot("p", &images), true);
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again.changes().collect::<Vec<_>>());
        let actual = engine.snapshot("p", &images);
        for s in want.services.values() {
            let mut ordinals: Vec<u32> = actual.units.iter().filter(|c| c.service == s.name).filter_map(|c| c.ordinal).collect();
            ordinals.sort();
            prop_assert_eq!(ordinals, (1..=s.count).collect::<Vec<_>>());
        }
        prop_assert!(actual.units.iter().all(|c| want.services.contains_key(&c.service)));
        prop_assert!(actual.units.iter().all(|c| c.state == State::Running));
    }
}

#[test]
fn sequential_service_creates_each_container_after_the_previous_started() {
    let want = desired(
        "project = \"p\"\n[services.db]\nimage = \"img:1\"\nmode = \"sequential\"\ncount = 3\nexpose = [\"5432\"]\n",
    );
    let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
    let p = plan(&want, &engine.snapshot("p", &[IMG.into()]), false);
    block_on(apply::apply(&engine, &want, &p, &quick(8), &Quiet, async {})).unwrap();
    assert_eq!(
        engine.take_calls(),
        [
            "network p",
            "create p-db-1",
            "start p-db-1",
            "create p-db-2",
            "start p-db-2",
            "create p-db-3",
            "start p-db-3"
        ]
    );
    let env3 = engine.with(|s| s.containers["p-db-3"].spec.env.clone());
    assert!(env3.contains(&("DB_2_PORT".into(), "tcp://db-2:5432".into())));
    let env1 = engine.with(|s| s.containers["p-db-1"].spec.env.clone());
    assert!(env1.is_empty());
}

#[test]
fn start_first_replaces_under_a_temporary_name_then_renames() {
    let text = |v: &str| {
        format!(
            "project = \"p\"\n[services.web]\nimage = \"img:1\"\nenv = {{ V = \"{v}\" }}\n[services.web.update]\norder = \"start-first\"\n"
        )
    };
    let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
    let old = desired(&text("1"));
    let p = plan(&old, &engine.snapshot("p", &[IMG.into()]), false);
    block_on(apply::apply(&engine, &old, &p, &quick(8), &Quiet, async {})).unwrap();
    engine.take_calls();
    let new = desired(&text("2"));
    let p = plan(&new, &engine.snapshot("p", &[IMG.into()]), false);
    block_on(apply::apply(&engine, &new, &p, &quick(8), &Quiet, async {})).unwrap();
    assert_eq!(
        engine.take_calls(),
        [
            "create p-web-1-next",
            "start p-web-1-next",
            "remove p-web-1",
            "rename p-web-1-next p-web-1"
        ]
    );
}

/// A container that takes a planned name after the plan was made: the
/// project's own is replaced, anyone else's stays and fails the apply.
#[test]
fn a_name_taken_after_the_plan_is_replaced_only_when_the_project_owns_it() {
    let want = desired("project = \"p\"\n[services.web]\nimage = \"img:1\"\n");
    let web = &want.services["web"];
    for (label, replaced) in [(true, true), (false, false)] {
        let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
        let p = plan(&want, &engine.snapshot("p", &[IMG.into()]), false);
        let mut twin = container_spec("p", web, 1, "p-web-1");
        twin.env.push(("TWIN".into(), "1".into()));
        if !label {
            twin.labels.clear();
        }
        engine.create_container(&twin).unwrap();
        engine.take_calls();
        let result = block_on(apply::apply(&engine, &want, &p, &quick(8), &Quiet, async {}));
        let env = engine.with(|s| s.containers["p-web-1"].spec.env.clone());
        if replaced {
            result.unwrap();
            assert_eq!(
                engine.take_calls(),
                [
                    "network p",
                    "remove p-web-1",
                    "create p-web-1",
                    "start p-web-1"
                ]
            );
            assert!(env.is_empty(), "{env:?}");
        } else {
            let err = result.unwrap_err();
            assert!(err.to_string().contains("p-web-1 is taken"), "{err}");
            assert!(env.contains(&("TWIN".into(), "1".into())), "{env:?}");
        }
    }
}

#[test]
fn a_container_that_fails_to_start_stops_its_sequential_service_there() {
    let want = desired(
        "project = \"p\"\n[services.db]\nimage = \"img:1\"\nmode = \"sequential\"\ncount = 3\n",
    );
    let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
    engine.with(|s| s.failing.insert("p-db-2".into()));
    let p = plan(&want, &engine.snapshot("p", &[IMG.into()]), false);
    let err = block_on(apply::apply(&engine, &want, &p, &quick(8), &Quiet, async {})).unwrap_err();
    assert!(err.to_string().contains("p-db-2"), "{err}");
    let names: Vec<String> = engine.with(|s| s.containers.keys().cloned().collect());
    assert_eq!(names, ["p-db-1", "p-db-2"]);
    assert!(block_on(engine.observe("p", &[])).is_ok());
}

#[test]
fn an_external_volume_is_mounted_by_its_own_name_and_never_created() {
    let want = desired(
        "project = \"p\"\n[services.web]\nimage = \"img:1\"\nvolumes = [\"shared:/data\", \"own:/own:ro\"]\n\
         [volumes.shared]\nexternal = true\nname = \"legacy-data\"\n",
    );
    let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
    let p = plan(&want, &engine.snapshot("p", &[IMG.into()]), false);
    block_on(apply::apply(&engine, &want, &p, &quick(8), &Quiet, async {})).unwrap();
    assert_eq!(
        engine.take_calls(),
        [
            "network p",
            "volume p_own",
            "create p-web-1",
            "start p-web-1"
        ]
    );
    let mounts: Vec<(String, bool)> = engine.with(|s| {
        s.containers["p-web-1"]
            .spec
            .mounts
            .iter()
            .map(|m| (m.source.clone(), m.external))
            .collect()
    });
    assert_eq!(
        mounts,
        [
            ("legacy-data".to_string(), true),
            ("p_own".to_string(), false)
        ]
    );
    assert!(engine.with(|s| !s.volumes.contains_key("legacy-data")));
}

/// What the apply runs once every step succeeded (the record) sees every
/// container made; after a failure it does not run.
#[test]
fn then_runs_once_every_step_succeeded_and_never_after_a_failure() {
    let text = "project = \"p\"\n[services.web]\nimage = \"img:1\"\ncount = 3\n\
                [services.api]\nimage = \"img:1\"\ndepends_on = [\"web\"]\n";
    let want = desired(text);
    let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
    let p = plan(&want, &engine.snapshot("p", &[IMG.into()]), false);
    let seen = std::sync::Mutex::new(None);
    let then = async {
        let running = engine.with(|s| {
            s.containers
                .values()
                .filter(|c| c.state == State::Running)
                .count()
        });
        *seen.lock().unwrap() = Some(running);
    };
    block_on(apply::apply(&engine, &want, &p, &quick(8), &Quiet, then)).unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(4));

    for failing in ["p-web-2", "p-api-1"] {
        let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
        engine.with(|s| s.failing.insert(failing.into()));
        let p = plan(&want, &engine.snapshot("p", &[IMG.into()]), false);
        let ran = std::sync::atomic::AtomicBool::new(false);
        let then = async { ran.store(true, std::sync::atomic::Ordering::SeqCst) };
        let err = block_on(apply::apply(&engine, &want, &p, &quick(8), &Quiet, then)).unwrap_err();
        assert!(err.to_string().contains(failing), "{err}");
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "ran after {failing} failed"
        );
    }
}

/// Applies two parallel containers with their settle time on an evented
/// engine whose event stream is lost after `cut` events (each replay at
/// the same place); once both run, `p-web-1` dies when `dies`. The
/// apply's outcome, and the list calls it made.
fn apply_with_events(cut: Option<usize>, dies: bool) -> (Result<(), ApplyError>, usize) {
    let want = desired("project = \"p\"\n[services.web]\nimage = \"img:1\"\ncount = 2\n");
    let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
    engine.with(|s| {
        s.evented = true;
        s.changes_cut = cut;
    });
    let p = plan(&want, &engine.snapshot("p", &[IMG.into()]), false);
    let running = |name: &str| {
        engine.with(|s| {
            s.containers
                .get(name)
                .is_some_and(|c| c.state == State::Running)
        })
    };
    let death = async {
        for _ in 0..5000 {
            if running("p-web-1") && running("p-web-2") {
                if dies {
                    engine.drift("p-web-1", "die", 3);
                }
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("the apply never started both containers");
    };
    let options = apply::Options::new(8);
    let (out, ()) = block_on(async {
        tokio::join!(
            apply::apply(&engine, &want, &p, &options, &Quiet, async {}),
            death
        )
    });
    (out, engine.with(|s| s.lists))
}

#[test]
fn events_that_told_every_start_and_no_death_settle_an_apply_without_a_list_call() {
    let (out, lists) = apply_with_events(None, false);
    out.unwrap();
    assert_eq!(lists, 0, "the events proved both containers alive");
}

#[test]
fn a_death_the_events_tell_fails_the_apply_naming_the_container() {
    let (out, _) = apply_with_events(None, true);
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains("p-web-1") && err.contains("exited right after it started"),
        "{err}"
    );
}

#[test]
fn a_lost_event_stream_hands_the_settle_check_to_the_list_call() {
    // Both starts told, then the stream is lost: the death that follows
    // is never told, and only the list call can see it.
    let (out, lists) = apply_with_events(Some(2), true);
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains("p-web-1") && err.contains("exited right after it started"),
        "{err}"
    );
    assert_eq!(lists, 1);
    // Nothing died: the list call, not the events, settles the apply.
    let (out, lists) = apply_with_events(Some(2), false);
    out.unwrap();
    assert_eq!(
        lists, 1,
        "after the loss, what the events did not tell proves nothing"
    );
}

/// On a busy machine Docker 20.10 tells the death of a command that fails
/// at once after the settle time is over, and lists the container running
/// until then; an inspect waits for the exit being handled. The settle
/// check inspects the containers started within `RECENT`, so the death
/// fails the apply, named with its exit code.
#[test]
fn a_death_the_engine_is_still_handling_fails_the_apply() {
    let want = desired("project = \"p\"\n[services.web]\nimage = \"img:1\"\ncount = 2\n");
    let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
    engine.with(|s| {
        s.evented = true;
        s.exiting.insert("p-web-2".into());
    });
    let p = plan(&want, &engine.snapshot("p", &[IMG.into()]), false);
    let options = apply::Options::new(8);
    let out = block_on(apply::apply(&engine, &want, &p, &options, &Quiet, async {}));
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains("p-web-2") && err.contains("exited right after it started (exit code 3)"),
        "{err}"
    );
}

/// Docker 20.10 often loses count of a network's endpoints, and so keeps
/// the project's network, when 8 containers of a network that holds
/// hundreds stop at once (BENCHMARKS.md): past `CROWDED` containers on the
/// network (every service's, orphans' too), removals go `CROWDED_STOPS` at
/// a time whatever `--parallel`; up to it, `--parallel` at a time.
#[test]
fn removals_on_a_crowded_network_go_at_most_four_at_once() {
    let crowded = apply::CROWDED as u32;
    // (web before → after, jobs before → after, --parallel, most at once)
    let cases = [
        ((crowded, 0), (0, 0), 8, 8),
        ((crowded + 1, 0), (0, 0), 8, apply::CROWDED_STOPS),
        ((crowded + 1, 0), (0, 0), 2, 2),
        ((crowded - 9, crowded - 9), (10, 0), 8, apply::CROWDED_STOPS),
        ((crowded - 10, crowded - 10), (10, 0), 8, 8),
        ((crowded + 50, 20), (0, 0), 8, apply::CROWDED_STOPS),
    ];
    for ((web, web_to), (jobs, jobs_to), parallel, most) in cases {
        let text = |web: u32, jobs: u32| {
            desired(&format!(
                "project = \"p\"\n[services.web]\nimage = \"{IMG}\"\ncount = {web}\n\
                 [services.jobs]\nimage = \"{IMG}\"\ncount = {jobs}\n"
            ))
        };
        let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
        for (from, to) in [(web, jobs), (web_to, jobs_to)] {
            let want = text(from, to);
            engine.with(|s| s.most_stopping = 0);
            let p = plan(&want, &engine.snapshot("p", &[IMG.into()]), false);
            block_on(apply::apply(
                &engine,
                &want,
                &p,
                &quick(parallel),
                &Quiet,
                async {},
            ))
            .unwrap();
        }
        let case = format!("web {web} → {web_to}, jobs {jobs} → {jobs_to}, --parallel {parallel}");
        assert_eq!(engine.with(|s| s.most_stopping), most, "{case}");
        assert_eq!(
            engine.with(|s| s.containers.len()),
            (web_to + jobs_to) as usize,
            "{case}"
        );
    }
}

/// `restart` stops as many at once as a removal would.
#[test]
fn a_restart_on_a_crowded_network_stops_at_most_four_at_once() {
    let crowded = apply::CROWDED as u32;
    for (count, most) in [(crowded, 8), (crowded + 1, apply::CROWDED_STOPS)] {
        let want = desired(&format!(
            "project = \"p\"\n[services.web]\nimage = \"{IMG}\"\ncount = {count}\n"
        ));
        let engine = MemoryEngine::with_images(&[(IMG, "sha256:1")]);
        let p = plan(&want, &engine.snapshot("p", &[IMG.into()]), false);
        block_on(apply::apply(&engine, &want, &p, &quick(8), &Quiet, async {})).unwrap();
        let restarted = block_on(muster::restart::restart(
            &engine,
            &want,
            8,
            &|_, _| {},
            &|_, _| {},
        ))
        .unwrap();
        assert_eq!(restarted, count as usize);
        assert_eq!(engine.with(|s| s.most_stopping), most, "{count} containers");
    }
}
