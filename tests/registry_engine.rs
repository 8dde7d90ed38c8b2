//! Images that come from a registry, against a real engine and the local
//! registry on `127.0.0.1:5000` (started by `.ci/registry`): `apply` pulls
//! a missing image before it changes anything, a tag pushed again is
//! rolled out to exactly the containers of the services that use it, an
//! image that cannot be pulled stops `apply` with nothing touched, and the
//! daemon pulls like `apply` does.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::TryStreamExt;
use support::{
    Daemon, Project, block_on, docker, exactly_running, ids, muster_exits, muster_ok, names,
    record_events, sleeper_service,
};

/// The id of the local image `reference`, if the engine has it.
fn local_image_id(reference: &str) -> Option<String> {
    block_on(docker().inspect_image(reference)).ok()?.id
}

/// `docker pull reference`, as a user (or `muster pull`) would run it.
fn pull(reference: &str) {
    let options = CreateImageOptionsBuilder::default()
        .from_image(reference)
        .build();
    block_on(
        docker()
            .create_image(Some(options), None, None)
            .try_collect::<Vec<_>>(),
    )
    .unwrap_or_else(|e| panic!("cannot pull {reference}: {e}"));
}

/// The image id a container was created from.
fn container_image(name: &str) -> String {
    support::inspect(name).image.unwrap_or_default()
}

#[test]
fn apply_pulls_an_image_only_in_the_registry_before_creating_containers() {
    let project = Project::new("reg-pull");
    let reference = project.push_to_registry("v1");
    assert_eq!(
        local_image_id(&reference),
        None,
        "the push left a local tag"
    );
    project.write(&sleeper_service("web", &reference, 2));

    let plan = muster_ok(&project, &["plan"]);
    assert!(
        plan.stdout.contains(&format!(
            "image {reference} is not on the engine; apply pulls it first"
        )),
        "the plan does not say that the image is missing:\n{plan}"
    );

    let events = record_events(&project, || {
        muster_ok(&project, &["apply"]);
    });
    let pulled = events
        .iter()
        .position(|e| *e == format!("image pull {reference}"))
        .unwrap_or_else(|| panic!("apply did not pull {reference}: {events:#?}"));
    let first_change = events
        .iter()
        .position(|e| e.starts_with("container create") || e.starts_with("network create"))
        .unwrap_or_else(|| panic!("apply created nothing: {events:#?}"));
    assert!(
        pulled < first_change,
        "the image was pulled after the first change: {events:#?}"
    );

    let id = local_image_id(&reference).expect("the pulled image is not on the engine");
    let web = names(&project, "web", 1..=2);
    assert_eq!(project.container_names(), web);
    for c in project.containers() {
        assert!(c.is_running(), "{} is {}", c.name, c.state);
        assert_eq!(
            container_image(&c.name),
            id,
            "{} runs another image",
            c.name
        );
    }
    let again = muster_ok(&project, &["plan", "--detailed-exitcode"]);
    assert!(again.stdout.contains("No changes"), "{again}");
}

#[test]
fn a_tag_pushed_again_recreates_exactly_the_containers_of_its_service() {
    let project = Project::new("reg-repush");
    let reference = project.push_to_registry("v1");
    project.write(&format!(
        "{}\n{}",
        sleeper_service("web", &reference, 2),
        sleeper_service("db", "{image}", 2)
    ));
    muster_ok(&project, &["apply"]);
    let before = ids(&project);
    let old_id = local_image_id(&reference).expect("apply did not pull the image");

    let new_id = project.push_other_content(&reference);
    assert_ne!(new_id, old_id, "the content pushed again is the same image");
    // muster compares the local tag with the containers, as compose does
    // after `pull`: the new content counts once it is pulled.
    pull(&reference);
    assert_eq!(local_image_id(&reference), Some(new_id.clone()));

    let short: String = new_id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    let plan = muster_ok(&project, &["plan"]);
    let web = names(&project, "web", 1..=2);
    let db = names(&project, "db", 1..=2);
    let recreated: BTreeSet<String> = plan
        .stdout
        .lines()
        .filter(|l| {
            l.contains("recreate")
                && l.contains(&format!("(image {reference} now points at {short})"))
        })
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .collect();
    assert_eq!(
        recreated,
        web.iter().cloned().collect::<BTreeSet<_>>(),
        "the plan should recreate exactly web's containers for the new image:\n{plan}"
    );
    for name in &db {
        assert!(
            !plan.stdout.contains(name.as_str()),
            "{name} is in the plan:\n{plan}"
        );
    }

    muster_ok(&project, &["apply"]);
    let after = ids(&project);
    for name in &db {
        assert_eq!(after[name], before[name], "{name} was recreated");
    }
    for name in &web {
        assert_ne!(after[name], before[name], "{name} was not recreated");
        assert_eq!(container_image(name), new_id, "{name} runs the old image");
    }
    for c in project.containers() {
        assert!(c.is_running(), "{} is {}", c.name, c.state);
    }
    let again = muster_ok(&project, &["plan", "--detailed-exitcode"]);
    assert!(again.stdout.contains("No changes"), "{again}");
}

#[test]
fn an_image_that_cannot_be_pulled_stops_apply_before_any_change() {
    let project = Project::new("reg-absent");
    // A repository the registry has, at a tag it does not.
    let pushed = project.push_to_registry("v1");
    let absent = project.registry_image("no-such-tag");
    project.write(&format!(
        "{}\n{}",
        sleeper_service("web", "{image}", 1),
        sleeper_service("api", &absent, 1)
    ));
    assert_ne!(pushed, absent);

    let events = record_events(&project, || {
        let out = muster_exits(&project, &["apply"], 1);
        assert!(
            out.stderr.contains(&absent) && out.stderr.contains("nothing was changed"),
            "the error does not name the image or say that nothing changed:\n{out}"
        );
    });
    let changes: Vec<&String> = events
        .iter()
        .filter(|e| e.starts_with("container ") || e.starts_with("network "))
        .collect();
    assert!(changes.is_empty(), "apply changed the engine: {changes:#?}");
    assert!(project.containers().is_empty());
    assert!(project.networks().is_empty());
}

/// Fails today: the daemon never pulls a missing image (issue 9), so its
/// apply fails to create the container; the new pipeline fixes that.
#[test]
fn the_daemon_pulls_an_image_only_in_the_registry_and_starts_the_service() {
    let project = Project::new("reg-daemon");
    let reference = project.push_to_registry("v1");
    project.write(&sleeper_service("web", &reference, 1));

    let d = Daemon::watch(&project, "1h");
    d.wait_until(
        "the daemon has pulled the image and web runs",
        Duration::from_secs(60),
        || exactly_running(&project, 1),
    );
    let id = local_image_id(&reference).expect("the daemon did not pull the image");
    let web = names(&project, "web", [1]);
    assert_eq!(container_image(&web[0]), id);
    assert!(d.is_running(), "muster watch exited:\n{}", d.transcript());
}

/// A tag pushed again and pulled is rolled out by the daemon too, at its
/// next pass (here SIGHUP): web's containers are replaced, db's are not.
#[test]
fn the_daemon_rolls_out_a_tag_pushed_again_and_pulled() {
    let project = Project::new("reg-daemon-repush");
    let reference = project.push_to_registry("v1");
    project.write(&format!(
        "{}\n{}",
        sleeper_service("web", &reference, 2),
        sleeper_service("db", "{image}", 1)
    ));
    let d = Daemon::watch(&project, "1h");
    let running = || {
        project
            .containers()
            .iter()
            .filter(|c| c.is_running())
            .count()
    };
    d.wait_until("3 containers run", Duration::from_secs(60), || {
        running() == 3
    });
    let before = ids(&project);
    let new_id = project.push_other_content(&reference);
    pull(&reference);
    d.signal(libc::SIGHUP);
    let web = names(&project, "web", 1..=2);
    d.wait_until(
        "the daemon recreated web on the new image",
        Duration::from_secs(60),
        || running() == 3 && web.iter().all(|n| container_image(n) == new_id),
    );
    let after = ids(&project);
    let db = names(&project, "db", [1]);
    assert_eq!(after[&db[0]], before[&db[0]], "db was recreated");
    for n in &web {
        assert_ne!(after[n], before[n], "{n} was not recreated");
    }
}

/// `muster pull` pulls every image of the file, reports every one that
/// cannot be pulled (not only the first) with the next step, and exits 1;
/// it creates nothing.
#[test]
fn muster_pull_pulls_every_image_and_reports_all_failures() {
    let project = Project::new("reg-pullcmd");
    let reference = project.push_to_registry("v1");
    assert_eq!(
        local_image_id(&reference),
        None,
        "the push left a local tag"
    );
    project.write(&sleeper_service("web", &reference, 1));
    let out = muster_ok(&project, &["pull"]);
    assert!(
        out.stderr.contains(&format!("pulled {reference}"))
            || out.stdout.contains(&format!("pulled {reference}")),
        "{out}"
    );
    assert!(local_image_id(&reference).is_some(), "not pulled:\n{out}");
    assert!(project.containers().is_empty(), "pull created containers");

    let gone1 = format!("127.0.0.1:5000/muster-test/{}-gone:1", project.name());
    let gone2 = format!("127.0.0.1:5000/muster-test/{}-gone:2", project.name());
    project.write(&format!(
        "{}{}{}",
        sleeper_service("web", &reference, 1),
        sleeper_service("a", &gone1, 1),
        sleeper_service("b", &gone2, 1)
    ));
    let out = muster_exits(&project, &["pull"], 1);
    assert!(
        out.stderr.contains(&gone1) && out.stderr.contains(&gone2),
        "not every failure is reported:\n{out}"
    );
    // `pull` also pulls what the engine has: it claims nothing of that.
    assert!(
        out.stderr.contains("2 images could not be pulled")
            && !out.stderr.contains("not on the engine"),
        "{out}"
    );
    assert!(
        out.stderr.contains("`docker login 127.0.0.1:5000`"),
        "no next step:\n{out}"
    );
    assert!(project.containers().is_empty(), "pull created containers");
}
