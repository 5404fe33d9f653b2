//! Paths as `/proc/PID/cgroup` shows them on real hosts (ids shortened
//! nowhere: the parser insists on 64 hex digits).
use super::*;

const ID: &str = "6d028e71148b1fe72fc66e4019aed1111bc3c51efdf98e1d9cc1f1f3f370fbbe";
const OUTER: &str = "4f0a3a9c2b5e0d1f8e7c6b5a49382716f5e4d3c2b1a0f9e8d7c6b5a493827160";
const UID: &str = "8f1c2c6e-7d0b-4c5a-9a43-2f1e3f0c7b11";
const UID_: &str = "8f1c2c6e_7d0b_4c5a_9a43_2f1e3f0c7b11";

fn found(path: &str) -> (String, Option<Runtime>, Option<String>) {
    let c = container_of(path).unwrap_or_else(|| panic!("no container in {path}"));
    (c.id, c.runtime, c.pod_uid)
}

fn expect(path: &str, runtime: Option<Runtime>, pod: bool) {
    let uid = pod.then(|| UID.to_owned());
    assert_eq!(found(path), (ID.to_owned(), runtime, uid), "{path}");
}

#[test]
fn docker_cgroupfs_and_systemd_drivers() {
    expect(&format!("/docker/{ID}"), Some(Runtime::Docker), false);
    expect(
        &format!("/system.slice/docker-{ID}.scope"),
        Some(Runtime::Docker),
        false,
    );
}

#[test]
fn podman_systemd_cgroupfs_rootless_and_systemd_inside() {
    let podman = Some(Runtime::Podman);
    expect(&format!("/machine.slice/libpod-{ID}.scope"), podman, false);
    expect(&format!("/libpod_parent/libpod-{ID}"), podman, false);
    expect(
        &format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
        podman,
        false,
    );
    // `--systemd=always`: the payload runs one level down.
    expect(
        &format!("/machine.slice/libpod-{ID}.scope/container"),
        podman,
        false,
    );
}

#[test]
fn runtime_monitors_are_host_processes() {
    assert_eq!(
        container_of(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
        None
    );
    assert_eq!(
        container_of(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{ID}.scope"
        )),
        None
    );
}

#[test]
fn containerd_cri_each_qos_class_systemd_driver() {
    let containerd = Some(Runtime::Containerd);
    for qos in ["burstable", "besteffort"] {
        expect(
            &format!(
                "/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{UID_}.slice/cri-containerd-{ID}.scope"
            ),
            containerd,
            true,
        );
    }
    // Guaranteed pods sit directly under kubepods.slice.
    expect(
        &format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope"),
        containerd,
        true,
    );
}

#[test]
fn kubepods_each_qos_class_cgroupfs_driver() {
    // Bare ids: containerd or Docker (cri-dockerd); the runtime state says which.
    for qos in ["burstable/", "besteffort/", ""] {
        expect(&format!("/kubepods/{qos}pod{UID}/{ID}"), None, true);
    }
}

#[test]
fn cri_o_systemd_and_cgroupfs() {
    let crio = Some(Runtime::CriO);
    expect(
        &format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope"
        ),
        crio,
        true,
    );
    expect(
        &format!("/kubepods/burstable/pod{UID}/crio-{ID}"),
        crio,
        true,
    );
}

#[test]
fn nested_kubernetes_in_docker_names_the_inner_container() {
    // kind: a node is a Docker container, its pods' containers cgroups below it.
    expect(
        &format!("/docker/{OUTER}/kubepods/besteffort/pod{UID}/{ID}"),
        None,
        true,
    );
    // The node container itself: no pod.
    assert_eq!(
        found(&format!("/docker/{OUTER}/init.scope")),
        (OUTER.to_owned(), Some(Runtime::Docker), None)
    );
}

#[test]
fn host_cgroups_name_no_container() {
    for path in [
        "/",
        "",
        "/system.slice/ssh.service",
        "/system.slice/docker.service",
        "/user.slice/user-0.slice/session-4.scope",
        "/init.scope",
        "/machine.slice",
        "/libpod_parent",
        // A process in the pod cgroup itself belongs to no container.
        &format!("/kubepods/burstable/pod{UID}"),
        &format!("/kubepods.slice/kubepods-pod{UID_}.slice"),
        // Near misses: 63 digits, upper case, not hex.
        &format!("/docker/{}", &ID[1..]),
        &format!("/docker/{}", ID.to_uppercase()),
        &format!("/system.slice/docker-{}z.scope", &ID[1..]),
    ] {
        assert_eq!(container_of(path), None, "{path}");
    }
}

#[test]
fn pod_uids_need_their_uuid_shape() {
    let path = format!("/kubepods/burstable/podnot-a-uid/{ID}");
    assert_eq!(found(&path).2, None);
    let path = format!("/other.slice/other-pod{UID_}.slice/cri-containerd-{ID}.scope");
    assert_eq!(found(&path).2, None, "only kubepods slices name pods");
}
