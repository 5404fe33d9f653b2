//! `pinwatch replay`: the daemon's decoder, detector and fold stage run over
//! a pcap or pcapng capture instead of the kernel's ring buffer.
//!
//! Steps per frame: [`capture`] (file records → frames) → [`link`] (link
//! layer → IP packet) → [`Assembler`] (the daemon's own IP/UDP/TCP
//! and DNS parsing) → [`Detector::observe`] → [`Folder`] → the caller's
//! alert writer. Nothing here needs privileges or touches the kernel.
//!
//! What a capture cannot say, and how replay stands in for it:
//! - Direction. The detector judges responses where they are delivered
//!   (ingress), so that a response seen leaving a local server and arriving
//!   at a local client counts once. A capture holds each packet once, from
//!   wherever it was taken, so every packet is treated as delivered
//!   ([`Direction::Ingress`]): each response in the file is judged exactly
//!   once.
//! - Connects. The kernel reports connect(2) calls with their process; a
//!   capture shows only the TCP SYN. A SYN (without ACK) to a watched port
//!   becomes a connect event from an unknown process (pid 0, no name), so
//!   `unexpected-db-peer` works on captures; its alerts carry no process
//!   fields.
//! - TCP and fragments go through the daemon's reassembly (one flow table
//!   per capture); datagrams whose fragments never all arrived are judged,
//!   as what is known of them, when the capture ends.
//! - Time. Every event carries its packet's capture timestamp, so alerts
//!   (and fold windows) follow the capture's clock, not the wall clock.
mod capture;
mod error;
mod link;
mod tunnel;

use std::{collections::BTreeSet, net::SocketAddr, time::SystemTime};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

pub use capture::{CaptureReader, Frame};
pub use error::CaptureError;
pub use link::{Payload, SUPPORTED as SUPPORTED_LINK_TYPES, ip_payload};

use crate::{
    alert::{
        Alert, Rule,
        fold::{self, Folder},
    },
    config::Config,
    decode::{DecodeError, PacketMeta},
    detector::Detector,
    event::{ConnectAction, ConnectEvent, Direction, Event, Hook, Process},
    reassembly::Assembler,
};

/// What a replay went through; printed as one line on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Frames read from the file.
    pub packets: u64,
    /// DNS messages decoded (queries and responses).
    pub dns_messages: u64,
    /// TCP SYNs to a watched port, checked as connects.
    pub connects: u64,
    /// Detections, before folding: each rule an event raised, once (a
    /// response whose CNAME chain passes through two configured names is
    /// one detection).
    pub alerts: u64,
    /// Alert lines handed to the writer (summaries of folded repeats included).
    pub alert_lines: u64,
    /// Frames too short for their link or tunnel header, and DNS messages
    /// that did not decode or decoded only up to a fault (each one, also
    /// beside one that did).
    pub malformed: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} packets, {} DNS messages, {} connects, {} alerts ({} lines), {} malformed",
            self.packets,
            self.dns_messages,
            self.connects,
            self.alerts,
            self.alert_lines,
            self.malformed
        )
    }
}

/// The end of a replay: what was seen, and the error that stopped it early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub summary: Summary,
    pub error: Option<CaptureError>,
}

/// Replays a whole capture file held in memory; see [`replay_from`].
pub fn replay(capture: &[u8], config: &Config, emit: impl FnMut(&Alert)) -> Outcome {
    replay_from(capture, u64::MAX, config, emit)
}

/// Replays the capture `input` streams (at most `limit` bytes of it)
/// against `config`; each alert line goes to `emit` as it is decided.
/// Alerts decided before a corrupt record are still emitted; the error says
/// where reading stopped.
pub fn replay_from(
    input: impl std::io::Read,
    limit: u64,
    config: &Config,
    mut emit: impl FnMut(&Alert),
) -> Outcome {
    let mut replayer = Replayer::new(config);
    let mut reader = match CaptureReader::new(input, limit) {
        Ok(reader) => reader,
        Err(error) => {
            return Outcome {
                summary: replayer.summary,
                error: Some(error),
            };
        }
    };
    let mut error = None;
    while let Some(frame) = reader.next_frame() {
        let result = frame.and_then(|frame| replayer.frame(&frame, &mut emit));
        if let Err(e) = result {
            error = Some(e);
            break;
        }
    }
    // Datagrams whose fragments never all arrived, as what is known of them.
    if let Some(last) = replayer.last_timestamp {
        let malformed = replayer.assembler.stats().malformed;
        let late = replayer
            .assembler
            .expire(last + std::time::Duration::from_secs(3600));
        replayer.summary.malformed += replayer.assembler.stats().malformed - malformed;
        replayer.summary.dns_messages += late.len() as u64;
        replayer.summary.malformed += late.iter().filter(|m| m.malformed.is_some()).count() as u64;
        for event in late {
            replayer.judge(&Event::Dns(event), &mut emit);
        }
    }
    // Whatever was folded is written, also after an error.
    for alert in replayer.folder.flush() {
        replayer.emit(&alert, &mut emit);
    }
    Outcome {
        summary: replayer.summary,
        error,
    }
}

struct Replayer {
    /// The daemon's own TCP and fragment reassembly.
    assembler: Assembler,
    last_timestamp: Option<std::time::SystemTime>,
    detector: Detector,
    folder: Folder,
    watched_ports: BTreeSet<u16>,
    summary: Summary,
}

impl Replayer {
    fn new(config: &Config) -> Replayer {
        Replayer {
            assembler: Assembler::default(),
            last_timestamp: None,
            detector: Detector::new(config),
            folder: Folder::new(config.alerts.dedup_window, fold::DEFAULT_CAPACITY),
            watched_ports: config.watched_ports(),
            summary: Summary::default(),
        }
    }

    fn frame(
        &mut self,
        frame: &Frame<'_>,
        emit: &mut impl FnMut(&Alert),
    ) -> Result<(), CaptureError> {
        self.summary.packets += 1;
        let payload = match ip_payload(frame.link_type, frame.data, frame.offset)? {
            Payload::Ip(ip) => tunnel::innermost(ip),
            other => other,
        };
        let ip = match payload {
            Payload::Ip(ip) => ip,
            Payload::Other => return Ok(()),
            Payload::Short => {
                self.summary.malformed += 1;
                tracing::debug!(
                    offset = frame.offset,
                    "frame shorter than its link-layer or tunnel header"
                );
                return Ok(());
            }
        };
        let mut events = Vec::new();
        if let Some(connect) = syn_to_watched_port(ip, frame.timestamp, &self.watched_ports) {
            self.summary.connects += 1;
            events.push(Event::Connect(connect));
        }
        let meta = PacketMeta {
            timestamp: frame.timestamp,
            direction: Direction::Ingress,
            cgroup_id: 0,
            truncated: frame.truncated,
        };
        self.last_timestamp = Some(frame.timestamp);
        // A capture's packets reached the capturing host's stack: judged as
        // delivered, with no socket cookie.
        let malformed = self.assembler.stats().malformed;
        match self.assembler.push(ip, meta, 0, Hook::Socket) {
            Ok(messages) => {
                self.summary.dns_messages += messages.len() as u64;
                // Read as a stub resolver reads it, up to a fault: judged,
                // and counted as malformed.
                self.summary.malformed +=
                    messages.iter().filter(|m| m.malformed.is_some()).count() as u64;
                events.extend(messages.into_iter().map(Event::Dns));
            }
            // Other traffic, and fragments still waiting for the rest.
            Err(
                DecodeError::NotDns { .. }
                | DecodeError::UnsupportedProtocol { .. }
                | DecodeError::Fragment { .. },
            ) => {}
            Err(error) => tracing::debug!(offset = frame.offset, "packet not decoded: {error}"),
        }
        // The assembler counts every message that did not decode, also those
        // beside one that did.
        self.summary.malformed += self.assembler.stats().malformed - malformed;
        for event in &events {
            self.judge(event, emit);
        }
        for line in self.folder.tick(frame.timestamp) {
            self.emit(&line, emit);
        }
        Ok(())
    }

    /// One event through the detector and the folder. The detector raises
    /// an answer rule once per configured name in a CNAME chain: for one
    /// database that is one alert, and for the summary one detection per
    /// rule.
    fn judge(&mut self, event: &Event, emit: &mut impl FnMut(&Alert)) {
        let mut raised: Vec<(Rule, Option<String>)> = Vec::new();
        for alert in self.detector.judge(event) {
            if !raised.iter().any(|(rule, _)| *rule == alert.rule) {
                self.summary.alerts += 1;
            }
            let key = (alert.rule, alert.database.clone());
            if raised.contains(&key) {
                continue;
            }
            raised.push(key);
            for line in self.folder.offer(alert) {
                self.emit(&line, emit);
            }
        }
    }

    fn emit(&mut self, alert: &Alert, emit: &mut impl FnMut(&Alert)) {
        self.summary.alert_lines += 1;
        emit(alert);
    }
}

/// A TCP SYN without ACK to a watched port, as the connect the kernel would
/// have reported, from a process the capture cannot name.
fn syn_to_watched_port(
    ip: &[u8],
    timestamp: SystemTime,
    watched_ports: &BTreeSet<u16>,
) -> Option<ConnectEvent> {
    let packet = LaxSlicedPacket::from_ip(ip).ok()?;
    let destination_ip = match packet.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => v4.header().destination_addr().into(),
        LaxNetSlice::Ipv6(v6) => v6.header().destination_addr().into(),
        LaxNetSlice::Arp(_) => return None,
    };
    let Some(TransportSlice::Tcp(tcp)) = packet.transport else {
        return None;
    };
    let port = tcp.destination_port();
    if !tcp.syn() || tcp.ack() || !watched_ports.contains(&port) {
        return None;
    }
    Some(ConnectEvent {
        timestamp,
        process: unknown_process(),
        destination: SocketAddr::new(destination_ip, port),
        // A SYN on the wire is a connect the kernel let through.
        action: ConnectAction::Allowed,
        socket_cookie: 0,
    })
}

/// pid 0 stands for "not known": no process connects as pid 0.
fn unknown_process() -> Process {
    Process {
        pid: 0,
        tid: 0,
        uid: 0,
        gid: 0,
        name: String::new(),
        cgroup_id: 0,
    }
}

#[cfg(test)]
mod tests;
