//! Kernel integration tests of enforcement (`mode = "block"`): the connect
//! hooks refuse (EPERM) connects on a blocked database's port to addresses
//! outside the pinned sets, raise `db-connect-blocked` naming the process,
//! let pinned addresses and unwatched ports through, follow reloads, and
//! stop refusing once the daemon is gone: at once after a clean stop, within
//! the heartbeat's grace (5 s) after a crash (fail-open, the default).
//!
//! Run serially, as root, after building the daemon:
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test enforce -- --test-threads=1
use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::{Child, Stdio},
    time::Duration,
};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, Connect, DNS_V4, Database, DnsRecords, Fixture, NetNs, assert_ecs_base, connect,
    dig, field, ip_field, lines, loaded_pinwatch_programs, poll, python3, require_root, str_field,
    without_sentinel,
};
use serde_json::Value;

const ORDERS: &str = "orders";
const DB_HOST: &str = "db.lab.test";
const DB_PORT: u16 = 26257;
/// A port no database watches.
const OTHER_PORT: u16 = 8080;
const PINNED_NET_V4: &str = "192.0.2.0/24";
const PINNED_NET_V6: &str = "2001:db8:7::/64";
const PINNED_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const PINNED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 7, 0, 0, 0, 0, 0x10);
/// What the lab's resolver answers for `DB_HOST`: outside the pinned set.
const FORGED_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);
const FORGED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x66, 0, 0, 0, 0, 0x66);
const BLOCKED_RULE: &str = "db-connect-blocked";
const PEER_RULE: &str = "unexpected-db-peer";
/// What the harness's python client reports for connect() failing EPERM.
const EPERM: &str = "PermissionError/1";
const CONNECTED: &str = "connected";
/// The connect hooks' grace after the last heartbeat (5 s), and a margin.
const FAIL_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP server in a namespace that accepts and closes every connection,
/// so a connect that is not refused reports `connected`. Killed on drop.
struct Listener(Child);

const LISTENER: &str = r#"
import socket, sys
ip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port))
s.listen(64)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"#;

impl Listener {
    fn start(ns: &NetNs, ip: IpAddr, port: u16) -> Listener {
        let mut child = ns
            .command(python3())
            .args(["-c", LISTENER, &ip.to_string(), &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a listener on {ip}:{port}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read the listener's stdout");
        assert_eq!(line.trim(), "listening", "listener on {ip}:{port} failed");
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lab: `db.lab.test` answered with the forged address; pinned and
/// forged addresses, both families, reachable from the client with a server
/// on the database port (and the forged IPv4 one on `OTHER_PORT`); the
/// daemon pins `orders` in `mode`.
struct EnforceLab {
    fx: Fixture,
    _listeners: Vec<Listener>,
}

fn orders(mode: &str) -> Database {
    Database::new(
        ORDERS,
        &[DB_HOST],
        &[DB_PORT],
        &[PINNED_NET_V4, PINNED_NET_V6],
    )
    .with_mode(mode)
}

fn enforce_lab(mode: &str) -> EnforceLab {
    require_root();
    let records = DnsRecords::new()
        .host(DB_HOST, FORGED_V4)
        .host(DB_HOST, FORGED_V6);
    let fx = Fixture::start(records, vec![orders(mode)]);
    let mut listeners = Vec::new();
    for ip in [
        IpAddr::V4(PINNED_V4),
        IpAddr::V6(PINNED_V6),
        IpAddr::V4(FORGED_V4),
        IpAddr::V6(FORGED_V6),
    ] {
        fx.lab.add_peer_address(ip);
        listeners.push(Listener::start(&fx.lab.dns, ip, DB_PORT));
    }
    listeners.push(Listener::start(
        &fx.lab.dns,
        IpAddr::V4(FORGED_V4),
        OTHER_PORT,
    ));
    EnforceLab {
        fx,
        _listeners: listeners,
    }
}

impl EnforceLab {
    fn connect(&self, ip: impl Into<IpAddr>, port: u16) -> Connect {
        connect(&self.fx.lab.client, ip, port)
    }

    /// The `db-connect-blocked` alert for `client`'s connect.
    fn blocked_alert(&self, client: &Connect) -> Value {
        let pid = u64::from(client.pid);
        let alerts = self.fx.alerts().wait_for(ALERT_TIMEOUT, |a| {
            action(a) == BLOCKED_RULE
                && field(a, "process.pid").and_then(Value::as_u64) == Some(pid)
        });
        alerts
            .into_iter()
            .find(|a| {
                action(a) == BLOCKED_RULE
                    && field(a, "process.pid").and_then(Value::as_u64) == Some(pid)
            })
            .expect("wait_for found it")
    }

    /// Every alert once the sentinel's are in: what the test's own actions
    /// raised is in the file too.
    fn all_alerts(&self) -> Vec<Value> {
        self.fx.sentinel()
    }
}

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

fn from_pid(alerts: &[Value], pid: u32) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| field(a, "process.pid").and_then(Value::as_u64) == Some(u64::from(pid)))
        .collect()
}

#[test]
fn block_refuses_unpinned_connects_with_eperm_and_raises_db_connect_blocked() {
    let lab = enforce_lab("block");
    let answer = dig(&lab.fx.lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(
        answer.addresses(),
        [IpAddr::V4(FORGED_V4)],
        "{}",
        answer.raw
    );

    let refused = lab.connect(FORGED_V4, DB_PORT);
    assert_eq!(refused.result, EPERM, "connect to the forged address");
    let pinned = lab.connect(PINNED_V4, DB_PORT);
    assert_eq!(pinned.result, CONNECTED, "connect to a pinned address");
    let unwatched = lab.connect(FORGED_V4, OTHER_PORT);
    assert_eq!(unwatched.result, CONNECTED, "connect to an unwatched port");

    let alert = lab.blocked_alert(&refused);
    assert_ecs_base(&alert, BLOCKED_RULE);
    assert_eq!(field(&alert, "event.severity"), Some(&Value::from(3)));
    assert_eq!(str_field(&alert, "process.name"), "python3", "{alert}");
    assert_eq!(ip_field(&alert, "destination.ip"), IpAddr::V4(FORGED_V4));
    assert_eq!(
        field(&alert, "destination.port").and_then(Value::as_u64),
        Some(u64::from(DB_PORT))
    );
    assert_eq!(str_field(&alert, "destination.domain"), DB_HOST, "{alert}");
    assert_eq!(str_field(&alert, "pinwatch.database"), ORDERS, "{alert}");
    assert_eq!(
        field(&alert, "pinwatch.pinned"),
        Some(&serde_json::json!([PINNED_NET_V4, PINNED_NET_V6])),
        "{alert}"
    );
    let message = str_field(&alert, "message");
    assert!(
        message.contains(&refused.pid.to_string()) && message.contains("refused"),
        "{alert}"
    );

    // One alert per refused connect, and none for what went through.
    let all = lab.all_alerts();
    let context = format!("alerts:\n{}", lines(&all));
    let about_refused = from_pid(&all, refused.pid);
    assert_eq!(about_refused.len(), 1, "{context}");
    assert!(from_pid(&all, pinned.pid).is_empty(), "{context}");
    assert!(from_pid(&all, unwatched.pid).is_empty(), "{context}");
    assert!(
        without_sentinel(&all)
            .iter()
            .all(|a| action(a) != PEER_RULE),
        "a refused connect raises db-connect-blocked instead of unexpected-db-peer; {context}"
    );
}

#[test]
fn block_covers_ipv6_and_ipv4_mapped_destinations() {
    let lab = enforce_lab("block");
    let mapped_forged = FORGED_V4.to_ipv6_mapped();
    let mapped_pinned = PINNED_V4.to_ipv6_mapped();

    let v6_refused = lab.connect(FORGED_V6, DB_PORT);
    assert_eq!(v6_refused.result, EPERM, "connect to {FORGED_V6}");
    let mapped_refused = lab.connect(mapped_forged, DB_PORT);
    assert_eq!(mapped_refused.result, EPERM, "connect to {mapped_forged}");
    let v6_pinned = lab.connect(PINNED_V6, DB_PORT);
    assert_eq!(v6_pinned.result, CONNECTED, "connect to {PINNED_V6}");
    let mapped_pinned_client = lab.connect(mapped_pinned, DB_PORT);
    assert_eq!(
        mapped_pinned_client.result, CONNECTED,
        "connect to {mapped_pinned}"
    );
    let v6_unwatched = lab.connect(mapped_forged, OTHER_PORT);
    assert_eq!(
        v6_unwatched.result, CONNECTED,
        "connect to an unwatched port"
    );

    let alert = lab.blocked_alert(&v6_refused);
    assert_eq!(ip_field(&alert, "destination.ip"), IpAddr::V6(FORGED_V6));
    assert_eq!(str_field(&alert, "network.type"), "ipv6", "{alert}");
    // The mapped address is reported as the IPv4 address it stands for.
    let alert = lab.blocked_alert(&mapped_refused);
    assert_eq!(ip_field(&alert, "destination.ip"), IpAddr::V4(FORGED_V4));

    let all = lab.all_alerts();
    let context = format!("alerts:\n{}", lines(&all));
    for client in [&v6_pinned, &mapped_pinned_client, &v6_unwatched] {
        assert!(from_pid(&all, client.pid).is_empty(), "{context}");
    }
}

#[test]
fn sighup_switches_block_to_monitor_and_back_without_a_restart() {
    let mut lab = enforce_lab("block");
    let pid = lab.fx.daemon.pid();
    assert_eq!(lab.connect(FORGED_V4, DB_PORT).result, EPERM);

    let reloaded = lab.fx.reload_with(vec![orders("monitor")]);
    assert!(reloaded.is_ok(), "the reload was refused: {reloaded:?}");
    let monitored = lab.connect(FORGED_V4, DB_PORT);
    assert_eq!(
        monitored.result, CONNECTED,
        "monitor lets the connect through"
    );
    let pinned = lab.connect(PINNED_V4, DB_PORT);
    assert_eq!(pinned.result, CONNECTED);

    let reloaded = lab.fx.reload_with(vec![orders("block")]);
    assert!(reloaded.is_ok(), "the reload was refused: {reloaded:?}");
    let blocked_again = lab.connect(FORGED_V4, DB_PORT);
    assert_eq!(blocked_again.result, EPERM, "block refuses it again");
    assert_eq!(lab.connect(PINNED_V4, DB_PORT).result, CONNECTED);
    assert_eq!(lab.fx.daemon.pid(), pid, "no restart");

    let all = lab.all_alerts();
    let context = format!("alerts:\n{}", lines(&all));
    let rules = |client: &Connect| -> Vec<String> {
        from_pid(&all, client.pid)
            .iter()
            .map(|a| action(a).to_owned())
            .collect()
    };
    assert_eq!(rules(&monitored), [PEER_RULE], "{context}");
    assert_eq!(rules(&blocked_again), [BLOCKED_RULE], "{context}");
}

#[test]
fn a_clean_stop_ends_enforcement_and_says_so() {
    let mut lab = enforce_lab("block");
    assert_eq!(lab.connect(FORGED_V4, DB_PORT).result, EPERM);

    let status = lab.fx.daemon.stop().expect("the daemon was running");
    assert_eq!(status.code(), Some(0), "{}", lab.fx.daemon.dump());
    let stderr = lab.fx.daemon.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("enforcement stopped") && l.contains(&DB_PORT.to_string())),
        "the log should say enforcement stopped on port {DB_PORT}:\n{stderr}"
    );
    assert_eq!(
        lab.connect(FORGED_V4, DB_PORT).result,
        CONNECTED,
        "nothing refuses connects once pinwatch has stopped"
    );
}

#[test]
fn sigkill_fails_open_the_kernel_stops_refusing() {
    let mut lab = enforce_lab("block");
    assert_eq!(lab.connect(FORGED_V4, DB_PORT).result, EPERM);
    assert_eq!(lab.connect(FORGED_V6, DB_PORT).result, EPERM);

    let status = lab.fx.daemon.kill().expect("the daemon was running");
    assert_eq!(status.code(), None, "killed by a signal: {status}");
    // The hooks stay attached (pinned, still capturing), but with the
    // default `on_crash = "fail-open"` they stop refusing once the dead
    // daemon's heartbeat is older than the grace period.
    let open = poll(FAIL_OPEN_TIMEOUT, || {
        (lab.connect(FORGED_V4, DB_PORT).result == CONNECTED).then_some(())
    });
    assert!(
        open.is_some(),
        "connects are still refused {FAIL_OPEN_TIMEOUT:?} after SIGKILL"
    );
    assert!(
        !loaded_pinwatch_programs().is_empty(),
        "the programs stay loaded, to capture what happens until a daemon runs again"
    );
    let mut allowed = Vec::new();
    for ip in [IpAddr::V4(FORGED_V4), IpAddr::V6(FORGED_V6)] {
        let client = lab.connect(ip, DB_PORT);
        assert_eq!(
            client.result, CONNECTED,
            "after SIGKILL, the connect to {ip} is no longer refused"
        );
        allowed.push(client);
    }

    // Reported once pinwatch is back: allowed, so `unexpected-db-peer`.
    lab.fx.daemon.start_again();
    let all = lab.all_alerts();
    let context = format!("alerts:\n{}", lines(&all));
    for client in &allowed {
        let rules: Vec<&str> = from_pid(&all, client.pid)
            .iter()
            .map(|a| action(a))
            .collect();
        assert_eq!(rules, [PEER_RULE], "pid {}: {context}", client.pid);
    }
    assert!(
        all.iter().any(|a| action(a) == "pinwatch-restarted"),
        "{context}"
    );
}

#[test]
fn keep_enforcing_refuses_while_no_daemon_runs_and_reports_it_after() {
    let mut lab = enforce_lab("block");
    // `[kernel] on_crash` applies at start.
    lab.fx.daemon.stop();
    let path = lab.fx.daemon.config_path().to_owned();
    let text = std::fs::read_to_string(&path).expect("read the daemon's config");
    assert!(text.contains("[kernel]\n"), "{text}");
    lab.fx.daemon.write_config_text(
        &text.replace("[kernel]\n", "[kernel]\non_crash = \"keep-enforcing\"\n"),
    );
    lab.fx.daemon.start_again();
    assert_eq!(lab.connect(FORGED_V4, DB_PORT).result, EPERM);

    let status = lab.fx.daemon.kill().expect("the daemon was running");
    assert_eq!(status.code(), None, "killed by a signal: {status}");
    // Past the heartbeat's grace, where the default fails open.
    std::thread::sleep(FAIL_OPEN_TIMEOUT);
    let refused = lab.connect(FORGED_V4, DB_PORT);
    assert_eq!(
        refused.result, EPERM,
        "with keep-enforcing, the pinned sets stay in force while no daemon runs"
    );
    assert_eq!(
        lab.connect(PINNED_V4, DB_PORT).result,
        CONNECTED,
        "pinned addresses still go through"
    );

    lab.fx.daemon.start_again();
    let alert = lab.blocked_alert(&refused);
    assert_eq!(ip_field(&alert, "destination.ip"), IpAddr::V4(FORGED_V4));
}
