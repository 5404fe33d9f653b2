//! IP (v4/v6) and UDP/TCP headers around the DNS payload.
//!
//! Parsed laxly (etherparse's `LaxSlicedPacket`): a capture cut short still
//! yields its headers and the payload bytes present, and the DNS layer decides
//! whether those are enough.
use std::{
    net::{IpAddr, SocketAddr},
    time::SystemTime,
};

use etherparse::{
    LaxIpPayloadSlice, LaxNetSlice, LaxSlicedPacket, TransportSlice,
    err::{Layer, ip::LaxHeaderSliceError, packet::SliceError},
    ip_number,
};
use pinwatch_common::DNS_PORT;
use smallvec::SmallVec;

use super::{DecodeError, DnsPacket, Parsed, dns, message::Reading};
use crate::event::{Direction, DnsEvent, Transport};

/// The DNS events of one packet: one for UDP, held inline (no heap vector
/// per packet on the hot path); any number for a TCP segment.
pub type DnsEvents = SmallVec<[DnsEvent; 1]>;

/// The event of one DNS message between `source` and `destination`. The
/// socket cookie and the hook are the caller's to set: a capture has no
/// sockets, and `crate::reassembly` knows interface captures.
pub fn dns_event(
    source: SocketAddr,
    destination: SocketAddr,
    transport: Transport,
    parsed: Parsed,
    meta: PacketMeta,
) -> DnsEvent {
    DnsEvent {
        timestamp: meta.timestamp,
        direction: meta.direction,
        transport,
        source,
        destination,
        cgroup_id: meta.cgroup_id,
        truncated: meta.truncated,
        socket_cookie: 0,
        message: parsed.message,
        seen_at: crate::event::Hook::Socket,
        fragmented: false,
        malformed: parsed.malformed,
    }
}

/// What the capture knows about a packet besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    pub timestamp: SystemTime,
    pub direction: Direction,
    /// cgroup v2 id of the socket; 0 when unknown (e.g. a pcap replay).
    pub cgroup_id: u64,
    /// The capture holds only the first part of the packet.
    pub truncated: bool,
}

/// Parses the IP packet (IPv4 or IPv6, UDP or TCP) and the DNS message(s) it
/// carries: one for UDP; for TCP every complete length-prefixed message in
/// the segment (none for an empty segment).
pub fn dns_events(packet: &DnsPacket) -> Result<DnsEvents, DecodeError> {
    let mut events = parse_ip_dns(&packet.ip_packet, packet.meta())?;
    for event in &mut events {
        event.socket_cookie = packet.socket_cookie;
    }
    Ok(events)
}

/// Same as [`dns_events`] from a raw IP packet, for replaying captures.
pub fn parse_ip_dns(ip_packet: &[u8], meta: PacketMeta) -> Result<DnsEvents, DecodeError> {
    let sliced = LaxSlicedPacket::from_ip(ip_packet).map_err(|e| match e {
        LaxHeaderSliceError::Len(len) if meta.truncated => DecodeError::Truncated {
            layer: "IP header",
            detail: len.to_string(),
        },
        e => DecodeError::Ip(e),
    })?;
    let Some((source_ip, destination_ip, payload)) = ip_parts(sliced.net.as_ref()) else {
        // from_ip only yields IPv4 or IPv6; anything else is not ours.
        return Err(DecodeError::UnsupportedProtocol { protocol: 0 });
    };
    if payload.fragmented {
        return Err(fragment(sliced.net.as_ref()));
    }
    // The IP length field promising more than was captured is a cut capture
    // too, whether or not the source said so.
    let mut truncated = meta.truncated || payload.incomplete;
    // Errors in IP-level extension headers come first: behind them the
    // protocol is unknown. Errors in transport layers we do not parse (ICMP)
    // must not hide the plainer "not UDP or TCP".
    let (ip_level_error, transport_error) = match sliced.stop_err {
        Some((error, layer)) if is_transport_layer(layer) => (None, Some((error, layer))),
        other => (other, None),
    };
    if let Some((error, layer)) = ip_level_error {
        return Err(headers_error(error, layer, truncated));
    }
    let protocol = payload.ip_number;
    if protocol != ip_number::UDP && protocol != ip_number::TCP {
        return Err(DecodeError::UnsupportedProtocol {
            protocol: protocol.0,
        });
    }
    if let Some((error, layer)) = transport_error {
        return Err(headers_error(error, layer, truncated));
    }
    let (transport, ports, dns_bytes) = match sliced.transport {
        Some(TransportSlice::Udp(udp)) => {
            truncated |= usize::from(udp.length()) > udp.slice().len();
            (
                Transport::Udp,
                (udp.source_port(), udp.destination_port()),
                udp.payload(),
            )
        }
        Some(TransportSlice::Tcp(tcp)) => (
            Transport::Tcp,
            (tcp.source_port(), tcp.destination_port()),
            tcp.payload(),
        ),
        // Unreachable after the protocol check and stop_err; kept total.
        _ => {
            return Err(DecodeError::UnsupportedProtocol {
                protocol: protocol.0,
            });
        }
    };
    let (source_port, destination_port) = ports;
    if source_port != DNS_PORT && destination_port != DNS_PORT {
        return Err(DecodeError::NotDns {
            source_port,
            destination_port,
        });
    }
    let source = SocketAddr::new(source_ip, source_port);
    let destination = SocketAddr::new(destination_ip, destination_port);
    let meta = PacketMeta { truncated, ..meta };
    let event = |parsed: Parsed| dns_event(source, destination, transport, parsed, meta);
    Ok(match transport {
        Transport::Udp => {
            let reading = match meta.direction {
                Direction::Egress => Reading::Sent,
                Direction::Ingress => Reading::Received,
            };
            smallvec::smallvec![event(dns::udp_message_seen(dns_bytes, truncated, reading)?)]
        }
        Transport::Tcp => dns::tcp_messages(dns_bytes, truncated)?
            .into_iter()
            .map(event)
            .collect(),
    })
}

fn ip_parts<'a>(
    net: Option<&'a LaxNetSlice<'a>>,
) -> Option<(IpAddr, IpAddr, &'a LaxIpPayloadSlice<'a>)> {
    match net? {
        LaxNetSlice::Ipv4(v4) => {
            let header = v4.header();
            Some((
                header.source_addr().into(),
                header.destination_addr().into(),
                v4.payload(),
            ))
        }
        LaxNetSlice::Ipv6(v6) => {
            let header = v6.header();
            Some((
                header.source_addr().into(),
                header.destination_addr().into(),
                v6.payload(),
            ))
        }
        LaxNetSlice::Arp(_) => None,
    }
}

/// Where a fragmented packet sits in its datagram, for the error.
fn fragment(net: Option<&LaxNetSlice<'_>>) -> DecodeError {
    use etherparse::Ipv6ExtensionSlice;
    let (offset_units, more_fragments) = match net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let header = v4.header();
            (header.fragments_offset().value(), header.more_fragments())
        }
        Some(LaxNetSlice::Ipv6(v6)) => v6
            .extensions()
            .clone()
            .into_iter()
            .find_map(|ext| match ext {
                Ipv6ExtensionSlice::Fragment(frag) => {
                    Some((frag.fragment_offset().value(), frag.more_fragments()))
                }
                _ => None,
            })
            .unwrap_or((0, false)),
        _ => (0, false),
    };
    // Both IP versions count fragment offsets in 8-byte units.
    DecodeError::Fragment {
        offset: u32::from(offset_units) * 8,
        more_fragments,
    }
}

fn is_transport_layer(layer: Layer) -> bool {
    matches!(
        layer,
        Layer::UdpHeader
            | Layer::UdpPayload
            | Layer::TcpHeader
            | Layer::Icmpv4
            | Layer::Icmpv4Timestamp
            | Layer::Icmpv4TimestampReply
            | Layer::Icmpv6
    )
}

/// A header that does not slice: cut by the capture, or malformed.
fn headers_error(error: SliceError, layer: Layer, truncated: bool) -> DecodeError {
    match error {
        SliceError::Len(len) if truncated => DecodeError::Truncated {
            layer: match layer {
                Layer::UdpHeader | Layer::UdpPayload => "UDP header",
                Layer::TcpHeader => "TCP header",
                Layer::IpAuthHeader => "IP authentication header",
                _ => "IPv6 extension headers",
            },
            detail: len.to_string(),
        },
        error => DecodeError::Headers(error),
    }
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
