//! Kernel integration tests of DNS transports: TCP (one message per
//! segment, and one message split over two segments), IPv6 (with an
//! extension header in front of UDP), and UDP responses that arrive as IP
//! fragments on a host interface that appeared after the daemon started.
//!
//! Run serially, as root, under the shared lock, after building the daemon:
//!     cargo build -p pinwatch
//!     flock /tmp/pinwatch-kernel.lock cargo test -p pinwatch-integration-tests \
//!         --test transports -- --test-threads=1
use std::{
    io::{BufRead, BufReader},
    net::IpAddr,
    process::{Child, Command, Stdio},
};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, DNS_V4, DNS_V6, Daemon, DaemonConfig, Database, DnsRecords, Fixture, NetNs,
    field, lines, poll, python3, require_root, str_field, without_sentinel,
};
use serde_json::Value;

const ORDERS: &str = "orders";
const DB_HOST: &str = "db.lab.test";
const DB_PORT: u16 = 26257;
const PINNED: [&str; 2] = ["192.0.2.0/24", "2001:db8:2::/64"];
const DIVERGED: &str = "dns-answer-diverged";
const FRAGMENTED: &str = "dns-fragmented-response";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn orders() -> Database {
    Database::new(ORDERS, &[DB_HOST], &[DB_PORT], &PINNED)
}

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

fn orders_alerts(alerts: &[Value], rule: &str) -> Vec<Value> {
    without_sentinel(alerts)
        .into_iter()
        .filter(|a| action(a) == rule)
        .collect()
}

/// `dig @server name qtype` plus `extra` options from `ns`; dig's output.
fn dig_with(ns: &NetNs, server: IpAddr, name: &str, qtype: &str, extra: &[&str]) -> String {
    let output = ns
        .command("dig")
        .args([
            &format!("@{server}"),
            name,
            qtype,
            "+short",
            "+time=3",
            "+tries=1",
        ])
        .args(extra)
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "dig failed: {text}");
    text
}

/// A DNS server in Python that answers every A/AAAA question with
/// `answer`, in one of the modes below. It prints `ready` once bound.
const SERVER: &str = r#"
import socket, struct, sys, time
mode, bind, answer = sys.argv[1], sys.argv[2], sys.argv[3]
family = socket.AF_INET6 if ':' in bind else socket.AF_INET
packed = socket.inet_pton(socket.AF_INET6 if ':' in answer else socket.AF_INET, answer)
rtype = 28 if ':' in answer else 1

def respond(query):
    end = 12
    while query[end] != 0:
        end += 1 + query[end]
    end += 5
    header = query[:2] + struct.pack('!HHHHH', 0x8180, 1, 1, 0, 0)
    record = struct.pack('!HHHIH', 0xc00c, rtype, 1, 60, len(packed)) + packed
    return header + query[12:end] + record

if mode == 'tcp-split':
    # The length prefix and the message in separate segments.
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, 53)); s.listen(4)
    print('ready', flush=True)
    while True:
        c, _ = s.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        length = struct.unpack('!H', c.recv(2))[0]
        query = b''
        while len(query) < length:
            query += c.recv(length - len(query))
        reply = respond(query)
        c.sendall(struct.pack('!H', len(reply)))
        time.sleep(0.05)
        c.sendall(reply)
        c.close()
elif mode == 'udp6-dstopts':
    # Every datagram carries a destination-options extension header.
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    IPV6_DSTOPTS = 59
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_DSTOPTS, bytes([0, 0, 1, 4, 0, 0, 0, 0]))
    s.bind((bind, 53))
    print('ready', flush=True)
    while True:
        query, peer = s.recvfrom(4096)
        s.sendto(respond(query), peer)
"#;

/// The Python server, running in a namespace until the namespace goes.
struct PyServer(Child);

impl PyServer {
    fn start(ns: &NetNs, mode: &str, bind: IpAddr, answer: IpAddr) -> PyServer {
        let mut child = ns
            .command(python3())
            .args(["-c", SERVER, mode, &bind.to_string(), &answer.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the Python DNS server did not start");
        PyServer(child)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn forged_answer_over_tcp_is_diverged() {
    require_root();
    let forged = ip("203.0.113.7");
    let fx = Fixture::start(DnsRecords::new().host(DB_HOST, forged), vec![orders()]);
    let out = dig_with(&fx.lab.client, DNS_V4.into(), DB_HOST, "A", &["+tcp"]);
    assert_eq!(out.trim(), forged.to_string());
    let all = fx.sentinel();
    let diverged = orders_alerts(&all, DIVERGED);
    assert_eq!(diverged.len(), 1, "{}", lines(&all));
    assert_eq!(str_field(&diverged[0], "network.transport"), "tcp");
    assert_eq!(
        field(&diverged[0], "pinwatch.unexpected_ips"),
        Some(&serde_json::json!([forged.to_string()]))
    );
}

#[test]
fn forged_answer_split_over_two_tcp_segments_is_diverged() {
    require_root();
    let fx = Fixture::start(DnsRecords::new(), vec![orders()]);
    let server = ip("198.51.100.54");
    let forged = ip("203.0.113.8");
    fx.lab.add_peer_address(server);
    let _server = PyServer::start(&fx.lab.dns, "tcp-split", server, forged);
    let out = dig_with(&fx.lab.client, server, DB_HOST, "A", &["+tcp"]);
    assert_eq!(out.trim(), forged.to_string());
    let all = fx.sentinel();
    let diverged = orders_alerts(&all, DIVERGED);
    assert_eq!(diverged.len(), 1, "{}", lines(&all));
    assert_eq!(str_field(&diverged[0], "network.transport"), "tcp");
    assert_eq!(str_field(&diverged[0], "source.ip"), server.to_string());
}

#[test]
fn forged_answer_over_ipv6_is_diverged() {
    require_root();
    let forged = ip("2001:db8:99::7");
    let fx = Fixture::start(DnsRecords::new().host(DB_HOST, forged), vec![orders()]);
    let out = dig_with(&fx.lab.client, DNS_V6.into(), DB_HOST, "AAAA", &[]);
    assert_eq!(out.trim(), forged.to_string());
    let all = fx.sentinel();
    let diverged = orders_alerts(&all, DIVERGED);
    assert_eq!(diverged.len(), 1, "{}", lines(&all));
    assert_eq!(str_field(&diverged[0], "source.ip"), DNS_V6.to_string());
}

#[test]
fn forged_answer_behind_an_ipv6_extension_header_is_diverged() {
    require_root();
    let fx = Fixture::start(DnsRecords::new(), vec![orders()]);
    // Outside the lab link's /64: reached through the default route, not
    // neighbour discovery (which an address on lo does not answer).
    let server = ip("2001:db8:53::54");
    let forged = ip("2001:db8:99::8");
    fx.lab.add_peer_address(server);
    let _server = PyServer::start(&fx.lab.dns, "udp6-dstopts", server, forged);
    let out = dig_with(&fx.lab.client, server, DB_HOST, "AAAA", &[]);
    assert_eq!(out.trim(), forged.to_string());
    let all = fx.sentinel();
    let diverged = orders_alerts(&all, DIVERGED);
    assert_eq!(diverged.len(), 1, "{}", lines(&all));
    assert_eq!(str_field(&diverged[0], "source.ip"), server.to_string());
}

#[test]
fn benign_tcp_and_ipv6_answers_raise_nothing() {
    require_root();
    let fx = Fixture::start(
        DnsRecords::new()
            .host(DB_HOST, ip("192.0.2.7"))
            .host(DB_HOST, ip("2001:db8:2::7")),
        vec![orders()],
    );
    let server = ip("198.51.100.54");
    fx.lab.add_peer_address(server);
    let _server = PyServer::start(&fx.lab.dns, "tcp-split", server, ip("192.0.2.8"));
    let client = &fx.lab.client;
    assert!(dig_with(client, DNS_V4.into(), DB_HOST, "A", &["+tcp"]).contains("192.0.2.7"));
    assert!(dig_with(client, DNS_V6.into(), DB_HOST, "AAAA", &[]).contains("2001:db8:2::7"));
    assert!(dig_with(client, DNS_V6.into(), DB_HOST, "AAAA", &["+tcp"]).contains("2001:db8:2::7"));
    assert!(dig_with(client, server, DB_HOST, "A", &["+tcp"]).contains("192.0.2.8"));
    let all = fx.sentinel();
    let ours: Vec<Value> = orders_alerts(&all, DIVERGED)
        .into_iter()
        .chain(orders_alerts(&all, FRAGMENTED))
        .collect();
    assert!(ours.is_empty(), "{}", lines(&ours));
}

/// A namespace joined to the host's own network namespace by a veth pair
/// created after the daemon started: the host end is an interface the
/// daemon must pick up.
const HOST_END: &str = "pwtf0";
const HOST_V4: &str = "203.0.113.129";
const PEER_V4: &str = "203.0.113.130";

struct HostLink {
    ns: NetNs,
}

impl HostLink {
    fn new() -> HostLink {
        let ns = NetNs::new("frag");
        run(Command::new("ip").args([
            "link",
            "add",
            HOST_END,
            "type",
            "veth",
            "peer",
            "name",
            "pwtf1",
            "netns",
            ns.name(),
        ]));
        run(Command::new("ip").args(["addr", "add", &format!("{HOST_V4}/25"), "dev", HOST_END]));
        run(Command::new("ip").args(["link", "set", HOST_END, "up"]));
        ns.ip(&["addr", "add", &format!("{PEER_V4}/25"), "dev", "pwtf1"]);
        ns.ip(&["link", "set", "pwtf1", "up"]);
        ns.ip(&["link", "set", "lo", "up"]);
        HostLink { ns }
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; the namespace goes with `ns`.
        let _ = Command::new("ip").args(["link", "del", HOST_END]).status();
    }
}

fn run(command: &mut Command) {
    let status = command.status().expect("command runs");
    assert!(status.success(), "{command:?} failed");
}

/// Sends, with scapy from the peer namespace, a DNS response from port 53
/// to the host for `name` carrying `count` A records of `answer` (the
/// first one `answer`, the rest around it), cut into IP fragments of at
/// most 400 bytes; `first_only` sends only the first fragment.
fn send_fragmented(ns: &NetNs, name: &str, answer: &str, count: usize, first_only: bool) {
    let script = format!(
        r#"
from scapy.config import conf
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.sendrecv import send
conf.verb = 0
answers = [DNSRR(rrname='{name}', type='A', ttl=60, rdata='{answer}')]
base = '{answer}'.rsplit('.', 1)[0]
for i in range(1, {count}):
    answers.append(DNSRR(rrname='{name}', type='A', ttl=60, rdata=base + '.' + str(i)))
dns = DNS(id=4242, qr=1, aa=1, rd=1, ra=1, qd=DNSQR(qname='{name}', qtype='A'), an=answers)
packet = IP(src='{PEER_V4}', dst='{HOST_V4}', id=777) / UDP(sport=53, dport=33333) / dns
fragments = fragment(packet, fragsize=400)
assert len(fragments) > 1, len(fragments)
send(fragments[:1] if {first_only} else fragments)
"#,
        first_only = if first_only { "True" } else { "False" },
    );
    run(ns.command(python3()).args(["-c", &script]));
}

fn fragment_config() -> DaemonConfig {
    DaemonConfig {
        databases: vec![orders()],
        trusted_resolvers: vec![ip(PEER_V4)],
    }
}

/// Waits until the daemon says it attached to the new host interface.
fn wait_attached(daemon: &Daemon) {
    poll(ALERT_TIMEOUT, || {
        let log = daemon.stderr();
        (log.contains("DNS responses watched at the interface") && log.contains(HOST_END))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the daemon did not attach to {HOST_END}:\n{}",
            daemon.stderr()
        )
    });
}

#[test]
fn fragmented_forged_reply_on_a_new_interface_is_reported() {
    require_root();
    let daemon = Daemon::start(&fragment_config());
    let link = HostLink::new();
    wait_attached(&daemon);

    // Not a watched name first: fragments alone are no alert.
    send_fragmented(&link.ns, "other.lab.test", "203.0.113.60", 60, false);
    send_fragmented(&link.ns, DB_HOST, "203.0.113.66", 60, false);
    let log = daemon.alerts();
    let all = log.wait_for(ALERT_TIMEOUT, |a| action(a) == FRAGMENTED);
    let fragmented: Vec<&Value> = all.iter().filter(|a| action(a) == FRAGMENTED).collect();
    assert_eq!(fragmented.len(), 1, "{}", lines(&all));
    let alert = fragmented[0];
    assert_eq!(
        field(alert, "event.severity").and_then(Value::as_u64),
        Some(3)
    );
    assert_eq!(str_field(alert, "pinwatch.database"), ORDERS);
    assert_eq!(str_field(alert, "dns.question.name"), DB_HOST);
    assert_eq!(str_field(alert, "source.ip"), PEER_V4);
    // Reassembled whole: every address was checked against the pinned set.
    let unexpected = field(alert, "pinwatch.unexpected_ips")
        .and_then(Value::as_array)
        .map(Vec::len);
    assert_eq!(unexpected, Some(60), "{}", lines(&all));
    // No socket took the datagram: the socket rule has nothing to judge.
    assert!(all.iter().all(|a| action(a) != DIVERGED), "{}", lines(&all));
}

#[test]
fn fragmented_reply_missing_fragments_is_still_reported() {
    require_root();
    let daemon = Daemon::start(&fragment_config());
    let link = HostLink::new();
    wait_attached(&daemon);
    send_fragmented(&link.ns, DB_HOST, "203.0.113.67", 60, true);
    let all = daemon
        .alerts()
        .wait_for(ALERT_TIMEOUT, |a| action(a) == FRAGMENTED);
    let alert = all.iter().find(|a| action(a) == FRAGMENTED).unwrap();
    assert_eq!(str_field(alert, "dns.question.name"), DB_HOST);
    assert!(
        str_field(alert, "message").contains("not all of its fragments arrived"),
        "{}",
        lines(&all)
    );
}
