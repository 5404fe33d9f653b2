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
    collections::VecDeque,
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use hickory_proto::rr::{Name, RecordType};

use crate::{alert::DnsPath, detector::names::same_name};

/// How long after the upstream's answer the stub's relay may come.
pub(super) const WINDOW: Duration = Duration::from_secs(2);
/// Answers remembered for correlation, each way.
const CAPACITY: usize = 1_024;

#[derive(Debug)]
struct Delivered {
    at: SystemTime,
    name: Name,
    qtype: RecordType,
    server: SocketAddr,
    cookie: u64,
}

/// A response a socket on this host sent: (source, destination, id).
type SentKey = (SocketAddr, SocketAddr, u16);

/// Both directions are recorded for every DNS message and read only for a
/// response that raises an alert, so each is a queue of the last
/// [`CAPACITY`] entries, searched newest first when asked: recording costs
/// no hashing, and a search of at most a thousand entries is small beside
/// writing the alert it is for.
#[derive(Debug, Default)]
pub(super) struct StubPaths {
    /// Answers delivered lately, oldest first.
    delivered: VecDeque<Delivered>,
    /// Responses sent lately, with when, oldest first.
    sent: VecDeque<(SentKey, SystemTime)>,
}

/// Appends `entry`, forgetting the oldest past [`CAPACITY`].
fn keep_last<T>(queue: &mut VecDeque<T>, entry: T) {
    if queue.len() >= CAPACITY {
        queue.pop_front();
    }
    queue.push_back(entry);
}

impl StubPaths {
    /// A response left a socket on this host: a local server answered.
    pub fn sent(&mut self, at: SystemTime, source: SocketAddr, destination: SocketAddr, id: u16) {
        keep_last(&mut self.sent, ((source, destination, id), at));
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
            let delivered = Delivered {
                at,
                name: name.clone(),
                qtype,
                server,
                cookie,
            };
            keep_last(&mut self.delivered, delivered);
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
        // The latest time this response was sent, as a table keyed by it
        // would hold.
        let key = (server, client, id);
        let relayed = self
            .sent
            .iter()
            .rev()
            .find(|(sent, _)| *sent == key)
            .is_some_and(|&(_, then)| recent(then));
        if !relayed {
            return None;
        }
        self.delivered
            .iter()
            .rev()
            .take_while(|d| recent(d.at))
            .find(|d| {
                d.qtype == qtype
                    && d.cookie != cookie
                    && d.server != server
                    && same_name(&d.name, name)
            })
            .map(|d| DnsPath {
                stub: server,
                upstream: d.server,
            })
    }
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
        assert_eq!(paths.delivered.len(), CAPACITY);
        assert_eq!(paths.sent.len(), CAPACITY);
    }
}
