//! Which container and which pod a process belongs to: ECS `container.*`
//! and `orchestrator.*` on alerts.
//!
//! The kernel gives each record the cgroup v2 id of the process. Here it
//! becomes a path ([`resolver`]: `/proc/PID/cgroup`, checked against the
//! cgroup directory's inode, which is the id), the path a container id and
//! runtime ([`path`]), and the OCI runtime's state for that id (runc's or
//! crun's `state.json` → bundle → `config.json` annotations, [`oci`]) the
//! pod. Results are cached per cgroup id ([`cache`]), bounded, and dropped
//! when the cgroup is removed. All of it runs in the detector thread after
//! the detector has judged a batch, for alerts only: the event path never
//! waits on it.
mod cache;
mod oci;
mod path;
mod resolv;
mod resolver;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use path::{ContainerRef, container_of};
pub use resolver::Resolver;

/// The container runtime, as ECS `container.runtime` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Podman,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
        }
    }
}

/// A process's container, and its pod where the runtime recorded one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Workload {
    /// Full 64-hex id (`container.id`).
    pub container_id: String,
    /// `None` when neither the path nor the runtime state says.
    pub runtime: Option<Runtime>,
    /// `container.name`, where the runtime recorded one
    /// (`io.kubernetes.container.name`, `io.kubernetes.cri.container-name`).
    pub name: Option<String>,
    pub pod: Option<Pod>,
}

impl Workload {
    /// How status names it: `pod shop/checkout (container 6d028e71148b)`, or
    /// `podman container 6d028e71148b`.
    pub fn label(&self) -> String {
        let short = self.container_id.get(..12).unwrap_or(&self.container_id);
        let pod = self
            .pod
            .as_ref()
            .and_then(|p| match (&p.namespace, &p.name) {
                (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
                (None, Some(name)) => Some(name.clone()),
                _ => p.uid.clone(),
            });
        match (pod, self.runtime) {
            (Some(pod), _) => format!("pod {pod} (container {short})"),
            (None, Some(runtime)) => format!("{} container {short}", runtime.as_str()),
            (None, None) => format!("container {short}"),
        }
    }
}

/// A Kubernetes pod (`orchestrator.*`, `pinwatch.pod_uid`). Each part is
/// present only where the runtime or the cgroup path recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Pod {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
}

/// Where the host's `/proc`, `/run` and cgroup v2 tree are read from: the
/// plain paths, or `[host]` roots when pinwatch runs in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoots {
    pub proc: PathBuf,
    pub run: PathBuf,
    pub cgroup: PathBuf,
}

impl HostRoots {
    /// A path as the host names it (a bundle directory in runtime state),
    /// read through the roots: under `/run` through `run`; elsewhere, when
    /// `/proc` is the host's seen from a container, through the host's
    /// pid 1 root.
    pub fn host_path(&self, path: &Path) -> PathBuf {
        let relative = |base: &str| path.strip_prefix(base).ok().map(Path::to_owned);
        if let Some(rest) = relative("/run") {
            return self.run.join(rest);
        }
        match relative("/") {
            Some(rest) if self.proc != Path::new("/proc") => self.proc.join("1/root").join(rest),
            _ => path.to_owned(),
        }
    }
}

/// Why the runtime state of a container could not be read. Never fatal: the
/// alert then carries what the cgroup path said.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not the JSON a runtime writes: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}
