use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{Name, RData, Record, RecordType, rdata},
};

use super::*;
use crate::{
    event::{ConnectAction, Direction, LossOrigin},
    fixtures::{at, config, connect_event, dns_event},
};

const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["Cockroach.Prod.Internal."]
ports = [26257]
pinned = ["192.0.2.0/24", "2001:db8::7"]

[[database]]
name = "billing"
hostnames = ["billing.prod.internal"]
ports = [26257, 5432]
pinned = ["198.51.100.20"]
"#;

fn detector() -> Detector {
    Detector::new(&config(CONFIG))
}

fn name(text: &str) -> Name {
    // from_ascii keeps letter case, as names parsed off the wire do.
    Name::from_ascii(text).unwrap()
}

fn record(owner: &str, data: RData) -> Record {
    Record::from_rdata(name(owner), 30, data)
}

fn a(owner: &str, ip: &str) -> Record {
    record(owner, RData::A(rdata::A(ip.parse().unwrap())))
}

fn aaaa(owner: &str, ip: &str) -> Record {
    record(owner, RData::AAAA(rdata::AAAA(ip.parse().unwrap())))
}

fn cname(owner: &str, target: &str) -> Record {
    record(owner, RData::CNAME(rdata::CNAME(name(target))))
}

fn response(question: &str, qtype: RecordType, answers: Vec<Record>) -> Message {
    let mut message = Message::new();
    message
        .set_id(4242)
        .set_message_type(MessageType::Response)
        .add_query(Query::query(name(question), qtype));
    message.add_answers(answers);
    message
}

fn dns(message: Message, direction: Direction, secs: u64) -> Event {
    Event::Dns(dns_event(
        message,
        direction,
        "198.51.100.53:53",
        "198.51.100.10:40000",
        at(secs),
    ))
}

fn answer(question: &str, qtype: RecordType, answers: Vec<Record>) -> Event {
    dns(response(question, qtype, answers), Direction::Ingress, 0)
}

fn connect(destination: &str, secs: u64) -> Event {
    connect_event(destination, ConnectAction::Allowed, at(secs))
}

#[test]
fn forged_a_answer_raises_divergence_with_fields() {
    let mut detector = detector();
    let alerts = detector.observe(&answer(
        "cockroach.prod.internal.",
        RecordType::A,
        vec![a("cockroach.prod.internal.", "203.0.113.66")],
    ));
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.rule, Rule::DnsAnswerDiverged);
    assert_eq!(alert.database.as_deref(), Some("orders"));
    assert_eq!(
        alert.unexpected_ips,
        vec!["203.0.113.66".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(alert.source, Some("198.51.100.53:53".parse().unwrap()));
    let facts = alert.dns.as_ref().unwrap();
    assert_eq!(facts.question_name, "cockroach.prod.internal");
    assert_eq!(facts.question_type, "A");
    assert_eq!(facts.id, 4242);
    assert_eq!(facts.answers.len(), 1);
    assert!(
        alert.message.contains("203.0.113.66") && alert.message.contains("orders"),
        "{}",
        alert.message
    );
    assert_eq!(
        detector
            .last_answer("cockroach.prod.internal")
            .unwrap()
            .verdict,
        Verdict::Diverged
    );
}

#[test]
fn pinned_answers_raise_nothing_and_update_last_answer() {
    let mut detector = detector();
    let alerts = detector.observe(&answer(
        "cockroach.prod.internal.",
        RecordType::A,
        vec![
            a("cockroach.prod.internal.", "192.0.2.10"),
            a("cockroach.prod.internal.", "192.0.2.11"),
        ],
    ));
    assert!(alerts.is_empty(), "{alerts:?}");
    let last = detector.last_answer("cockroach.prod.internal").unwrap();
    assert_eq!(last.verdict, Verdict::Pinned);
    assert_eq!(last.addresses.len(), 2);
    assert_eq!(last.ttl, 30);
    assert_eq!(last.resolver, "198.51.100.53".parse::<IpAddr>().unwrap());
}

#[test]
fn names_compare_case_insensitively_without_trailing_dot() {
    let mut detector = detector();
    let alerts = detector.observe(&answer(
        "COCKROACH.prod.INTERNAL.",
        RecordType::A,
        vec![a("cockroach.PROD.internal.", "203.0.113.1")],
    ));
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].dns.as_ref().unwrap().question_name,
        "COCKROACH.prod.INTERNAL"
    );
}

#[test]
fn aaaa_outside_pinned_set_diverges_and_pinned_v6_does_not() {
    let mut detector = detector();
    let ok = detector.observe(&answer(
        "cockroach.prod.internal.",
        RecordType::AAAA,
        vec![aaaa("cockroach.prod.internal.", "2001:db8::7")],
    ));
    assert!(ok.is_empty());
    let bad = detector.observe(&answer(
        "cockroach.prod.internal.",
        RecordType::AAAA,
        vec![aaaa("cockroach.prod.internal.", "2001:db8:bad::66")],
    ));
    assert_eq!(bad.len(), 1);
    assert_eq!(
        bad[0].unexpected_ips,
        vec!["2001:db8:bad::66".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn cname_chain_is_followed_to_the_addresses() {
    let mut detector = detector();
    // The configured name is the alias the client asked for.
    let alerts = detector.observe(&answer(
        "cockroach.prod.internal.",
        RecordType::A,
        vec![
            cname("cockroach.prod.internal.", "lb.cloud.test."),
            cname("lb.cloud.test.", "node7.cloud.test."),
            a("node7.cloud.test.", "203.0.113.9"),
        ],
    ));
    assert_eq!(alerts.len(), 1);
    // The configured name is the target of the client's alias.
    let alerts = detector.observe(&answer(
        "www.shop.test.",
        RecordType::A,
        vec![
            cname("www.shop.test.", "billing.prod.internal."),
            a("billing.prod.internal.", "203.0.113.10"),
        ],
    ));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].database.as_deref(), Some("billing"));
}

#[test]
fn cname_loops_and_overlong_chains_end() {
    let mut detector = detector();
    let looped = detector.observe(&answer(
        "cockroach.prod.internal.",
        RecordType::A,
        vec![
            cname("cockroach.prod.internal.", "x.test."),
            cname("x.test.", "cockroach.prod.internal."),
            a("x.test.", "203.0.113.5"),
        ],
    ));
    assert_eq!(looped.len(), 1, "addresses of the loop's names still count");
    let mut records = Vec::new();
    let mut owner = "cockroach.prod.internal.".to_owned();
    for hop in 0..=MAX_CNAME_DEPTH + 2 {
        let target = format!("hop{hop}.test.");
        records.push(cname(&owner, &target));
        owner = target;
    }
    records.push(a(&owner, "203.0.113.5"));
    // Beyond the depth bound no address is attributed, but the cut chain is
    // said: a stub resolver follows it to the end.
    let cut = detector.observe(&answer("cockroach.prod.internal.", RecordType::A, records));
    assert_eq!(cut.len(), 1, "{cut:#?}");
    assert!(cut[0].unexpected_ips.is_empty());
    assert_eq!(cut[0].cname_chain_cut.len(), MAX_CNAME_DEPTH + 1);
}

#[test]
fn unrelated_names_queries_and_egress_copies_raise_nothing() {
    let mut detector = detector();
    assert!(
        detector
            .observe(&answer(
                "example.test.",
                RecordType::A,
                vec![a("example.test.", "203.0.113.66")]
            ))
            .is_empty()
    );
    let forged = response(
        "cockroach.prod.internal.",
        RecordType::A,
        vec![a("cockroach.prod.internal.", "203.0.113.66")],
    );
    assert!(
        detector
            .observe(&dns(forged.clone(), Direction::Egress, 0))
            .is_empty()
    );
    let mut query = forged;
    query.set_message_type(MessageType::Query);
    assert!(
        detector
            .observe(&dns(query, Direction::Ingress, 0))
            .is_empty()
    );
    assert_eq!(detector.counters().dns_messages, 3);
}

#[test]
fn connect_outside_pins_names_process_and_domain() {
    let mut detector = detector();
    detector.observe(&answer(
        "cockroach.prod.internal.",
        RecordType::A,
        vec![a("cockroach.prod.internal.", "203.0.113.66")],
    ));
    let alerts = detector.observe(&connect("203.0.113.66:26257", 5));
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.rule, Rule::UnexpectedDbPeer);
    assert_eq!(
        alert.destination,
        Some("203.0.113.66:26257".parse().unwrap())
    );
    assert_eq!(
        alert.destination_domain.as_deref(),
        Some("cockroach.prod.internal")
    );
    assert_eq!(alert.database.as_deref(), Some("orders"));
    let process = alert.process.as_ref().unwrap();
    assert_eq!((process.pid, process.name.as_str()), (4321, "python3"));
    // Port 26257 is watched by both databases: either pinned set allows it.
    assert_eq!(alert.pinned.len(), 3);
}

#[test]
fn connects_to_pinned_or_unwatched_destinations_raise_nothing() {
    let mut detector = detector();
    assert!(
        detector
            .observe(&connect("192.0.2.200:26257", 0))
            .is_empty()
    );
    assert!(
        detector
            .observe(&connect("198.51.100.20:26257", 0))
            .is_empty(),
        "pinned by billing, which watches 26257 too"
    );
    assert!(
        detector
            .observe(&connect("198.51.100.20:5432", 0))
            .is_empty()
    );
    assert!(
        detector
            .observe(&connect("[2001:db8::7]:26257", 0))
            .is_empty()
    );
    assert!(detector.observe(&connect("203.0.113.66:443", 0)).is_empty());
    assert_eq!(detector.counters().connects, 5);
}

#[test]
fn mapped_ipv6_connect_is_compared_as_ipv4() {
    let mut detector = detector();
    assert!(
        detector
            .observe(&connect("[::ffff:192.0.2.9]:26257", 0))
            .is_empty()
    );
    let alerts = detector.observe(&connect("[::ffff:203.0.113.66]:26257", 0));
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].destination.unwrap().ip(),
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66))
    );
}

#[test]
fn connect_without_recent_answer_has_no_domain_and_port_database() {
    let mut detector = detector();
    let alerts = detector.observe(&connect("203.0.113.70:5432", 0));
    assert_eq!(alerts[0].destination_domain, None);
    assert_eq!(
        alerts[0].database.as_deref(),
        Some("billing"),
        "the only database on 5432"
    );
    let alerts = detector.observe(&connect("203.0.113.70:26257", 0));
    assert_eq!(
        alerts[0].database, None,
        "two databases share 26257 and no answer says which"
    );
}

#[test]
fn recent_answers_expire() {
    let mut detector = detector();
    detector.observe(&answer(
        "cockroach.prod.internal.",
        RecordType::A,
        vec![a("cockroach.prod.internal.", "203.0.113.66")],
    ));
    let alerts = detector.observe(&connect("203.0.113.66:26257", 24 * 3600));
    assert_eq!(alerts[0].destination_domain, None);
}

#[test]
fn recent_answers_stay_bounded() {
    let mut recent = RecentAnswers::with_capacity(4);
    let name = Name::from_ascii("N.lab.test.").unwrap();
    for i in 0..100u32 {
        recent.remember(IpAddr::V6(Ipv6Addr::from(u128::from(i))), &name, 30, at(0));
    }
    assert_eq!(recent.len(), 4);
    // The hostname text, as configured hostnames are compared.
    assert_eq!(
        recent
            .name_for(IpAddr::V6(Ipv6Addr::from(99u128)), at(0))
            .as_deref(),
        Some("n.lab.test")
    );
    assert_eq!(
        recent.name_for(IpAddr::V6(Ipv6Addr::from(0u128)), at(0)),
        None
    );
}

#[test]
fn a_restart_raises_one_gap_alert_with_its_length_backlog_and_losses() {
    let mut detector = detector();
    let restart = RestartEvent {
        timestamp: at(30),
        gap: Some(std::time::Duration::from_millis(12_500)),
        backlog_records: 41,
        lost: 3,
    };
    let alerts = detector.observe(&Event::Restarted(restart));
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.rule, Rule::PinwatchRestarted);
    assert_eq!(alert.timestamp, at(30));
    assert_eq!(
        alert.restart,
        Some(RestartFacts {
            gap: Some(std::time::Duration::from_millis(12_500)),
            backlog_records: 41,
            records_lost: 3,
        })
    );
    assert!(
        alert.message.contains("not running for 12.5 s"),
        "{}",
        alert.message
    );
    assert!(alert.message.contains("41 records"), "{}", alert.message);
    assert_eq!(detector.counters().alerts[&Rule::PinwatchRestarted], 1);
}

#[test]
fn loss_raises_event_loss_with_count_and_counts_it() {
    let mut detector = detector();
    let loss = LossEvent {
        timestamp: at(0),
        origin: LossOrigin::KernelDnsPacket,
        count: 17,
    };
    let alerts = detector.observe(&Event::Loss(loss));
    assert_eq!(alerts[0].rule, Rule::EventLoss);
    assert_eq!(alerts[0].lost.as_ref().unwrap().count, 17);
    assert_eq!(detector.counters().events_lost, 17);
    assert_eq!(detector.counters().alerts[&Rule::EventLoss], 1);
    let zero = LossEvent {
        timestamp: at(0),
        origin: LossOrigin::KernelConnect,
        count: 0,
    };
    assert!(detector.observe(&Event::Loss(zero)).is_empty());
}
