//! The engine-test support itself: a project sees its own objects and the
//! events it causes, not other projects', and leaves nothing behind, even
//! when its test panics.

mod support;

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use support::{Project, block_on, docker, record_events};

fn labels(project: &Project, service: &str) -> HashMap<String, String> {
    HashMap::from([
        (
            support::PROJECT_LABEL.to_string(),
            project.name().to_string(),
        ),
        ("io.muster.service".to_string(), service.to_string()),
        ("io.muster.ordinal".to_string(), "1".to_string()),
    ])
}

/// A stopped container `<name>`, labelled with `project` when `labelled`.
fn create_container(project: &Project, name: &str, labelled: bool) {
    let body = ContainerCreateBody {
        image: Some(support::image().to_string()),
        cmd: Some(vec!["sleep".into(), "60".into()]),
        env: Some(vec!["GREETING=hello".into()]),
        labels: labelled.then(|| labels(project, "web")),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    block_on(docker().create_container(Some(options), body)).unwrap();
}

fn engine_has_container(name: &str) -> bool {
    block_on(docker().inspect_container(name, None)).is_ok()
}

#[test]
fn project_sees_its_objects_and_events_and_removes_them_when_dropped() {
    let project = Project::new("support");
    let name = project.name().to_string();
    support::image();
    let web = format!("{name}-web-1");
    let stray = format!("{name}-web-2");
    let network = format!("{name}_default");
    let volume = format!("{name}_data-1");

    let events = record_events(&project, || {
        create_container(&project, &web, true);
        create_container(&project, &stray, false);
        block_on(docker().create_network(NetworkCreateRequest {
            name: network.clone(),
            labels: Some(labels(&project, "web")),
            ..Default::default()
        }))
        .unwrap();
        block_on(docker().create_volume(VolumeCreateRequest {
            name: Some(volume.clone()),
            ..Default::default()
        }))
        .unwrap();
    });
    for want in [
        format!("container create {web}"),
        format!("container create {stray}"),
        format!("network create {network}"),
        format!("volume create {volume}"),
    ] {
        assert!(events.contains(&want), "{want:?} not in {events:#?}");
    }

    let containers = project.containers();
    assert_eq!(
        containers.len(),
        1,
        "only labelled containers: {containers:#?}"
    );
    assert_eq!(containers[0].name, web);
    assert_eq!(containers[0].service(), Some("web"));
    assert_eq!(containers[0].ordinal(), Some(1));
    assert_eq!(containers[0].state, "created");
    assert!(!containers[0].is_running());
    assert!(project.env(&web).contains(&"GREETING=hello".to_string()));
    assert_eq!(project.networks(), [network.as_str()]);
    assert_eq!(project.volumes(), [volume.as_str()]);

    // Reads cause no events; neither does another project's work.
    let other = Project::new("support-other");
    let quiet = record_events(&project, || {
        project.containers();
        project.env(&web);
        create_container(&other, &format!("{}-web-1", other.name()), true);
    });
    assert_eq!(quiet, Vec::<String>::new());

    drop(project);
    assert!(!engine_has_container(&web));
    assert!(!engine_has_container(&stray));
    let networks = block_on(docker().list_networks(None)).unwrap();
    assert!(
        !networks
            .iter()
            .any(|n| n.name.as_deref() == Some(network.as_str()))
    );
    let volumes =
        block_on(docker().list_volumes(None::<bollard::query_parameters::ListVolumesOptions>))
            .unwrap()
            .volumes
            .unwrap_or_default();
    assert!(!volumes.iter().any(|v| v.name == volume));
}

#[test]
fn project_is_cleaned_up_when_its_test_panics() {
    support::image();
    let mut container = String::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let project = Project::new("support-panic");
        container = format!("{}-web-1", project.name());
        create_container(&project, &container, true);
        panic!("the test fails half-way");
    }));
    assert!(outcome.is_err());
    assert!(
        !engine_has_container(&container),
        "{container} was left behind"
    );
}

#[test]
fn project_names_are_unique_and_valid() {
    let a = Project::new("Same Prefix!");
    let b = Project::new("Same Prefix!");
    assert_ne!(a.name(), b.name());
    assert!(muster::config::valid_name(a.name()), "{}", a.name());
    assert!(a.name().starts_with("mt-same-prefix-"), "{}", a.name());
    assert_eq!(a.dir().file_name().unwrap(), a.name());

    a.write("project = \"{project}\"\n[services.web]\nimage = \"{image}\"\n");
    let text = std::fs::read_to_string(a.file()).unwrap();
    assert!(text.contains(&format!("project = \"{}\"", a.name())));
    assert!(text.contains(&format!("image = \"{}\"", support::IMAGE)));
    let out = a.muster().arg("validate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!("project {}", a.name())),
        "{stdout}"
    );
}
