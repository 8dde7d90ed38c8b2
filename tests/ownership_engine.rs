//! Ownership on the real engine (SPEC section 2): containers, networks and
//! volumes that lack the project's label, or carry another project's, are
//! never stopped, changed or removed, whatever the file says, with
//! `--prune`, `down` and `down --volumes` included. (`safety_engine.rs`
//! covers foreign containers under muster's names, volumes named like the
//! project's but not mounted, and an unlabelled network under the
//! project's network name.)

mod support;

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;

use support::{
    Project, block_on, docker, exec, id_and_state, inspect, lock_name, muster, muster_exits,
    muster_ok, run_foreign, volume_labels,
};

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Creates volume `name` with `labels`, holding `/owner` = `owner`.
fn foreign_volume(name: &str, label_pairs: &[(&str, &str)], owner: &str) {
    let docker = docker();
    block_on(docker.create_volume(VolumeCreateRequest {
        name: Some(name.to_string()),
        labels: Some(labels(label_pairs)),
        ..Default::default()
    }))
    .unwrap_or_else(|e| panic!("cannot create volume {name}: {e}"));
    let writer = format!("{name}-writer");
    let body = ContainerCreateBody {
        image: Some(support::image().to_string()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            format!("echo {owner} > /data/owner"),
        ]),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{name}:/data")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    block_on(async {
        let options = CreateContainerOptionsBuilder::default()
            .name(&writer)
            .build();
        docker.create_container(Some(options), body).await.unwrap();
        docker.start_container(&writer, None).await.unwrap();
        let mut wait = docker.wait_container(&writer, None::<WaitContainerOptions>);
        while let Some(r) = wait.next().await {
            r.unwrap_or_else(|e| panic!("{writer}: {e}"));
        }
        let force = RemoveContainerOptionsBuilder::default().force(true).build();
        docker.remove_container(&writer, Some(force)).await.unwrap();
    });
}

const STORE: &str = r#"project = "{project}"

[services.store]
image = "{image}"
count = COUNT
command = ["sleep", "3600"]
volumes = ["data-{ordinal}:/data"]
init = true
stop_grace_period = "1s"
"#;

/// A volume of the name muster would create that is not the project's
/// (no label, or another project's) is refused before any change, naming
/// it and its owner; declared `external`, it is mounted as it is and never
/// removed, not even by `down --volumes`; an external volume that does
/// not exist stops the apply before any change.
#[test]
fn a_volume_that_is_not_the_projects_is_refused_unless_declared_external() {
    let project = Project::new("own-vol");
    let p = project.name();
    let other = format!("{p}-other");
    let unlabelled = format!("{p}_data-1");
    let others = format!("{p}_data-2");
    foreign_volume(&unlabelled, &[], "nobody");
    foreign_volume(&others, &[("io.muster.project", &other)], "other");

    project.write(&STORE.replace("COUNT", "3"));
    let out = muster_exits(&project, &["apply"], 1);
    assert!(
        out.stderr
            .contains(&format!("volume {unlabelled} was not created by muster")),
        "{out}"
    );
    assert!(out.stderr.contains("nothing was changed"), "{out}");
    assert!(project.containers().is_empty(), "no container was created");
    project.write(
        &STORE
            .replace("COUNT", "2")
            .replace("data-{ordinal}", "data-2"),
    );
    let out = muster_exits(&project, &["apply"], 1);
    assert!(
        out.stderr
            .contains(&format!("volume {others} belongs to project {other}")),
        "{out}"
    );
    assert!(project.containers().is_empty(), "no container was created");

    // Declared external: used as it is, data and labels intact, kept by down.
    project.write(&format!(
        "{}\n[volumes.legacy]\nexternal = true\nname = \"{unlabelled}\"\n",
        STORE
            .replace("COUNT", "1")
            .replace("data-{ordinal}", "legacy")
    ));
    muster_ok(&project, &["apply"]);
    assert_eq!(
        exec(&format!("{p}-store-1"), &["cat", "/data/owner"]).1,
        "nobody\n"
    );
    muster_ok(&project, &["down", "--volumes"]);
    assert!(project.containers().is_empty());
    assert_eq!(volume_labels(&unlabelled), BTreeMap::new());
    assert_eq!(
        volume_labels(&others),
        BTreeMap::from([("io.muster.project".to_string(), other.clone())])
    );

    // An external volume that does not exist: nothing happens.
    project.write(&format!(
        "{}\n[volumes.legacy]\nexternal = true\nname = \"{p}-missing\"\n",
        STORE
            .replace("COUNT", "1")
            .replace("data-{ordinal}", "legacy")
    ));
    let out = muster_exits(&project, &["apply"], 1);
    assert!(
        out.stderr
            .contains("is declared external and does not exist"),
        "{out}"
    );
    assert!(project.containers().is_empty(), "no container was created");
}

const WEB: &str = r#"project = "{project}"

[services.web]
image = "{image}"
command = ["sleep", "3600"]
env = { V = "VALUE" }
init = true
stop_grace_period = "1s"

[services.web.update]
order = "start-first"
"#;

#[test]
fn a_network_of_another_project_under_the_projects_network_name_fails_apply_and_survives_down() {
    let project = Project::new("own-net");
    let p = project.name();
    let other = format!("{p}-other");
    let mut networks = Vec::new();
    for (name, owner) in [
        (format!("{p}_default"), &other),
        (format!("{other}_default"), &other),
    ] {
        let id = block_on(docker().create_network(NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(labels(&[("io.muster.project", owner)])),
            ..Default::default()
        }))
        .unwrap_or_else(|e| panic!("cannot create network {name}: {e}"))
        .id;
        networks.push((name, id));
    }
    project.write(&WEB.replace("VALUE", "a"));
    let out = muster_exits(&project, &["apply"], 1);
    assert!(
        out.stderr
            .contains(&format!("creating network {p}_default"))
            && out.stderr.contains("muster does not own it"),
        "{out}"
    );
    assert!(project.containers().is_empty(), "{out}");
    muster_ok(&project, &["down", "--volumes"]);
    for (name, id) in &networks {
        let still = block_on(docker().inspect_network(name, None))
            .unwrap_or_else(|e| panic!("down removed network {name}: {e}"));
        assert_eq!(still.id.as_ref(), Some(id));
    }
}

#[test]
fn a_foreign_container_on_the_project_network_is_left_running_and_connected_by_down() {
    let project = Project::new("own-attached");
    let p = project.name();
    project.write(&WEB.replace("VALUE", "a"));
    muster_ok(&project, &["apply"]);
    let network = format!("{p}_default");
    let guest = format!("{p}-guest");
    let id = run_foreign(&guest, &[]);
    block_on(docker().connect_network(
        &network,
        bollard::models::NetworkConnectRequest {
            container: guest.clone(),
            ..Default::default()
        },
    ))
    .unwrap();

    let out = muster(&project, &["down"]);
    assert_eq!(id_and_state(&guest), (id, "running".to_string()), "{out}");
    let attached = inspect(&guest)
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    assert!(
        attached.contains_key(&network),
        "{guest} was disconnected:\n{out}"
    );
    // The guest carries no label: the project has no container left.
    assert!(project.containers().is_empty(), "{out}");
    // The network cannot go while the guest uses it: down says so.
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!("removing network {network}")),
        "{out}"
    );
}

#[test]
fn a_foreign_container_under_a_temporary_name_is_never_removed_by_a_start_first_update() {
    let project = Project::new("own-next");
    let p = project.name();
    project.write(&WEB.replace("VALUE", "a"));
    muster_ok(&project, &["apply"]);
    let web1 = format!("{p}-web-1");
    let before = id_and_state(&web1);
    let squatter = format!("{web1}-next");
    let id = run_foreign(&squatter, &[("team", "shop")]);

    project.write(&WEB.replace("VALUE", "b"));
    let out = muster_exits(&project, &["apply"], 1);
    assert_eq!(
        id_and_state(&squatter),
        (id, "running".to_string()),
        "the start-first update removed a container that is not muster's:\n{out}"
    );
    assert!(
        out.stderr.contains(&squatter) && out.stderr.contains("taken"),
        "the error should name the container in the way:\n{out}"
    );
    assert_eq!(id_and_state(&web1), before, "{out}");
}

#[test]
fn a_foreign_container_under_the_lock_name_is_never_removed() {
    let project = Project::new("own-lock");
    let lock = lock_name(&project);
    let id = run_foreign(&lock, &[]);
    project.write(&WEB.replace("VALUE", "a"));
    for args in [
        &["apply", "--lock-timeout", "1s"][..],
        &["down", "--lock-timeout", "1s"],
    ] {
        let out = muster_exits(&project, args, 1);
        assert!(
            out.stderr
                .contains(&format!("container {lock} has the lock's name")),
            "{args:?}: {out}"
        );
        assert_eq!(id_and_state(&lock), (id.clone(), "running".to_string()));
    }
    assert!(project.containers().is_empty());
}
