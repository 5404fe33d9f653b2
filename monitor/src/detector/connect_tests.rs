//! `db-connect-blocked`: a connect the kernel refused.
use std::net::{IpAddr, Ipv4Addr};

use crate::{
    alert::Rule,
    detector::Detector,
    event::{ConnectAction, Direction, Event},
    fixtures::{a_response, at, config, connect_event, dns_event},
};

const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["cockroach.prod.internal"]
ports = [26257]
pinned = ["192.0.2.0/24"]
mode = "block"

[[database]]
name = "billing"
hostnames = ["billing.prod.internal"]
ports = [26257, 5432]
pinned = ["198.51.100.20"]
"#;

fn connect(destination: &str, action: ConnectAction, secs: u64) -> Event {
    connect_event(destination, action, at(secs))
}

fn forged_answer(name: &str, ip: Ipv4Addr) -> Event {
    let message = a_response(name, 1, &[&ip.to_string()], 30);
    Event::Dns(dns_event(
        message,
        Direction::Ingress,
        "198.51.100.53:53",
        "198.51.100.10:40000",
        at(0),
    ))
}

#[test]
fn a_blocked_connect_raises_db_connect_blocked_instead_of_unexpected_db_peer() {
    let mut detector = Detector::new(&config(CONFIG));
    let forged = Ipv4Addr::new(203, 0, 113, 66);
    detector.observe(&forged_answer("cockroach.prod.internal.", forged));
    let alerts = detector.observe(&connect("203.0.113.66:26257", ConnectAction::Blocked, 5));
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert.rule, Rule::DbConnectBlocked);
    assert_eq!(alert.rule.id(), "db-connect-blocked");
    assert_eq!(alert.database.as_deref(), Some("orders"));
    assert_eq!(
        alert.destination,
        Some("203.0.113.66:26257".parse().unwrap())
    );
    assert_eq!(
        alert.destination_domain.as_deref(),
        Some("cockroach.prod.internal")
    );
    assert_eq!(alert.unexpected_ips, [IpAddr::V4(forged)]);
    // Both databases on 26257: either's pinned set would have allowed it.
    assert_eq!(alert.pinned.len(), 2);
    let process = alert.process.as_ref().unwrap();
    assert_eq!((process.pid, process.name.as_str()), (4321, "python3"));
    for part in ["refused", "python3", "4321", "203.0.113.66:26257", "orders"] {
        assert!(alert.message.contains(part), "{}", alert.message);
    }
    let counters = detector.counters();
    assert_eq!(counters.connects, 1);
    assert_eq!(counters.alerts.get(&Rule::DbConnectBlocked), Some(&1));
    assert_eq!(counters.alerts.get(&Rule::UnexpectedDbPeer), None);
}

#[test]
fn a_blocked_connect_is_reported_even_after_a_reload_unwatched_its_port() {
    // The kernel refused it under the configuration then in force; a fact,
    // whatever the configuration says by the time the event is judged.
    let mut detector = Detector::new(&config(CONFIG));
    detector.reconfigure(&config(
        "[[database]]\nname = \"other\"\nhostnames = [\"other.lab.test\"]\nports = [6432]\npinned = [\"192.0.2.0/24\"]\n",
    ));
    let alerts = detector.observe(&connect("203.0.113.66:26257", ConnectAction::Blocked, 0));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule, Rule::DbConnectBlocked);
    assert_eq!(alerts[0].database, None);
    assert!(alerts[0].pinned.is_empty());
}

#[test]
fn allowed_connects_keep_the_monitor_rules() {
    let mut detector = Detector::new(&config(CONFIG));
    let unexpected = detector.observe(&connect("203.0.113.66:26257", ConnectAction::Allowed, 0));
    assert_eq!(unexpected.len(), 1);
    assert_eq!(unexpected[0].rule, Rule::UnexpectedDbPeer);
    for pinned in [
        "192.0.2.9:26257",
        "198.51.100.20:26257",
        "[::ffff:192.0.2.9]:26257",
    ] {
        let alerts = detector.observe(&connect(pinned, ConnectAction::Allowed, 0));
        assert!(alerts.is_empty(), "{pinned}: {alerts:?}");
    }
}

#[test]
fn severity_sits_below_a_connect_that_went_through() {
    assert_eq!(Rule::DbConnectBlocked.severity(), 3);
    assert!(Rule::DbConnectBlocked.severity() < Rule::UnexpectedDbPeer.severity());
    assert!(Rule::ALL.contains(&Rule::DbConnectBlocked));
}

#[test]
fn the_ecs_line_says_denied_and_names_the_process() {
    let mut detector = Detector::new(&config(CONFIG));
    let forged = Ipv4Addr::new(203, 0, 113, 66);
    detector.observe(&forged_answer("cockroach.prod.internal.", forged));
    let alerts = detector.observe(&connect("203.0.113.66:26257", ConnectAction::Blocked, 1));
    let agent = crate::alert::AgentInfo {
        host_name: "app-1".into(),
        version: "0.1.0".into(),
    };
    let line = crate::alert::encode(&alerts[0], &agent, "id-1");
    let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(doc["event"]["action"], "db-connect-blocked");
    assert_eq!(doc["event"]["severity"], 3);
    assert_eq!(doc["event"]["type"], serde_json::json!(["denied"]));
    assert_eq!(doc["process"]["pid"], 4321);
    assert_eq!(doc["destination"]["ip"], "203.0.113.66");
    assert_eq!(doc["destination"]["port"], 26257);
    assert_eq!(doc["destination"]["domain"], "cockroach.prod.internal");
    assert_eq!(doc["pinwatch"]["database"], "orders");
}
