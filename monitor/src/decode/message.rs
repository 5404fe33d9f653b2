//! A DNS message read as a stub resolver reads it.
//!
//! glibc's resolver takes the header and the question, then walks the
//! answer records one by one and hands the application every address it
//! reached; it never looks at the authority or additional sections. A
//! message that hickory cannot parse whole (an overstated ARCOUNT, a
//! reserved label type in an additional record, two OPT records, an SVCB
//! whose data hickory refuses) still delivers its addresses, so pinwatch
//! must judge what parses rather than drop the message:
//!
//! - the header, then each question, then each record in order, with
//!   hickory's own `Query::read` / `Record::read`;
//! - a record whose envelope (owner, type, class, TTL, RDLENGTH) is sound
//!   but whose data hickory refuses is stepped over by its RDLENGTH, as a
//!   stub resolver steps over types it does not want, and reading goes on;
//! - the first record whose envelope does not parse ends the reading.
//!
//! The first fault is kept ([`Malformed`]) so the detector can say that the
//! message did not parse whole.
//!
//! Read lazily: the detector judges only responses by their records. A
//! query is read to its questions; a response a socket on this host sends
//! ([`Reading::Sent`]) to its header, since it is judged where it is
//! delivered and, as it leaves, only its id feeds the stub path.
use std::fmt::Write as _;

use hickory_proto::{
    ProtoError,
    op::{Edns, Header, Message, MessageType, Query},
    rr::{Name, RData, Record},
    serialize::binary::{BinDecodable, BinDecoder},
};

use crate::event::{Malformed, Section};

/// What could be read of one message.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The header as sent (its counts are the announced ones) and every
    /// question and record that parsed.
    pub message: Message,
    /// The first fault; `None` when the message parsed whole.
    pub malformed: Option<Malformed>,
}

/// Where the message was seen, for how much of it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Leaving a socket on this host.
    Sent,
    /// Delivered to a socket, seen at an interface, or in a capture.
    Received,
}

/// Reads `bytes` as one DNS message; `cut` says the capture ended before
/// the message did. `None` when not even the 12-byte header is there.
pub fn read_message(bytes: &[u8], cut: bool) -> Option<Parsed> {
    read_message_seen(bytes, cut, Reading::Received)
}

/// [`read_message`], reading no further than the detector looks for a
/// message seen as `reading` says.
pub fn read_message_seen(bytes: &[u8], cut: bool, reading: Reading) -> Option<Parsed> {
    let mut decoder = BinDecoder::new(bytes);
    let header = Header::read(&mut decoder).ok()?;
    if header.message_type() == MessageType::Response && reading == Reading::Sent {
        let mut message = Message::new();
        message.set_header(header);
        return Some(Parsed {
            message,
            malformed: None,
        });
    }
    let mut reader = Reader {
        decoder,
        message: Message::new(),
        malformed: None,
        cut,
        seen_opt: false,
    };
    reader.message.set_header(header);
    reader.read_all(&header);
    Some(Parsed {
        message: reader.message,
        malformed: reader.malformed,
    })
}

struct Reader<'a> {
    decoder: BinDecoder<'a>,
    message: Message,
    malformed: Option<Malformed>,
    cut: bool,
    /// An OPT record was read (its data may have been empty).
    seen_opt: bool,
}

/// Whether reading may go on after an entry.
enum Step {
    Next,
    Stop,
}

/// The fewest bytes a question takes (the root name, type, class) and a
/// record (the root name, type, class, TTL, RDLENGTH): room is reserved
/// for no more entries than the bytes left could hold, whatever the header
/// announces.
const MIN_QUESTION_LEN: usize = 5;
const MIN_RECORD_LEN: usize = 11;
/// Appends `entry`; a section's first entry reserves room for the `more`
/// that may follow, so a section costs one allocation rather than one per
/// doubling, and a message whose first entry does not parse costs none.
fn push_reserving<T>(list: &mut Vec<T>, entry: T, more: usize) {
    if list.capacity() == 0 {
        list.reserve_exact(1 + more);
    }
    list.push(entry);
}

/// Past this many entries a section grows as it is read: a message that
/// announces thousands and holds garbage costs no large reservation.
const MAX_RESERVED: usize = 32;

impl Reader<'_> {
    /// Room for `announced` more entries of at least `min_len` bytes each,
    /// as far as the bytes left can hold them.
    fn room(&self, announced: u16, min_len: usize) -> usize {
        usize::from(announced)
            .min(self.decoder.len() / min_len)
            .min(MAX_RESERVED)
    }

    fn read_all(&mut self, header: &Header) {
        let count = header.query_count();
        for index in 0..count {
            let at = self.decoder.index();
            match Query::read(&mut self.decoder) {
                Ok(query) => {
                    let more = self.room(count - index - 1, MIN_QUESTION_LEN);
                    push_reserving(self.message.queries_mut(), query, more);
                }
                Err(error) => {
                    self.fault(Section::Question, index, at, &error);
                    return;
                }
            }
        }
        if header.message_type() == MessageType::Query {
            return;
        }
        let sections = [
            (Section::Answer, header.answer_count()),
            (Section::Authority, header.name_server_count()),
            (Section::Additional, header.additional_count()),
        ];
        for (section, count) in sections {
            for index in 0..count {
                if let Step::Stop = self.record(section, index, count) {
                    return;
                }
            }
        }
    }

    fn record(&mut self, section: Section, index: u16, count: u16) -> Step {
        let at = self.decoder.index();
        let record = match Record::read(&mut self.decoder) {
            Ok(record) => record,
            Err(error) => {
                self.fault(section, index, at, &error);
                return self.step_over(at);
            }
        };
        let more = self.room(count - index - 1, MIN_RECORD_LEN);
        match section {
            Section::Answer => push_reserving(self.message.answers_mut(), record, more),
            Section::Authority => push_reserving(self.message.name_servers_mut(), record, more),
            Section::Additional if record.record_type() == hickory_proto::rr::RecordType::OPT => {
                if self.seen_opt {
                    self.fault_text(section, index, at, "more than one OPT record".to_owned());
                    return Step::Stop;
                }
                self.seen_opt = true;
                // Edns::from panics on an OPT record without OPT data.
                if let RData::OPT(_) = record.data() {
                    self.message.set_edns(Edns::from(&record));
                }
            }
            Section::Additional | Section::Question => {
                self.message.add_additional(record);
            }
        }
        Step::Next
    }

    /// Moves past a record whose data did not parse, by its RDLENGTH, when
    /// its envelope is sound; otherwise reading ends.
    fn step_over(&mut self, at: usize) -> Step {
        let Ok(start) = u16::try_from(at) else {
            return Step::Stop;
        };
        let mut skip = self.decoder.clone(start);
        let envelope = Name::read(&mut skip).is_ok()
            && skip.read_u16().is_ok()
            && skip.read_u16().is_ok()
            && skip.read_u32().is_ok();
        let data = envelope
            && skip
                .read_u16()
                .ok()
                .map(|len| usize::from(len.unverified(/*checked by read_slice*/)))
                .is_some_and(|len| skip.read_slice(len).is_ok());
        if !data {
            return Step::Stop;
        }
        self.decoder = skip;
        Step::Next
    }

    fn fault(&mut self, section: Section, index: u16, at: usize, error: &ProtoError) {
        // Some of hickory's Display impls fail; the text is best effort.
        let mut reason = String::new();
        if write!(reason, "{error}").is_err() {
            reason = "hickory-proto refused the record".to_owned();
        }
        self.fault_text(section, index, at, reason);
    }

    fn fault_text(&mut self, section: Section, index: u16, at: usize, reason: String) {
        self.malformed.get_or_insert(Malformed {
            section,
            record: index,
            offset: at,
            cut: self.cut,
            reason,
        });
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
