//! The OCI runtime's own record of a container: where runc, crun,
//! containerd and Docker keep state under `/run`, the bundle it names, and
//! the annotations of the bundle's `config.json`: where CRI-O, podman
//! (`io.kubernetes.pod.*`) and containerd (`io.kubernetes.cri.sandbox-*`)
//! write the pod.
use std::{
    collections::HashMap,
    io::{ErrorKind, Read},
    path::Path,
};

use serde_json::Value;

use super::{HostRoots, IdentityError, Pod, Runtime};

/// Runtime state files are small; a bound keeps a corrupt one from costing
/// memory.
const MAX_STATE_BYTES: u64 = 4 << 20;

/// What the runtime state says about a container.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RuntimeState {
    pub annotations: HashMap<String, String>,
    /// The runtime the state's location implies (containerd's namespace
    /// `moby` is Docker's).
    pub runtime: Option<Runtime>,
}

impl RuntimeState {
    fn get(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|key| self.annotations.get(*key))
            .filter(|v| !v.is_empty())
            .cloned()
    }

    /// The runtime the annotations name: podman marks its containers; the
    /// CRI plugins prefix their own keys.
    pub fn annotated_runtime(&self) -> Option<Runtime> {
        let has = |prefix: &str| self.annotations.keys().any(|k| k.starts_with(prefix));
        if self
            .annotations
            .get("io.container.manager")
            .map(String::as_str)
            == Some("libpod")
        {
            Some(Runtime::Podman)
        } else if has("io.kubernetes.cri.") {
            Some(Runtime::Containerd)
        } else if has("io.kubernetes.cri-o.") {
            Some(Runtime::CriO)
        } else {
            None
        }
    }

    pub fn pod(&self, uid_from_path: Option<&str>) -> Option<Pod> {
        let pod = Pod {
            name: self.get(&["io.kubernetes.pod.name", "io.kubernetes.cri.sandbox-name"]),
            namespace: self.get(&[
                "io.kubernetes.pod.namespace",
                "io.kubernetes.cri.sandbox-namespace",
            ]),
            uid: self
                .get(&["io.kubernetes.pod.uid", "io.kubernetes.cri.sandbox-uid"])
                .or_else(|| uid_from_path.map(str::to_owned)),
        };
        (pod.name.is_some() || pod.namespace.is_some() || pod.uid.is_some()).then_some(pod)
    }

    pub fn container_name(&self) -> Option<String> {
        self.get(&[
            "io.kubernetes.container.name",
            "io.kubernetes.cri.container-name",
        ])
    }
}

/// The state of container `id`, from the first runtime that keeps one;
/// `None` when none does (the container is gone, or its runtime keeps
/// state elsewhere).
pub fn read(roots: &HostRoots, id: &str) -> Result<Option<RuntimeState>, IdentityError> {
    let run = &roots.run;
    let mut candidates = vec![
        // runc's default root: podman, CRI-O, plain runc.
        (run.join("runc").join(id).join("state.json"), None),
        (run.join("crun").join(id).join("status"), None),
        (
            run.join("docker/runtime-runc/moby")
                .join(id)
                .join("state.json"),
            Some(Runtime::Docker),
        ),
    ];
    // containerd's runc shim keeps a root per namespace (`k8s.io`, `moby`…).
    for namespace in subdirectories(&run.join("containerd/runc")) {
        let runtime = if namespace == "moby" {
            Runtime::Docker
        } else {
            Runtime::Containerd
        };
        let state = run.join("containerd/runc").join(&namespace).join(id);
        candidates.push((state.join("state.json"), Some(runtime)));
    }
    for (state, runtime) in candidates {
        let Some(json) = read_json(&state)? else {
            continue;
        };
        let annotations = bundle_annotations(roots, &json)?;
        return Ok(Some(RuntimeState {
            annotations,
            runtime,
        }));
    }
    // containerd's task directory is the bundle itself.
    for namespace in subdirectories(&run.join("containerd/io.containerd.runtime.v2.task")) {
        let bundle = run
            .join("containerd/io.containerd.runtime.v2.task")
            .join(&namespace)
            .join(id);
        if let Some(config) = read_json(&bundle.join("config.json"))? {
            let runtime = if namespace == "moby" {
                Runtime::Docker
            } else {
                Runtime::Containerd
            };
            return Ok(Some(RuntimeState {
                annotations: annotations_of(&config),
                runtime: Some(runtime),
            }));
        }
    }
    Ok(None)
}

/// The annotations of the bundle a state file names (crun: `bundle`; runc:
/// the `bundle=` label). runc also copies the annotations into its labels:
/// they stand in when the bundle cannot be read.
fn bundle_annotations(
    roots: &HostRoots,
    state: &Value,
) -> Result<HashMap<String, String>, IdentityError> {
    let labels: Vec<&str> = state["config"]["labels"]
        .as_array()
        .map(|labels| labels.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let bundle = state["bundle"]
        .as_str()
        .or_else(|| labels.iter().find_map(|l| l.strip_prefix("bundle=")));
    if let Some(bundle) = bundle {
        let config = roots.host_path(&Path::new(bundle).join("config.json"));
        if let Some(config) = read_json(&config)? {
            return Ok(annotations_of(&config));
        }
    }
    Ok(labels
        .iter()
        .filter_map(|l| l.split_once('='))
        .filter(|(key, _)| *key != "bundle")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn annotations_of(config: &Value) -> HashMap<String, String> {
    config["annotations"]
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The file's JSON; `None` when there is no such file.
fn read_json(path: &Path) -> Result<Option<Value>, IdentityError> {
    let read = |path: &Path| -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_STATE_BYTES)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    match read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| IdentityError::Json {
                    path: path.to_owned(),
                    source,
                })
        }
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(None),
        Err(source) => Err(IdentityError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn subdirectories(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// Paths the tests lay out.
#[cfg(test)]
pub(super) fn runc_state_path(run: &Path, id: &str) -> std::path::PathBuf {
    run.join("runc").join(id).join("state.json")
}

#[cfg(test)]
#[path = "oci_tests.rs"]
mod tests;
