//! Container identity on alerts, with real containers: podman on runc, a
//! `FROM scratch` busybox image, joined to the lab's client namespace.
//!
//! Run as root, under the kernel lock, after building the daemon:
//!     cargo build -p pinwatch
//!     flock /tmp/pinwatch-kernel.lock cargo test -p pinwatch-integration-tests --test containers -- --test-threads=1
use std::net::IpAddr;

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, Container, ContainerSpec, DNS_V4, Database, DnsRecords, Fixture, Podman,
    assert_ecs_base, assert_ecs_fields, field, lines, poll, str_field,
};
use serde_json::Value;

const DB_HOST: &str = "db.lab.test";
const DB_PORT: u16 = 26257;
const FORGED: &str = "203.0.113.66";
const DNS_RULE: &str = "dns-answer-diverged";
const PEER_RULE: &str = "unexpected-db-peer";

fn forged() -> IpAddr {
    FORGED.parse().unwrap()
}

/// The lab, its resolver answering the database's name with an address
/// outside the pinned set, and the forged address reachable.
fn poisoned_lab() -> Fixture {
    let records = DnsRecords::new().host(DB_HOST, forged());
    let orders = Database::new("orders", &[DB_HOST], &[DB_PORT], &["192.0.2.0/24"]);
    let fx = Fixture::start(records, vec![orders]);
    fx.lab.add_peer_address(forged());
    fx
}

/// Inside `container`: resolves the database's name through the lab's
/// resolver, then connects to what it got.
fn resolve_and_connect(podman: &Podman, container: &Container) {
    let lookup = podman.exec(container, &["nslookup", DB_HOST, &DNS_V4.to_string()]);
    assert!(
        String::from_utf8_lossy(&lookup.stdout).contains(FORGED),
        "the container should get the forged answer"
    );
    // Refused (nobody listens): the connect is what pinwatch judges.
    podman.exec(container, &["nc", "-w", "2", FORGED, &DB_PORT.to_string()]);
}

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

fn container_id(alert: &Value) -> Option<&str> {
    field(alert, "container.id").and_then(Value::as_str)
}

/// Waits until both rules fired for `container`; returns its alerts.
fn alerts_of(fx: &Fixture, container: &Container) -> Vec<Value> {
    let log = fx.alerts();
    poll(ALERT_TIMEOUT, || {
        let mine: Vec<Value> = log
            .read()
            .into_iter()
            .filter(|a| container_id(a) == Some(container.id.as_str()))
            .collect();
        let rules: Vec<&str> = mine.iter().map(action).collect();
        (rules.contains(&DNS_RULE) && rules.contains(&PEER_RULE)).then_some(mine)
    })
    .unwrap_or_else(|| {
        panic!(
            "no {DNS_RULE} and {PEER_RULE} with container.id {} within {ALERT_TIMEOUT:?}; alerts:\n{}",
            container.id,
            lines(&log.read())
        )
    })
}

fn assert_ecs(alert: &Value) {
    assert_ecs_base(alert, action(alert));
    assert_ecs_fields(alert);
}

#[test]
fn each_container_behind_one_poisoned_resolver_is_named_on_its_own_alerts() {
    let fx = poisoned_lab();
    // Declared after the lab: containers go first, then the namespaces.
    let podman = Podman::new();
    let in_lab = ContainerSpec {
        netns: Some(&fx.lab.client),
        ..ContainerSpec::default()
    };
    let a = podman.run("pwt-a", &in_lab);
    let b = podman.run("pwt-b", &in_lab);
    resolve_and_connect(&podman, &a);
    resolve_and_connect(&podman, &b);
    for container in [&a, &b] {
        let alerts = alerts_of(&fx, container);
        for alert in &alerts {
            assert_ecs(alert);
            assert_eq!(str_field(alert, "container.runtime"), "podman", "{alert}");
            assert!(
                field(alert, "orchestrator").is_none(),
                "a plain container has no pod: {alert}"
            );
            if action(alert) == PEER_RULE {
                assert_eq!(str_field(alert, "destination.ip"), FORGED, "{alert}");
            }
        }
    }
    // The host process of the sentinel: no container fields at all.
    let all = fx.sentinel();
    let host_alerts: Vec<&Value> = all
        .iter()
        .filter(|a| field(a, "process.pid").is_some() && container_id(a).is_none())
        .collect();
    assert!(!host_alerts.is_empty(), "alerts:\n{}", lines(&all));
    for alert in host_alerts {
        assert_ecs(alert);
        for absent in ["container", "orchestrator", "pinwatch.pod_uid"] {
            assert!(
                field(alert, absent).is_none(),
                "{absent} on a host process: {alert}"
            );
        }
    }
}

#[test]
fn a_container_with_kubernetes_annotations_gets_orchestrator_fields() {
    let fx = poisoned_lab();
    let podman = Podman::new();
    let pod = podman.run(
        "pwt-pod",
        &ContainerSpec {
            netns: Some(&fx.lab.client),
            annotations: &[
                ("io.kubernetes.pod.name", "checkout-7d9f"),
                ("io.kubernetes.pod.namespace", "shop"),
            ],
            ..ContainerSpec::default()
        },
    );
    let plain = podman.run(
        "pwt-plain",
        &ContainerSpec {
            netns: Some(&fx.lab.client),
            ..ContainerSpec::default()
        },
    );
    resolve_and_connect(&podman, &pod);
    resolve_and_connect(&podman, &plain);
    for alert in alerts_of(&fx, &pod) {
        assert_ecs(&alert);
        for (path, want) in [
            ("orchestrator.type", "kubernetes"),
            ("orchestrator.namespace", "shop"),
            ("orchestrator.resource.type", "pod"),
            ("orchestrator.resource.name", "checkout-7d9f"),
        ] {
            assert_eq!(str_field(&alert, path), want, "{alert}");
        }
    }
    for alert in alerts_of(&fx, &plain) {
        assert_ecs(&alert);
        assert!(field(&alert, "orchestrator").is_none(), "{alert}");
        assert!(field(&alert, "pinwatch.pod_uid").is_none(), "{alert}");
    }
}
