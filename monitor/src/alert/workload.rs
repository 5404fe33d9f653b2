//! ECS fields of a process's container and pod: `container.id`,
//! `container.runtime`, `container.name`, `orchestrator.type`,
//! `orchestrator.namespace`, `orchestrator.resource.type` (`pod`),
//! `orchestrator.resource.name`, and the pod uid as `pinwatch.pod_uid`
//! (ECS has no field for it). Only what is known is written: a host
//! process gets none of them.
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::Alert;
use crate::{
    event::Process,
    identity::{Resolver, Workload},
};

/// One workload that received the same diverged answer
/// (`pinwatch.affected`): a container (and pod), or a host process.
#[derive(Debug, Clone, PartialEq)]
pub struct AffectedWorkload {
    pub process: Process,
    /// Set by the daemon; `None` for a host process.
    pub workload: Option<Arc<Workload>>,
    /// A process of its cgroup connected to a forged address since.
    pub connected: bool,
}

/// Puts the container and pod of each alert's process on it, and of each
/// affected process; one entry per container.
pub fn enrich(resolver: &mut Resolver, alerts: &mut [Alert]) {
    resolver.sweep_now_and_then();
    for alert in alerts {
        if let Some(process) = &alert.process {
            alert.workload = resolver.workload(process);
        }
        for entry in &mut alert.affected {
            entry.workload = resolver.workload(&entry.process);
        }
        alert.affected = one_per_workload(std::mem::take(&mut alert.affected));
    }
}

/// Processes of one container are one workload: the first stays, connected
/// if any of them did. Host processes stay one per process.
fn one_per_workload(list: Vec<AffectedWorkload>) -> Vec<AffectedWorkload> {
    let mut out: Vec<AffectedWorkload> = Vec::with_capacity(list.len());
    for entry in list {
        let id = entry.workload.as_ref().map(|w| w.container_id.as_str());
        let known = out.iter_mut().find(|o| match (id, &o.workload) {
            (Some(id), Some(w)) => w.container_id == id,
            (None, None) => o.process.pid == entry.process.pid,
            _ => false,
        });
        match known {
            Some(known) => known.connected |= entry.connected,
            None => out.push(entry),
        }
    }
    out
}

/// `pinwatch.affected`: each workload as its container and pod fields, or
/// its process for a host process, and whether it connected.
pub(super) fn affected(list: &[AffectedWorkload]) -> Value {
    let entries: Vec<Value> = list
        .iter()
        .map(|entry| {
            let mut doc = Map::new();
            let mut extra = Map::new();
            match &entry.workload {
                Some(workload) => insert(&mut doc, &mut extra, workload),
                None => {
                    let p = &entry.process;
                    doc.insert("process".into(), json!({ "pid": p.pid, "name": p.name }));
                }
            }
            doc.extend(extra);
            doc.insert("connected".into(), json!(entry.connected));
            Value::Object(doc)
        })
        .collect();
    Value::Array(entries)
}

pub(super) fn insert(
    doc: &mut Map<String, Value>,
    pinwatch: &mut Map<String, Value>,
    w: &Workload,
) {
    let mut container = Map::new();
    container.insert("id".into(), json!(w.container_id));
    if let Some(runtime) = w.runtime {
        container.insert("runtime".into(), json!(runtime.as_str()));
    }
    if let Some(name) = &w.name {
        container.insert("name".into(), json!(name));
    }
    doc.insert("container".into(), Value::Object(container));
    let Some(pod) = &w.pod else {
        return;
    };
    let mut resource = Map::new();
    resource.insert("type".into(), json!("pod"));
    if let Some(name) = &pod.name {
        resource.insert("name".into(), json!(name));
    }
    let mut orchestrator = Map::new();
    orchestrator.insert("type".into(), json!("kubernetes"));
    if let Some(namespace) = &pod.namespace {
        orchestrator.insert("namespace".into(), json!(namespace));
    }
    orchestrator.insert("resource".into(), Value::Object(resource));
    doc.insert("orchestrator".into(), Value::Object(orchestrator));
    if let Some(uid) = &pod.uid {
        pinwatch.insert("pod_uid".into(), json!(uid));
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::UNIX_EPOCH};

    use serde_json::Value;

    use crate::{
        alert::{AgentInfo, Alert, Rule, encode},
        event::Process,
        identity::{Pod, Runtime, Workload},
    };

    fn doc(workload: Option<Workload>) -> Value {
        let mut alert = Alert::new(UNIX_EPOCH, Rule::UnexpectedDbPeer, "x".into());
        alert.process = Some(Process::sample(7, 1));
        alert.workload = workload.map(Arc::new);
        let agent = AgentInfo {
            host_name: "h".into(),
            version: "0".into(),
        };
        serde_json::from_str(&encode(&alert, &agent, "id")).unwrap()
    }

    #[test]
    fn a_pod_container_gets_container_and_orchestrator_fields() {
        let doc = doc(Some(Workload {
            container_id: "ab".repeat(32),
            runtime: Some(Runtime::CriO),
            name: Some("api".into()),
            pod: Some(Pod {
                name: Some("api-0".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
            }),
        }));
        assert_eq!(doc["container"]["id"], "ab".repeat(32));
        assert_eq!(doc["container"]["runtime"], "cri-o");
        assert_eq!(doc["container"]["name"], "api");
        assert_eq!(doc["orchestrator"]["type"], "kubernetes");
        assert_eq!(doc["orchestrator"]["namespace"], "shop");
        assert_eq!(doc["orchestrator"]["resource"]["type"], "pod");
        assert_eq!(doc["orchestrator"]["resource"]["name"], "api-0");
        assert_eq!(doc["pinwatch"]["pod_uid"], "u-1");
    }

    #[test]
    fn unknown_parts_are_left_out_not_empty() {
        let plain = doc(Some(Workload {
            container_id: "cd".repeat(32),
            runtime: None,
            name: None,
            pod: None,
        }));
        assert_eq!(
            plain["container"],
            serde_json::json!({ "id": "cd".repeat(32) })
        );
        assert!(plain.get("orchestrator").is_none());
        let host = doc(None);
        assert!(host.get("container").is_none() && host.get("orchestrator").is_none());
        assert!(
            host.get("pinwatch")
                .is_none_or(|p| p.get("pod_uid").is_none())
        );
    }
}
