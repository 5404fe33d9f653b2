//! Kernel integration tests of pinwatch's foundation: the DNS and connect
//! hooks, the two first rules, and clean detaching.
//!
//! Run serially, as root, after building the daemon:
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests -- --test-threads=1
//! Each test starts its own lab and daemon, and the daemon sees every DNS
//! message and watched connect of the host: two at once would see each
//! other's traffic. `PINWATCH_BIN` overrides the binary's path.
use std::net::IpAddr;

use pinwatch_integration_tests::{
    CLIENT_V4, CLIENT_V6, DNS_V4, DNS_V6, Daemon, DaemonConfig, Database, DnsRecords, Fixture, Lab,
    NS_PREFIX, PINWATCH_PROGRAMS, assert_ecs_base, assert_unique_event_ids, connect, dig, field,
    ip_field, ip_list_field, lines, loaded_pinwatch_programs, pwt_namespaces, require_root,
    str_field, without_sentinel,
};
use serde_json::Value;

const ORDERS: &str = "orders";
const DB_HOST: &str = "db.lab.test";
const DB_PORT: u16 = 26257;
const PINNED: [&str; 2] = ["192.0.2.0/24", "2001:db8:2::/64"];
const DNS_RULE: &str = "dns-answer-diverged";
const PEER_RULE: &str = "unexpected-db-peer";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn orders(hostnames: &[&str]) -> Database {
    Database::new(ORDERS, hostnames, &[DB_PORT], &PINNED)
}

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

/// One forged-answer scenario: the client asks `question` (`qtype`) of the
/// resolver at `server`, gets `forged`, then connects to `forged:26257`.
struct Forged<'a> {
    records: DnsRecords,
    hostnames: &'a [&'a str],
    question: &'a str,
    qtype: &'a str,
    server: IpAddr,
    forged: IpAddr,
    /// Names `destination.domain` of the connect alert may carry
    /// (compared without regard to case).
    domains: &'a [&'a str],
}

impl Forged<'_> {
    fn run(self) {
        require_root();
        let fx = Fixture::start(self.records, vec![orders(self.hostnames)]);
        fx.lab.add_peer_address(self.forged);

        let answer = dig(&fx.lab.client, self.server, self.question, self.qtype);
        assert_eq!(
            answer.addresses(),
            [self.forged],
            "dnsmasq's answer:\n{}",
            answer.raw
        );
        let client = connect(&fx.lab.client, self.forged, DB_PORT);

        let all = fx.sentinel();
        for alert in &all {
            assert_ecs_base(alert, action(alert));
        }
        assert_unique_event_ids(&all);
        let ours = without_sentinel(&all);
        let context = format!("alerts:\n{}", lines(&all));
        // Shown with --nocapture, and by the harness when the test fails.
        eprintln!("{context}");

        let dns: Vec<&Value> = ours.iter().filter(|a| action(a) == DNS_RULE).collect();
        let peers: Vec<&Value> = ours.iter().filter(|a| action(a) == PEER_RULE).collect();
        let other: Vec<&Value> = ours
            .iter()
            .filter(|a| ![DNS_RULE, PEER_RULE].contains(&action(a)))
            .collect();
        assert!(
            other.is_empty(),
            "no other rule should fire here; {context}"
        );

        // The resolver answers over the family of `server`; the client's
        // address of that family receives it.
        let client_ip = if self.server.is_ipv4() {
            IpAddr::V4(CLIENT_V4)
        } else {
            IpAddr::V6(CLIENT_V6)
        };
        assert!(
            !dns.is_empty(),
            "no {DNS_RULE} for {}; {context}",
            self.question
        );
        for alert in &dns {
            assert_eq!(str_field(alert, "pinwatch.database"), ORDERS, "{alert}");
            assert_eq!(
                str_field(alert, "dns.question.name"),
                self.question,
                "as asked on the wire: {alert}"
            );
            assert_eq!(str_field(alert, "dns.question.type"), self.qtype, "{alert}");
            assert!(
                ip_list_field(alert, "dns.resolved_ip").contains(&self.forged),
                "{alert}"
            );
            assert_eq!(
                ip_list_field(alert, "pinwatch.unexpected_ips"),
                [self.forged],
                "{alert}"
            );
            assert_pinned(alert);
            assert_eq!(
                ip_field(alert, "source.ip"),
                self.server,
                "source.ip is the resolver: {alert}"
            );
            assert_eq!(ip_field(alert, "destination.ip"), client_ip, "{alert}");
            let answers = field(alert, "dns.answers").and_then(Value::as_array);
            let answers = answers.unwrap_or_else(|| panic!("no list `dns.answers`: {alert}"));
            assert!(
                answers.iter().any(|a| {
                    a["type"] == self.qtype
                        && a["data"].as_str().and_then(|d| d.parse().ok()) == Some(self.forged)
                }),
                "`dns.answers` lacks the forged {} record: {alert}",
                self.qtype
            );
        }

        assert_eq!(
            peers.len(),
            1,
            "exactly one {PEER_RULE} for the one connect; {context}"
        );
        let peer = peers[0];
        assert_eq!(str_field(peer, "pinwatch.database"), ORDERS, "{peer}");
        assert_eq!(ip_field(peer, "destination.ip"), self.forged, "{peer}");
        assert_eq!(
            field(peer, "destination.port").and_then(Value::as_u64),
            Some(u64::from(DB_PORT)),
            "{peer}"
        );
        assert_eq!(
            field(peer, "process.pid").and_then(Value::as_u64),
            Some(u64::from(client.pid)),
            "process.pid is the connecting python3: {peer}"
        );
        assert_eq!(str_field(peer, "process.name"), "python3", "{peer}");
        // ECS user.id is a keyword; root.
        let uid = field(peer, "user.id");
        assert!(
            uid == Some(&Value::from("0")) || uid == Some(&Value::from(0)),
            "user.id should be root's: {peer}"
        );
        let domain = str_field(peer, "destination.domain");
        assert!(
            self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)),
            "destination.domain {domain:?} should be one of {:?}: {peer}",
            self.domains
        );
        assert_pinned(peer);
    }
}

fn assert_pinned(alert: &Value) {
    let pinned: Vec<&str> = field(alert, "pinwatch.pinned")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no list `pinwatch.pinned`: {alert}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for net in PINNED {
        assert!(
            pinned.contains(&net),
            "`pinwatch.pinned` lacks {net}: {alert}"
        );
    }
}

#[test]
fn forged_a_answer_and_the_connect_that_follows_raise_alerts() {
    Forged {
        records: DnsRecords::new().host(DB_HOST, ip("203.0.113.66")),
        hostnames: &[DB_HOST],
        question: DB_HOST,
        qtype: "A",
        server: DNS_V4.into(),
        forged: ip("203.0.113.66"),
        domains: &[DB_HOST],
    }
    .run();
}

#[test]
fn forged_aaaa_answer_over_ipv6_and_the_ipv6_connect_raise_alerts() {
    Forged {
        records: DnsRecords::new().host(DB_HOST, ip("2001:db8:bad::66")),
        hostnames: &[DB_HOST],
        question: DB_HOST,
        qtype: "AAAA",
        server: DNS_V6.into(),
        forged: ip("2001:db8:bad::66"),
        domains: &[DB_HOST],
    }
    .run();
}

#[test]
fn upper_case_question_is_matched_case_insensitively() {
    Forged {
        records: DnsRecords::new().host(DB_HOST, ip("203.0.113.66")),
        hostnames: &[DB_HOST],
        question: "DB.LAB.TEST",
        qtype: "A",
        server: DNS_V4.into(),
        forged: ip("203.0.113.66"),
        domains: &[DB_HOST],
    }
    .run();
}

#[test]
fn forged_address_behind_a_cname_chain_raises_alerts() {
    Forged {
        records: DnsRecords::new()
            .cname("alias.lab.test", "real.lab.test")
            .host("real.lab.test", ip("203.0.113.77")),
        hostnames: &["alias.lab.test"],
        question: "alias.lab.test",
        qtype: "A",
        server: DNS_V4.into(),
        forged: ip("203.0.113.77"),
        // The name the application asked for, or the owner of the A record.
        domains: &["alias.lab.test", "real.lab.test"],
    }
    .run();
}

#[test]
fn forged_address_for_a_configured_cname_target_raises_alerts() {
    // The application asks for an alias that is not configured; the chain
    // leads to the configured hostname, whose A record is forged.
    Forged {
        records: DnsRecords::new()
            .cname("www.lab.test", DB_HOST)
            .host(DB_HOST, ip("203.0.113.78")),
        hostnames: &[DB_HOST],
        question: "www.lab.test",
        qtype: "A",
        server: DNS_V4.into(),
        forged: ip("203.0.113.78"),
        domains: &["www.lab.test", DB_HOST],
    }
    .run();
}

/// Benign traffic, then the sentinel: only the sentinel's alerts may be in
/// the file.
fn assert_only_sentinel(fx: &Fixture) {
    let all = fx.sentinel();
    for alert in &all {
        assert_ecs_base(alert, action(alert));
    }
    assert_unique_event_ids(&all);
    let ours = without_sentinel(&all);
    assert!(
        ours.is_empty(),
        "benign traffic raised alerts:\n{}",
        lines(&ours)
    );
}

#[test]
fn answers_inside_the_pinned_set_raise_nothing() {
    require_root();
    let records = DnsRecords::new()
        .host(DB_HOST, ip("192.0.2.10"))
        .host(DB_HOST, ip("192.0.2.11"))
        .host(DB_HOST, ip("2001:db8:2::10"));
    let fx = Fixture::start(records, vec![orders(&[DB_HOST])]);
    let mut v4 = dig(&fx.lab.client, DNS_V4, DB_HOST, "A").addresses();
    v4.sort();
    assert_eq!(v4, [ip("192.0.2.10"), ip("192.0.2.11")]);
    assert_eq!(
        dig(&fx.lab.client, DNS_V6, DB_HOST, "AAAA").addresses(),
        [ip("2001:db8:2::10")]
    );
    assert_eq!(
        dig(&fx.lab.client, DNS_V4, "DB.LAB.TEST.", "A")
            .addresses()
            .len(),
        2
    );
    assert_only_sentinel(&fx);
}

#[test]
fn answers_for_unrelated_names_raise_nothing() {
    require_root();
    let records = DnsRecords::new()
        .host("other.lab.test", ip("203.0.113.9"))
        .host("other.lab.test", ip("2001:db8:bad::9"))
        .address("elsewhere.test", ip("203.0.113.10"))
        // A name that only ends like the configured one.
        .host("notdb.lab.test", ip("203.0.113.11"));
    let fx = Fixture::start(records, vec![orders(&[DB_HOST])]);
    assert_eq!(
        dig(&fx.lab.client, DNS_V4, "other.lab.test", "A").addresses(),
        [ip("203.0.113.9")]
    );
    assert_eq!(
        dig(&fx.lab.client, DNS_V6, "other.lab.test", "AAAA").addresses(),
        [ip("2001:db8:bad::9")]
    );
    assert_eq!(
        dig(&fx.lab.client, DNS_V4, "db.elsewhere.test", "A").addresses(),
        [ip("203.0.113.10")]
    );
    assert_eq!(
        dig(&fx.lab.client, DNS_V4, "notdb.lab.test", "A").addresses(),
        [ip("203.0.113.11")]
    );
    assert_only_sentinel(&fx);
}

#[test]
fn connects_to_pinned_addresses_or_unwatched_ports_raise_nothing() {
    require_root();
    let fx = Fixture::start(DnsRecords::new(), vec![orders(&[DB_HOST])]);
    for addr in ["192.0.2.10", "2001:db8:2::10", "203.0.113.66"] {
        fx.lab.add_peer_address(ip(addr));
    }
    connect(&fx.lab.client, ip("192.0.2.10"), DB_PORT);
    connect(&fx.lab.client, ip("2001:db8:2::10"), DB_PORT);
    connect(&fx.lab.client, ip("203.0.113.66"), 5432);
    assert_only_sentinel(&fx);
}

#[test]
fn sigterm_detaches_every_program_and_the_lab_leaves_no_namespace() {
    require_root();
    let before = loaded_pinwatch_programs();
    let lab = Lab::new();
    let mut daemon = Daemon::start(&DaemonConfig {
        databases: vec![orders(&[DB_HOST])],
        trusted_resolvers: vec![DNS_V4.into(), DNS_V6.into()],
    });
    let running: Vec<_> = loaded_pinwatch_programs()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    for name in PINWATCH_PROGRAMS {
        assert!(
            running.iter().any(|p| p.name == name),
            "program {name} is not loaded while the daemon runs; new pinwatch programs: {running:?}"
        );
    }

    let status = daemon.stop().expect("the daemon was running");
    assert_eq!(
        status.code(),
        Some(0),
        "pinwatch should exit 0 on SIGTERM\n{}",
        daemon.dump()
    );
    let after = loaded_pinwatch_programs();
    let left: Vec<_> = running.iter().filter(|p| after.contains(p)).collect();
    assert!(
        left.is_empty(),
        "programs still loaded after the daemon exited: {left:?}\n{}",
        daemon.dump()
    );
    if before.is_empty() {
        assert!(
            after.is_empty(),
            "pinwatch programs loaded after the daemon exited: {after:?}"
        );
    }
    drop(daemon);

    drop(lab);
    let ours = format!("{NS_PREFIX}{}-", std::process::id());
    assert!(
        pwt_namespaces().iter().all(|n| !n.starts_with(&ours)),
        "namespaces left: {:?}",
        pwt_namespaces()
    );
    assert!(
        pwt_namespaces().is_empty(),
        "pwt- namespaces remain: {:?}",
        pwt_namespaces()
    );
}
