//! DNS responses at the host's interfaces (tcx ingress), before IP
//! reassembly and socket lookup.
//!
//! The cgroup_skb hooks see what reaches a socket: a reply to a port nobody
//! listens on (a flood aimed at guessed ports, the genuine reply that lost
//! the race to a forged one) never does, and fragments arrive there already
//! reassembled. This program captures UDP from port 53 as it arrives on an
//! Ethernet interface, and every fragment of such a datagram: the first one
//! carries the ports and puts the datagram's identity in [`FRAGMENTS`]; the
//! later ones, which carry no ports, are captured when their identity is
//! there. Records carry `DNS_FLAG_INTERFACE`.
use aya_ebpf::{bindings::__sk_buff, macros::map, maps::LruHashMap};
use pinwatch_common::{
    DNS_FLAG_ETHERNET, DNS_FLAG_INTERFACE, DNS_PORT, FRAGMENT_MAX_ENTRIES, FragmentKey,
};

use super::{
    capture::capture,
    packet::{ETH_P_IP, ETH_P_IPV6, IPPROTO_UDP, load, walk_ipv6_extensions},
};

/// Ethernet header in front of the IP header at tc on the interfaces this
/// program is attached to (userspace attaches it to Ethernet devices only).
/// Records keep it (`DNS_FLAG_ETHERNET`; userspace strips it): copying from
/// offset 0 keeps the copy length a plain bound of `skb->len` for the
/// verifier.
const ETH_HLEN: u32 = 14;

/// Fragmented datagrams from port 53 whose first fragment was seen.
#[map]
static FRAGMENTS: LruHashMap<FragmentKey, u32> =
    LruHashMap::with_max_entries(FRAGMENT_MAX_ENTRIES, 0);

#[inline(always)]
pub(crate) fn ingress(skb: *mut __sk_buff) {
    // SAFETY: the skb pointer is the program's context, valid for its run;
    // these fields are readable from tc programs.
    let protocol = u16::from_be(unsafe { (*skb).protocol } as u16) as u32;
    // SAFETY: as above.
    let (data, data_end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    match protocol {
        ETH_P_IP => {
            let start = data + ETH_HLEN as usize;
            let header: [u8; 24] = if start + 24 <= data_end {
                // SAFETY: bounds checked against data_end just above.
                unsafe { (start as *const [u8; 24]).read_unaligned() }
            } else {
                match load(skb, ETH_HLEN) {
                    Some(header) => header,
                    None => return,
                }
            };
            if header[9] != IPPROTO_UDP {
                return;
            }
            let fragment_offset = u16::from_be_bytes([header[6] & 0x1f, header[7]]);
            let more_fragments = header[6] & 0x20 != 0;
            let key = || {
                let mut key = FragmentKey {
                    source: [0; 16],
                    destination: [0; 16],
                    id: u16::from_be_bytes([header[4], header[5]]) as u32,
                    version: 4,
                };
                key.source[..4].copy_from_slice(&header[12..16]);
                key.destination[..4].copy_from_slice(&header[16..20]);
                key
            };
            if fragment_offset != 0 {
                later_fragment(skb, &key());
                return;
            }
            let header_len = ((header[0] & 0x0f) as u32) * 4;
            let source_port = if header_len == 20 {
                [header[20], header[21]]
            } else {
                match load::<2>(skb, ETH_HLEN + header_len) {
                    Some(port) => port,
                    None => return,
                }
            };
            first_fragment_or_whole(skb, source_port, more_fragments, key);
        }
        ETH_P_IPV6 => {
            let start = data + ETH_HLEN as usize;
            let header: [u8; 44] = if start + 44 <= data_end {
                // SAFETY: bounds checked against data_end just above.
                unsafe { (start as *const [u8; 44]).read_unaligned() }
            } else {
                match load(skb, ETH_HLEN) {
                    Some(header) => header,
                    None => return,
                }
            };
            if header[6] == IPPROTO_UDP {
                first_fragment_or_whole(skb, [header[40], header[41]], false, unreachable_key);
                return;
            }
            let Some(walked) = walk_ipv6_extensions(skb, ETH_HLEN, header[6]) else {
                return;
            };
            if walked.l4_proto != IPPROTO_UDP {
                return;
            }
            let key = || {
                let mut key = FragmentKey {
                    source: [0; 16],
                    destination: [0; 16],
                    id: walked.fragment_id,
                    version: 6,
                };
                key.source.copy_from_slice(&header[8..24]);
                key.destination.copy_from_slice(&header[24..40]);
                key
            };
            if walked.fragment_offset != 0 {
                later_fragment(skb, &key());
                return;
            }
            let Some(source_port) = load::<2>(skb, walked.l4_offset) else {
                return;
            };
            first_fragment_or_whole(skb, source_port, walked.more_fragments, key);
        }
        _ => {}
    }
}

/// A key never built: unfragmented IPv6 without extension headers.
#[inline(always)]
fn unreachable_key() -> FragmentKey {
    FragmentKey {
        source: [0; 16],
        destination: [0; 16],
        id: 0,
        version: 0,
    }
}

#[inline(always)]
fn first_fragment_or_whole(
    skb: *mut __sk_buff,
    source_port: [u8; 2],
    more_fragments: bool,
    key: impl FnOnce() -> FragmentKey,
) {
    if u16::from_be_bytes(source_port) != DNS_PORT {
        return;
    }
    if more_fragments {
        // Best effort: a full map evicts the least recently used datagram.
        let _ = FRAGMENTS.insert(key(), 1, 0);
    }
    capture(skb, DNS_FLAG_INTERFACE | DNS_FLAG_ETHERNET);
}

#[inline(always)]
fn later_fragment(skb: *mut __sk_buff, key: &FragmentKey) {
    // SAFETY: the value is read only for its presence.
    if unsafe { FRAGMENTS.get(key) }.is_some() {
        capture(skb, DNS_FLAG_INTERFACE | DNS_FLAG_ETHERNET);
    }
}
