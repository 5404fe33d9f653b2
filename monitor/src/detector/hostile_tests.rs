//! Issue 10's crash input — an OPT record with RDATA in the answer section,
//! whose hickory `Display` fails — through `Detector::observe` on every rule
//! path that writes or compares answer records: each must raise its alert,
//! with the record rendered, instead of panicking.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{Name, RData, Record, RecordType, rdata},
};

use super::Detector;
use crate::{
    alert::{Alert, Rule},
    decode::{self, test_packets::OPT_ANSWER},
    event::{Direction, DnsEvent, Event, Hook, Transport},
    fixtures::{config, dns_event},
};

const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["db.lab.test"]
pinned = ["192.0.2.0/24"]

[dns]
trusted_resolvers = ["198.51.100.53"]
txid_mismatch_threshold = 3
"#;

const CLIENT: &str = "198.51.100.10:40000";
const RESOLVER: &str = "198.51.100.53:53";
const COOKIE: u64 = 0xc0;
/// The OPT record's text in an alert: the generic form of its 12 bytes.
const OPT_TEXT: &str = "\\# 12 000a00084142434445464748";

fn at(ms: u64) -> SystemTime {
    // A minute after the first event: past the startup grace.
    UNIX_EPOCH + Duration::from_secs(1_790_000_060) + Duration::from_millis(ms)
}

pub(super) fn detector() -> Detector {
    let config = config(CONFIG);
    let mut detector = Detector::new(&config);
    detector.observe(&query("warm.up", 1, at(0) - Duration::from_secs(60)));
    detector
}

fn opt_record() -> Record {
    let mut crash = Message::from_vec(&OPT_ANSWER).unwrap();
    crash.take_answers().remove(0)
}

fn message(kind: MessageType, name: &str, id: u16) -> Message {
    let question = Query::query(Name::from_ascii(name).unwrap(), RecordType::A);
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(kind)
        .add_query(question);
    message
}

fn dns(message: Message, direction: Direction, from: &str, to: &str, time: SystemTime) -> DnsEvent {
    DnsEvent {
        socket_cookie: COOKIE,
        ..dns_event(message, direction, from, to, time)
    }
}

fn query(name: &str, id: u16, time: SystemTime) -> Event {
    let query = message(MessageType::Query, name, id);
    Event::Dns(dns(query, Direction::Egress, CLIENT, RESOLVER, time))
}

/// A response for `name` from `from`: `ip` as its address, then the OPT.
fn hostile(name: &str, id: u16, ip: &str, from: &str, ms: u64) -> DnsEvent {
    let mut response = message(MessageType::Response, name, id);
    let address = RData::A(rdata::A(ip.parse().unwrap()));
    response.add_answer(Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        30,
        address,
    ));
    response.add_answer(opt_record());
    dns(response, Direction::Ingress, from, CLIENT, at(ms))
}

/// Feeds the events; returns the alerts of `rule`, each checked to carry
/// the OPT record as text.
fn raised(detector: &mut Detector, events: Vec<Event>, rule: Rule) -> Vec<Alert> {
    let alerts: Vec<Alert> = events
        .iter()
        .flat_map(|event| detector.observe(event))
        .filter(|alert| alert.rule == rule)
        .collect();
    assert!(!alerts.is_empty(), "no {rule:?}");
    for alert in &alerts {
        let answers = &alert.dns.as_ref().unwrap().answers;
        assert!(
            answers
                .iter()
                .any(|a| a.record_type == "OPT" && a.data == OPT_TEXT),
            "{answers:?}"
        );
        // And the alert encodes.
        let line = crate::alert::encode(alert, &test_agent(), "id");
        assert!(line.contains("000a0008"), "{line}");
    }
    alerts
}

fn test_agent() -> crate::alert::AgentInfo {
    crate::alert::AgentInfo {
        host_name: "test".into(),
        version: "0".into(),
    }
}

#[test]
fn the_crash_datagram_itself_is_judged_unsolicited() {
    let mut d = detector();
    let packet = decode::test_packets::udp4(
        [198, 51, 100, 53],
        [198, 51, 100, 10],
        (53, 40000),
        &OPT_ANSWER,
    );
    let meta = decode::test_packets::meta(Direction::Ingress, false);
    let mut events = decode::parse_ip_dns(&packet, meta).unwrap();
    for event in &mut events {
        event.timestamp = at(0);
        event.socket_cookie = COOKIE;
    }
    let events = events.into_iter().map(Event::Dns).collect();
    raised(&mut d, events, Rule::DnsUnsolicitedResponse);
}

#[test]
fn diverged_answer_with_an_opt_record_alerts_over_udp_and_tcp() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut d = detector();
        let mut response = hostile("db.lab.test", 9, "203.0.113.66", RESOLVER, 5);
        response.transport = transport;
        let events = vec![query("db.lab.test", 9, at(0)), Event::Dns(response)];
        let alerts = raised(&mut d, events, Rule::DnsAnswerDiverged);
        assert_eq!(
            alerts[0].unexpected_ips,
            ["203.0.113.66".parse::<std::net::IpAddr>().unwrap()]
        );
    }
}

#[test]
fn txid_burst_of_opt_answers_alerts() {
    let mut d = detector();
    let mut events = vec![query("db.lab.test", 9, at(0))];
    for id in 100..104 {
        events.push(Event::Dns(hostile(
            "db.lab.test",
            id,
            "192.0.2.1",
            RESOLVER,
            1,
        )));
    }
    raised(&mut d, events, Rule::DnsTxidMismatchBurst);
}

#[test]
fn second_answer_with_an_opt_record_conflicts() {
    let mut d = detector();
    let first = hostile("db.lab.test", 9, "192.0.2.1", RESOLVER, 2);
    let second = hostile("db.lab.test", 9, "203.0.113.66", RESOLVER, 3);
    let events = vec![
        query("db.lab.test", 9, at(0)),
        Event::Dns(first),
        Event::Dns(second),
    ];
    raised(&mut d, events, Rule::DnsConflictingResponses);
}

#[test]
fn opt_answer_seen_only_at_the_interface_conflicts() {
    let mut d = detector();
    let mut genuine = message(MessageType::Response, "www.other.test", 9);
    genuine.add_answer(Record::from_rdata(
        Name::from_ascii("www.other.test").unwrap(),
        30,
        RData::A(rdata::A([192, 0, 2, 1].into())),
    ));
    let genuine = dns(genuine, Direction::Ingress, RESOLVER, CLIENT, at(2));
    let mut at_interface = genuine.clone();
    at_interface.seen_at = Hook::Interface;
    let mut late = hostile("www.other.test", 9, "203.0.113.66", RESOLVER, 4);
    late.seen_at = Hook::Interface;
    let events = vec![
        query("www.other.test", 9, at(0)),
        Event::Dns(at_interface),
        Event::Dns(genuine),
        Event::Dns(late),
    ];
    raised(&mut d, events, Rule::DnsConflictingResponses);
}

#[test]
fn case_mismatch_with_an_opt_record_alerts() {
    let mut d = detector();
    let response = hostile("DB.lab.test", 9, "192.0.2.1", RESOLVER, 2);
    let events = vec![query("db.lab.test", 9, at(0)), Event::Dns(response)];
    raised(&mut d, events, Rule::DnsCaseMismatch);
}

#[test]
fn untrusted_resolver_and_bailiwick_with_an_opt_record_alert() {
    const ROGUE: &str = "203.0.113.53:53";
    let mut response = hostile("db.lab.test", 9, "192.0.2.1", ROGUE, 2);
    response.message.add_additional(Record::from_rdata(
        Name::from_ascii("bank.example").unwrap(),
        30,
        RData::A(rdata::A([203, 0, 113, 7].into())),
    ));
    let ask = message(MessageType::Query, "db.lab.test", 9);
    let ask = dns(ask, Direction::Egress, CLIENT, ROGUE, at(0));
    for rule in [Rule::DnsUntrustedResolver, Rule::DnsBailiwickViolation] {
        let events = vec![Event::Dns(ask.clone()), Event::Dns(response.clone())];
        raised(&mut detector(), events, rule);
    }
}

#[test]
fn fragmented_opt_answer_alerts() {
    let mut d = detector();
    let mut response = hostile("db.lab.test", 9, "203.0.113.66", RESOLVER, 2);
    response.seen_at = Hook::Interface;
    response.fragmented = true;
    let events = vec![query("db.lab.test", 9, at(0)), Event::Dns(response)];
    raised(&mut d, events, Rule::DnsFragmentedResponse);
}

/// A query for `name` sent `ms` after the test's start.
pub(super) fn query_at(name: &str, id: u16, ms: u64) -> Event {
    query(name, id, at(ms))
}

/// A plain forged answer for db.lab.test, outside its pinned set.
pub(super) fn diverged(id: u16, ms: u64) -> Event {
    let mut response = message(MessageType::Response, "db.lab.test", id);
    let address = RData::A(rdata::A([203, 0, 113, 66].into()));
    response.add_answer(Record::from_rdata(
        Name::from_ascii("db.lab.test").unwrap(),
        30,
        address,
    ));
    Event::Dns(dns(response, Direction::Ingress, RESOLVER, CLIENT, at(ms)))
}
