//! Outstanding DNS queries, per leg: (client endpoint, server endpoint) →
//! the queries that socket sent there, each with its id and question.
//!
//! A leg is one socket talking to one server, so when both ends of a hop
//! are on this host (a local stub), each hop is matched on its own. Bounded:
//! at most `MAX_FLOWS` legs, `MAX_QUERIES_PER_FLOW` queries per leg and
//! `MAX_QUERIES` queries in all (the oldest legs are forgotten first), each
//! leg forgotten `query_timeout` after its last query (by event time). Looking a
//! response up hashes two socket addresses and allocates nothing.
use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::fingerprint::Fingerprint;
use crate::detector::compact::CompactName;

/// Legs remembered at once; past this the oldest is forgotten.
pub(super) const MAX_FLOWS: usize = 65_536;
/// Queries remembered per leg (glibc sends A and AAAA together; retries add
/// a few); past this the oldest of the leg is forgotten.
const MAX_QUERIES_PER_FLOW: usize = 16;
/// Queries remembered over all legs: a busy local recursive resolver asks
/// from a new port per query, and at 10,000 queries/s for a 5 s timeout
/// holds 50,000. Each costs about 200 bytes (more for names over 32 bytes).
pub(super) const MAX_QUERIES: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FlowKey {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

#[derive(Debug)]
pub(super) struct Flow {
    pub queries: Vec<Pending>,
    /// Responses on this leg whose id matched no query, while one waited.
    pub mismatches: u32,
    /// `dns-txid-mismatch-burst` was raised for this leg already.
    pub burst_reported: bool,
    /// When the leg is forgotten: `query_timeout` after its last query.
    pub expires: SystemTime,
}

/// One question a socket asked.
#[derive(Debug)]
pub(super) struct Pending {
    pub id: u16,
    /// As sent: the letter case is what the 0x20 check compares.
    pub name: CompactName,
    pub qtype: RecordType,
    pub qclass: DNSClass,
    /// Times the query was sent (retransmissions with the same id and
    /// question); as many responses are expected.
    pub sent: u16,
    /// The responses that matched it so far, delivered to the socket.
    pub answered: u16,
    /// The responses that matched it so far, seen at the interface.
    pub arrived: u16,
    /// What the first response said.
    pub first_answer: Option<Fingerprint>,
    /// A rule already fired for it (one alert per query per rule).
    pub conflict_reported: bool,
    pub case_reported: bool,
}

/// How a response relates to the leg it arrived on.
#[derive(Debug)]
pub(super) enum Lookup<'a> {
    /// No query waits on this leg.
    NoFlow,
    /// Queries wait on this leg, none with this id and question.
    Mismatch(&'a mut Flow),
    /// The query it answers, and the leg.
    Matched(usize, &'a mut Flow),
}

#[derive(Debug, Default)]
pub(super) struct QueryTable {
    flows: HashMap<FlowKey, Flow>,
    /// Legs by when they were created or last found unexpired, for expiry
    /// and eviction in order.
    order: VecDeque<(SystemTime, FlowKey)>,
    /// The last time a live leg was evicted for room: responses to it would
    /// look unsolicited.
    pub evicted_live_at: Option<SystemTime>,
    /// Queries held over all legs.
    queries: usize,
}

impl QueryTable {
    /// Records a query sent on `key`.
    pub fn query(
        &mut self,
        key: FlowKey,
        id: u16,
        (name, qtype, qclass): (&Name, RecordType, DNSClass),
        now: SystemTime,
        timeout: Duration,
    ) {
        // Room first: the leg this query goes to may be the one evicted.
        while self.queries >= MAX_QUERIES && !self.order.is_empty() {
            self.evict_oldest(now);
        }
        if !self.flows.contains_key(&key) {
            while self.flows.len() >= MAX_FLOWS {
                self.evict_oldest(now);
            }
            self.order.push_back((now + timeout, key));
        }
        let flow = self.flows.entry(key).or_insert_with(|| Flow {
            // Most legs carry one query, or glibc's A and AAAA pair.
            queries: Vec::with_capacity(2),
            mismatches: 0,
            burst_reported: false,
            expires: now + timeout,
        });
        flow.expires = now + timeout;
        if let Some(pending) = flow
            .queries
            .iter_mut()
            .find(|p| p.id == id && p.qtype == qtype && p.qclass == qclass && p.name.matches(name))
        {
            pending.sent = pending.sent.saturating_add(1);
            return;
        }
        if flow.queries.len() >= MAX_QUERIES_PER_FLOW {
            flow.queries.remove(0);
            self.queries -= 1;
        }
        self.queries += 1;
        flow.queries.push(Pending {
            id,
            name: CompactName::new(name),
            qtype,
            qclass,
            sent: 1,
            answered: 0,
            arrived: 0,
            first_answer: None,
            conflict_reported: false,
            case_reported: false,
        });
    }

    /// Finds the query a response with `id` and question answers on `key`.
    /// The question name compares case-insensitively (the 0x20 check is the
    /// caller's).
    pub fn lookup(
        &mut self,
        key: &FlowKey,
        id: u16,
        question: Option<(&Name, RecordType, DNSClass)>,
    ) -> Lookup<'_> {
        let Some(flow) = self.flows.get_mut(key) else {
            return Lookup::NoFlow;
        };
        let found = flow.queries.iter().position(|p| {
            p.id == id
                && question.is_some_and(|(name, qtype, qclass)| {
                    p.qtype == qtype && p.qclass == qclass && p.name.matches(name)
                })
        });
        match found {
            Some(index) => Lookup::Matched(index, flow),
            None => Lookup::Mismatch(flow),
        }
    }

    /// Forgets legs whose last query is older than the timeout.
    pub fn expire(&mut self, now: SystemTime) {
        while let Some(&(at, key)) = self.order.front() {
            if at > now {
                break;
            }
            self.order.pop_front();
            match self.flows.get(&key) {
                Some(flow) if flow.expires > now => self.order.push_back((flow.expires, key)),
                Some(_) => {
                    self.forget(&key);
                }
                None => {}
            }
        }
    }

    fn evict_oldest(&mut self, now: SystemTime) {
        let Some((_, key)) = self.order.pop_front() else {
            return;
        };
        if let Some(flow) = self.forget(&key)
            && flow.expires > now
        {
            self.evicted_live_at = Some(now);
        }
    }

    fn forget(&mut self, key: &FlowKey) -> Option<Flow> {
        let flow = self.flows.remove(key)?;
        self.queries -= flow.queries.len();
        Some(flow)
    }

    /// Legs held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Queries held over all legs.
    pub fn queries(&self) -> usize {
        self.queries
    }
}
