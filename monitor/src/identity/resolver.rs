//! cgroup id → [`Workload`], with the cache. Called from the detector
//! thread for alerts that carry a process, after the detector's lock is
//! released.
use std::{
    collections::VecDeque,
    os::unix::fs::{DirEntryExt, MetadataExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    HostRoots, Workload,
    cache::{Cache, Entry},
    oci, path,
    resolv::ResolvConfs,
};
use crate::event::{Event, OwnerRole, Process, ResolvConf};

/// Distinct cgroups remembered; a busy node runs a few hundred.
const CAPACITY: usize = 4_096;
/// How often cached cgroups are checked for removal.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Bounds of the search of the cgroup tree when `/proc/PID/cgroup` cannot
/// name the cgroup (the process exited, or pinwatch's cgroup namespace
/// differs from the host's).
const SEARCH_DEPTH: usize = 16;
const SEARCH_DIRS: usize = 100_000;

#[derive(Debug)]
pub struct Resolver {
    roots: HostRoots,
    cache: Cache,
    swept: Instant,
    resolv_confs: ResolvConfs,
}

impl Resolver {
    pub fn new(roots: HostRoots) -> Resolver {
        Resolver {
            resolv_confs: ResolvConfs::new(roots.proc.clone()),
            roots,
            cache: Cache::new(CAPACITY),
            swept: Instant::now(),
        }
    }

    /// Puts on each DNS socket owner record the resolv.conf of its process,
    /// before the detector sees the batch: trust follows the workload.
    pub fn read_resolv_confs(&mut self, batch: &mut [Event]) {
        for event in batch {
            if let Event::DnsOwner(owner) = event
                && owner.role == OwnerRole::Dns
            {
                owner.resolv_conf = self
                    .resolv_confs
                    .of(owner.process.pid)
                    .or_else(|| self.resolv_conf_of_container(&owner.process));
            }
        }
    }

    /// For a process that exited before its resolv.conf was read (a lookup
    /// tool): the resolv.conf of another process of its container, which
    /// shares its mount namespace. Host cgroups mix mount namespaces: none.
    fn resolv_conf_of_container(&mut self, process: &Process) -> Option<Arc<ResolvConf>> {
        self.workload(process)?;
        let procs = self.cache.get(process.cgroup_id)?.dir.join("cgroup.procs");
        let pids = std::fs::read_to_string(procs).ok()?;
        pids.lines()
            .filter_map(|pid| pid.trim().parse().ok())
            .find_map(|pid| self.resolv_confs.of(pid))
    }

    /// The container `process` runs in; `None` for a host process, and when
    /// the cgroup is gone before it could be read.
    pub fn workload(&mut self, process: &Process) -> Option<Arc<Workload>> {
        if process.cgroup_id == 0 {
            return None;
        }
        if let Some(entry) = self.cache.get(process.cgroup_id) {
            return entry.workload.clone();
        }
        let Some(cgroup) = self.cgroup_path(process.cgroup_id, process.pid) else {
            // Gone already: remembered as unknown until the next sweep, so a
            // burst of alerts walks the tree once.
            let unknown = Entry {
                workload: None,
                dir: PathBuf::new(),
            };
            self.cache.insert(process.cgroup_id, unknown);
            return None;
        };
        let workload = path::container_of(&cgroup).map(|found| Arc::new(self.describe(found)));
        let dir = self.roots.cgroup.join(cgroup.trim_start_matches('/'));
        self.cache.insert(
            process.cgroup_id,
            Entry {
                workload: workload.clone(),
                dir,
            },
        );
        workload
    }

    fn describe(&self, found: path::ContainerRef) -> Workload {
        let state = match oci::read(&self.roots, &found.id) {
            Ok(state) => state.unwrap_or_default(),
            Err(error) => {
                tracing::debug!(container = %found.id, "no runtime state: {error}");
                oci::RuntimeState::default()
            }
        };
        Workload {
            runtime: found
                .runtime
                .or_else(|| state.annotated_runtime())
                .or(state.runtime),
            name: state.container_name(),
            pod: state.pod(found.pod_uid.as_deref()),
            container_id: found.id,
        }
    }

    /// The cgroup's path below the cgroup root (`/libpod_parent/libpod-…`).
    fn cgroup_path(&self, cgroup_id: u64, pid: u32) -> Option<String> {
        let listed = (pid != 0)
            .then(|| self.listed_path(pid))
            .flatten()
            .filter(|p| {
                inode(&self.roots.cgroup.join(p.trim_start_matches('/'))) == Some(cgroup_id)
            });
        listed.or_else(|| self.search(cgroup_id))
    }

    /// The `0::` line of `/proc/PID/cgroup`: the process's cgroup v2 path.
    fn listed_path(&self, pid: u32) -> Option<String> {
        let file = self.roots.proc.join(pid.to_string()).join("cgroup");
        let text = std::fs::read_to_string(file).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix("0::"))
            .map(str::to_owned)
    }

    /// A breadth-first walk of the cgroup tree for the directory whose inode
    /// is the id; directory entries carry the inode, so nothing is stat'ed.
    fn search(&self, cgroup_id: u64) -> Option<String> {
        let mut queue = VecDeque::from([(String::new(), 0usize)]);
        let mut visited = 0usize;
        while let Some((relative, depth)) = queue.pop_front() {
            let dir = self.roots.cgroup.join(relative.trim_start_matches('/'));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let child = format!("{relative}/{name}");
                if entry.ino() == cgroup_id {
                    return Some(child);
                }
                visited += 1;
                if visited >= SEARCH_DIRS {
                    return None;
                }
                if depth + 1 < SEARCH_DEPTH {
                    queue.push_back((child, depth + 1));
                }
            }
        }
        None
    }

    /// Forgets, now and then, the cgroups that are gone; called once per
    /// batch of alerts.
    pub fn sweep_now_and_then(&mut self) {
        if self.swept.elapsed() < SWEEP_EVERY {
            return;
        }
        self.swept = Instant::now();
        self.cache
            .sweep(|cgroup_id, entry| inode(&entry.dir) == Some(cgroup_id));
    }
}

fn inode(dir: &Path) -> Option<u64> {
    std::fs::metadata(dir).ok().map(|m| m.ino())
}

#[cfg(test)]
#[path = "resolver_tests.rs"]
mod tests;
