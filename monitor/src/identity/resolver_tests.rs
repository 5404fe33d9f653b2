//! The resolver over a cgroup tree and `/proc` laid out in a temporary
//! directory: a directory's inode stands for the cgroup id, as on cgroupfs.
use std::fs;

use super::*;
use crate::identity::{Pod, Runtime};

const ID: &str = "6d028e71148b1fe72fc66e4019aed1111bc3c51efdf98e1d9cc1f1f3f370fbbe";

struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["proc", "run", "cgroup"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Host { dir }
    }

    fn roots(&self) -> HostRoots {
        HostRoots {
            proc: self.dir.path().join("proc"),
            run: self.dir.path().join("run"),
            cgroup: self.dir.path().join("cgroup"),
        }
    }

    /// Makes the cgroup and returns its id.
    fn cgroup(&self, path: &str) -> u64 {
        let dir = self
            .dir
            .path()
            .join("cgroup")
            .join(path.trim_start_matches('/'));
        fs::create_dir_all(&dir).unwrap();
        inode(&dir).unwrap()
    }

    fn process(&self, pid: u32, path: &str) {
        let dir = self.dir.path().join("proc").join(pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cgroup"), format!("1:cpu:/x\n0::{path}\n")).unwrap();
    }

    fn annotate(&self, id: &str, labels: &[&str]) {
        let state = oci::runc_state_path(&self.dir.path().join("run"), id);
        fs::create_dir_all(state.parent().unwrap()).unwrap();
        let json = serde_json::json!({ "config": { "labels": labels } });
        fs::write(state, json.to_string()).unwrap();
    }

    fn remove(&self, path: &str) {
        fs::remove_dir(
            self.dir
                .path()
                .join("cgroup")
                .join(path.trim_start_matches('/')),
        )
        .unwrap();
    }
}

fn process(pid: u32, cgroup_id: u64) -> Process {
    Process::sample(pid, cgroup_id)
}

#[test]
fn a_podman_container_with_pod_annotations() {
    let host = Host::new();
    let path = format!("/libpod_parent/libpod-{ID}");
    let id = host.cgroup(&path);
    host.process(4242, &path);
    host.annotate(
        ID,
        &[
            "io.container.manager=libpod",
            "io.kubernetes.pod.name=web-1",
            "io.kubernetes.pod.namespace=shop",
        ],
    );
    let mut resolver = Resolver::new(host.roots());
    let workload = resolver.workload(&process(4242, id)).unwrap();
    assert_eq!(
        *workload,
        Workload {
            container_id: ID.into(),
            runtime: Some(Runtime::Podman),
            name: None,
            pod: Some(Pod {
                name: Some("web-1".into()),
                namespace: Some("shop".into()),
                uid: None,
            }),
        }
    );
}

#[test]
fn host_processes_and_unknown_cgroups_have_no_workload() {
    let host = Host::new();
    let id = host.cgroup("/system.slice/ssh.service");
    host.process(7, "/system.slice/ssh.service");
    let mut resolver = Resolver::new(host.roots());
    assert_eq!(resolver.workload(&process(7, id)), None);
    assert_eq!(resolver.workload(&process(7, 0)), None, "id 0: unknown");
    assert_eq!(resolver.workload(&process(8, 999_999_999)), None);
    assert!(
        resolver.cache.get(999_999_999).is_some(),
        "a cgroup not found is remembered until the sweep"
    );
}

#[test]
fn an_exited_process_is_found_by_searching_the_tree() {
    let host = Host::new();
    let path = format!("/kubepods/besteffort/pod8f1c2c6e-7d0b-4c5a-9a43-2f1e3f0c7b11/{ID}");
    let id = host.cgroup(&path);
    let mut resolver = Resolver::new(host.roots());
    let workload = resolver.workload(&process(31337, id)).unwrap();
    assert_eq!(workload.container_id, ID);
    assert_eq!(workload.runtime, None, "no state says which runtime");
    assert_eq!(
        workload.pod.as_ref().and_then(|p| p.uid.as_deref()),
        Some("8f1c2c6e-7d0b-4c5a-9a43-2f1e3f0c7b11")
    );
}

#[test]
fn a_reused_pid_in_another_cgroup_is_not_believed() {
    let host = Host::new();
    let container = format!("/docker/{ID}");
    let id = host.cgroup(&container);
    host.cgroup("/system.slice/cron.service");
    // The pid now belongs to a host process: the inode check refuses its
    // path, and the search finds the container's.
    host.process(55, "/system.slice/cron.service");
    let mut resolver = Resolver::new(host.roots());
    let workload = resolver.workload(&process(55, id)).unwrap();
    assert_eq!(workload.runtime, Some(Runtime::Docker));
}

#[test]
fn cached_until_the_cgroup_goes_away() {
    let host = Host::new();
    let path = format!("/machine.slice/libpod-{ID}.scope");
    let id = host.cgroup(&path);
    let mut resolver = Resolver::new(host.roots());
    assert!(resolver.workload(&process(1, id)).is_some());
    // The state appears later: the cached answer stands (no re-read per alert).
    host.annotate(ID, &["io.kubernetes.pod.name=late"]);
    assert_eq!(resolver.workload(&process(1, id)).unwrap().pod, None);
    assert_eq!(resolver.cache.len(), 1);
    host.remove(&path);
    resolver.swept = Instant::now() - SWEEP_EVERY;
    resolver.sweep_now_and_then();
    assert_eq!(
        resolver.cache.len(),
        0,
        "the removed cgroup's entry is dropped"
    );
}

#[test]
fn enrich_sets_the_workload_on_alerts_with_a_process() {
    use crate::alert::{Alert, Rule};
    let host = Host::new();
    let path = format!("/libpod_parent/libpod-{ID}");
    let id = host.cgroup(&path);
    let mut with = Alert::new(std::time::UNIX_EPOCH, Rule::UnexpectedDbPeer, "x".into());
    with.process = Some(process(3, id));
    let without = Alert::new(std::time::UNIX_EPOCH, Rule::EventLoss, "y".into());
    let mut alerts = [with, without];
    crate::alert::enrich(&mut Resolver::new(host.roots()), &mut alerts);
    assert_eq!(alerts[0].workload.as_ref().unwrap().container_id, ID);
    assert_eq!(alerts[1].workload, None);
}
