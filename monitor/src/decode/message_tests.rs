use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::rr::{RData, RecordType};

use super::*;
use crate::decode::{
    evasions::{Evasion, LONG_CHAIN, PADDED_LEN, injected, response},
    test_packets::query,
};

const FORGED: [u8; 4] = [203, 0, 113, 66];

fn forged(evasion: Evasion) -> Vec<u8> {
    let q = query(0x3333, "db.lab.test.").to_vec().unwrap();
    response(&q, evasion, FORGED).unwrap()
}

fn addresses(message: &Message) -> Vec<IpAddr> {
    message
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

/// Where each malformation stops hickory, and that the forged answer is
/// read all the same.
#[test]
fn every_evasion_yields_its_forged_answer_and_names_the_fault() {
    let expected = [
        (Evasion::ArcountPlusOne, Section::Additional, 0),
        (Evasion::NscountPlusOne, Section::Authority, 0),
        (Evasion::ReservedLabelType, Section::Additional, 0),
        (Evasion::ForwardPointer, Section::Additional, 0),
        (Evasion::TwoOpt, Section::Additional, 1),
        (Evasion::BadSvcbSecondAnswer, Section::Answer, 1),
        (Evasion::BadSvcbFirstAnswer, Section::Answer, 0),
        (Evasion::AuthorityPastEnd, Section::Authority, 0),
    ];
    for (evasion, section, record) in expected {
        let bytes = forged(evasion);
        assert!(
            Message::from_vec(&bytes).is_err(),
            "{evasion:?} parses whole"
        );
        let parsed = read_message(&bytes, false).unwrap();
        assert_eq!(parsed.message.id(), 0x3333);
        assert_eq!(parsed.message.queries().len(), 1, "{evasion:?}");
        assert_eq!(
            addresses(&parsed.message),
            [IpAddr::V4(Ipv4Addr::from(FORGED))],
            "{evasion:?}"
        );
        let malformed = parsed.malformed.unwrap();
        assert_eq!(
            (malformed.section, malformed.record, malformed.cut),
            (section, record, false),
            "{evasion:?}: {malformed:?}"
        );
        assert!(malformed.offset > 12 && malformed.offset <= bytes.len());
    }
}

#[test]
fn well_formed_messages_parse_whole() {
    for evasion in [
        Evasion::Plain,
        Evasion::PaddedAdditional,
        Evasion::PaddedAnswer,
        Evasion::LongCnameChain,
    ] {
        let bytes = forged(evasion);
        let whole = Message::from_vec(&bytes).unwrap();
        let parsed = read_message(&bytes, false).unwrap();
        assert!(parsed.malformed.is_none(), "{evasion:?}");
        assert_eq!(parsed.message.answers(), whole.answers());
    }
    assert_eq!(forged(Evasion::PaddedAdditional).len(), PADDED_LEN);
    assert_eq!(forged(Evasion::PaddedAnswer).len(), PADDED_LEN);
    let chain = read_message(&forged(Evasion::LongCnameChain), false).unwrap();
    assert_eq!(chain.message.answers().len(), LONG_CHAIN + 1);
    let q = query(1, "other.lab.test.").to_vec().unwrap();
    let poisoned = injected(&q, [192, 0, 2, 1], "db.lab.test", FORGED).unwrap();
    let parsed = read_message(&poisoned, false).unwrap();
    assert!(parsed.malformed.is_none());
    assert_eq!(parsed.message.additionals().len(), 1);
}

/// The kernel copies 1,360 bytes of a packet: 1,332 of a DNS message over
/// UDP and IPv4.
#[test]
fn a_cut_copy_keeps_the_answers_before_the_cut() {
    const COPIED: usize = 1360 - 20 - 8;
    let padded = forged(Evasion::PaddedAdditional);
    let parsed = read_message(&padded[..COPIED], true).unwrap();
    assert_eq!(addresses(&parsed.message), [IpAddr::V4(FORGED.into())]);
    let malformed = parsed.malformed.unwrap();
    assert_eq!(
        (malformed.section, malformed.cut),
        (Section::Additional, true)
    );

    let padded = forged(Evasion::PaddedAnswer);
    let parsed = read_message(&padded[..COPIED], true).unwrap();
    assert!(parsed.message.answers().is_empty());
    let malformed = parsed.malformed.unwrap();
    assert_eq!(
        (malformed.section, malformed.record, malformed.cut),
        (Section::Answer, 0, true)
    );
}

#[test]
fn a_question_that_does_not_parse_leaves_the_header() {
    let mut bytes = forged(Evasion::Plain);
    bytes[12] = 0x80; // a reserved label type in the question name
    let parsed = read_message(&bytes, false).unwrap();
    assert_eq!(parsed.message.id(), 0x3333);
    assert!(parsed.message.queries().is_empty());
    assert!(parsed.message.answers().is_empty());
    let malformed = parsed.malformed.unwrap();
    assert_eq!(
        (malformed.section, malformed.offset),
        (Section::Question, 12)
    );
    assert!(read_message(&bytes[..11], false).is_none());
}

#[test]
fn one_opt_record_becomes_the_edns_of_the_message() {
    let mut bytes = forged(Evasion::TwoOpt);
    // Announce only the first of the two.
    bytes[11] = 1;
    let parsed = read_message(&bytes, false).unwrap();
    assert!(parsed.malformed.is_none());
    assert!(parsed.message.additionals().is_empty());
    assert_eq!(
        parsed.message.answers()[0].record_type(),
        RecordType::A,
        "{:?}",
        parsed.message
    );
}
