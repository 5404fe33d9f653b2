use std::time::{Duration, UNIX_EPOCH};

use crate::{
    alert::Rule,
    config::{Config, HostDefaults},
    detector::Detector,
    event::{ConnectAction, ConnectEvent, DbSegmentEvent, Direction, Event, Process},
};

const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["cockroach.prod.internal"]
ports = [26257]
pinned = ["192.0.2.0/24"]
"#;

fn detector() -> Detector {
    let config = Config::from_toml(CONFIG, None, &HostDefaults::default()).unwrap();
    Detector::new(&config)
}

fn connect(cookie: u64) -> Event {
    Event::Connect(ConnectEvent {
        timestamp: UNIX_EPOCH,
        process: Process {
            pid: 4321,
            tid: 4321,
            uid: 33,
            gid: 33,
            name: "flask".into(),
            cgroup_id: 9,
        },
        destination: "192.0.2.10:26257".parse().unwrap(),
        action: ConnectAction::Allowed,
        socket_cookie: cookie,
    })
}

fn segment(cookie: u64, direction: Direction, payload: &[u8]) -> Event {
    Event::DbSegment(DbSegmentEvent {
        timestamp: UNIX_EPOCH + Duration::from_secs(1),
        direction,
        client: "198.51.100.10:40000".parse().unwrap(),
        server: "192.0.2.10:26257".parse().unwrap(),
        socket_cookie: cookie,
        payload: payload.to_vec(),
        cut_short: false,
    })
}

fn startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&(3u32 << 16).to_be_bytes());
    message.extend_from_slice(&body);
    message
}

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

#[test]
fn startup_first_raises_plaintext_with_process_user_and_database() {
    let mut detector = detector();
    detector.observe(&connect(7));
    let alerts = detector.observe(&segment(
        7,
        Direction::Egress,
        &startup("orders_app", "orders"),
    ));
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.rule, Rule::PlaintextDbConnection);
    assert_eq!(alert.process.as_ref().map(|p| p.pid), Some(4321));
    assert_eq!(alert.database.as_deref(), Some("orders"));
    assert_eq!(alert.destination, Some("192.0.2.10:26257".parse().unwrap()));
    let session = alert.db_session.as_ref().unwrap();
    assert_eq!(session.user.as_deref(), Some("orders_app"));
    assert_eq!(session.database.as_deref(), Some("orders"));
    assert!(!session.tls_refused_by_server);
    assert!(alert.message.contains("orders_app"), "{}", alert.message);
    // A retransmission of the same segment does not alert twice.
    assert!(
        detector
            .observe(&segment(
                7,
                Direction::Egress,
                &startup("orders_app", "orders")
            ))
            .is_empty()
    );
}

#[test]
fn tls_requested_and_accepted_raises_nothing() {
    let mut detector = detector();
    assert!(
        detector
            .observe(&segment(8, Direction::Egress, &SSL_REQUEST))
            .is_empty()
    );
    assert!(
        detector
            .observe(&segment(8, Direction::Ingress, b"S"))
            .is_empty()
    );
    // The TLS ClientHello that follows is not a StartupMessage.
    assert!(
        detector
            .observe(&segment(
                8,
                Direction::Egress,
                &[0x16, 3, 1, 0, 0xc8, 1, 0, 0, 0xc4]
            ))
            .is_empty()
    );
}

#[test]
fn tls_refused_then_startup_in_the_clear_raises_plaintext() {
    let mut detector = detector();
    detector.observe(&connect(9));
    assert!(
        detector
            .observe(&segment(9, Direction::Egress, &SSL_REQUEST))
            .is_empty()
    );
    assert!(
        detector
            .observe(&segment(9, Direction::Ingress, b"N"))
            .is_empty()
    );
    let alerts = detector.observe(&segment(9, Direction::Egress, &startup("app", "orders")));
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].db_session.as_ref().unwrap().tls_refused_by_server);
    assert!(
        alerts[0].message.contains("refused"),
        "{}",
        alerts[0].message
    );
}

#[test]
fn unknown_process_garbage_and_server_first_are_handled() {
    let mut detector = detector();
    // No connect seen for this cookie: the alert names the client address.
    let alerts = detector.observe(&segment(10, Direction::Egress, &startup("u", "d")));
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].process.is_none());
    assert!(alerts[0].message.contains("198.51.100.10:40000"));
    // Not PostgreSQL wire: nothing, then nothing more on that connection.
    assert!(
        detector
            .observe(&segment(11, Direction::Egress, b"GET / HTTP/1.1\r\n\r\n"))
            .is_empty()
    );
    assert!(
        detector
            .observe(&segment(11, Direction::Egress, &startup("u", "d")))
            .is_empty()
    );
    // A server segment on a connection whose opening was not seen.
    assert!(
        detector
            .observe(&segment(12, Direction::Ingress, b"N"))
            .is_empty()
    );
    // A short first read says nothing.
    assert!(
        detector
            .observe(&segment(13, Direction::Egress, &[0, 0, 0]))
            .is_empty()
    );
    assert_eq!(detector.counters().alerts[&Rule::PlaintextDbConnection], 1);
}
