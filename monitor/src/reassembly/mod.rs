//! Transport reassembly in front of the DNS decoder: TCP streams cut into
//! length-prefixed messages ([`tcp`]) and IP fragments put back together
//! ([`fragments`]), so one DNS message reaches the detector once, however
//! the network carried it.
//!
//! [`Assembler`] is what the daemon's kernel source and `pinwatch replay`
//! call with each captured IP packet; it returns the DNS events the packet
//! completed. UDP datagrams that are not fragments go straight to
//! [`decode::parse_ip_dns`]. Call [`Assembler::expire`] now and then (the
//! source does on its one-second tick) so fragments that never complete
//! are still reported.
pub mod fragments;
pub mod tcp;

use std::{
    net::{IpAddr, SocketAddr},
    time::SystemTime,
};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice, ip_number};
use pinwatch_common::DNS_PORT;

use crate::{
    decode::{self, DecodeError, DnsEvents, DnsPacket, PacketMeta},
    event::{DnsEvent, Hook, Transport},
};
use fragments::{DatagramKey, Fragment, FragmentLimits, FragmentStats, FragmentTable};
use tcp::{FlowKey, Limits, Output, Segment, TcpReassembler, TcpStats};

/// Counters of both reassemblers; status and metrics show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblyStats {
    pub tcp: TcpStats,
    pub fragments: FragmentStats,
    pub buffered_bytes: usize,
    /// DNS traffic that did not decode: each TCP message or reassembled
    /// datagram that does not parse or was cut, and each other packet whose
    /// headers or message do not parse.
    pub malformed: u64,
}

#[derive(Debug, Default)]
pub struct Assembler {
    tcp: TcpReassembler,
    fragments: FragmentTable,
    malformed: u64,
}

impl Assembler {
    pub fn new(tcp: Limits, fragments: FragmentLimits) -> Assembler {
        Assembler {
            tcp: TcpReassembler::new(tcp),
            fragments: FragmentTable::new(fragments),
            malformed: 0,
        }
    }

    pub fn stats(&self) -> AssemblyStats {
        AssemblyStats {
            tcp: self.tcp.stats(),
            fragments: self.fragments.stats(),
            buffered_bytes: self.tcp.buffered_bytes() + self.fragments.buffered_bytes(),
            malformed: self.malformed,
        }
    }

    /// A kernel record.
    pub fn push_packet(&mut self, packet: &DnsPacket) -> Result<DnsEvents, DecodeError> {
        self.push(
            &packet.ip_packet,
            packet.meta(),
            packet.socket_cookie,
            packet.seen_at,
        )
    }

    /// One captured IP packet (from the IP header on). `socket_cookie` is 0
    /// when unknown (a pcap); `seen_at` is `Hook::Socket` for a pcap, whose
    /// packets reached the capturing host's stack.
    pub fn push(
        &mut self,
        ip_packet: &[u8],
        meta: PacketMeta,
        socket_cookie: u64,
        seen_at: Hook,
    ) -> Result<DnsEvents, DecodeError> {
        let mut events = match classify(ip_packet) {
            Some(Carried::Fragment(key, fragment)) => {
                let fragment = Fragment {
                    timestamp: meta.timestamp,
                    ..fragment
                };
                let datagrams = self.fragments.push(key, fragment);
                let (events, errors) = datagram_events(&datagrams, meta);
                self.malformed += errors.len() as u64;
                DnsEvents::from_vec(events)
            }
            Some(Carried::Tcp(ends, segment)) => {
                let key = FlowKey {
                    source: ends.0,
                    destination: ends.1,
                    socket_cookie,
                };
                let segment = Segment {
                    timestamp: meta.timestamp,
                    ..segment
                };
                let outputs = self.tcp.push(key, segment);
                let (events, errors) = tcp_events(ends, &outputs, meta);
                self.malformed += errors.len() as u64;
                // A message that does not parse is skipped: the framing
                // keeps the next one in step, and a forged answer next to
                // garbage must still reach the detector.
                match errors.into_iter().next() {
                    Some(error) if events.is_empty() => return Err(error),
                    _ => DnsEvents::from_vec(events),
                }
            }
            None => decode::parse_ip_dns(ip_packet, meta).inspect_err(|error| {
                if !matches!(
                    error,
                    DecodeError::NotDns { .. }
                        | DecodeError::UnsupportedProtocol { .. }
                        | DecodeError::Fragment { .. }
                ) {
                    self.malformed += 1;
                }
            })?,
        };
        for event in &mut events {
            event.socket_cookie = socket_cookie;
            event.seen_at = seen_at;
        }
        Ok(events)
    }

    /// Fragmented datagrams that waited too long, as what is known of them.
    pub fn expire(&mut self, now: SystemTime) -> Vec<DnsEvent> {
        self.tcp.expire(now);
        let meta = PacketMeta {
            timestamp: now,
            direction: crate::event::Direction::Ingress,
            cgroup_id: 0,
            truncated: true,
        };
        let (mut events, errors) = datagram_events(&self.fragments.expire(now), meta);
        self.malformed += errors.len() as u64;
        for event in &mut events {
            event.seen_at = Hook::Interface;
        }
        events
    }
}

/// What a packet is to the reassemblers; None: a plain packet for the decoder.
enum Carried<'a> {
    Fragment(DatagramKey, Fragment<'a>),
    Tcp((SocketAddr, SocketAddr), Segment<'a>),
}

/// The IPv6 fragment header's (offset, more fragments, id), walked from the
/// raw bytes with every length checked: etherparse 0.19's extension iterator
/// reads out of bounds on a header cut short (found by the replay fuzzer),
/// and its accessors take the M flag from the wrong bit. RFC 8200 §4.5: the
/// offset is the top 13 bits of bytes 2–3, M the lowest bit.
fn ipv6_fragment(ip_packet: &[u8]) -> Option<(usize, bool, u32)> {
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const DESTINATION_OPTIONS: u8 = 60;
    let mut next = *ip_packet.get(6)?;
    let mut at = 40usize;
    for _ in 0..8 {
        let header = ip_packet.get(at..at.checked_add(8)?)?;
        match next {
            FRAGMENT => {
                let field = u16::from_be_bytes([header[2], header[3]]);
                let id = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                return Some((usize::from(field & 0xfff8), field & 1 != 0, id));
            }
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS => {
                next = header[0];
                at = at.checked_add((usize::from(header[1]) + 1) * 8)?;
            }
            _ => return None,
        }
    }
    None
}

fn classify(ip_packet: &[u8]) -> Option<Carried<'_>> {
    let sliced = LaxSlicedPacket::from_ip(ip_packet).ok()?;
    let (source, destination, key_id, offset, more, wire_len, payload) =
        match sliced.net.as_ref()? {
            LaxNetSlice::Ipv4(v4) => {
                let h = v4.header();
                let header_len = usize::from(h.ihl()) * 4;
                (
                    IpAddr::from(h.source_addr()),
                    IpAddr::from(h.destination_addr()),
                    u32::from(h.identification()),
                    usize::from(h.fragments_offset().value()) * 8,
                    h.more_fragments(),
                    usize::from(h.total_len()).saturating_sub(header_len),
                    v4.payload(),
                )
            }
            LaxNetSlice::Ipv6(v6) => {
                let h = v6.header();
                let (offset, more, id) = ipv6_fragment(ip_packet).unwrap_or((0, false, 0));
                (
                    IpAddr::from(h.source_addr()),
                    IpAddr::from(h.destination_addr()),
                    id,
                    offset,
                    more,
                    usize::from(h.payload_length()).saturating_sub(v6.extensions().slice().len()),
                    v6.payload(),
                )
            }
            LaxNetSlice::Arp(_) => return None,
        };
    if payload.fragmented {
        if payload.ip_number != ip_number::UDP {
            return None;
        }
        return Some(Carried::Fragment(
            DatagramKey {
                source,
                destination,
                id: key_id,
            },
            Fragment {
                offset,
                more_fragments: more,
                data: payload.payload,
                wire_len,
                timestamp: SystemTime::UNIX_EPOCH,
            },
        ));
    }
    let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
        return None;
    };
    if tcp.source_port() != DNS_PORT && tcp.destination_port() != DNS_PORT {
        return None;
    }
    let header_len = tcp.slice().len() - tcp.payload().len();
    Some(Carried::Tcp(
        (
            SocketAddr::new(source, tcp.source_port()),
            SocketAddr::new(destination, tcp.destination_port()),
        ),
        Segment {
            // A SYN takes one sequence number (RFC 9293 §3.4): the first
            // data byte, in the SYN itself (TCP Fast Open) or after it, has
            // the next one.
            seq: tcp.sequence_number().wrapping_add(u32::from(tcp.syn())),
            payload: tcp.payload(),
            wire_len: wire_len.saturating_sub(header_len),
            fin: tcp.fin(),
            rst: tcp.rst(),
            timestamp: SystemTime::UNIX_EPOCH,
        },
    ))
}

/// The messages framed on a flow as events, and the errors of those that
/// did not decode.
fn tcp_events(
    (source, destination): (SocketAddr, SocketAddr),
    outputs: &[Output],
    meta: PacketMeta,
) -> (Vec<DnsEvent>, Vec<DecodeError>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for output in outputs {
        match output {
            Output::Message(bytes) => match decode::udp_message(bytes, false) {
                Ok(parsed) => events.push(decode::dns_event(
                    source,
                    destination,
                    Transport::Tcp,
                    parsed,
                    meta,
                )),
                Err(error) => errors.push(error),
            },
            Output::Cut { announced } => errors.push(DecodeError::Truncated {
                layer: "DNS message",
                detail: format!(
                    "a {announced}-byte DNS-over-TCP message lost bytes the kernel did not copy"
                ),
            }),
        }
    }
    (events, errors)
}

/// Reassembled (or partly known) datagrams as events, and the errors of
/// those from or to port 53 that did not decode.
fn datagram_events(
    datagrams: &[fragments::Datagram],
    meta: PacketMeta,
) -> (Vec<DnsEvent>, Vec<DecodeError>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for datagram in datagrams {
        match datagram_event(datagram, meta) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => {}
            Err(error) => errors.push(error),
        }
    }
    (events, errors)
}

/// A reassembled (or partly known) UDP datagram from port 53 as an event;
/// None when it is not DNS.
fn datagram_event(
    datagram: &fragments::Datagram,
    meta: PacketMeta,
) -> Result<Option<DnsEvent>, DecodeError> {
    let Some((header, dns)) = datagram.payload.split_first_chunk::<8>() else {
        return Ok(None);
    };
    let source_port = u16::from_be_bytes([header[0], header[1]]);
    let destination_port = u16::from_be_bytes([header[2], header[3]]);
    if source_port != DNS_PORT && destination_port != DNS_PORT {
        return Ok(None);
    }
    // A datagram missing fragments is read as far as its bytes go.
    let parsed = decode::udp_message(dns, !datagram.complete)?;
    let mut event = decode::dns_event(
        SocketAddr::new(datagram.key.source, source_port),
        SocketAddr::new(datagram.key.destination, destination_port),
        Transport::Udp,
        parsed,
        meta,
    );
    event.timestamp = datagram.first_seen;
    event.truncated = !datagram.complete;
    event.fragmented = true;
    Ok(Some(event))
}

#[cfg(test)]
mod tests;
