//! The matching rules on crafted messages, through `Detector::observe`.
use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{DNSClass, Name, RData, Record, RecordType, rdata},
};

use super::table::{MAX_FLOWS, MAX_QUERIES};
use crate::{
    alert::{Alert, DnsPath, HiddenResolution, Resolution, Rule},
    detector::Detector,
    event::{
        ConnectAction, ConnectEvent, Direction, DnsEvent, DnsOwnerEvent, Event, Hook, LossEvent,
        LossOrigin, OwnerRole, Process, Transport,
    },
    fixtures::{config, dns_event},
};

const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["db.lab.test"]
ports = [26257]
pinned = ["192.0.2.0/24"]

[dns]
trusted_resolvers = ["198.51.100.53", "127.0.0.1"]
txid_mismatch_threshold = 10
query_timeout = "10s"
"#;

const CLIENT: &str = "198.51.100.10:40000";
const RESOLVER: &str = "198.51.100.53:53";
const APP_COOKIE: u64 = 0xa11;

fn detector() -> Detector {
    let config = config(CONFIG);
    let mut detector = Detector::new(&config);
    // The first event starts the startup grace; tests begin after it.
    detector.observe(&query("warm.up.test", 1, CLIENT, RESOLVER, 0));
    detector.observe(&owner(
        APP_COOKIE,
        4242,
        "python3",
        OwnerRole::Dns,
        RESOLVER,
    ));
    detector
}

fn at(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000) + Duration::from_millis(millis)
}

/// Milliseconds after the startup grace.
const T: u64 = 60_000;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn message(kind: MessageType, name: &str, id: u16) -> Message {
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(kind)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    message
}

fn a(owner: &str, ip: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(owner).unwrap(),
        30,
        RData::A(rdata::A(ip.parse().unwrap())),
    )
}

fn event(message: Message, direction: Direction, from: &str, to: &str, ms: u64) -> Event {
    Event::Dns(DnsEvent {
        socket_cookie: APP_COOKIE,
        ..dns_event(message, direction, from, to, at(ms))
    })
}

fn query(name: &str, id: u16, client: &str, server: &str, ms: u64) -> Event {
    event(
        message(MessageType::Query, name, id),
        Direction::Egress,
        client,
        server,
        ms,
    )
}

fn response(name: &str, id: u16, ips: &[&str], server: &str, client: &str, ms: u64) -> Event {
    let mut m = message(MessageType::Response, name, id);
    m.add_answers(ips.iter().map(|ip| a(name, ip)));
    event(m, Direction::Ingress, server, client, ms)
}

fn owner(cookie: u64, pid: u32, name: &str, role: OwnerRole, destination: &str) -> Event {
    Event::DnsOwner(DnsOwnerEvent {
        timestamp: at(0),
        socket_cookie: cookie,
        process: Process {
            pid,
            tid: pid,
            uid: 1000,
            gid: 1000,
            name: name.into(),
            cgroup_id: 7,
        },
        role,
        destination: addr(destination),
        resolv_conf: None,
    })
}

fn with_cookie(mut event: Event, cookie: u64) -> Event {
    if let Event::Dns(dns) = &mut event {
        dns.socket_cookie = cookie;
    }
    event
}

fn feed(detector: &mut Detector, events: impl IntoIterator<Item = Event>) -> Vec<Alert> {
    events
        .into_iter()
        .flat_map(|e| detector.observe(&e))
        .collect()
}

fn rules(alerts: &[Alert]) -> Vec<Rule> {
    alerts.iter().map(|a| a.rule).collect()
}

#[test]
fn ordinary_exchange_raises_nothing() {
    let mut d = detector();
    let alerts = feed(
        &mut d,
        [
            query("www.example.test", 7, CLIENT, RESOLVER, T),
            // glibc asks A and AAAA on one socket at once.
            query("www.example.test", 8, CLIENT, RESOLVER, T),
            response(
                "www.example.test",
                8,
                &["203.0.113.9"],
                RESOLVER,
                CLIENT,
                T + 5,
            ),
            response(
                "www.example.test",
                7,
                &["203.0.113.9"],
                RESOLVER,
                CLIENT,
                T + 6,
            ),
            query("db.lab.test", 9, CLIENT, RESOLVER, T + 10),
            response("db.lab.test", 9, &["192.0.2.10"], RESOLVER, CLIENT, T + 12),
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn retransmitted_query_answered_twice_is_no_conflict() {
    let mut d = detector();
    let alerts = feed(
        &mut d,
        [
            query("cdn.example.test", 7, CLIENT, RESOLVER, T),
            query("cdn.example.test", 7, CLIENT, RESOLVER, T + 1000),
            response(
                "cdn.example.test",
                7,
                &["203.0.113.1"],
                RESOLVER,
                CLIENT,
                T + 1001,
            ),
            // The answer to the first transmission, late, from another
            // round of the resolver's pool.
            response(
                "cdn.example.test",
                7,
                &["203.0.113.2"],
                RESOLVER,
                CLIENT,
                T + 1002,
            ),
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn several_resolvers_answering_alike_raise_nothing() {
    let mut d = detector();
    let second = "198.51.100.54:53";
    let alerts = feed(
        &mut d,
        [
            query("www.example.test", 7, CLIENT, RESOLVER, T),
            query("www.example.test", 7, CLIENT, second, T),
            response(
                "www.example.test",
                7,
                &["203.0.113.9"],
                RESOLVER,
                CLIENT,
                T + 3,
            ),
            response(
                "www.example.test",
                7,
                &["203.0.113.9"],
                second,
                CLIENT,
                T + 4,
            ),
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn round_robin_inside_the_pinned_set_is_no_conflict() {
    let mut d = detector();
    let alerts = feed(
        &mut d,
        [
            query("db.lab.test", 7, CLIENT, RESOLVER, T),
            response(
                "db.lab.test",
                7,
                &["192.0.2.1", "192.0.2.2"],
                RESOLVER,
                CLIENT,
                T + 1,
            ),
            response("db.lab.test", 7, &["192.0.2.3"], RESOLVER, CLIENT, T + 2),
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
    // The same set in another order is the same answer, for any name.
    let alerts = feed(
        &mut d,
        [
            query("www.example.test", 8, CLIENT, RESOLVER, T + 10),
            response(
                "www.example.test",
                8,
                &["203.0.113.1", "203.0.113.2"],
                RESOLVER,
                CLIENT,
                T + 11,
            ),
            response(
                "www.example.test",
                8,
                &["203.0.113.2", "203.0.113.1"],
                RESOLVER,
                CLIENT,
                T + 12,
            ),
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn truncated_answer_then_tcp_retry_raises_nothing() {
    let mut d = detector();
    let mut truncated = message(MessageType::Response, "big.example.test", 7);
    truncated.set_truncated(true);
    let tcp = |e: Event| match e {
        Event::Dns(mut dns) => {
            dns.transport = Transport::Tcp;
            Event::Dns(dns)
        }
        other => other,
    };
    let alerts = feed(
        &mut d,
        [
            query("big.example.test", 7, CLIENT, RESOLVER, T),
            event(truncated, Direction::Ingress, RESOLVER, CLIENT, T + 1),
            tcp(query(
                "big.example.test",
                8,
                "198.51.100.10:40001",
                RESOLVER,
                T + 2,
            )),
            tcp(response(
                "big.example.test",
                8,
                &["203.0.113.1", "203.0.113.2"],
                RESOLVER,
                "198.51.100.10:40001",
                T + 3,
            )),
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn reply_nobody_asked_for_is_unsolicited_and_names_the_process() {
    let mut d = detector();
    let alerts = feed(
        &mut d,
        [response(
            "www.example.test",
            99,
            &["203.0.113.66"],
            RESOLVER,
            CLIENT,
            T,
        )],
    );
    assert_eq!(rules(&alerts), [Rule::DnsUnsolicitedResponse]);
    let alert = &alerts[0];
    let process = alert.process.as_ref().expect("the receiving process");
    assert_eq!((process.pid, process.name.as_str()), (4242, "python3"));
    assert!(
        alert.message.contains("python3 (pid 4242)"),
        "{}",
        alert.message
    );
    assert_eq!(alert.dns.as_ref().unwrap().id, 99);
    assert_eq!(alert.source, Some(addr(RESOLVER)));
    // From an address no query went to, too.
    let alerts = feed(
        &mut d,
        [
            query("www.example.test", 5, CLIENT, RESOLVER, T + 1),
            response(
                "www.example.test",
                5,
                &["203.0.113.66"],
                "203.0.113.53:53",
                CLIENT,
                T + 2,
            ),
        ],
    );
    assert_eq!(rules(&alerts), [Rule::DnsUnsolicitedResponse]);
}

#[test]
fn no_unsolicited_verdict_while_queries_may_have_gone_unseen() {
    let config = config(CONFIG);
    let mut d = Detector::new(&config);
    // Right after start: the query may predate pinwatch.
    let alerts = feed(
        &mut d,
        [response(
            "www.example.test",
            1,
            &["203.0.113.1"],
            RESOLVER,
            CLIENT,
            0,
        )],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
    // After lost events, for a query timeout.
    d.observe(&Event::Loss(LossEvent {
        timestamp: at(T),
        origin: LossOrigin::KernelDnsPacket,
        count: 3,
    }));
    let during = feed(
        &mut d,
        [response(
            "www.example.test",
            2,
            &["203.0.113.1"],
            RESOLVER,
            CLIENT,
            T + 9_000,
        )],
    );
    assert!(during.is_empty(), "{during:#?}");
    let after = feed(
        &mut d,
        [response(
            "www.example.test",
            3,
            &["203.0.113.1"],
            RESOLVER,
            CLIENT,
            T + 10_001,
        )],
    );
    assert_eq!(rules(&after), [Rule::DnsUnsolicitedResponse]);
}

#[test]
fn reply_after_the_query_timeout_is_unsolicited() {
    let mut d = detector();
    let alerts = feed(
        &mut d,
        [
            query("slow.example.test", 7, CLIENT, RESOLVER, T),
            response(
                "slow.example.test",
                7,
                &["203.0.113.1"],
                RESOLVER,
                CLIENT,
                T + 10_001,
            ),
        ],
    );
    assert_eq!(rules(&alerts), [Rule::DnsUnsolicitedResponse]);
}

#[test]
fn wrong_id_flood_is_one_burst_naming_the_process() {
    let mut d = detector();
    let mut events = vec![query("www.victim.test", 4000, CLIENT, RESOLVER, T)];
    for id in 0..300u16 {
        if id != 4000 {
            events.push(response(
                "www.victim.test",
                id,
                &["203.0.113.66"],
                RESOLVER,
                CLIENT,
                T + 1,
            ));
        }
    }
    events.push(response(
        "www.victim.test",
        4000,
        &["203.0.113.9"],
        RESOLVER,
        CLIENT,
        T + 2,
    ));
    let alerts = feed(&mut d, events);
    assert_eq!(rules(&alerts), [Rule::DnsTxidMismatchBurst], "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert.process.as_ref().unwrap().pid, 4242);
    assert!(
        alert.message.starts_with("10 DNS responses"),
        "{}",
        alert.message
    );
    assert!(
        alert.message.contains("www.victim.test"),
        "{}",
        alert.message
    );
    assert_eq!(alert.destination, Some(addr(CLIENT)));
}

#[test]
fn a_few_wrong_ids_stay_below_the_threshold() {
    let mut d = detector();
    let mut events = vec![query("www.victim.test", 4000, CLIENT, RESOLVER, T)];
    for id in 1..10u16 {
        events.push(response(
            "www.victim.test",
            id,
            &["203.0.113.66"],
            RESOLVER,
            CLIENT,
            T + 1,
        ));
    }
    let alerts = feed(&mut d, events);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn second_different_answer_to_one_query_conflicts() {
    let mut d = detector();
    let alerts = feed(
        &mut d,
        [
            query("db.lab.test", 7, CLIENT, RESOLVER, T),
            response("db.lab.test", 7, &["203.0.113.66"], RESOLVER, CLIENT, T + 1),
            response("db.lab.test", 7, &["192.0.2.10"], RESOLVER, CLIENT, T + 30),
            response("db.lab.test", 7, &["192.0.2.11"], RESOLVER, CLIENT, T + 31),
        ],
    );
    let spoofing: Vec<Rule> = rules(&alerts)
        .into_iter()
        .filter(|r| *r != Rule::DnsAnswerDiverged)
        .collect();
    assert_eq!(spoofing, [Rule::DnsConflictingResponses], "{alerts:#?}");
    let conflict = alerts
        .iter()
        .find(|a| a.rule == Rule::DnsConflictingResponses)
        .unwrap();
    assert_eq!(conflict.database.as_deref(), Some("orders"));
    assert_eq!(conflict.process.as_ref().unwrap().pid, 4242);
    // The forged answer itself is dns-answer-diverged, with the process.
    let diverged = alerts
        .iter()
        .find(|a| a.rule == Rule::DnsAnswerDiverged)
        .unwrap();
    assert_eq!(diverged.process.as_ref().unwrap().name, "python3");
}

#[test]
fn identical_duplicate_answer_is_no_conflict() {
    let mut d = detector();
    let alerts = feed(
        &mut d,
        [
            query("www.example.test", 7, CLIENT, RESOLVER, T),
            response(
                "www.example.test",
                7,
                &["203.0.113.9"],
                RESOLVER,
                CLIENT,
                T + 1,
            ),
            response(
                "www.example.test",
                7,
                &["203.0.113.9"],
                RESOLVER,
                CLIENT,
                T + 2,
            ),
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn question_in_another_letter_case_is_a_case_mismatch() {
    let mut d = detector();
    let alerts = feed(
        &mut d,
        [
            query("wWw.ExAmple.TeSt", 7, CLIENT, RESOLVER, T),
            response(
                "www.example.test",
                7,
                &["203.0.113.9"],
                RESOLVER,
                CLIENT,
                T + 1,
            ),
        ],
    );
    assert_eq!(rules(&alerts), [Rule::DnsCaseMismatch]);
    assert!(
        alerts[0].message.contains("wWw.ExAmple.TeSt"),
        "{}",
        alerts[0].message
    );
    // Copied exactly: nothing.
    let alerts = feed(
        &mut d,
        [
            query("wWw.ExAmple.TeSt", 8, CLIENT, RESOLVER, T + 2),
            response(
                "wWw.ExAmple.TeSt",
                8,
                &["203.0.113.9"],
                RESOLVER,
                CLIENT,
                T + 3,
            ),
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn configured_name_from_an_untrusted_resolver() {
    let mut d = detector();
    let rogue = "203.0.113.53:53";
    let alerts = feed(
        &mut d,
        [
            query("db.lab.test", 7, CLIENT, rogue, T),
            response("db.lab.test", 7, &["192.0.2.10"], rogue, CLIENT, T + 1),
        ],
    );
    assert_eq!(rules(&alerts), [Rule::DnsUntrustedResolver], "{alerts:#?}");
    assert_eq!(alerts[0].database.as_deref(), Some("orders"));
    assert!(
        alerts[0].message.contains("203.0.113.53"),
        "{}",
        alerts[0].message
    );
    // Other names may use any resolver.
    let alerts = feed(
        &mut d,
        [
            query("www.example.test", 8, CLIENT, rogue, T + 2),
            response(
                "www.example.test",
                8,
                &["203.0.113.9"],
                rogue,
                CLIENT,
                T + 3,
            ),
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

fn with_sections(event: Event, authority: Vec<Record>, additional: Vec<Record>) -> Event {
    match event {
        Event::Dns(mut dns) => {
            dns.message.add_name_servers(authority);
            dns.message.add_additionals(additional);
            Event::Dns(dns)
        }
        other => other,
    }
}

fn ns(owner: &str, target: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(owner).unwrap(),
        30,
        RData::NS(rdata::NS(Name::from_ascii(target).unwrap())),
    )
}

#[test]
fn records_outside_the_zone_violate_bailiwick() {
    let mut d = detector();
    let poisoned = with_sections(
        response("db.lab.test", 7, &["192.0.2.10"], RESOLVER, CLIENT, T + 1),
        vec![ns("lab.test", "ns.lab.test")],
        vec![
            a("ns.lab.test", "192.0.2.53"),
            a("www.bank.test", "203.0.113.66"),
        ],
    );
    let alerts = feed(
        &mut d,
        [query("db.lab.test", 7, CLIENT, RESOLVER, T), poisoned],
    );
    assert_eq!(rules(&alerts), [Rule::DnsBailiwickViolation], "{alerts:#?}");
    assert!(
        alerts[0].message.contains("www.bank.test"),
        "{}",
        alerts[0].message
    );
    assert!(
        !alerts[0].message.contains("ns.lab.test"),
        "{}",
        alerts[0].message
    );
    // In-zone records and glue for an out-of-zone nameserver are fine.
    let clean = with_sections(
        response("db.lab.test", 8, &["192.0.2.10"], RESOLVER, CLIENT, T + 3),
        vec![ns("lab.test", "ns1.provider.test")],
        vec![
            a("ns1.provider.test", "198.51.100.7"),
            a("other.lab.test", "192.0.2.9"),
        ],
    );
    let alerts = feed(
        &mut d,
        [query("db.lab.test", 8, CLIENT, RESOLVER, T + 2), clean],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
    // An NS record for a zone the question is not in.
    let hijack = with_sections(
        response("db.lab.test", 9, &["192.0.2.10"], RESOLVER, CLIENT, T + 5),
        vec![ns("bank.test", "ns.evil.test")],
        vec![],
    );
    let alerts = feed(
        &mut d,
        [query("db.lab.test", 9, CLIENT, RESOLVER, T + 4), hijack],
    );
    assert_eq!(rules(&alerts), [Rule::DnsBailiwickViolation], "{alerts:#?}");
}

/// The stub's relay as a capture shows it (a whole response leaving) and as
/// the kernel now summarizes it (a sent record): the same path either way.
#[test]
fn stub_path_names_the_application_stub_and_upstream() {
    let whole = |stub: &str, app: &str| match response(
        "db.lab.test",
        11,
        &["203.0.113.66"],
        stub,
        app,
        T + 3,
    ) {
        Event::Dns(mut dns) => {
            dns.direction = Direction::Egress;
            dns.socket_cookie = 0x57b;
            Event::Dns(dns)
        }
        other => other,
    };
    let summarized = |stub: &str, app: &str| {
        Event::DnsSent(crate::event::DnsSentEvent {
            timestamp: at(T + 3),
            source: addr(stub),
            destination: addr(app),
            id: 11,
        })
    };
    stub_path_case(&whole);
    stub_path_case(&summarized);
}

fn stub_path_case(relay: &dyn Fn(&str, &str) -> Event) {
    let mut d = detector();
    let stub = "127.0.0.1:53";
    let app = "127.0.0.1:41000";
    let stub_upstream_socket = "198.51.100.10:50000";
    let upstream = "198.51.100.53:53";
    const UPSTREAM_SOCKET: u64 = 0x5b0;
    d.observe(&owner(
        UPSTREAM_SOCKET,
        800,
        "dnsmasq",
        OwnerRole::Dns,
        upstream,
    ));
    d.observe(&owner(0xa99, 4300, "psql", OwnerRole::Dns, stub));
    let alerts = feed(
        &mut d,
        [
            with_cookie(query("db.lab.test", 11, app, stub, T), 0xa99),
            with_cookie(
                query("db.lab.test", 22, stub_upstream_socket, upstream, T + 1),
                UPSTREAM_SOCKET,
            ),
            with_cookie(
                response(
                    "db.lab.test",
                    22,
                    &["203.0.113.66"],
                    upstream,
                    stub_upstream_socket,
                    T + 2,
                ),
                UPSTREAM_SOCKET,
            ),
            // The stub relays it: seen leaving the stub, then arriving.
            relay(stub, app),
            with_cookie(
                response("db.lab.test", 11, &["203.0.113.66"], stub, app, T + 3),
                0xa99,
            ),
        ],
    );
    assert_eq!(
        rules(&alerts),
        [Rule::DnsAnswerDiverged, Rule::DnsAnswerDiverged],
        "{alerts:#?}"
    );
    // The upstream's answer, as the stub received it.
    assert_eq!(alerts[0].process.as_ref().unwrap().name, "dnsmasq");
    assert_eq!(alerts[0].path, None);
    // The application's, with the path it took.
    let app_alert = &alerts[1];
    assert_eq!(app_alert.process.as_ref().unwrap().pid, 4300);
    assert_eq!(
        app_alert.path,
        Some(DnsPath {
            stub: addr(stub),
            upstream: addr(upstream),
        })
    );
}

#[test]
fn capture_without_sockets_skips_the_leg_rules() {
    let mut d = detector();
    let alerts = feed(
        &mut d,
        [with_cookie(
            response(
                "db.lab.test",
                1,
                &["192.0.2.10"],
                "203.0.113.53:53",
                CLIENT,
                T,
            ),
            0,
        )],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn queries_over_all_legs_are_bounded_and_counted_as_they_leave() {
    let mut d = detector();
    // 16 queries on each of 5,000 legs: more than the table holds in all.
    for i in 0..80_000u32 {
        let client = format!("10.1.{}.{}:{}", i / 16 / 250, 1 + (i / 16) % 250, 4000);
        d.observe(&query(
            "www.example.test",
            (i % 16) as u16,
            &client,
            RESOLVER,
            T,
        ));
    }
    assert_eq!(d.matching.outstanding(), MAX_QUERIES);
    // The newest leg is whole; older ones went first.
    let leg = |i: u32| super::table::FlowKey {
        client: format!("10.1.{}.{}:4000", i / 16 / 250, 1 + (i / 16) % 250)
            .parse()
            .unwrap(),
        server: RESOLVER.parse().unwrap(),
    };
    let name = Name::from_ascii("www.example.test.").unwrap();
    let asked = Some((&name, RecordType::A, DNSClass::IN));
    for (i, waiting) in [(79_999, true), (0, false)] {
        let found = matches!(
            d.matching.table.lookup(&leg(i), (i % 16) as u16, asked),
            super::table::Lookup::Matched(..)
        );
        assert_eq!(found, waiting, "query {i}");
    }
    // Expiry gives back every query it forgets.
    d.observe(&query("www.example.test", 2, CLIENT, RESOLVER, T + 20_001));
    assert_eq!(d.matching.outstanding(), 1);
}

#[test]
fn legs_are_bounded_and_expire() {
    let mut d = detector();
    for i in 0..(MAX_FLOWS + 100) {
        let port = 1024 + (i % 60_000) as u16;
        let host = i / 60_000;
        let client = format!("10.0.{host}.1:{port}");
        d.observe(&query("www.example.test", 1, &client, RESOLVER, T));
    }
    assert!(d.matching.legs() <= MAX_FLOWS);
    assert!(d.matching.outstanding() <= MAX_QUERIES);
    // A live leg was pushed out: its answer is no proof of spoofing.
    let alerts = feed(
        &mut d,
        [response(
            "www.example.test",
            1,
            &["203.0.113.1"],
            RESOLVER,
            "10.0.0.1:1024",
            T + 1,
        )],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
    d.observe(&query("www.example.test", 2, CLIENT, RESOLVER, T + 20_001));
    assert_eq!(
        d.matching.legs(),
        1,
        "everything older than the timeout is gone"
    );
}

fn connect_from(pid: u32, ms: u64) -> Event {
    Event::Connect(ConnectEvent {
        timestamp: at(ms),
        process: Process {
            pid,
            tid: pid,
            uid: 0,
            gid: 0,
            name: "app".into(),
            cgroup_id: 0,
        },
        destination: "203.0.113.66:26257".parse().unwrap(),
        action: ConnectAction::Allowed,
        socket_cookie: 1,
    })
}

#[test]
fn unseen_resolution_is_said_on_the_connect_alert() {
    let mut d = detector();
    d.observe(&owner(
        0xd07,
        500,
        "app",
        OwnerRole::DnsOverTls,
        "9.9.9.9:853",
    ));
    let alerts = d.observe(&connect_from(500, T));
    let resolver: SocketAddr = "9.9.9.9:853".parse().unwrap();
    assert_eq!(
        alerts[0].resolution,
        Some(Resolution::NotObserved(HiddenResolution::DnsOverTls(
            resolver
        )))
    );
    assert!(
        alerts[0].message.contains("DNS over TLS to 9.9.9.9:853"),
        "{}",
        alerts[0].message
    );
    let alerts = d.observe(&connect_from(501, T));
    assert_eq!(
        alerts[0].resolution,
        Some(Resolution::NotObserved(HiddenResolution::Unknown))
    );
    // An answer seen for the address: observed.
    feed(
        &mut d,
        [
            query("db.lab.test", 7, CLIENT, RESOLVER, T + 1),
            response("db.lab.test", 7, &["203.0.113.66"], RESOLVER, CLIENT, T + 2),
        ],
    );
    let alerts = d.observe(&connect_from(502, T + 3));
    assert_eq!(alerts[0].resolution, Some(Resolution::Observed));
    assert_eq!(
        alerts[0].destination.map(|d| d.ip()),
        Some(IpAddr::from([203, 0, 113, 66]))
    );
}

fn at_interface(event: Event) -> Event {
    match event {
        Event::Dns(mut dns) => {
            dns.seen_at = Hook::Interface;
            dns.socket_cookie = 0;
            Event::Dns(dns)
        }
        other => other,
    }
}

#[test]
fn genuine_answer_after_the_socket_closed_conflicts_at_the_interface() {
    let mut d = detector();
    let forged = response("db.lab.test", 7, &["203.0.113.66"], RESOLVER, CLIENT, T + 1);
    let genuine = response("db.lab.test", 7, &["192.0.2.10"], RESOLVER, CLIENT, T + 40);
    let alerts = feed(
        &mut d,
        [
            query("db.lab.test", 7, CLIENT, RESOLVER, T),
            at_interface(forged.clone()),
            forged,
            // The client took the forged answer and closed its socket: the
            // genuine one reaches only the interface.
            at_interface(genuine),
        ],
    );
    let spoofing: Vec<Rule> = rules(&alerts)
        .into_iter()
        .filter(|r| *r != Rule::DnsAnswerDiverged)
        .collect();
    assert_eq!(spoofing, [Rule::DnsConflictingResponses], "{alerts:#?}");
    // Benign: each answer seen at the interface and at the socket once.
    let answer = response(
        "www.example.test",
        8,
        &["203.0.113.9"],
        RESOLVER,
        CLIENT,
        T + 51,
    );
    let alerts = feed(
        &mut d,
        [
            query("www.example.test", 8, CLIENT, RESOLVER, T + 50),
            at_interface(answer.clone()),
            answer,
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn path_and_resolution_are_encoded_under_pinwatch() {
    let agent = crate::alert::AgentInfo {
        host_name: "h".into(),
        version: "0".into(),
    };
    let mut alert = Alert::new(at(0), Rule::DnsAnswerDiverged, "x".into());
    alert.path = Some(DnsPath {
        stub: addr("127.0.0.1:53"),
        upstream: addr(RESOLVER),
    });
    alert.resolution = Some(Resolution::NotObserved(HiddenResolution::DnsOverHttps(
        addr("1.1.1.1:443"),
    )));
    let doc: serde_json::Value =
        serde_json::from_str(&crate::alert::encode(&alert, &agent, "id")).unwrap();
    assert_eq!(doc["pinwatch"]["path"]["stub"], "127.0.0.1:53");
    assert_eq!(doc["pinwatch"]["path"]["upstream"], RESOLVER);
    assert_eq!(doc["pinwatch"]["resolution"]["status"], "not-observed");
    assert_eq!(doc["pinwatch"]["resolution"]["reason"], "dns-over-https");
    assert_eq!(doc["pinwatch"]["resolution"]["resolver"], "1.1.1.1:443");
    alert.resolution = Some(Resolution::Observed);
    let doc: serde_json::Value =
        serde_json::from_str(&crate::alert::encode(&alert, &agent, "id")).unwrap();
    assert_eq!(
        doc["pinwatch"]["resolution"],
        serde_json::json!({"status": "observed"})
    );
}

/// An owner record for `APP_COOKIE` whose process's resolv.conf names
/// `nameserver`, as the daemon fills it in.
fn owner_with_resolv_conf(nameserver: &str) -> Event {
    let mut event = owner(APP_COOKIE, 4242, "dig", OwnerRole::Dns, "203.0.113.53:53");
    if let Event::DnsOwner(owner) = &mut event {
        owner.resolv_conf = Some(std::sync::Arc::new(crate::event::ResolvConf {
            path: "/etc/netns/lab/resolv.conf".into(),
            nameservers: vec![nameserver.parse().unwrap()],
        }));
    }
    event
}

#[test]
fn trust_follows_the_asking_process_s_resolv_conf() {
    let mut d = detector();
    let own = "203.0.113.53:53";
    // The process was told to ask this resolver: a genuine answer from it
    // is not untrusted.
    let alerts = feed(
        &mut d,
        [
            owner_with_resolv_conf("203.0.113.53"),
            query("db.lab.test", 7, CLIENT, own, T),
            response("db.lab.test", 7, &["192.0.2.10"], own, CLIENT, T + 1),
        ],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
    // The same process asking another resolver still raises it, and the
    // alert says which resolv.conf it had.
    let other = "203.0.113.99:53";
    let alerts = feed(
        &mut d,
        [
            query("db.lab.test", 8, CLIENT, other, T + 2),
            response("db.lab.test", 8, &["192.0.2.10"], other, CLIENT, T + 3),
        ],
    );
    assert_eq!(rules(&alerts), [Rule::DnsUntrustedResolver], "{alerts:#?}");
    let conf = alerts[0]
        .resolv_conf
        .as_ref()
        .expect("pinwatch.resolv_conf");
    assert_eq!(conf.path, "/etc/netns/lab/resolv.conf");
    assert!(
        alerts[0]
            .message
            .contains("nor in its resolv.conf (/etc/netns/lab/resolv.conf: 203.0.113.53)"),
        "{}",
        alerts[0].message
    );
}
