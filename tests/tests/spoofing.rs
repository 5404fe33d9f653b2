//! Kernel integration tests of the DNS spoofing heuristics and process
//! attribution: forged replies sent with scapy at real sockets, a real
//! dnsmasq as resolver and as local stub, glibc and dig as clients.
//!
//! Run serially, as root, after building the daemon, under the shared lock:
//!     cargo build -p pinwatch
//!     flock /tmp/pinwatch-kernel.lock cargo test -p pinwatch-integration-tests --test spoofing -- --test-threads=1
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, CLIENT_V4, DNS_V4, DNS_V6, Daemon, DaemonConfig, Database, DnsRecords, Dnsmasq,
    Fixture, Forged, HostLink, Lab, ResolvConf, Stub, UdpDnsClient, assert_ecs_base, dig, field,
    ip_field, lines, poll, require_root, resolve_with_libc, spoof, str_field, without_sentinel,
};
use serde_json::Value;

const DB_HOST: &str = "db.lab.test";
const PINNED: &str = "192.0.2.0/24";
const GENUINE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const FORGED: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);
/// A resolver address the client asks, where nothing listens: its query
/// waits forever, which is what a spoofer racing an answer needs.
const SILENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);
/// Marker database: its answer diverges on purpose, and once its alert is
/// in the file every earlier event has been judged.
const MARKER_HOST: &str = "marker.lab.test";
const MARKER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 77);

fn orders() -> Database {
    Database::new("orders", &[DB_HOST], &[26257], &[PINNED])
}

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

fn pid_of(alert: &Value) -> Option<u64> {
    field(alert, "process.pid").and_then(Value::as_u64)
}

/// Sends one forged reply at `to` until `rule` is raised for it: the first
/// seconds after the daemon sees traffic are a grace period in which
/// replies to queries it may have missed are not judged unsolicited.
fn unsolicited_until_alerted(
    daemon: &Daemon,
    ns: Option<&pinwatch_integration_tests::NetNs>,
    from: SocketAddr,
    to: SocketAddr,
    id: u16,
) -> Value {
    let log = daemon.alerts();
    let found = poll(ALERT_TIMEOUT + Duration::from_secs(10), || {
        spoof(
            ns,
            &[Forged {
                from,
                to,
                name: "nobody.asked.test".into(),
                answer: FORGED,
                ids: vec![id],
            }],
        );
        log.read().into_iter().find(|a| {
            action(a) == "dns-unsolicited-response"
                && field(a, "destination.port").and_then(Value::as_u64)
                    == Some(u64::from(to.port()))
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "no dns-unsolicited-response for {to}; alerts:\n{}\ndaemon:\n{}",
            lines(&log.read()),
            daemon.stderr()
        )
    })
}

#[test]
fn wrong_id_flood_while_a_query_waits_is_one_burst_naming_the_process() {
    require_root();
    let fx = Fixture::start(DnsRecords::new(), vec![orders()]);
    fx.lab.add_peer_address(SILENT.into());
    let mut client = UdpDnsClient::start(Some(&fx.lab.client), CLIENT_V4.into());
    client.query(SILENT.into(), "www.victim.lab.test", 4242);
    let flood: Vec<u16> = (1..=300).filter(|&id| id != 4242).collect();
    spoof(
        Some(&fx.lab.dns),
        &[Forged {
            from: SocketAddr::new(SILENT.into(), 53),
            to: client.addr,
            name: "www.victim.lab.test".into(),
            answer: FORGED,
            ids: flood,
        }],
    );
    let alerts = without_sentinel(&fx.sentinel());
    let bursts: Vec<&Value> = alerts
        .iter()
        .filter(|a| action(a) == "dns-txid-mismatch-burst")
        .collect();
    assert_eq!(
        bursts.len(),
        1,
        "one burst for one waiting query:\n{}",
        lines(&alerts)
    );
    let burst = bursts[0];
    assert_ecs_base(burst, "dns-txid-mismatch-burst");
    assert_eq!(burst["event"]["severity"], 3);
    assert_eq!(pid_of(burst), Some(u64::from(client.pid)), "{burst}");
    assert_eq!(str_field(burst, "process.name"), "python3");
    assert_eq!(ip_field(burst, "source.ip"), IpAddr::from(SILENT));
    assert_eq!(ip_field(burst, "destination.ip"), IpAddr::from(CLIENT_V4));
    assert!(
        str_field(burst, "message").contains("www.victim.lab.test"),
        "{burst}"
    );
    assert!(
        alerts
            .iter()
            .all(|a| action(a) == "dns-txid-mismatch-burst"),
        "wrong ids on a waiting leg are a burst, nothing else:\n{}",
        lines(&alerts)
    );
}

#[test]
fn reply_nobody_asked_for_is_unsolicited_in_a_namespace() {
    require_root();
    let fx = Fixture::start(DnsRecords::new(), vec![orders()]);
    let mut client = UdpDnsClient::start(Some(&fx.lab.client), CLIENT_V4.into());
    // The socket talks DNS (so pinwatch knows its process), but never to
    // the address the reply claims to come from.
    client.query(DNS_V4.into(), "www.lab.test", 1);
    let alert = unsolicited_until_alerted(
        &fx.daemon,
        Some(&fx.lab.dns),
        SocketAddr::new(SILENT.into(), 53),
        client.addr,
        777,
    );
    assert_ecs_base(&alert, "dns-unsolicited-response");
    assert_eq!(pid_of(&alert), Some(u64::from(client.pid)), "{alert}");
    assert_eq!(str_field(&alert, "dns.id"), "777");
    assert_eq!(ip_field(&alert, "source.ip"), IpAddr::from(SILENT));
}

#[test]
fn reply_nobody_asked_for_is_unsolicited_in_the_host_namespace() {
    require_root();
    let lab = Lab::new();
    let daemon = Daemon::start(&DaemonConfig {
        databases: vec![orders()],
        trusted_resolvers: vec![DNS_V4.into()],
    });
    let mut client = UdpDnsClient::start(None, IpAddr::from([127, 0, 0, 1]));
    // Nothing listens there; the query only makes the socket a DNS socket.
    client.query(IpAddr::from([127, 0, 0, 98]), "www.lab.test", 1);
    let alert = unsolicited_until_alerted(
        &daemon,
        None,
        "127.0.0.99:53".parse().unwrap(),
        client.addr,
        778,
    );
    assert_eq!(pid_of(&alert), Some(u64::from(client.pid)), "{alert}");
    assert_eq!(str_field(&alert, "process.name"), "python3");
    drop(lab);
}

#[test]
fn correct_answer_from_an_untrusted_resolver() {
    require_root();
    let alerts = untrusted_answer(DnsRecords::new().host(DB_HOST, GENUINE), DB_HOST);
    let alert = alerts
        .iter()
        .find(|a| action(a) == "dns-untrusted-resolver")
        .expect("found by untrusted_answer");
    assert_ecs_base(alert, "dns-untrusted-resolver");
    assert!(
        alerts.iter().all(|a| action(a) != "dns-answer-diverged"),
        "the answer itself was inside the pinned set:\n{}",
        lines(&alerts)
    );
}

/// Asks the lab's resolver, which the daemon does not trust, for
/// `question` (answered `GENUINE`, inside the pinned set) with dig; returns
/// the alerts once `dns-untrusted-resolver` naming the resolver, the
/// database and dig is among them.
fn untrusted_answer(records: DnsRecords, question: &str) -> Vec<Value> {
    let lab = Lab::new();
    let _dnsmasq = Dnsmasq::start(&lab, &records);
    let daemon = Daemon::start(&DaemonConfig {
        databases: vec![orders()],
        // Not the lab's resolver.
        trusted_resolvers: vec!["192.0.2.53".parse().unwrap()],
    });
    let answer = dig(&lab.client, DNS_V4, question, "A");
    assert_eq!(
        answer.addresses(),
        [IpAddr::from(GENUINE)],
        "{}",
        answer.raw
    );
    let log = daemon.alerts();
    let alerts = log.wait_for(ALERT_TIMEOUT, |a| action(a) == "dns-untrusted-resolver");
    let alert = alerts
        .iter()
        .find(|a| action(a) == "dns-untrusted-resolver")
        .unwrap_or_else(|| panic!("no dns-untrusted-resolver:\n{}", lines(&log.read())));
    assert_eq!(str_field(alert, "pinwatch.database"), "orders");
    assert_eq!(ip_field(alert, "source.ip"), IpAddr::from(DNS_V4));
    assert_eq!(str_field(alert, "process.name"), "dig");
    alerts
}

/// Lab with a resolver whose records are `records`, a local stub in the
/// client namespace forwarding to it, glibc pointed at the stub, and the
/// daemon trusting both; fields drop in order (daemon first).
struct StubLab {
    daemon: Daemon,
    _resolv: ResolvConf,
    stub: Stub,
    _upstream: Dnsmasq,
    lab: Lab,
}

impl StubLab {
    fn start(records: DnsRecords, probe: &str) -> StubLab {
        let lab = Lab::new();
        let upstream = Dnsmasq::start(&lab, &records);
        let stub = Stub::start(&lab.client, DNS_V4.into(), probe);
        let resolv = ResolvConf::set(&lab.client, IpAddr::from([127, 0, 0, 1]));
        let marker = Database::new("marker", &[MARKER_HOST], &[26258], &["192.0.2.77/32"]);
        let daemon = Daemon::start(&DaemonConfig {
            databases: vec![orders(), marker],
            trusted_resolvers: vec![DNS_V4.into(), DNS_V6.into(), "127.0.0.1".parse().unwrap()],
        });
        StubLab {
            daemon,
            _resolv: resolv,
            stub,
            _upstream: upstream,
            lab,
        }
    }

    /// Resolves the marker and waits for its alert: every alert the earlier
    /// events raise is then in the file.
    fn flush(&self) -> Vec<Value> {
        let answer = dig(&self.lab.client, DNS_V4, MARKER_HOST, "A");
        assert_eq!(
            answer.addresses(),
            [IpAddr::from(MARKER_IP)],
            "{}",
            answer.raw
        );
        let log = self.daemon.alerts();
        let marker = |a: &Value| {
            field(a, "pinwatch.database").and_then(Value::as_str) == Some("marker")
                && action(a) == "dns-answer-diverged"
        };
        poll(ALERT_TIMEOUT, || {
            let alerts = log.read();
            alerts.iter().any(marker).then_some(alerts)
        })
        .unwrap_or_else(|| panic!("the marker's alert did not come:\n{}", lines(&log.read())))
        .into_iter()
        .filter(|a| !marker(a))
        .collect()
    }
}

#[test]
fn application_behind_a_local_stub_is_named_with_the_path() {
    require_root();
    let records = DnsRecords::new()
        .host(DB_HOST, FORGED)
        .host(MARKER_HOST, MARKER_IP);
    let fx = StubLab::start(records, MARKER_HOST);
    let app = resolve_with_libc(&fx.lab.client, DB_HOST);
    assert_eq!(
        app.result,
        FORGED.to_string(),
        "the poisoned answer reached the app"
    );
    let alerts = fx.flush();
    let diverged: Vec<&Value> = alerts
        .iter()
        .filter(|a| action(a) == "dns-answer-diverged")
        .collect();
    let at_app = diverged
        .iter()
        .find(|a| pid_of(a) == Some(u64::from(app.pid)))
        .unwrap_or_else(|| {
            panic!(
                "no dns-answer-diverged naming the application (pid {}):\n{}",
                app.pid,
                lines(&alerts)
            )
        });
    assert_eq!(str_field(at_app, "process.name"), "python3");
    assert_eq!(str_field(at_app, "pinwatch.path.stub"), "127.0.0.1:53");
    assert_eq!(
        str_field(at_app, "pinwatch.path.upstream"),
        format!("{DNS_V4}:53")
    );
    // The upstream's answer as the stub received it names the stub.
    assert!(
        diverged
            .iter()
            .any(|a| pid_of(a) == Some(u64::from(fx.stub.pid()))
                && str_field(a, "process.name") == "dnsmasq"),
        "{}",
        lines(&alerts)
    );
}

#[test]
fn ordinary_resolution_raises_nothing() {
    require_root();
    let records = DnsRecords::new()
        .host(DB_HOST, GENUINE)
        .host("www.other.lab.test", Ipv4Addr::new(198, 51, 100, 7))
        .host(MARKER_HOST, MARKER_IP);
    let fx = StubLab::start(records, MARKER_HOST);
    fx.lab.add_peer_address(SILENT.into());
    // Past the startup grace first, so unsolicited replies would count.
    let probe = UdpDnsClient::start(Some(&fx.lab.client), CLIENT_V4.into());
    unsolicited_until_alerted(
        &fx.daemon,
        Some(&fx.lab.dns),
        SocketAddr::new(SILENT.into(), 53),
        probe.addr,
        779,
    );
    drop(probe);
    let before = fx.daemon.alerts().read().len();

    // The same questions of one resolver over IPv4 and IPv6, and through
    // the stub via glibc, A and AAAA.
    for server in [IpAddr::from(DNS_V4), IpAddr::from(DNS_V6)] {
        for qtype in ["A", "AAAA"] {
            dig(&fx.lab.client, server, DB_HOST, qtype);
            dig(&fx.lab.client, server, "www.other.lab.test", qtype);
        }
    }
    for name in [DB_HOST, "www.other.lab.test"] {
        let resolved = resolve_with_libc(&fx.lab.client, name);
        assert!(!resolved.result.starts_with("error"), "{resolved:?}");
    }
    let alerts = fx.flush();
    let new = &alerts[before.min(alerts.len())..];
    assert!(
        new.is_empty(),
        "ordinary traffic raised alerts:\n{}",
        lines(new)
    );
}

/// Connects to a DNS over TLS port, then to the database port, from one
/// process, as an application with an encrypted resolver does.
const DOT_THEN_DB: &str = r#"
import os, socket, sys
for ip, port in ((sys.argv[1], 853), (sys.argv[2], 26257)):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect((ip, port))
    except OSError:
        pass
    s.close()
print("pid=%d" % os.getpid(), flush=True)
"#;

#[test]
fn connect_after_dns_over_tls_says_resolution_was_not_observable() {
    require_root();
    let fx = Fixture::start(DnsRecords::new(), vec![orders()]);
    fx.lab.add_peer_address(SILENT.into());
    fx.lab.add_peer_address(FORGED.into());
    let mut cmd = fx.lab.client.command(pinwatch_integration_tests::python3());
    cmd.args(["-c", DOT_THEN_DB, &SILENT.to_string(), &FORGED.to_string()]);
    let out = cmd.output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: u64 = stdout
        .trim()
        .strip_prefix("pid=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid: {stdout}"));
    let alerts = without_sentinel(&fx.sentinel());
    let peer = alerts
        .iter()
        .find(|a| action(a) == "unexpected-db-peer" && pid_of(a) == Some(pid))
        .unwrap_or_else(|| panic!("no unexpected-db-peer from pid {pid}:\n{}", lines(&alerts)));
    assert_eq!(
        str_field(peer, "pinwatch.resolution.status"),
        "not-observed"
    );
    assert_eq!(
        str_field(peer, "pinwatch.resolution.reason"),
        "dns-over-tls"
    );
    assert_eq!(
        str_field(peer, "pinwatch.resolution.resolver"),
        format!("{SILENT}:853")
    );
    assert!(
        str_field(peer, "message").contains("DNS over TLS"),
        "{peer}"
    );
}

#[test]
fn genuine_answer_after_the_client_took_a_forged_one_conflicts() {
    require_root();
    // The client in the host's namespace, its resolver (silent: the
    // attacker plays both parts) behind a veth whose host end the tc hook
    // watches.
    let link = HostLink::new(
        "race",
        Ipv4Addr::new(203, 0, 113, 1),
        Ipv4Addr::new(203, 0, 113, 2),
    );
    let resolver = SocketAddr::new(link.peer_addr.into(), 53);
    let daemon = Daemon::start(&DaemonConfig {
        databases: vec![orders()],
        trusted_resolvers: vec![resolver.ip()],
    });
    let mut client = UdpDnsClient::start(None, link.host_addr.into());
    let victim = client.addr;
    client.query(resolver.ip(), DB_HOST, 555);
    let reply = |answer| Forged {
        from: resolver,
        to: victim,
        name: DB_HOST.into(),
        answer,
        ids: vec![555],
    };
    // The forger wins the race; the client takes its answer and closes the
    // socket; the genuine answer then reaches no socket, only the
    // interface.
    spoof(Some(&link.ns), &[reply(FORGED)]);
    let log = daemon.alerts();
    let pid = u64::from(client.pid);
    log.wait_for(ALERT_TIMEOUT, |a| {
        action(a) == "dns-answer-diverged" && pid_of(a) == Some(pid)
    });
    drop(client);
    spoof(Some(&link.ns), &[reply(GENUINE)]);
    let alerts = log.wait_for(ALERT_TIMEOUT, |a| action(a) == "dns-conflicting-responses");
    let conflict = alerts
        .iter()
        .find(|a| action(a) == "dns-conflicting-responses")
        .unwrap_or_else(|| {
            panic!(
                "no dns-conflicting-responses:\n{}\n{}",
                lines(&log.read()),
                daemon.stderr()
            )
        });
    assert_ecs_base(conflict, "dns-conflicting-responses");
    assert_eq!(str_field(conflict, "pinwatch.database"), "orders");
    assert_eq!(
        ip_field(conflict, "destination.ip"),
        IpAddr::from(link.host_addr)
    );
    assert_eq!(str_field(conflict, "dns.id"), "555");
    drop(daemon);
}

/// Questions no database configures, whose answers the kernel keeps small
/// on the way out of a resolver: they still reach the rules that judge any
/// name.
const UNWATCHED: &str = "www.unwatched.lab.test";

/// A client asks the silent resolver for [`UNWATCHED`] with id `asked`;
/// `answers` (address, id) arrive from it, in order. The alerts once
/// everything before the sentinel is judged, and the client.
fn unwatched_answers(asked: u16, answers: &[(Ipv4Addr, u16)]) -> (Vec<Value>, UdpDnsClient) {
    let fx = Fixture::start(DnsRecords::new(), vec![orders()]);
    fx.lab.add_peer_address(SILENT.into());
    let mut client = UdpDnsClient::start(Some(&fx.lab.client), CLIENT_V4.into());
    client.query(SILENT.into(), UNWATCHED, asked);
    let replies: Vec<Forged> = answers
        .iter()
        .map(|&(answer, id)| Forged {
            from: SocketAddr::new(SILENT.into(), 53),
            to: client.addr,
            name: UNWATCHED.into(),
            answer,
            ids: vec![id],
        })
        .collect();
    spoof(Some(&fx.lab.dns), &replies);
    (without_sentinel(&fx.sentinel()), client)
}

#[test]
fn unwatched_name_answered_twice_differently_conflicts() {
    require_root();
    let answers = [(Ipv4Addr::new(198, 51, 100, 7), 4343), (FORGED, 4343)];
    let (alerts, client) = unwatched_answers(4343, &answers);
    let conflicts: Vec<&Value> = alerts
        .iter()
        .filter(|a| action(a) == "dns-conflicting-responses")
        .collect();
    assert_eq!(
        conflicts.len(),
        1,
        "one conflict for the second, different answer:\n{}",
        lines(&alerts)
    );
    let conflict = conflicts[0];
    assert_ecs_base(conflict, "dns-conflicting-responses");
    assert_eq!(str_field(conflict, "dns.id"), "4343");
    assert_eq!(pid_of(conflict), Some(u64::from(client.pid)), "{conflict}");
    assert!(
        str_field(conflict, "message").contains(UNWATCHED),
        "{conflict}"
    );
}

#[test]
fn unwatched_name_with_a_wrong_id_is_a_mismatch_not_a_match() {
    require_root();
    // The right question from the right resolver, every id but the one
    // asked: none of them matches the query.
    let answers: Vec<(Ipv4Addr, u16)> = (101..=140).map(|id| (FORGED, id)).collect();
    let (alerts, client) = unwatched_answers(100, &answers);
    let bursts: Vec<&Value> = alerts
        .iter()
        .filter(|a| action(a) == "dns-txid-mismatch-burst")
        .collect();
    assert_eq!(bursts.len(), 1, "{}", lines(&alerts));
    assert_eq!(pid_of(bursts[0]), Some(u64::from(client.pid)));
    assert!(
        alerts
            .iter()
            .all(|a| action(a) != "dns-conflicting-responses"),
        "no reply matched, so none conflicts:\n{}",
        lines(&alerts)
    );
}

#[test]
fn unwatched_alias_of_a_configured_name_from_an_untrusted_resolver() {
    require_root();
    // The question names no database; its CNAME leads to one.
    let records = DnsRecords::new()
        .host(DB_HOST, GENUINE)
        .cname(UNWATCHED, DB_HOST);
    untrusted_answer(records, UNWATCHED);
}
