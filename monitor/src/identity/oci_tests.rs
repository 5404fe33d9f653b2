//! Runtime state laid out as each runtime writes it, under a temporary
//! `/run`.
use std::{fs, path::PathBuf};

use serde_json::json;

use super::*;

const ID: &str = "6d028e71148b1fe72fc66e4019aed1111bc3c51efdf98e1d9cc1f1f3f370fbbe";

fn roots(dir: &Path) -> HostRoots {
    HostRoots {
        proc: "/proc".into(),
        run: dir.join("run"),
        cgroup: dir.join("cgroup"),
    }
}

fn write(path: &Path, value: &Value) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, value.to_string()).unwrap();
}

fn bundle(dir: &Path, annotations: Value) -> PathBuf {
    let bundle = dir
        .join("storage/overlay-containers")
        .join(ID)
        .join("userdata");
    write(
        &bundle.join("config.json"),
        &json!({ "annotations": annotations }),
    );
    bundle
}

#[test]
fn runc_state_names_the_bundle_whose_annotations_name_the_pod() {
    // podman and CRI-O: runc's root, the bundle in the label list.
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(
        dir.path(),
        json!({
            "io.container.manager": "libpod",
            "io.kubernetes.pod.name": "web-1",
            "io.kubernetes.pod.namespace": "shop",
        }),
    );
    let labels = [format!("bundle={}", bundle.display()), "a=b".into()];
    write(
        &runc_state_path(&dir.path().join("run"), ID),
        &json!({ "id": ID, "config": { "labels": labels } }),
    );
    let state = read(&roots(dir.path()), ID).unwrap().unwrap();
    assert_eq!(state.annotated_runtime(), Some(Runtime::Podman));
    let pod = state.pod(None).unwrap();
    assert_eq!(pod.name.as_deref(), Some("web-1"));
    assert_eq!(pod.namespace.as_deref(), Some("shop"));
    assert_eq!(pod.uid, None);
    assert_eq!(
        state.annotations.get("a"),
        None,
        "the bundle's, not the labels"
    );
}

#[test]
fn runc_labels_stand_in_for_an_unreadable_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let labels = [
        "bundle=/nonexistent/bundle",
        "io.kubernetes.cri-o.Created=2026-12-01T21:56:09Z",
        "io.kubernetes.pod.uid=8f1c2c6e-7d0b-4c5a-9a43-2f1e3f0c7b11",
        "io.kubernetes.container.name=api",
    ];
    write(
        &runc_state_path(&dir.path().join("run"), ID),
        &json!({ "config": { "labels": labels } }),
    );
    let state = read(&roots(dir.path()), ID).unwrap().unwrap();
    assert_eq!(state.annotated_runtime(), Some(Runtime::CriO));
    assert_eq!(state.container_name().as_deref(), Some("api"));
    let pod = state.pod(None).unwrap();
    assert_eq!(
        pod.uid.as_deref(),
        Some("8f1c2c6e-7d0b-4c5a-9a43-2f1e3f0c7b11")
    );
    assert_eq!(pod.name, None);
}

#[test]
fn crun_status_names_its_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path(), json!({ "io.kubernetes.pod.name": "db-0" }));
    write(
        &dir.path().join("run/crun").join(ID).join("status"),
        &json!({ "pid": 4242, "bundle": bundle }),
    );
    let state = read(&roots(dir.path()), ID).unwrap().unwrap();
    assert_eq!(state.pod(None).unwrap().name.as_deref(), Some("db-0"));
}

#[test]
fn containerd_sandbox_annotations_and_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir
        .path()
        .join("run/containerd/io.containerd.runtime.v2.task/k8s.io")
        .join(ID);
    write(
        &task.join("config.json"),
        &json!({ "annotations": {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": "api",
            "io.kubernetes.cri.sandbox-name": "api-7d9f-x2",
            "io.kubernetes.cri.sandbox-namespace": "payments",
            "io.kubernetes.cri.sandbox-uid": "11111111-2222-3333-4444-555555555555",
        }}),
    );
    let state = read(&roots(dir.path()), ID).unwrap().unwrap();
    assert_eq!(state.runtime, Some(Runtime::Containerd));
    assert_eq!(state.annotated_runtime(), Some(Runtime::Containerd));
    assert_eq!(state.container_name().as_deref(), Some("api"));
    let pod = state.pod(Some("ignored-when-annotated")).unwrap();
    assert_eq!(
        (
            pod.name.as_deref(),
            pod.namespace.as_deref(),
            pod.uid.as_deref()
        ),
        (
            Some("api-7d9f-x2"),
            Some("payments"),
            Some("11111111-2222-3333-4444-555555555555")
        )
    );
}

#[test]
fn docker_state_is_docker_and_has_no_pod() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path()
            .join("run/containerd/runc/moby")
            .join(ID)
            .join("state.json"),
        &json!({ "config": { "labels": ["bundle=/nonexistent"] } }),
    );
    let state = read(&roots(dir.path()), ID).unwrap().unwrap();
    assert_eq!(state.runtime, Some(Runtime::Docker));
    assert_eq!(state.pod(None), None);
    assert_eq!(state.pod(Some("u")).unwrap().uid.as_deref(), Some("u"));
}

#[test]
fn no_state_is_none_and_garbage_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read(&roots(dir.path()), ID).unwrap(), None);
    let path = runc_state_path(&dir.path().join("run"), ID);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, b"{not json").unwrap();
    assert!(matches!(
        read(&roots(dir.path()), ID),
        Err(IdentityError::Json { .. })
    ));
}

#[test]
fn host_paths_go_through_the_roots() {
    let plain = HostRoots {
        proc: "/proc".into(),
        run: "/run".into(),
        cgroup: "/sys/fs/cgroup".into(),
    };
    assert_eq!(
        plain.host_path(Path::new("/var/lib/x")),
        Path::new("/var/lib/x")
    );
    let contained = HostRoots {
        proc: "/host/proc".into(),
        run: "/host/run".into(),
        cgroup: "/host/sys/fs/cgroup".into(),
    };
    assert_eq!(
        contained.host_path(Path::new("/run/containers/storage/x/config.json")),
        Path::new("/host/run/containers/storage/x/config.json")
    );
    assert_eq!(
        contained.host_path(Path::new("/var/lib/containers/x")),
        Path::new("/host/proc/1/root/var/lib/containers/x")
    );
}
