//! A saved plan through the one pipeline, on the in-memory engine: the
//! check runs again under the lock, so a state that moves between the
//! first look and the lock is refused with nothing changed; an image the
//! plan pulls does not make its own plan stale.

use std::time::Duration;

use muster::apply::{ApplyError, Reporter};
use muster::config::{Desired, parse_str};
use muster::engine::memory::MemoryEngine;
use muster::engine::{Actual, Endpoint, State, container_name, container_spec};
use muster::error::Error;
use muster::plan::{Change, Plan, plan};
use muster::reconcile::{self, Observer, Outcome};
use muster::render::plan_json;
use muster::saved_plan::{SavedPlan, SavedPlanError, document};

const IMG: &str = "img:1";
const FILE: &str = "project = \"p\"\n[services.web]\nimage = \"img:1\"\ncount = 2\n";

fn desired() -> Desired {
    parse_str("services.toml", FILE, std::path::Path::new("/srv"))
        .unwrap_or_else(|e| panic!("{}", e.render_plain()))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn options() -> reconcile::Options {
    reconcile::Options {
        prune: false,
        parallel: 4,
        lock_timeout: Duration::from_secs(5),
        stop: None,
        lock_when_idle: true,
        command: "muster apply plan.json".into(),
        targeted: false,
    }
}

/// What `plan --out` saves for the engine's current state.
fn save(engine: &MemoryEngine, desired: &Desired) -> SavedPlan {
    let actual = engine.snapshot("p", &desired.images());
    let planned = plan(desired, &actual, false);
    let doc = document(
        plan_json(&planned),
        false,
        FILE.as_bytes(),
        &muster::saved_plan::desired_sha256(desired),
        &actual,
    );
    SavedPlan::parse("plan.json", &serde_json::to_vec(&doc).unwrap()).unwrap()
}

/// Checks the saved plan as `apply PLAN` does; runs `meddle` once the plan
/// is printed, that is after the first look and before the lock.
struct Saved<'a, F: Fn() + Send + Sync> {
    saved: &'a SavedPlan,
    meddle: F,
}

impl<F: Fn() + Send + Sync> Reporter for Saved<'_, F> {
    fn step(&self, _: &Change, _: Duration, _: &Result<(), ApplyError>) {}
}

impl<F: Fn() + Send + Sync> Observer for Saved<'_, F> {
    fn plan(&self, _plan: &Plan, _endpoint: &Endpoint) {
        (self.meddle)();
    }
    fn check(&self, plan: &Plan, actual: &Actual) -> Result<(), Error> {
        Ok(self.saved.check(&plan_json(plan), actual)?)
    }
}

#[test]
fn a_state_that_moves_before_the_lock_is_refused_under_it() {
    let engine = MemoryEngine::with_images(&[(IMG, "sha256:0123456789abcdef")]);
    let desired = desired();
    let saved = save(&engine, &desired);
    let service = desired.services["web"].clone();
    let observer = Saved {
        saved: &saved,
        meddle: || {
            let name = container_name("p", "web", 1);
            engine.insert(container_spec("p", &service, 1, &name), State::Running);
        },
    };
    engine.take_calls();
    let result = block_on(reconcile::pass(&engine, &desired, &options(), &observer));
    match result {
        Err(Error::SavedPlan(SavedPlanError::Stale { moved, .. })) => {
            assert_eq!(moved, ["p-web-1 appeared (running)"]);
        }
        other => panic!("expected a stale plan, got {other:?}"),
    }
    let calls = engine.take_calls();
    assert!(
        calls.iter().all(|c| c.contains("lock")),
        "a refused plan changed the engine: {calls:?}"
    );
    assert!(engine.with(|s| s.lock.is_none()), "the lock was kept");
    assert_eq!(engine.with(|s| s.containers.len()), 1);
}

#[test]
fn an_image_the_saved_plan_pulls_does_not_make_it_stale() {
    let engine = MemoryEngine::default();
    engine.with(|s| {
        s.registry
            .insert(IMG.into(), "sha256:fedcba9876543210".into())
    });
    let desired = desired();
    let saved = save(&engine, &desired);
    let observer = Saved {
        saved: &saved,
        meddle: || {},
    };
    let outcome = block_on(reconcile::pass(&engine, &desired, &options(), &observer)).unwrap();
    assert!(matches!(outcome, Outcome::Applied(_)), "{outcome:?}");
    let running: Vec<(String, State)> = engine.with(|s| {
        s.containers
            .iter()
            .map(|(n, c)| (n.clone(), c.state))
            .collect()
    });
    assert_eq!(
        running,
        [
            ("p-web-1".to_string(), State::Running),
            ("p-web-2".to_string(), State::Running)
        ]
    );
    // Applied once, the same plan is stale.
    let again = block_on(reconcile::pass(&engine, &desired, &options(), &observer));
    assert!(
        matches!(again, Err(Error::SavedPlan(SavedPlanError::Stale { .. }))),
        "{again:?}"
    );
}
