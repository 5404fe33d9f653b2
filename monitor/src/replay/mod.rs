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

use std::{collections::BTreeSet, net::SocketAddr, time::SystemTime};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

pub use capture::{CaptureReader, Frame};
pub use error::CaptureError;
pub use link::{Payload, SUPPORTED as SUPPORTED_LINK_TYPES, ip_payload};

use crate::{
    alert::{
        Alert,
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
    /// Detections, before folding.
    pub alerts: u64,
    /// Alert lines handed to the writer (summaries of folded repeats included).
    pub alert_lines: u64,
    /// Frames too short for their link header, and DNS traffic that did not
    /// decode.
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

/// Replays a whole capture file (its bytes) against `config`; each alert
/// line goes to `emit` as it is decided. Alerts decided before a corrupt
/// record are still emitted; the error says where reading stopped.
pub fn replay(capture: &[u8], config: &Config, mut emit: impl FnMut(&Alert)) -> Outcome {
    let mut replayer = Replayer::new(config);
    let mut reader = match CaptureReader::new(capture) {
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
        let late = replayer
            .assembler
            .expire(last + std::time::Duration::from_secs(3600));
        replayer.summary.dns_messages += late.len() as u64;
        for event in late {
            for alert in replayer.detector.judge(&Event::Dns(event)) {
                replayer.summary.alerts += 1;
                for line in replayer.folder.offer(alert) {
                    replayer.emit(&line, &mut emit);
                }
            }
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
        let ip = match ip_payload(frame.link_type, frame.data, frame.offset)? {
            Payload::Ip(ip) => ip,
            Payload::Other => return Ok(()),
            Payload::Short => {
                self.summary.malformed += 1;
                tracing::debug!(
                    offset = frame.offset,
                    "frame shorter than its link-layer header"
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
        match self.assembler.push(ip, meta, 0, Hook::Socket) {
            Ok(messages) => {
                self.summary.dns_messages += messages.len() as u64;
                events.extend(messages.into_iter().map(Event::Dns));
            }
            // Other traffic, and fragments still waiting for the rest.
            Err(
                DecodeError::NotDns { .. }
                | DecodeError::UnsupportedProtocol { .. }
                | DecodeError::Fragment { .. },
            ) => {}
            Err(error) => {
                self.summary.malformed += 1;
                tracing::debug!(offset = frame.offset, "packet not decoded: {error}");
            }
        }
        for event in &events {
            for alert in self.detector.judge(event) {
                self.summary.alerts += 1;
                for line in self.folder.offer(alert) {
                    self.emit(&line, emit);
                }
            }
        }
        for line in self.folder.tick(frame.timestamp) {
            self.emit(&line, emit);
        }
        Ok(())
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
