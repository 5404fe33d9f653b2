//! Reading packet headers from a program: the protocol numbers, in-place
//! and helper reads, and the walk over IPv6 extension headers.
use core::mem::MaybeUninit;

use aya_ebpf::{bindings::__sk_buff, helpers::generated::bpf_skb_load_bytes};

pub(crate) const ETH_P_IP: u32 = 0x0800;
pub(crate) const ETH_P_IPV6: u32 = 0x86DD;
pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
pub(crate) const IPV6_HEADER_LEN: u32 = 40;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;
/// IPv6 extension headers walked before giving up on finding UDP or TCP.
/// Real traffic carries one or two; the bound keeps the verifier's work and
/// a hostile chain's cost fixed.
const MAX_IPV6_EXTENSIONS: usize = 4;

/// Where UDP or TCP starts behind IPv6 extension headers.
pub(crate) struct Ipv6Transport {
    pub l4_proto: u8,
    /// Offset of the transport header, as `bpf_skb_load_bytes` counts.
    pub l4_offset: u32,
    /// Offset of this packet's data in its datagram, in bytes (0 when no
    /// fragment header, or for the first fragment).
    pub fragment_offset: u32,
    /// The fragment header's identification and more-fragments bit; 0 and
    /// false without one.
    pub fragment_id: u32,
    pub more_fragments: bool,
}

/// Follows up to [`MAX_IPV6_EXTENSIONS`] hop-by-hop, routing, destination
/// options and fragment headers from the IPv6 header at `ip_offset`, whose
/// next-header field is `next`. None when the chain is longer, unreadable or
/// ends in something other than UDP or TCP.
#[inline(always)]
pub(crate) fn walk_ipv6_extensions(
    skb: *mut __sk_buff,
    ip_offset: u32,
    mut next: u8,
) -> Option<Ipv6Transport> {
    let mut offset = ip_offset + IPV6_HEADER_LEN;
    let mut walked = Ipv6Transport {
        l4_proto: 0,
        l4_offset: 0,
        fragment_offset: 0,
        fragment_id: 0,
        more_fragments: false,
    };
    for _ in 0..MAX_IPV6_EXTENSIONS {
        match next {
            IPPROTO_UDP | IPPROTO_TCP => {
                walked.l4_proto = next;
                walked.l4_offset = offset;
                return Some(walked);
            }
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let [following, units] = load::<2>(skb, offset)?;
                next = following;
                offset += (units as u32 + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let fragment = load::<8>(skb, offset)?;
                next = fragment[0];
                let field = u16::from_be_bytes([fragment[2], fragment[3]]);
                walked.fragment_offset = ((field >> 3) as u32) * 8;
                walked.more_fragments = field & 1 != 0;
                walked.fragment_id =
                    u32::from_be_bytes([fragment[4], fragment[5], fragment[6], fragment[7]]);
                offset += 8;
                if walked.fragment_offset != 0 {
                    // Later fragments carry no transport header.
                    walked.l4_proto = next;
                    walked.l4_offset = offset;
                    return Some(walked);
                }
            }
            _ => return None,
        }
    }
    if next == IPPROTO_UDP || next == IPPROTO_TCP {
        walked.l4_proto = next;
        walked.l4_offset = offset;
        return Some(walked);
    }
    None
}

/// Reads `N` bytes at the start of the packet's linear area. The caller has
/// checked `data + N <= data_end`.
#[inline(always)]
pub(crate) unsafe fn read_in_place<const N: usize>(data: usize) -> [u8; N] {
    // SAFETY: the caller checked that N bytes at `data` are packet data.
    unsafe { (data as *const [u8; N]).read_unaligned() }
}

/// Copies `N` bytes at `offset` through `bpf_skb_load_bytes`, which also
/// reaches paged skb data.
#[inline(always)]
pub(crate) fn load<const N: usize>(skb: *mut __sk_buff, offset: u32) -> Option<[u8; N]> {
    let mut buf = MaybeUninit::<[u8; N]>::uninit();
    // SAFETY: the helper writes at most N bytes into the N-byte buffer and
    // reads the skb, the program's context.
    let ret = unsafe { bpf_skb_load_bytes(skb.cast(), offset, buf.as_mut_ptr().cast(), N as u32) };
    // SAFETY: the helper filled all N bytes when it returned 0.
    (ret == 0).then(|| unsafe { buf.assume_init() })
}
