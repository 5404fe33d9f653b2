//! The stub path: application → local stub → upstream.
//!
//! When an application asks a stub on this host, pinwatch sees two answers:
//! the upstream's, delivered to the stub's socket, and the stub's, sent by
//! a socket on this host and delivered to the application's. Nothing in the
//! packets ties the two together (the stub picks a new id and port
//! upstream), so they are correlated by question and time: an answer that a
//! socket on this host sent (its egress was seen) relays the latest answer
//! to the same question (name case-insensitively, type) delivered to another
//! socket within `WINDOW` before it.
//!
//! Limits: a stub answering from its cache has no upstream answer in the
//! window, so no path is named; two stubs resolving the same question at
//! the same moment may be confused; a stub in another host is an ordinary
//! resolver here.
use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use hickory_proto::rr::{Name, RecordType};

use crate::{
    alert::DnsPath,
    detector::names::{hash_name, same_name},
};

use std::hash::Hasher as _;

/// How long after the upstream's answer the stub's relay may come.
pub(super) const WINDOW: Duration = Duration::from_secs(2);
/// Answers remembered for correlation, each way.
const CAPACITY: usize = 1_024;
/// Deliveries remembered per question: a relay is matched to the latest
/// upstream answer to its question, so only the last few can be it.
const PER_QUESTION: usize = 8;

#[derive(Debug)]
struct Delivered {
    at: SystemTime,
    name: Name,
    server: SocketAddr,
    cookie: u64,
    /// Its place in `delivered_order`.
    seq: u64,
}

/// A question by its name's case-insensitive hash and its type; entries
/// under one key are compared by name too, so a collision costs a compare.
type QuestionKey = (u64, RecordType);

/// A response a socket on this host sent: (source, destination, id).
type SentKey = (SocketAddr, SocketAddr, u16);

#[derive(Debug, Default)]
pub(super) struct StubPaths {
    /// Answers delivered lately, by question, oldest first.
    delivered: HashMap<QuestionKey, VecDeque<Delivered>>,
    /// Every delivery's question and sequence number, oldest first, for
    /// the bound.
    delivered_order: VecDeque<(QuestionKey, u64)>,
    next_seq: u64,
    /// When each response was last sent; looked up once per delivered
    /// response, so a hash lookup rather than a walk of the window.
    sent: HashMap<SentKey, SystemTime>,
    /// The same, oldest first, for the bound.
    sent_order: VecDeque<(SentKey, SystemTime)>,
}

impl StubPaths {
    /// A response left a socket on this host: a local server answered.
    pub fn sent(&mut self, at: SystemTime, source: SocketAddr, destination: SocketAddr, id: u16) {
        let key = (source, destination, id);
        self.sent.insert(key, at);
        self.sent_order.push_back((key, at));
        while self.sent_order.len() > CAPACITY {
            let Some((old, when)) = self.sent_order.pop_front() else {
                break;
            };
            // Only if not sent again since.
            if self.sent.get(&old) == Some(&when) {
                self.sent.remove(&old);
            }
        }
    }

    /// Remembers a response delivered to a socket on this host, for the
    /// relays that may follow it.
    pub fn record_delivery(
        &mut self,
        at: SystemTime,
        question: Option<(&Name, RecordType)>,
        server: SocketAddr,
        cookie: u64,
    ) {
        if let Some((name, qtype)) = question {
            self.remember((question_hash(name), qtype), at, name, server, cookie);
        }
    }

    /// The path of a delivered response when it relays an upstream answer
    /// seen shortly before. Asked only for responses that raise alerts:
    /// the delivery recorded for the response itself has its own server,
    /// which a relay's upstream never is, so asking after recording it
    /// gives the same answer as before.
    pub fn path(
        &self,
        at: SystemTime,
        question: Option<(&Name, RecordType)>,
        server: SocketAddr,
        client: SocketAddr,
        id: u16,
        cookie: u64,
    ) -> Option<DnsPath> {
        let (name, qtype) = question?;
        let recent = |then: SystemTime| at.duration_since(then).unwrap_or_default() <= WINDOW;
        let relayed = self
            .sent
            .get(&(server, client, id))
            .is_some_and(|&then| recent(then));
        if !relayed {
            return None;
        }
        self.delivered
            .get(&(question_hash(name), qtype))?
            .iter()
            .rev()
            .take_while(|d| recent(d.at))
            .find(|d| d.cookie != cookie && d.server != server && same_name(&d.name, name))
            .map(|d| DnsPath {
                stub: server,
                upstream: d.server,
            })
    }

    fn remember(
        &mut self,
        key: QuestionKey,
        at: SystemTime,
        name: &Name,
        server: SocketAddr,
        cookie: u64,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entries = self.delivered.entry(key).or_default();
        if entries.len() >= PER_QUESTION {
            // Its entry in the order queue goes stale and is skipped.
            entries.pop_front();
        }
        entries.push_back(Delivered {
            at,
            name: name.clone(),
            server,
            cookie,
            seq,
        });
        self.delivered_order.push_back((key, seq));
        while self.delivered_order.len() > CAPACITY {
            let Some((old, old_seq)) = self.delivered_order.pop_front() else {
                break;
            };
            if let Some(entries) = self.delivered.get_mut(&old) {
                if entries.front().is_some_and(|d| d.seq == old_seq) {
                    entries.pop_front();
                }
                if entries.is_empty() {
                    self.delivered.remove(&old);
                }
            }
        }
    }
}

/// A hash of the name as `same_name` compares it.
fn question_hash(name: &Name) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hash_name(name, &mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    const STUB: &str = "127.0.0.53:53";
    const UPSTREAM: &str = "192.0.2.53:53";
    const APP: &str = "127.0.0.1:40000";
    const STUB_UPSTREAM_SIDE: &str = "192.0.2.10:33000";

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms)
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// A delivery as the detector handles one: its path first, then the
    /// delivery recorded.
    fn delivered(
        paths: &mut StubPaths,
        ms: u64,
        name: &Name,
        (server, client, id): (&str, &str, u16),
        cookie: u64,
    ) -> Option<DnsPath> {
        let question = Some((name, RecordType::A));
        let path = paths.path(at(ms), question, addr(server), addr(client), id, cookie);
        paths.record_delivery(at(ms), question, addr(server), cookie);
        path
    }

    fn relayed(
        paths: &mut StubPaths,
        ms: u64,
        name: &str,
        id: u16,
        cookie: u64,
    ) -> Option<DnsPath> {
        let name = Name::from_ascii(name).unwrap();
        paths.sent(at(ms), addr(STUB), addr(APP), id);
        delivered(paths, ms, &name, (STUB, APP, id), cookie)
    }

    #[test]
    fn a_relay_is_matched_to_its_upstream_answer_past_other_traffic() {
        let mut paths = StubPaths::default();
        let wanted = Name::from_ascii("db.lab.test.").unwrap();
        // The upstream's answer reaches the stub's socket (cookie 1) ...
        delivered(&mut paths, 0, &wanted, (UPSTREAM, STUB_UPSTREAM_SIDE, 7), 1);
        // ... then hundreds of relayed answers for other names ...
        for i in 0..500u16 {
            assert_eq!(
                relayed(&mut paths, 1, &format!("n{i}.lab.test."), i, 2),
                None
            );
        }
        // ... and the stub relays it to the application, in another case.
        let path = relayed(&mut paths, 2, "DB.Lab.test.", 9, 3);
        assert_eq!(
            path,
            Some(DnsPath {
                stub: addr(STUB),
                upstream: addr(UPSTREAM)
            })
        );
        // Past the window, no path.
        assert_eq!(relayed(&mut paths, 2_500, "db.lab.test.", 10, 3), None);
    }

    #[test]
    fn memory_stays_bounded_however_many_answers_pass() {
        let mut paths = StubPaths::default();
        for i in 0..5_000u16 {
            relayed(
                &mut paths,
                u64::from(i),
                &format!("n{}.lab.test.", i % 700),
                i,
                2,
            );
        }
        assert!(paths.delivered_order.len() <= CAPACITY);
        let held: usize = paths.delivered.values().map(VecDeque::len).sum();
        assert!(held <= CAPACITY, "{held} deliveries held");
        assert!(paths.sent.len() <= CAPACITY && paths.sent_order.len() <= CAPACITY);
    }
}
