//! Tunnels around the packet replay judges, as mirrored and overlay traffic
//! arrives: GRE (RFC 2784, keys and sequence numbers of RFC 2890) carrying
//! IP, Ethernet (transparent bridging, `gretap`) or ERSPAN (type I, II and
//! III, Ethernet inside); VXLAN (RFC 7348, UDP 4789, and 8472, Linux's
//! default when no port is given); Geneve (RFC 8926, UDP 6081).
//!
//! etherparse reads the outer IP and UDP headers; the tunnel headers, which
//! it lacks, are read here with every length checked. At most
//! [`MAX_DEPTH`] tunnels are peeled, so a packet nested in itself cannot
//! keep replay busy.
use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice, ip_number};

use super::link::{Payload, by_ether_type, ethernet};

/// Tunnels peeled from one packet at most.
pub const MAX_DEPTH: usize = 4;

const VXLAN_PORTS: [u16; 2] = [4789, 8472];
const GENEVE_PORT: u16 = 6081;
/// GRE protocol types that are not EtherTypes of IP.
const TRANSPARENT_BRIDGING: u16 = 0x6558;
const ERSPAN_I_II: u16 = 0x88be;
const ERSPAN_III: u16 = 0x22eb;

/// What `ip` carries once its tunnels are peeled; `ip` itself when it is
/// no tunnel (or deeper than [`MAX_DEPTH`]).
pub fn innermost(ip: &[u8]) -> Payload<'_> {
    let mut packet = ip;
    for _ in 0..MAX_DEPTH {
        match decapsulate(packet) {
            Some(Payload::Ip(inner)) => packet = inner,
            Some(other) => return other,
            None => break,
        }
    }
    Payload::Ip(packet)
}

/// The payload of one tunnel packet; None when `ip` is not one.
fn decapsulate(ip: &[u8]) -> Option<Payload<'_>> {
    let packet = LaxSlicedPacket::from_ip(ip).ok()?;
    let payload = match packet.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => v4.payload().clone(),
        LaxNetSlice::Ipv6(v6) => v6.payload().clone(),
        LaxNetSlice::Arp(_) => return None,
    };
    // A fragment of a tunnel packet holds part of a header at best.
    if payload.fragmented {
        return None;
    }
    match payload.ip_number {
        ip_number::GRE => Some(gre(payload.payload)),
        ip_number::UDP => match packet.transport {
            Some(TransportSlice::Udp(udp)) if VXLAN_PORTS.contains(&udp.destination_port()) => {
                Some(vxlan(udp.payload()))
            }
            Some(TransportSlice::Udp(udp)) if udp.destination_port() == GENEVE_PORT => {
                Some(geneve(udp.payload()))
            }
            _ => None,
        },
        _ => None,
    }
}

fn gre(bytes: &[u8]) -> Payload<'_> {
    const CHECKSUM: u16 = 0x8000;
    const ROUTING: u16 = 0x4000;
    const KEY: u16 = 0x2000;
    const SEQUENCE: u16 = 0x1000;
    const VERSION: u16 = 0x0007;
    let Some((&[f0, f1, p0, p1], rest)) = bytes.split_first_chunk::<4>() else {
        return Payload::Short;
    };
    let flags = u16::from_be_bytes([f0, f1]);
    // Version 1 is PPTP's (PPP inside); source routing (RFC 1701) is long
    // obsolete.
    if flags & (VERSION | ROUTING) != 0 {
        return Payload::Other;
    }
    let optional = [CHECKSUM, KEY, SEQUENCE]
        .iter()
        .filter(|&&flag| flags & flag != 0)
        .count();
    let Some(inner) = rest.get(4 * optional..) else {
        return Payload::Short;
    };
    match u16::from_be_bytes([p0, p1]) {
        // Type I has no header of its own, and no sequence number.
        ERSPAN_I_II if flags & SEQUENCE == 0 => ethernet(inner),
        ERSPAN_I_II => erspan(inner, 1, 8),
        ERSPAN_III => erspan(inner, 2, 12),
        protocol => by_protocol(protocol, inner),
    }
}

/// ERSPAN type II (`version` 1, an 8-byte header) or III (`version` 2, 12
/// bytes and an optional 8-byte platform subheader), Ethernet inside.
fn erspan(bytes: &[u8], version: u8, header_len: usize) -> Payload<'_> {
    let Some(header) = bytes.get(..header_len) else {
        return Payload::Short;
    };
    if header[0] >> 4 != version {
        return Payload::Other;
    }
    let mut start = header_len;
    if version == 2 {
        // Frame type (0 Ethernet) and the O flag (a subheader follows).
        let frame_type = (header[10] >> 2) & 0x1f;
        if frame_type != 0 {
            return Payload::Other;
        }
        if header[11] & 0x01 != 0 {
            start += 8;
        }
    }
    match bytes.get(start..) {
        Some(frame) => ethernet(frame),
        None => Payload::Short,
    }
}

fn vxlan(bytes: &[u8]) -> Payload<'_> {
    const VNI_VALID: u8 = 0x08;
    match bytes.split_first_chunk::<8>() {
        Some((header, frame)) if header[0] & VNI_VALID != 0 => ethernet(frame),
        Some(_) => Payload::Other,
        None => Payload::Short,
    }
}

fn geneve(bytes: &[u8]) -> Payload<'_> {
    let Some((header, _)) = bytes.split_first_chunk::<8>() else {
        return Payload::Short;
    };
    if header[0] >> 6 != 0 {
        return Payload::Other;
    }
    let options = usize::from(header[0] & 0x3f) * 4;
    match bytes.get(8 + options..) {
        Some(inner) => by_protocol(u16::from_be_bytes([header[2], header[3]]), inner),
        None => Payload::Short,
    }
}

/// A tunnel's inner packet by its protocol type (an EtherType).
fn by_protocol(protocol: u16, inner: &[u8]) -> Payload<'_> {
    match protocol {
        TRANSPARENT_BRIDGING => ethernet(inner),
        protocol => by_ether_type(EtherType(protocol), inner),
    }
}

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
