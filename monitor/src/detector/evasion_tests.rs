//! The evasions of the answer rules, on crafted bytes through
//! `Detector::observe`: messages that do not parse whole, answers cut by the
//! kernel's copy, CNAME chains past the follow limit, injected addresses,
//! and the warm-up counted from the daemon's start.
use std::net::IpAddr;

use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{Name, RData, Record, RecordType, rdata},
};

use super::{Detector, MAX_CNAME_DEPTH};
use crate::{
    alert::{Alert, Rule},
    decode::{
        evasions::{Evasion, PADDED_LEN, injected, response},
        read_message,
    },
    event::{Direction, DnsEvent, Event, Section},
    fixtures::{at, config, dns_event},
};

const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["db.lab.test"]
pinned = ["192.0.2.0/24"]

[dns]
trusted_resolvers = ["198.51.100.53"]
txid_mismatch_threshold = 10
query_timeout = "10s"
"#;

const CLIENT: &str = "198.51.100.10:40000";
const RESOLVER: &str = "198.51.100.53:53";
const FORGED: [u8; 4] = [203, 0, 113, 66];
const PINNED: [u8; 4] = [192, 0, 2, 5];
/// DNS bytes the kernel copies of a UDP/IPv4 packet (1,360 from the IP
/// header on).
const COPIED: usize = 1360 - 20 - 8;

/// A detector whose daemon started long before the test's events.
fn detector() -> Detector {
    Detector::started_at(&config(CONFIG), at(0))
}

/// Seconds after the warm-up.
const T: u64 = 100;

fn query_bytes(name: &str, id: u16) -> Vec<u8> {
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    message.to_vec().unwrap()
}

fn dns(bytes: &[u8], direction: Direction, cut: bool, secs: u64) -> Event {
    let parsed = read_message(bytes, cut).expect("a header");
    let (source, destination) = match direction {
        Direction::Egress => (CLIENT, RESOLVER),
        Direction::Ingress => (RESOLVER, CLIENT),
    };
    Event::Dns(DnsEvent {
        truncated: cut,
        socket_cookie: 7,
        malformed: parsed.malformed,
        ..dns_event(parsed.message, direction, source, destination, at(secs))
    })
}

/// The client asks for `name`; the forger answers with `evasion`.
fn exchange(name: &str, evasion: Evasion, address: [u8; 4], cut: bool) -> Vec<Alert> {
    let mut d = detector();
    let query = query_bytes(name, 0x3333);
    let mut forged = response(&query, evasion, address).unwrap();
    if cut {
        forged.truncate(COPIED);
    }
    assert!(
        d.observe(&dns(&query, Direction::Egress, false, T))
            .is_empty()
    );
    d.observe(&dns(&forged, Direction::Ingress, cut, T))
}

fn of_rule(alerts: &[Alert], rule: Rule) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.rule == rule).collect()
}

fn ip(octets: [u8; 4]) -> IpAddr {
    IpAddr::from(octets)
}

#[test]
fn every_malformation_glibc_accepts_is_judged_and_said() {
    for evasion in Evasion::MALFORMED {
        let alerts = exchange("db.lab.test", evasion, FORGED, false);
        let diverged = of_rule(&alerts, Rule::DnsAnswerDiverged);
        assert_eq!(diverged.len(), 1, "{evasion:?}: {alerts:#?}");
        let alert = diverged[0];
        let well_formed = matches!(
            evasion,
            Evasion::PaddedAdditional | Evasion::PaddedAnswer | Evasion::LongCnameChain
        );
        assert_eq!(alert.malformed.is_none(), well_formed, "{evasion:?}");
        if evasion != Evasion::LongCnameChain {
            assert_eq!(alert.unexpected_ips, [ip(FORGED)], "{evasion:?}");
            assert_eq!(alert.database.as_deref(), Some("orders"));
        }
        if !well_formed {
            assert!(
                alert.message.contains("does not parse whole"),
                "{evasion:?}: {}",
                alert.message
            );
        }
    }
}

#[test]
fn a_malformed_answer_inside_the_pinned_set_still_alerts() {
    let alerts = exchange("db.lab.test", Evasion::ArcountPlusOne, PINNED, false);
    let diverged = of_rule(&alerts, Rule::DnsAnswerDiverged);
    assert_eq!(diverged.len(), 1, "{alerts:#?}");
    assert!(diverged[0].unexpected_ips.is_empty());
    let malformed = diverged[0].malformed.as_ref().unwrap();
    assert_eq!(malformed.section, Section::Additional);
    assert!(diverged[0].message.contains("cannot be vouched for"));
    // A well-formed pinned answer raises nothing.
    assert!(exchange("db.lab.test", Evasion::Plain, PINNED, false).is_empty());
}

#[test]
fn malformed_answers_for_other_names_raise_nothing() {
    for evasion in Evasion::MALFORMED {
        let alerts = exchange("www.lab.test", evasion, FORGED, false);
        assert!(alerts.is_empty(), "{evasion:?}: {alerts:#?}");
    }
}

#[test]
fn an_answer_cut_by_the_kernel_copy_is_judged_on_the_bytes_copied() {
    // Padding after the answer: the forged address was copied and judged;
    // the cut in the additional section hides nothing a client reads.
    let alerts = exchange("db.lab.test", Evasion::PaddedAdditional, FORGED, true);
    let diverged = of_rule(&alerts, Rule::DnsAnswerDiverged);
    assert_eq!(diverged.len(), 1, "{alerts:#?}");
    assert_eq!(diverged[0].unexpected_ips, [ip(FORGED)]);
    assert!(diverged[0].malformed.is_none());
    // A pinned answer cut after its answers is no alert.
    assert!(exchange("db.lab.test", Evasion::PaddedAdditional, PINNED, true).is_empty());

    // The answers themselves cut: said, not dropped.
    let alerts = exchange("db.lab.test", Evasion::PaddedAnswer, FORGED, true);
    let diverged = of_rule(&alerts, Rule::DnsAnswerDiverged);
    assert_eq!(diverged.len(), 1, "{alerts:#?}");
    let malformed = diverged[0].malformed.as_ref().unwrap();
    assert!(malformed.cut && malformed.section == Section::Answer);
    assert!(
        diverged[0]
            .message
            .contains("longer than the kernel copies"),
        "{}",
        diverged[0].message
    );
    const { assert!(PADDED_LEN > COPIED) };
}

#[test]
fn a_cname_chain_past_the_follow_limit_alerts_with_the_links_followed() {
    let alerts = exchange("db.lab.test", Evasion::LongCnameChain, FORGED, false);
    let diverged = of_rule(&alerts, Rule::DnsAnswerDiverged);
    assert_eq!(diverged.len(), 1, "{alerts:#?}");
    let alert = diverged[0];
    assert_eq!(alert.cname_chain_cut.len(), MAX_CNAME_DEPTH + 1);
    assert_eq!(alert.cname_chain_cut[0], "db.lab.test");
    assert_eq!(alert.cname_chain_cut[1], "c0.db.lab.test");
    assert!(
        alert.message.contains("reaching no address"),
        "{}",
        alert.message
    );
    // Its addresses went unjudged: no `unexpected` to show, but the alert.
    assert!(alert.unexpected_ips.is_empty());
}

#[test]
fn rules_of_the_header_and_question_run_on_malformed_messages() {
    let query = query_bytes("db.lab.test", 0x3333);
    let malformed = |id: u16, address: [u8; 4]| {
        let mut bytes = response(&query, Evasion::ArcountPlusOne, address).unwrap();
        bytes[..2].copy_from_slice(&id.to_be_bytes());
        bytes
    };

    // Unsolicited: no query on the leg.
    let mut d = detector();
    let alerts = d.observe(&dns(&malformed(1, PINNED), Direction::Ingress, false, T));
    assert_eq!(of_rule(&alerts, Rule::DnsUnsolicitedResponse).len(), 1);

    // A burst of wrong ids while the query waits.
    let mut d = detector();
    d.observe(&dns(&query, Direction::Egress, false, T));
    let alerts: Vec<Alert> = (0..10u16)
        .flat_map(|i| {
            d.observe(&dns(
                &malformed(100 + i, FORGED),
                Direction::Ingress,
                false,
                T,
            ))
        })
        .collect();
    assert_eq!(of_rule(&alerts, Rule::DnsTxidMismatchBurst).len(), 1);

    // Two different answers to one query.
    let mut d = detector();
    d.observe(&dns(&query, Direction::Egress, false, T));
    d.observe(&dns(
        &malformed(0x3333, PINNED),
        Direction::Ingress,
        false,
        T,
    ));
    let alerts = d.observe(&dns(
        &malformed(0x3333, FORGED),
        Direction::Ingress,
        false,
        T,
    ));
    assert_eq!(of_rule(&alerts, Rule::DnsConflictingResponses).len(), 1);

    // The question in another letter case (0x20).
    let mut d = detector();
    d.observe(&dns(&query, Direction::Egress, false, T));
    let spelled = query_bytes("DB.lab.test", 0x3333);
    let forged = response(&spelled, Evasion::ArcountPlusOne, FORGED).unwrap();
    let alerts = d.observe(&dns(&forged, Direction::Ingress, false, T));
    assert_eq!(of_rule(&alerts, Rule::DnsCaseMismatch).len(), 1);
}

fn a(owner: &str, address: [u8; 4]) -> Record {
    Record::from_rdata(
        Name::from_ascii(owner).unwrap(),
        60,
        RData::A(rdata::A(address.into())),
    )
}

#[test]
fn addresses_for_a_watched_name_answering_another_question_are_injection() {
    let mut d = detector();
    let query = query_bytes("www.lab.test", 9);
    d.observe(&dns(&query, Direction::Egress, false, T));
    let poisoned = injected(&query, [198, 51, 100, 80], "db.lab.test", FORGED).unwrap();
    let alerts = d.observe(&dns(&poisoned, Direction::Ingress, false, T));
    let injected = of_rule(&alerts, Rule::DnsBailiwickViolation);
    assert_eq!(injected.len(), 1, "{alerts:#?}");
    assert_eq!(injected[0].database.as_deref(), Some("orders"));
    assert_eq!(injected[0].unexpected_ips, [ip(FORGED)]);
    assert!(
        injected[0]
            .message
            .contains("db.lab.test 203.0.113.66 in the additional section"),
        "{}",
        injected[0].message
    );

    // In the answer section, and in the authority section, alike.
    let mut message = Message::new();
    message
        .set_id(10)
        .set_message_type(MessageType::Response)
        .add_query(Query::query(
            Name::from_ascii("www.lab.test.").unwrap(),
            RecordType::A,
        ));
    message.add_answer(a("www.lab.test.", [198, 51, 100, 80]));
    message.add_answer(a("DB.lab.test.", FORGED));
    message.add_name_server(a("db.lab.test.", [203, 0, 113, 67]));
    let alerts = d.observe(&dns(
        &message.to_vec().unwrap(),
        Direction::Ingress,
        false,
        T,
    ));
    let injected = of_rule(&alerts, Rule::DnsBailiwickViolation);
    assert_eq!(injected.len(), 1, "{alerts:#?}");
    assert_eq!(
        injected[0].unexpected_ips,
        [ip(FORGED), ip([203, 0, 113, 67])]
    );
    assert!(of_rule(&alerts, Rule::DnsAnswerDiverged).is_empty());
}

#[test]
fn a_watched_name_on_the_questions_chain_is_an_answer_not_an_injection() {
    let mut d = detector();
    let mut message = Message::new();
    message
        .set_id(11)
        .set_message_type(MessageType::Response)
        .add_query(Query::query(
            Name::from_ascii("alias.lab.test.").unwrap(),
            RecordType::A,
        ));
    message.add_answer(Record::from_rdata(
        Name::from_ascii("alias.lab.test.").unwrap(),
        60,
        RData::CNAME(rdata::CNAME(Name::from_ascii("db.lab.test.").unwrap())),
    ));
    message.add_answer(a("db.lab.test.", FORGED));
    let alerts = d.observe(&dns(
        &message.to_vec().unwrap(),
        Direction::Ingress,
        false,
        T,
    ));
    assert!(of_rule(&alerts, Rule::DnsBailiwickViolation).is_empty());
    assert_eq!(of_rule(&alerts, Rule::DnsAnswerDiverged).len(), 1);
}

#[test]
fn the_warm_up_counts_from_the_daemons_start() {
    let forged = response(&query_bytes("db.lab.test", 5), Evasion::Plain, FORGED).unwrap();
    // A quiet host: the forged reply is the first DNS message, long after
    // the daemon started.
    let mut d = Detector::started_at(&config(CONFIG), at(0));
    let alerts = d.observe(&dns(&forged, Direction::Ingress, false, 60));
    assert_eq!(of_rule(&alerts, Rule::DnsUnsolicitedResponse).len(), 1);
    // Right after the start, a reply may answer a query sent before.
    let mut d = Detector::started_at(&config(CONFIG), at(0));
    let alerts = d.observe(&dns(&forged, Direction::Ingress, false, 1));
    assert!(of_rule(&alerts, Rule::DnsUnsolicitedResponse).is_empty());
    // A capture has no start: its first message opens the warm-up.
    let mut d = Detector::new(&config(CONFIG));
    let alerts = d.observe(&dns(&forged, Direction::Ingress, false, 60));
    assert!(of_rule(&alerts, Rule::DnsUnsolicitedResponse).is_empty());
}
