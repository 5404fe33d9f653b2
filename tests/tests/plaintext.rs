//! Kernel integration tests of `plaintext-db-connection`: the kernel copies
//! the opening segments of connections to a watched port, and the daemon
//! tells a client that started in the clear (or fell back to it after the
//! server refused TLS) from one that asked for TLS and got it.
//!
//! Run serially, as root, after building the daemon:
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test plaintext -- --test-threads=1
use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr},
    process::{Child, Command, Stdio},
};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, Database, DnsRecords, Fixture, NetNs, assert_ecs_base, field, ip_field, python3,
    require_root, str_field, without_sentinel,
};
use serde_json::Value;

const RULE: &str = "plaintext-db-connection";
const DB_PORT: u16 = 26257;
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// A PostgreSQL-wire server that answers an SSLRequest with the byte it is
/// given ('S' or 'N') and reads one more message.
const SERVER_PY: &str = r#"
import socket, sys
ip, port, reply = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port)); s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    first = c.recv(4096)
    if first[:8] == b"\x00\x00\x00\x08\x04\xd2\x16\x2f":
        c.sendall(reply)
        c.recv(4096)
    c.close()
"#;

/// A client that opens the conversation as told and prints its pid first.
const CLIENT_PY: &str = r#"
import os, socket, struct, sys
ip, port, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(os.getpid(), flush=True)
def startup(user, db):
    body = b"user\0" + user + b"\0database\0" + db + b"\0application_name\0flask\0\0"
    return struct.pack("!II", len(body) + 8, 196608) + body
s = socket.create_connection((ip, port), timeout=5)
if how == "plain":
    s.sendall(startup(b"orders_app", b"orders"))
else:
    s.sendall(struct.pack("!II", 8, 80877103))
    answer = s.recv(1)
    if answer == b"N":
        s.sendall(startup(b"fallback_app", b"orders"))
    else:
        s.sendall(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03")  # a ClientHello's start
s.close()
print(answer.decode() if how != "plain" else "sent", flush=True)
"#;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python(ns: &NetNs) -> Command {
    ns.command(python3())
}

fn start_server(fx: &Fixture, reply: char) -> Server {
    fx.lab.add_peer_address(IpAddr::V4(SERVER));
    let mut child = python(&fx.lab.dns)
        .args([
            "-c",
            SERVER_PY,
            &SERVER.to_string(),
            &DB_PORT.to_string(),
            &reply.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the database stand-in");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "listening");
    Server(child)
}

/// Runs the client in the client namespace; returns its pid and last line.
fn run_client(fx: &Fixture, how: &str) -> (u64, String) {
    let output = python(&fx.lab.client)
        .args([
            "-c",
            CLIENT_PY,
            &SERVER.to_string(),
            &DB_PORT.to_string(),
            how,
        ])
        .output()
        .expect("run the client");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "client failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    let pid = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("the client prints its pid");
    (pid, lines.last().unwrap_or_default().to_owned())
}

fn lab(reply: char) -> (Fixture, Server) {
    require_root();
    let fx = Fixture::start(
        DnsRecords::new().host("db.lab.test", IpAddr::V4(SERVER)),
        vec![Database::new(
            "orders",
            &["db.lab.test"],
            &[DB_PORT],
            &["192.0.2.0/24"],
        )],
    );
    let server = start_server(&fx, reply);
    (fx, server)
}

fn plaintext_alert_of(fx: &Fixture, pid: u64) -> Value {
    let alerts = fx.alerts().wait_for(ALERT_TIMEOUT, |a| {
        str_field(a, "event.action") == RULE
            && field(a, "process.pid").and_then(Value::as_u64) == Some(pid)
    });
    alerts
        .into_iter()
        .find(|a| {
            str_field(a, "event.action") == RULE
                && field(a, "process.pid").and_then(Value::as_u64) == Some(pid)
        })
        .expect("wait_for found it")
}

#[test]
fn startup_message_first_raises_plaintext_naming_process_user_and_database() {
    let (fx, _server) = lab('S');
    let (pid, _) = run_client(&fx, "plain");
    let alert = plaintext_alert_of(&fx, pid);
    assert_ecs_base(&alert, RULE);
    assert_eq!(str_field(&alert, "process.name"), "python3");
    assert_eq!(ip_field(&alert, "destination.ip"), IpAddr::V4(SERVER));
    assert_eq!(
        field(&alert, "destination.port").and_then(Value::as_u64),
        Some(u64::from(DB_PORT))
    );
    assert_eq!(str_field(&alert, "pinwatch.db.user"), "orders_app");
    assert_eq!(str_field(&alert, "pinwatch.db.name"), "orders");
    assert_eq!(str_field(&alert, "pinwatch.db.application"), "flask");
    assert_eq!(
        field(&alert, "pinwatch.db.tls_refused_by_server"),
        Some(&Value::Bool(false))
    );
    assert_eq!(str_field(&alert, "pinwatch.database"), "orders");
    assert!(
        !alert.to_string().to_lowercase().contains("password\":"),
        "no password field: {alert}"
    );
}

#[test]
fn tls_requested_and_accepted_raises_nothing() {
    let (fx, _server) = lab('S');
    let (_, answer) = run_client(&fx, "tls");
    assert_eq!(answer, "S");
    let alerts = without_sentinel(&fx.sentinel());
    assert!(alerts.is_empty(), "a TLS connection raised: {alerts:?}");
}

#[test]
fn tls_refused_then_startup_in_the_clear_raises_plaintext() {
    let (fx, _server) = lab('N');
    let (pid, answer) = run_client(&fx, "tls");
    assert_eq!(answer, "N");
    let alert = plaintext_alert_of(&fx, pid);
    assert_eq!(str_field(&alert, "pinwatch.db.user"), "fallback_app");
    assert_eq!(
        field(&alert, "pinwatch.db.tls_refused_by_server"),
        Some(&Value::Bool(true))
    );
    assert!(str_field(&alert, "message").contains("refused"));
}
