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

#[derive(Debug)]
struct Sent {
    at: SystemTime,
    source: SocketAddr,
    destination: SocketAddr,
    id: u16,
}

#[derive(Debug, Default)]
pub(super) struct StubPaths {
    delivered: VecDeque<Delivered>,
    sent: VecDeque<Sent>,
}

impl StubPaths {
    /// A response left a socket on this host: a local server answered.
    pub fn sent(&mut self, at: SystemTime, source: SocketAddr, destination: SocketAddr, id: u16) {
        if self.sent.len() >= CAPACITY {
            self.sent.pop_front();
        }
        self.sent.push_back(Sent {
            at,
            source,
            destination,
            id,
        });
    }

    /// A response was delivered to a socket on this host; returns the path
    /// when it relays an upstream answer seen shortly before.
    pub fn delivered(
        &mut self,
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
            .iter()
            .rev()
            .take_while(|s| recent(s.at))
            .any(|s| s.id == id && s.source == server && s.destination == client);
        let path = relayed
            .then(|| {
                self.delivered
                    .iter()
                    .rev()
                    .take_while(|d| recent(d.at))
                    .find(|d| {
                        d.qtype == qtype
                            && d.cookie != cookie
                            && same_name(&d.name, name)
                            && d.server != server
                    })
                    .map(|d| DnsPath {
                        stub: server,
                        upstream: d.server,
                    })
            })
            .flatten();
        if self.delivered.len() >= CAPACITY {
            self.delivered.pop_front();
        }
        self.delivered.push_back(Delivered {
            at,
            name: name.clone(),
            qtype,
            server,
            cookie,
        });
        path
    }
}
