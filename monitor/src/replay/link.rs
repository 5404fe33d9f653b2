//! Link-layer headers → the IP packet inside.
//!
//! Ethernet (with 802.1Q/802.1ad VLAN tags) and Linux cooked capture v1 go
//! through etherparse; Linux cooked capture v2 and BSD loopback (which
//! etherparse lacks) are fixed headers read here: 20 bytes, and a 4-byte
//! address family. Tunnels inside the IP packet are [`super::tunnel`]'s.
use etherparse::{EtherType, Ethernet2Slice, LinuxSllProtocolType, LinuxSllSlice, SingleVlanSlice};

use super::error::CaptureError;

pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Link types replay reads.
pub const SUPPORTED: [u32; 8] = [
    LINKTYPE_NULL,
    LINKTYPE_ETHERNET,
    LINKTYPE_LOOP,
    LINKTYPE_RAW,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL2,
];

/// VLAN tags peeled before giving up (QinQ uses two).
const MAX_VLAN_TAGS: usize = 4;
const SLL2_HEADER_LEN: usize = 20;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// An IPv4 or IPv6 packet, from its IP header on.
    Ip(&'a [u8]),
    /// Something else (ARP, LLDP, ...): not for pinwatch.
    Other,
    /// The frame is shorter than its link-layer header.
    Short,
}

/// The IP packet inside a frame of `link_type`. An unsupported link type is
/// an error for the whole capture: nothing in it could be read.
pub fn ip_payload(
    link_type: u32,
    frame: &[u8],
    offset: usize,
) -> Result<Payload<'_>, CaptureError> {
    match link_type {
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Ok(match frame.first() {
            Some(byte) if matches!(byte >> 4, 4 | 6) => Payload::Ip(frame),
            Some(_) => Payload::Other,
            None => Payload::Short,
        }),
        LINKTYPE_NULL | LINKTYPE_LOOP => Ok(match frame.split_first_chunk::<4>() {
            Some((family, payload)) => loopback(link_type, *family, payload),
            None => Payload::Short,
        }),
        LINKTYPE_ETHERNET => Ok(ethernet(frame)),
        LINKTYPE_LINUX_SLL => Ok(match LinuxSllSlice::from_slice(frame) {
            Ok(sll) => match sll.protocol_type() {
                LinuxSllProtocolType::EtherType(ether_type) => {
                    by_ether_type(ether_type, sll.payload_slice())
                }
                _ => Payload::Other,
            },
            // A header etherparse refuses (an ARPHRD it does not know) is
            // no IP packet of ours either.
            Err(etherparse::err::linux_sll::HeaderSliceError::Len(_)) => Payload::Short,
            Err(_) => Payload::Other,
        }),
        LINKTYPE_LINUX_SLL2 => Ok(match frame.split_at_checked(SLL2_HEADER_LEN) {
            Some((header, payload)) => {
                let protocol = u16::from_be_bytes([header[0], header[1]]);
                by_ether_type(EtherType(protocol), payload)
            }
            None => Payload::Short,
        }),
        other => Err(CaptureError::UnsupportedLinkType {
            offset,
            link_type: other,
        }),
    }
}

/// An Ethernet frame (without FCS), VLAN tags peeled.
pub(super) fn ethernet(frame: &[u8]) -> Payload<'_> {
    match Ethernet2Slice::from_slice_without_fcs(frame) {
        Ok(ethernet) => by_ether_type(ethernet.ether_type(), ethernet.payload_slice()),
        Err(_) => Payload::Short,
    }
}

/// BSD loopback: the address family, in the capturing host's byte order
/// (NULL) or big-endian (LOOP). AF_INET is 2 everywhere; AF_INET6 is 10 on
/// Linux, 24 on NetBSD and OpenBSD, 28 on FreeBSD, 30 on macOS.
fn loopback(link_type: u32, family: [u8; 4], payload: &[u8]) -> Payload<'_> {
    let big = u32::from_be_bytes(family);
    // The family fits in 16 bits: a value that does not was written in the
    // other byte order.
    let family = if link_type == LINKTYPE_LOOP || big <= 0xffff {
        big
    } else {
        u32::from_le_bytes(family)
    };
    let version = payload.first().map(|byte| byte >> 4);
    match (family, version) {
        (2, Some(4)) | (10 | 24 | 28 | 30, Some(6)) => Payload::Ip(payload),
        (_, None) => Payload::Short,
        _ => Payload::Other,
    }
}

pub(super) fn by_ether_type(mut ether_type: EtherType, mut payload: &[u8]) -> Payload<'_> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ether_type {
            EtherType::IPV4 | EtherType::IPV6 => return Payload::Ip(payload),
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME => match SingleVlanSlice::from_slice(payload) {
                Ok(vlan) => {
                    ether_type = vlan.ether_type();
                    payload = vlan.payload_slice();
                }
                Err(_) => return Payload::Short,
            },
            _ => return Payload::Other,
        }
    }
    Payload::Other
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
