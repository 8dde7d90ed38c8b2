//! The real engine is there, and the local test image runs on it: the
//! ground every engine test stands on.

mod support;

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::TryStreamExt;

#[test]
fn engine_is_reachable_and_test_image_runs() {
    let project = support::Project::new("engine");
    let docker = support::docker();
    let image = support::image();
    let name = format!("{}-echo-1", project.name());
    let logs = support::block_on(async {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(
                [
                    "sh",
                    "-c",
                    "echo hello; printenv PATH; test -x /bin/busybox",
                ]
                .map(String::from)
                .to_vec(),
            ),
            labels: Some(HashMap::from([(
                support::PROJECT_LABEL.to_string(),
                project.name().to_string(),
            )])),
            // The quickstart example runs with an init process.
            host_config: Some(HostConfig {
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        docker.create_container(Some(options), body).await.unwrap();
        docker.start_container(&name, None).await.unwrap();
        let exits: Vec<_> = docker
            .wait_container(&name, None)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(exits.last().map(|e| e.status_code), Some(0));
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let logs: Vec<_> = docker
            .logs(&name, Some(options))
            .try_collect()
            .await
            .unwrap();
        logs.iter().map(ToString::to_string).collect::<String>()
    });
    assert_eq!(logs, "hello\n/usr/sbin:/usr/bin:/sbin:/bin\n");

    assert_eq!(project.container_names(), [name.as_str()]);
    let force = RemoveContainerOptionsBuilder::default().force(true).build();
    support::block_on(docker.remove_container(&name, Some(force))).unwrap();
    assert!(project.containers().is_empty());
}

/// The project's record through the backend: a handle that did not see
/// the other's write still replaces it (not a second record, not a
/// failure), one that did replaces it by id, and an empty one removes it.
#[test]
fn the_record_is_replaced_by_any_handle_and_removed_when_empty() {
    use muster::engine::Applied;
    let project = support::Project::new("record-handles");
    let p = project.name();
    let counts = |n: u32| Applied::from([("web".to_string(), n)]);
    support::block_on(async {
        let docker = muster::config::Backend::Docker;
        let one = muster::engine::connect(docker, None).await.unwrap();
        let two = muster::engine::connect(docker, None).await.unwrap();
        one.record(p, &counts(1)).await.unwrap();
        two.record(p, &counts(2)).await.unwrap();
        assert_eq!(one.observe(p, &[]).await.unwrap().applied, counts(2));
        one.record(p, &counts(3)).await.unwrap();
        assert_eq!(two.observe(p, &[]).await.unwrap().applied, counts(3));
        two.record(p, &Applied::new()).await.unwrap();
        assert!(one.observe(p, &[]).await.unwrap().applied.is_empty());
    });
    assert!(!support::exists(&format!("{p}-muster-record")));
}
