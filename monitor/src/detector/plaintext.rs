//! `plaintext-db-connection`: connections to watched ports whose first
//! PostgreSQL-wire message is a StartupMessage (user and database in the
//! clear), or that asked for TLS, were refused by the server, and went on in
//! the clear.
//!
//! The kernel hands over the first two client segments and the first server
//! segment of each connection, keyed by the client socket's cookie; the
//! connect hook reported the same cookie with the process.
use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
};

use super::Detector;
use crate::{
    alert::{Alert, DbSession, Rule},
    decode::pgwire::{
        EncryptionReply, FirstMessage, classify_encryption_reply, classify_first_message,
    },
    event::{ConnectEvent, DbSegmentEvent, Direction, Process, Transport},
};

/// Connections followed at once; the oldest are forgotten first.
const CAPACITY: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The client asked for TLS or GSSAPI encryption; the server's answer decides.
    AwaitingReply,
    /// The server said no; the client's next message decides.
    Refused,
    /// Judged: nothing more to look at.
    Done,
}

#[derive(Debug, Default)]
pub struct PlaintextTracker {
    processes: Bounded<u64, Process>,
    phases: Bounded<u64, Phase>,
}

impl PlaintextTracker {
    /// Remembers who opened the socket, for the alert.
    pub fn connected(&mut self, connect: &ConnectEvent) {
        if connect.socket_cookie != 0 {
            self.processes
                .insert(connect.socket_cookie, connect.process.clone());
        }
    }
}

pub(super) fn check_segment(detector: &mut Detector, segment: &DbSegmentEvent) -> Vec<Alert> {
    let tracker = &mut detector.plaintext;
    let cookie = segment.socket_cookie;
    let phase = tracker.phases.get(&cookie).copied();
    let (next, plaintext) = match (segment.direction, phase) {
        (Direction::Egress, None) => match classify_first_message(&segment.payload) {
            FirstMessage::Startup(startup) => (Phase::Done, Some((startup, false))),
            FirstMessage::SslRequest | FirstMessage::GssEncRequest => (Phase::AwaitingReply, None),
            _ => (Phase::Done, None),
        },
        (Direction::Ingress, Some(Phase::AwaitingReply)) => {
            match segment
                .payload
                .first()
                .map(|&b| classify_encryption_reply(b))
            {
                Some(EncryptionReply::Refused) => (Phase::Refused, None),
                _ => (Phase::Done, None),
            }
        }
        (Direction::Egress, Some(Phase::Refused)) => match classify_first_message(&segment.payload)
        {
            FirstMessage::Startup(startup) => (Phase::Done, Some((startup, true))),
            _ => (Phase::Done, None),
        },
        // Retransmissions, segments after the verdict, a server speaking first.
        (_, Some(phase)) => (phase, None),
        (Direction::Ingress, None) => return Vec::new(),
    };
    tracker.phases.insert(cookie, next);
    let Some((startup, refused)) = plaintext else {
        return Vec::new();
    };
    let process = tracker.processes.get(&cookie).cloned();
    let server_ip = segment.server.ip().to_canonical();
    let domain = detector.recent.name_for(server_ip, segment.timestamp);
    let watching = detector.pins.databases_for_port(segment.server.port());
    let database = domain
        .as_deref()
        .and_then(|name| detector.pins.database_for_name(name))
        .filter(|i| watching.contains(i))
        .or_else(|| (watching.len() == 1).then(|| watching[0]))
        .map(|i| detector.pins.database(i).name.clone());

    let who = match &process {
        Some(p) => format!("Process {} (pid {})", p.name, p.pid),
        None => format!("A client at {}", segment.client),
    };
    let names = match (&startup.user, &startup.database) {
        (Some(user), Some(db)) => format!("user \"{user}\" and database \"{db}\""),
        (Some(user), None) => format!("user \"{user}\""),
        _ => "its login".to_owned(),
    };
    let how = if refused {
        "asked for TLS, was refused by the server, and went on without it"
    } else {
        "started without asking for TLS"
    };
    let message = format!(
        "{who} {how} on a database connection to {}{}: {names} went in the clear, and its password may follow — require sslmode=verify-full in the client",
        segment.server,
        domain
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default(),
    );
    let mut alert = Alert::new(segment.timestamp, Rule::PlaintextDbConnection, message);
    alert.database = database;
    alert.process = process;
    alert.source = Some(segment.client);
    alert.destination = Some((server_ip, segment.server.port()).into());
    alert.destination_domain = domain;
    alert.transport = Some(Transport::Tcp);
    alert.db_session = Some(DbSession {
        user: startup.user,
        database: startup.database,
        application: startup.application_name,
        tls_refused_by_server: refused,
    });
    vec![alert]
}

/// A map that forgets its oldest entries past a fixed size.
#[derive(Debug)]
struct Bounded<K, V> {
    entries: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded {
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Hash + Eq + Copy, V> Bounded<K, V> {
    fn insert(&mut self, key: K, value: V) {
        if self.entries.insert(key, value).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > CAPACITY {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }
}

#[cfg(test)]
#[path = "plaintext_tests.rs"]
mod tests;
