//! Kernel integration test of socket-owner attribution: a busy, long-lived
//! DNS socket keeps its process on every alert, even after more sockets than
//! the daemon's copy of the owners holds have come and gone.
//!
//! Run serially, as root, after building the daemon:
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test attribution -- --test-threads=1
use std::{
    net::UdpSocket,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, Daemon, DaemonConfig, Database, field, require_root, str_field,
};
use serde_json::Value;

const HOST: &str = "attribution-db.lab.test";
/// A loopback resolver of the test's own, answering every question with
/// 203.0.113.<query id>.
const RESOLVER: &str = "127.83.0.1:53";
/// Nobody listens here: the churn sockets' queries only need to be sent.
const NOWHERE: &str = "127.83.0.2:53";
/// More sockets than the daemon's and the kernel's owner tables hold.
const CHURN_SOCKETS: u32 = 20_000;

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn answer(query: &[u8]) -> Vec<u8> {
    let mut a = query.to_vec();
    a[2] = 0x81;
    a[3] = 0x80;
    a[7] = 1;
    // The name by pointer to the question, A, IN, TTL 60, 4 bytes.
    a.extend_from_slice(&[
        0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, query[1],
    ]);
    a
}

/// Answers on [`RESOLVER`] until dropped.
struct Resolver {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Resolver {
    fn start() -> Resolver {
        let socket = UdpSocket::bind(RESOLVER).expect("bind the test resolver on loopback");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stopping.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&answer(&buf[..n]), from);
                }
            }
        });
        Resolver {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn ask(client: &UdpSocket, id: u16, name: &str) {
    client.send_to(&query(id, name), RESOLVER).unwrap();
    let mut buf = [0u8; 512];
    client
        .recv_from(&mut buf)
        .expect("the test resolver answers");
}

fn diverged_to(alerts: &[Value], last_octet: u8) -> Option<Value> {
    let forged = format!("203.0.113.{last_octet}");
    alerts
        .iter()
        .find(|a| a["event"]["action"] == "dns-answer-diverged" && a.to_string().contains(&forged))
        .cloned()
}

#[test]
fn a_long_lived_socket_keeps_its_process_after_the_owner_tables_turned_over() {
    require_root();
    let _resolver = Resolver::start();
    let daemon = Daemon::start(&DaemonConfig {
        databases: vec![Database::new(
            "attribution",
            &[HOST],
            &[26314],
            &["192.0.2.0/24"],
        )],
        trusted_resolvers: vec!["127.83.0.1".parse().unwrap()],
    });
    let pid = std::process::id();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    ask(&client, 77, HOST);
    let alerts = daemon.alerts();
    let first = alerts.wait_for(ALERT_TIMEOUT, |a| {
        diverged_to(std::slice::from_ref(a), 77).is_some()
    });
    let first = diverged_to(&first, 77).unwrap();
    assert_eq!(
        field(&first, "process.pid").and_then(Value::as_u64),
        Some(u64::from(pid)),
        "{first}"
    );

    // Many short-lived DNS sockets, each reported once; the long-lived one
    // keeps asking (unrelated names) throughout, as a busy client would.
    for i in 0..CHURN_SOCKETS {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .send_to(&query(i as u16, "churn.attribution.test"), NOWHERE)
            .unwrap();
        if i % 20 == 0 {
            ask(&client, 1, "keepalive.attribution.test");
        }
        // Paced so the ring buffer never fills: every owner record must
        // reach the daemon for its table to turn over.
        if i % 200 == 0 {
            thread::sleep(Duration::from_millis(10));
        }
    }

    ask(&client, 78, HOST);
    let last = alerts.wait_for(ALERT_TIMEOUT * 3, |a| {
        diverged_to(std::slice::from_ref(a), 78).is_some()
    });
    let last = diverged_to(&last, 78).unwrap();
    assert_eq!(
        field(&last, "process.pid").and_then(Value::as_u64),
        Some(u64::from(pid)),
        "the long-lived socket's alert names its process: {last}"
    );
    assert!(!str_field(&last, "process.name").is_empty(), "{last}");
    let status = daemon.status_json();
    assert_eq!(status["counters"]["alerts_without_process"], 0, "{status}");
    assert_eq!(
        status["counters"]["events_lost"], 0,
        "the churn reached the daemon: {status}"
    );
}
