//! What a response says, for `dns-conflicting-responses`: its answer
//! records themselves, normalized, so that two responses compare equal
//! exactly when they say the same thing.
//!
//! Normalized: owner names and the names inside CNAME/NS/PTR/MX data in
//! lower case, TTLs dropped, records sorted and deduplicated (round-robin
//! reorders answers). Held whole up to [`MAX_HELD`] bytes; a longer set is
//! held as its SHA-256, which nobody can choose a collision for — a sum of
//! unkeyed 64-bit hashes, as before, a sender could.
use std::net::IpAddr;

use hickory_proto::{
    op::Message,
    rr::{Name, RData, Record},
};
use sha2::{Digest, Sha256};

use crate::{detector::pins::PinnedDatabase, dnstext};

/// Normalized answer bytes held per answered query; real answers (a few
/// addresses, a CNAME or two) take well under 200.
pub(super) const MAX_HELD: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fingerprint {
    rcode: u16,
    answers: AnswerSet,
    /// TC: a truncated answer is partial by definition and differs from the
    /// full one the client fetches next.
    pub truncated: bool,
    /// Every address was inside the pinned set of a configured hostname
    /// (round-robin inside the pinned set is no conflict).
    pub all_pinned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AnswerSet {
    /// Each record's normalized bytes, length-prefixed, in sorted order;
    /// kept in the vector they were written to (shrinking it to a boxed
    /// slice reallocated once per answered query).
    Records(Vec<u8>),
    /// SHA-256 of the same bytes, when they are longer than [`MAX_HELD`].
    Digest(Box<[u8; 32]>),
}

impl Fingerprint {
    pub fn of(message: &Message, database: Option<&PinnedDatabase>) -> Fingerprint {
        let bytes = match message.answers() {
            // The common answer, one record, written in place: the same
            // bytes as the general case, without a vector per record.
            [only] => {
                let mut bytes = Vec::with_capacity(64);
                bytes.extend_from_slice(&[0; 4]);
                normalized_into(&mut bytes, only);
                let len = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&len.to_be_bytes());
                bytes
            }
            answers => {
                let mut records: Vec<Vec<u8>> = answers.iter().map(normalized).collect();
                records.sort_unstable();
                records.dedup();
                let mut bytes = Vec::new();
                for record in &records {
                    // A record's RDATA is at most 65,535 bytes; the prefix
                    // keeps records apart however their bytes run together.
                    bytes.extend_from_slice(&(record.len() as u32).to_be_bytes());
                    bytes.extend_from_slice(record);
                }
                bytes
            }
        };
        let answers = if bytes.len() <= MAX_HELD {
            AnswerSet::Records(bytes)
        } else {
            AnswerSet::Digest(Box::new(Sha256::digest(&bytes).into()))
        };
        let mut addresses = 0usize;
        let mut all_pinned = database.is_some();
        for record in message.answers() {
            let ip = match record.data() {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                _ => continue,
            };
            addresses += 1;
            all_pinned &= database.is_some_and(|db| db.allows(ip));
        }
        Fingerprint {
            rcode: u16::from(message.response_code()),
            answers,
            truncated: message.truncated(),
            all_pinned: all_pinned && addresses > 0,
        }
    }

    /// Whether a second response says something else than the first, in a
    /// way worth an alert.
    pub fn conflicts(&self, second: &Fingerprint) -> bool {
        let both_pinned = self.all_pinned && second.all_pinned;
        let differ = self.rcode != second.rcode || self.answers != second.answers;
        differ && !self.truncated && !second.truncated && !both_pinned
    }
}

/// type, class, owner, data: the record without its TTL.
fn normalized(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    normalized_into(&mut bytes, record);
    bytes
}

/// [`normalized`], appended to `bytes`.
fn normalized_into(bytes: &mut Vec<u8>, record: &Record) {
    bytes.extend_from_slice(&u16::from(record.record_type()).to_be_bytes());
    bytes.extend_from_slice(&u16::from(record.dns_class()).to_be_bytes());
    push_name(bytes, record.name());
    match record.data() {
        RData::A(a) => bytes.extend_from_slice(&a.0.octets()),
        RData::AAAA(aaaa) => bytes.extend_from_slice(&aaaa.0.octets()),
        RData::CNAME(target) => push_name(bytes, &target.0),
        RData::NS(target) => push_name(bytes, &target.0),
        RData::PTR(target) => push_name(bytes, &target.0),
        RData::MX(mx) => {
            bytes.extend_from_slice(&mx.preference().to_be_bytes());
            push_name(bytes, mx.exchange());
        }
        other => match dnstext::wire(other) {
            Some(wire) => {
                bytes.push(1);
                bytes.extend_from_slice(&wire);
            }
            // Parsed but not writable back: nothing to compare but the
            // type, which is in the bytes already.
            None => bytes.push(0),
        },
    }
}

/// The name's labels in lower case, each length-prefixed, then the root.
fn push_name(bytes: &mut Vec<u8>, name: &Name) {
    for label in name.iter() {
        bytes.push(label.len() as u8);
        bytes.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    bytes.push(0);
}

#[cfg(test)]
mod tests {
    use hickory_proto::{
        op::{Message, MessageType},
        rr::{Name, RData, Record, rdata},
    };

    use super::*;
    use crate::decode::test_packets::OPT_ANSWER;

    fn answer(records: &[(&str, RData, u32)]) -> Message {
        let mut message = Message::new();
        message.set_message_type(MessageType::Response);
        for (name, data, ttl) in records {
            message.add_answer(Record::from_rdata(
                Name::from_ascii(name).unwrap(),
                *ttl,
                data.clone(),
            ));
        }
        message
    }

    fn a(ip: [u8; 4]) -> RData {
        RData::A(rdata::A(ip.into()))
    }

    fn txt(text: &str) -> RData {
        RData::TXT(rdata::TXT::new(vec![text.to_owned()]))
    }

    #[test]
    fn order_case_and_ttl_are_no_difference() {
        let first = answer(&[
            ("DB.x.", a([192, 0, 2, 1]), 60),
            ("db.x.", a([192, 0, 2, 2]), 60),
        ]);
        let second = answer(&[
            ("db.X.", a([192, 0, 2, 2]), 5),
            ("db.x.", a([192, 0, 2, 1]), 9),
        ]);
        let (f, s) = (
            Fingerprint::of(&first, None),
            Fingerprint::of(&second, None),
        );
        assert_eq!(f, s);
        assert!(!f.conflicts(&s));
    }

    #[test]
    fn one_record_is_held_as_the_general_case_holds_it() {
        let one = answer(&[("DB.x.", a([192, 0, 2, 1]), 60)]);
        let twice = answer(&[
            ("db.x.", a([192, 0, 2, 1]), 60),
            ("db.X.", a([192, 0, 2, 1]), 30),
        ]);
        // Two copies of one record dedup to the general path's one record.
        assert_eq!(Fingerprint::of(&one, None), Fingerprint::of(&twice, None));
    }

    #[test]
    fn any_different_record_is_a_difference() {
        let first = Fingerprint::of(&answer(&[("db.x.", a([192, 0, 2, 1]), 60)]), None);
        for other in [
            answer(&[("db.x.", a([192, 0, 2, 9]), 60)]),
            answer(&[("db.y.", a([192, 0, 2, 1]), 60)]),
            answer(&[("db.x.", a([192, 0, 2, 1]), 60), ("db.x.", txt("v"), 60)]),
            answer(&[]),
        ] {
            assert!(first.conflicts(&Fingerprint::of(&other, None)), "{other:?}");
        }
    }

    #[test]
    fn long_answer_sets_are_bounded_and_still_compared_whole() {
        let many = |last: u8| {
            let mut records: Vec<(&str, RData, u32)> =
                (0..100).map(|i| ("db.x.", a([10, 0, 0, i]), 60)).collect();
            records.push(("db.x.", txt(&"z".repeat(200)), 60));
            records.push(("db.x.", a([10, 0, 1, last]), 60));
            Fingerprint::of(&answer(&records), None)
        };
        let first = many(1);
        assert!(matches!(first.answers, AnswerSet::Digest(_)));
        assert!(!first.conflicts(&many(1)));
        assert!(first.conflicts(&many(2)));
    }

    #[test]
    fn the_opt_answer_is_compared_without_text() {
        let opt = |byte: u8| {
            let mut bytes = OPT_ANSWER;
            bytes[49] = byte;
            Fingerprint::of(&Message::from_vec(&bytes).unwrap(), None)
        };
        assert!(!opt(1).conflicts(&opt(1)));
        assert!(opt(1).conflicts(&opt(2)));
    }
}
