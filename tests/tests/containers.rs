//! Container identity on alerts, with real containers: podman on runc, a
//! `FROM scratch` busybox image, joined to the lab's client namespace.
//!
//! Run as root, under the kernel lock, after building the daemon:
//!     cargo build -p pinwatch
//!     flock /tmp/pinwatch-kernel.lock cargo test -p pinwatch-integration-tests --test containers -- --test-threads=1
use std::net::IpAddr;

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, Container, ContainerSpec, DNS_V4, Database, DnsRecords, Fixture, PG_BIN, Podman,
    ResolvConf, SENTINEL_HOST, StatusUser, Stub, assert_ecs_base, assert_ecs_fields, field, lines,
    poll, str_field,
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
    let podman = Podman::with_busybox();
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
    let podman = Podman::with_busybox();
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
    // Status: the recent unexpected-db-peer line names the pod.
    let status = fx.daemon.status_json();
    let named = status["recent_alerts"].as_array().is_some_and(|recent| {
        recent.iter().any(|a| {
            a["rule"] == PEER_RULE
                && a["message"].as_str().is_some_and(|m| {
                    m.ends_with(&format!(
                        "[pod shop/checkout-7d9f (container {})]",
                        &pod.id[..12]
                    ))
                })
        })
    });
    assert!(named, "{status}");
}

/// Whether `entry` of `pinwatch.affected` (or of status) is the container.
fn is_container(entry: &Value, container: &Container) -> bool {
    [entry.pointer("/container/id"), entry.get("container_id")]
        .into_iter()
        .flatten()
        .any(|id| id.as_str() == Some(container.id.as_str()))
}

#[test]
fn one_poisoned_stub_cache_names_every_workload_it_fed_and_status_says_who_connected() {
    let fx = poisoned_lab();
    // The shared cache: a stub on the client side forwarding to the
    // poisoned resolver; the containers share the namespace's loopback.
    let _stub = Stub::start(&fx.lab.client, DNS_V4.into(), SENTINEL_HOST);
    let podman = Podman::with_busybox();
    let in_lab = ContainerSpec {
        netns: Some(&fx.lab.client),
        ..ContainerSpec::default()
    };
    let a = podman.run("pwt-connects", &in_lab);
    let b = podman.run("pwt-only-asks", &in_lab);
    let lookup = |c: &Container| podman.exec(c, &["nslookup", DB_HOST, "127.0.0.1"]);
    lookup(&a);
    lookup(&b);
    // The host process asks last, so its alert names all three: a database
    // client that resolves through the C library (its resolv.conf names the
    // stub) and connects, in one process, as an application does.
    let _resolv = ResolvConf::set(&fx.lab.client, std::net::Ipv4Addr::LOCALHOST);
    let conninfo =
        format!("host={DB_HOST} port={DB_PORT} connect_timeout=2 user=app dbname=orders");
    let host_client = fx
        .lab
        .client
        .command(&format!("{PG_BIN}/psql"))
        .args(["-w", "-c", "select 1", &conninfo])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql on the host");
    let host_pid = host_client.id();
    let _ = host_client.wait_with_output();
    podman.exec(&a, &["nc", "-w", "2", FORGED, &DB_PORT.to_string()]);

    let log = fx.alerts();
    let names_all = |alert: &Value| {
        let affected = field(alert, "pinwatch.affected")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let host = affected.iter().any(|e| {
            e.pointer("/process/pid").and_then(Value::as_u64) == Some(u64::from(host_pid))
        });
        action(alert) == DNS_RULE
            && host
            && affected.iter().any(|e| is_container(e, &a))
            && affected.iter().any(|e| is_container(e, &b))
    };
    let all = log.wait_for(ALERT_TIMEOUT, names_all);
    let alert = all.iter().find(|a| names_all(a)).expect("found above");
    assert_ecs(alert);
    eprintln!("the alert naming the blast radius: {alert}");

    // Status: under the last answer, who received it and who connected.
    let connected_of = |status: &Value, who: &dyn Fn(&Value) -> bool| {
        status
            .pointer("/databases/0/last_answers/db.lab.test/affected")
            .and_then(Value::as_array)
            .and_then(|list| list.iter().find(|e| who(e)).cloned())
            .and_then(|e| e.get("connected").and_then(Value::as_bool))
    };
    let host_process = format!("process psql (pid {host_pid})");
    let host_entry = |e: &Value| e.get("workload").and_then(Value::as_str) == Some(&host_process);
    let status = poll(ALERT_TIMEOUT, || {
        let status = fx.daemon.status_json();
        let host_connected = connected_of(&status, &host_entry) == Some(true);
        let a_connected = connected_of(&status, &|e| is_container(e, &a)) == Some(true);
        (host_connected && a_connected).then_some(status)
    })
    .unwrap_or_else(|| {
        panic!(
            "status never showed {host_process} and container {} as connected:\n{}",
            a.id,
            fx.daemon.status_json()
        )
    });
    assert_eq!(
        connected_of(&status, &|e| is_container(e, &b)),
        Some(false),
        "the container that only asked did not connect: {status}"
    );
    let text =
        pinwatch_integration_tests::status(fx.daemon.socket_path(), false, StatusUser::Root).stdout;
    assert!(text.contains("received by podman container"), "{text}");
    assert!(text.contains("CONNECTED to a forged address"), "{text}");
}
