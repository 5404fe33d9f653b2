//! Query/response matching: the DNS spoofing heuristics, and who asked.
//!
//! Queries are recorded where they leave a socket on this host (egress),
//! responses judged where they are delivered to one (ingress), per leg
//! (client endpoint, server endpoint), so a local stub's two hops are
//! matched each on its own ([`table`]). The rules ([`rules`]):
//!
//! - `dns-unsolicited-response`: a response on a leg with no query waiting;
//! - `dns-txid-mismatch-burst`: `txid_mismatch_threshold` responses with ids
//!   matching no waiting query of the leg, once per leg;
//! - `dns-conflicting-responses`: more responses than the query was sent,
//!   saying something different from the first;
//! - `dns-case-mismatch`: the response's question differs in letter case;
//! - `dns-untrusted-resolver` (configured hostnames): answered from an
//!   address outside `[dns] trusted_resolvers`;
//! - `dns-bailiwick-violation` (configured hostnames): authority or
//!   additional records outside the zones of the question.
//!
//! The first four and `dns-untrusted-resolver` judge delivery to a socket,
//! so they apply to UDP messages the kernel tied to a socket (a socket
//! cookie); a capture replayed from a file has none. Off-path spoofing is a
//! UDP attack: TCP needs the sequence numbers. A response seen only at the
//! interface (tc: it may have reached no socket) counts for
//! `dns-conflicting-responses` alone: the genuine answer that loses the race
//! arrives after the client closed its socket.
//!
//! Processes: the kernel reports which process owns each DNS socket once
//! ([`owners`]); DNS alerts carry it, and the stub path ([`stub`]) names the
//! stub and upstream an answer passed through.
mod fingerprint;
mod owners;
mod rules;
mod stub;
mod table;

use std::{
    net::IpAddr,
    time::{Duration, SystemTime},
};

use hickory_proto::op::{MessageType, OpCode};

use self::{
    owners::Owners,
    stub::StubPaths,
    table::{FlowKey, QueryTable},
};
use super::{asked::Asked, pins::PinIndex};
use crate::{
    alert::{Alert, HiddenResolution, Resolution},
    config::Config,
    event::{
        Direction, DnsEvent, DnsOwnerEvent, DnsSentEvent, Hook, OwnerRole, Process, Transport,
    },
};

/// Responses in the first moments after pinwatch started looking may answer
/// queries sent before it did: not judged unsolicited for this long.
const STARTUP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Settings {
    trusted: Vec<IpAddr>,
    threshold: u32,
    timeout: Duration,
}

impl Settings {
    fn of(config: &Config) -> Settings {
        Settings {
            trusted: config.dns.trusted_resolvers.clone(),
            threshold: config.dns.txid_mismatch_threshold,
            timeout: config.dns.query_timeout,
        }
    }
}

/// What the detector learned about a DNS message's socket, for its alerts:
/// the socket (its process is looked up only when an alert needs it) and
/// the stub path.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct DnsContext {
    pub socket_cookie: u64,
    /// A response delivered to a socket: its stub path is looked up when
    /// one of its alerts needs it (most responses raise none).
    pub delivery: Option<Delivery>,
}

/// A delivered response, as the stub path is looked up by.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivery {
    at: SystemTime,
    server: std::net::SocketAddr,
    client: std::net::SocketAddr,
    id: u16,
}

#[derive(Debug)]
pub(super) struct Matching {
    table: QueryTable,
    owners: Owners,
    stubs: StubPaths,
    settings: Settings,
    /// Unsolicited responses are not judged before this: queries may have
    /// gone unseen (start, lost events).
    blind_until: Option<SystemTime>,
    started: bool,
}

impl Matching {
    /// `started`: when pinwatch started looking (the daemon's start); the
    /// warm-up counts from it. `None` (a capture): from the first event.
    pub fn new(config: &Config, started: Option<SystemTime>) -> Matching {
        let mut matching = Matching {
            table: QueryTable::default(),
            owners: Owners::default(),
            stubs: StubPaths::default(),
            settings: Settings::of(config),
            blind_until: None,
            started: false,
        };
        if let Some(at) = started {
            matching.start(at);
        }
        matching
    }

    fn start(&mut self, at: SystemTime) {
        self.started = true;
        self.blind(at + STARTUP_GRACE.min(self.settings.timeout));
    }

    pub fn reconfigure(&mut self, config: &Config) {
        self.settings = Settings::of(config);
    }

    /// Outstanding queries held; at most [`table::MAX_QUERIES`].
    pub fn outstanding(&self) -> usize {
        self.table.queries()
    }

    /// A local server's response left a socket on this host, as the kernel
    /// summarizes it: the stub path's record of what was sent.
    pub fn sent(&mut self, event: &DnsSentEvent) {
        self.stubs
            .sent(event.timestamp, event.source, event.destination, event.id);
    }

    pub fn owner(&mut self, event: &DnsOwnerEvent) {
        self.owners.record(event);
    }

    /// Events were lost: queries may be missing from the table.
    pub fn lost(&mut self, at: SystemTime) {
        self.blind(at + self.settings.timeout);
    }

    fn blind(&mut self, until: SystemTime) {
        self.blind_until = Some(self.blind_until.map_or(until, |u| u.max(until)));
    }

    fn is_blind(&self, at: SystemTime) -> bool {
        let evicted = self
            .table
            .evicted_live_at
            .is_some_and(|e| at < e + self.settings.timeout);
        evicted || self.blind_until.is_some_and(|u| at < u)
    }

    /// Whether pinwatch could have seen the name resolution behind a
    /// connect by `process`: `observed` when an answer mapped the address.
    pub fn resolution(&self, process: &Process, observed: bool, now: SystemTime) -> Resolution {
        if observed {
            return Resolution::Observed;
        }
        match self.owners.encrypted_resolver(process.pid, now) {
            Some((OwnerRole::DnsOverTls, resolver)) => {
                Resolution::NotObserved(HiddenResolution::DnsOverTls(resolver))
            }
            Some((OwnerRole::DnsOverHttps, resolver)) => {
                Resolution::NotObserved(HiddenResolution::DnsOverHttps(resolver))
            }
            _ => Resolution::NotObserved(HiddenResolution::Unknown),
        }
    }

    /// Puts the process and stub path of `context` on the alerts that lack
    /// them; `event` is the message the context is of.
    pub fn apply(&self, context: DnsContext, event: &DnsEvent, alerts: &mut [Alert]) {
        if alerts.is_empty() {
            return;
        }
        let process = self.owners.process(context.socket_cookie);
        let resolv_conf = self.owners.resolv_conf(context.socket_cookie);
        let path = context.delivery.and_then(|d| {
            let question = event.message.queries().first();
            self.stubs.path(
                d.at,
                question.map(|q| (q.name(), q.query_type())),
                d.server,
                d.client,
                d.id,
                context.socket_cookie,
            )
        });
        for alert in alerts {
            if alert.process.is_none() {
                alert.process = process.cloned();
            }
            if alert.path.is_none() {
                alert.path = path;
            }
            if alert.resolv_conf.is_none() {
                alert.resolv_conf = resolv_conf.cloned();
            }
        }
    }

    /// Remembers the delivery `context` is of, for the relays that may
    /// follow it: after its alerts took their path (see [`Matching::apply`]),
    /// so the path is looked up in the deliveries before it, as it was
    /// delivered.
    pub fn delivered(&mut self, context: DnsContext, event: &DnsEvent) {
        if let Some(d) = context.delivery {
            let question = event.message.queries().first();
            self.stubs.record_delivery(
                d.at,
                question.map(|q| (q.name(), q.query_type())),
                d.server,
                context.socket_cookie,
            );
        }
    }

    /// Judges one DNS message, whose questions, when it is a response, are
    /// `asked`; returns its alerts and what its socket says
    /// for the other DNS rules' alerts.
    pub fn observe(
        &mut self,
        pins: &PinIndex,
        event: &DnsEvent,
        asked: &[Asked<'_>],
    ) -> (Vec<Alert>, DnsContext) {
        let now = event.timestamp;
        self.table.expire(now);
        if !self.started {
            self.start(now);
        }
        let message = &event.message;
        let mut context = DnsContext::default();
        if message.op_code() != OpCode::Query {
            return (Vec::new(), context);
        }
        let question = message.queries().first();
        let tracked = event.socket_cookie != 0 && event.transport == Transport::Udp;
        if !delivered(event) {
            // The interface's copy: only a second, different answer to a
            // query counts, since the socket may be gone (the client took
            // the forged answer and closed it).
            let alerts = match (message.message_type(), event.transport) {
                (MessageType::Response, Transport::Udp) => {
                    rules::judge_at_interface(self, pins, event, asked)
                }
                _ => Vec::new(),
            };
            return (alerts, context);
        }
        match (message.message_type(), event.direction) {
            (MessageType::Query, Direction::Egress) => {
                if let (true, Some(q)) = (tracked, question) {
                    let key = FlowKey {
                        client: event.source,
                        server: event.destination,
                    };
                    let timeout = self.settings.timeout;
                    self.table.query(
                        key,
                        message.id(),
                        (q.name(), q.query_type(), q.query_class()),
                        now,
                        timeout,
                    );
                }
                (Vec::new(), context)
            }
            (MessageType::Response, Direction::Egress) => {
                self.stubs
                    .sent(now, event.source, event.destination, message.id());
                (Vec::new(), context)
            }
            (MessageType::Response, Direction::Ingress) => {
                context.socket_cookie = event.socket_cookie;
                if event.socket_cookie != 0 {
                    context.delivery = Some(Delivery {
                        at: now,
                        server: event.source,
                        client: event.destination,
                        id: message.id(),
                    });
                }
                let mut alerts = rules::judge_response(self, pins, event, asked, tracked);
                self.apply(context, event, &mut alerts);
                (alerts, context)
            }
            _ => (Vec::new(), context),
        }
    }

    #[cfg(test)]
    fn legs(&self) -> usize {
        self.table.len()
    }
}

/// Whether the event is a socket's copy (sent by it, or delivered to it),
/// rather than the interface's copy (tc), which may have reached no socket.
fn delivered(event: &DnsEvent) -> bool {
    event.seen_at == Hook::Socket
}

#[cfg(test)]
mod tests;
