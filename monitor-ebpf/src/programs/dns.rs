use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::{bpf_get_socket_cookie, bpf_skb_cgroup_id, bpf_skb_load_bytes},
    macros::{cgroup_skb, classifier},
    programs::{SkBuffContext, TcContext},
};
use pinwatch_common::{
    DNS_CAPTURE_CLASSES, DNS_FLAG_EGRESS, DNS_FLAG_HEAD, DNS_FLAG_TRUNCATED, DNS_PORT,
    DnsPacketEvent, DnsPacketHeader, EVENT_KIND_DNS_PACKET, LOSS_DNS_PACKET,
};

use super::{
    clock, db,
    maps::{EVENTS, SUBMIT_FLAGS, count_loss},
    tc,
};

const ALLOW: i32 = 1;
pub(crate) const ETH_P_IP: u32 = 0x0800;
pub(crate) const ETH_P_IPV6: u32 = 0x86DD;
pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
const IPV6_HEADER_LEN: u32 = 40;
const UDP_HEADER_LEN: u32 = 8;
const DNS_HEADER_LEN: u32 = 12;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;
/// IPv6 extension headers walked before giving up on finding UDP or TCP.
/// Real traffic carries one or two; the bound keeps the verifier's work and
/// a hostile chain's cost fixed.
const MAX_IPV6_EXTENSIONS: usize = 4;

/// tc action "no verdict": the next program on the hook (or the stack) decides.
const TC_ACT_UNSPEC: i32 = -1;

#[cgroup_skb(egress)]
pub fn pw_dns_egress(ctx: SkBuffContext) -> i32 {
    match classify(ctx.skb.skb, true) {
        Class::Dns => capture(ctx.skb.skb, DNS_FLAG_EGRESS),
        Class::DnsHead(head_len) => capture_head(ctx.skb.skb, head_len),
        Class::DbSegment => db::capture_segment(ctx.skb.skb, true),
        Class::Other => {}
    }
    ALLOW
}

#[cgroup_skb(ingress)]
pub fn pw_dns_ingress(ctx: SkBuffContext) -> i32 {
    match classify(ctx.skb.skb, false) {
        Class::Dns => capture(ctx.skb.skb, 0),
        // Only egress classifies a packet as a head.
        Class::DnsHead(_) => capture(ctx.skb.skb, 0),
        Class::DbSegment => db::capture_segment(ctx.skb.skb, false),
        Class::Other => {}
    }
    ALLOW
}

/// DNS responses as they arrive on a host interface (tcx ingress), before
/// IP reassembly and socket lookup: the late genuine reply after a forged
/// one won, replies to guessed ports, and each IP fragment of a response.
#[classifier]
pub fn pw_dns_iface(ctx: TcContext) -> i32 {
    tc::ingress(ctx.skb.skb);
    TC_ACT_UNSPEC
}

/// What a packet is to pinwatch.
enum Class {
    /// UDP or TCP from or to port 53, with payload.
    Dns,
    /// A UDP DNS response leaving a socket on this host (a local server's
    /// answer): the detector uses only its addresses and DNS header, so
    /// only the first `.0` bytes (IP, UDP and DNS headers) are copied.
    DnsHead(u32),
    /// TCP with payload on a connection to a watched database port, seen on
    /// the client's side (egress to the port, ingress from it).
    DbSegment,
    Other,
}

/// Classifies a packet. This runs on every packet of the host, so the
/// common case reads the headers in place (direct packet access) with
/// constant offsets, and falls back to a helper copy only for IPv4 options
/// or headers outside the linear area.
#[inline(always)]
fn classify(skb: *mut __sk_buff, egress: bool) -> Class {
    // SAFETY: the skb pointer is the program's context, valid for its run;
    // these fields are readable from cgroup_skb programs.
    let protocol = u16::from_be(unsafe { (*skb).protocol } as u16) as u32;
    // SAFETY: as above.
    let (data, data_end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    match protocol {
        ETH_P_IP => {
            let header: [u8; 24] = if data + 24 <= data_end {
                // SAFETY: 24 bytes at `data` lie before `data_end`.
                unsafe { read_in_place(data) }
            } else {
                match load(skb, 0) {
                    Some(header) => header,
                    None => return Class::Other,
                }
            };
            let l4_proto = header[9];
            if l4_proto != IPPROTO_UDP && l4_proto != IPPROTO_TCP {
                return Class::Other;
            }
            // Later fragments carry no transport header to filter on.
            if (header[6] & 0x1f) | header[7] != 0 {
                return Class::Other;
            }
            let header_len = ((header[0] & 0x0f) as u32) * 4;
            let ports: [u8; 4] = if header_len == 20 {
                [header[20], header[21], header[22], header[23]]
            } else {
                match load(skb, header_len) {
                    Some(ports) => ports,
                    None => return Class::Other,
                }
            };
            let total_len = u16::from_be_bytes([header[2], header[3]]) as u32;
            classify_transport(
                skb,
                l4_proto,
                header_len,
                total_len.saturating_sub(header_len),
                ports,
                egress,
            )
        }
        ETH_P_IPV6 => {
            let header: [u8; 44] = if data + 44 <= data_end {
                // SAFETY: 44 bytes at `data` lie before `data_end`.
                unsafe { read_in_place(data) }
            } else {
                match load(skb, 0) {
                    Some(header) => header,
                    None => return Class::Other,
                }
            };
            let payload_len = u16::from_be_bytes([header[4], header[5]]) as u32;
            let l4_proto = header[6];
            if l4_proto == IPPROTO_UDP || l4_proto == IPPROTO_TCP {
                let ports = [header[40], header[41], header[42], header[43]];
                return classify_transport(
                    skb,
                    l4_proto,
                    IPV6_HEADER_LEN,
                    payload_len,
                    ports,
                    egress,
                );
            }
            // Off the fast path: extension headers in front of UDP or TCP.
            // Sockets see reassembled datagrams, so a fragment header here
            // is an atomic fragment at most.
            let Some(walked) = walk_ipv6_extensions(skb, 0, l4_proto) else {
                return Class::Other;
            };
            if walked.fragment_offset != 0 {
                return Class::Other;
            }
            let Some(ports) = load::<4>(skb, walked.l4_offset) else {
                return Class::Other;
            };
            classify_transport(
                skb,
                walked.l4_proto,
                walked.l4_offset,
                (payload_len + IPV6_HEADER_LEN).saturating_sub(walked.l4_offset),
                ports,
                egress,
            )
        }
        _ => Class::Other,
    }
}

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

#[inline(always)]
fn classify_transport(
    skb: *mut __sk_buff,
    l4_proto: u8,
    l4_offset: u32,
    l4_len: u32,
    ports: [u8; 4],
    egress: bool,
) -> Class {
    let src = u16::from_be_bytes([ports[0], ports[1]]);
    let dst = u16::from_be_bytes([ports[2], ports[3]]);
    let dns = src == DNS_PORT || dst == DNS_PORT;
    if dns && l4_proto == IPPROTO_UDP {
        // A query arriving at a server on this host is never judged: the
        // detector keys queries where they leave the asking socket, and
        // judges responses on their way in. Passing it over saves the copy
        // and the parse of every query a local resolver receives.
        if !egress && dst == DNS_PORT && is_udp_query(skb, l4_offset) {
            return Class::Other;
        }
        // A response leaving a local server is judged again where it is
        // delivered; here only its id and addresses feed the stub path, so
        // its records are not copied (most of a resolver's DNS bytes).
        let head_len = l4_offset + UDP_HEADER_LEN + DNS_HEADER_LEN;
        if egress
            && src == DNS_PORT
            && head_len <= CLASSES[0] as u32
            && !is_udp_query(skb, l4_offset)
        {
            return Class::DnsHead(head_len);
        }
        return Class::Dns;
    }
    if l4_proto != IPPROTO_TCP {
        return Class::Other;
    }
    let server_port = if egress { dst } else { src };
    if !dns && !db::is_watched(server_port) {
        return Class::Other;
    }
    // TCP: only segments that carry bytes. Handshakes and bare ACKs say
    // nothing about DNS or about a database conversation.
    let Some([data_offset]) = load::<1>(skb, l4_offset + 12) else {
        return Class::Other;
    };
    if l4_len <= ((data_offset >> 4) as u32) * 4 {
        Class::Other
    } else if dns {
        Class::Dns
    } else {
        Class::DbSegment
    }
}

/// Whether the UDP datagram at `l4_offset` holds a DNS query (QR bit clear).
/// Unreadable or short payloads count as not a query, so they are still
/// captured and counted as undecodable.
#[inline(always)]
fn is_udp_query(skb: *mut __sk_buff, l4_offset: u32) -> bool {
    // UDP header (8 bytes), then the DNS id (2) and the flags byte with QR.
    match load::<1>(skb, l4_offset + 8 + 2) {
        Some([flags]) => flags & 0x80 == 0,
        None => false,
    }
}

/// Reads `N` bytes at the start of the packet's linear area. The caller has
/// checked `data + N <= data_end`.
#[inline(always)]
unsafe fn read_in_place<const N: usize>(data: usize) -> [u8; N] {
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

/// The capture classes by position; naming the length here makes a change
/// to the number of classes fail to compile until `capture` handles it.
const CLASSES: [usize; 3] = DNS_CAPTURE_CLASSES;

/// Records the packet in the smallest capture class that holds it, or cut
/// to the largest. Each branch reserves a record of constant size, as
/// `bpf_ringbuf_reserve` requires.
#[inline(always)]
pub(crate) fn capture(skb: *mut __sk_buff, flags: u32) {
    // SAFETY: the skb pointer is the program's context, valid for its run.
    let packet_len = unsafe { (*skb).len };
    if packet_len == 0 {
        return;
    }
    if packet_len <= CLASSES[0] as u32 {
        capture_into::<{ CLASSES[0] }>(skb, flags, packet_len, packet_len);
    } else if packet_len <= CLASSES[1] as u32 {
        capture_into::<{ CLASSES[1] }>(skb, flags, packet_len, packet_len);
    } else if packet_len <= CLASSES[2] as u32 {
        capture_into::<{ CLASSES[2] }>(skb, flags, packet_len, packet_len);
    } else {
        capture_into::<{ CLASSES[2] }>(
            skb,
            flags | DNS_FLAG_TRUNCATED,
            packet_len,
            CLASSES[2] as u32,
        );
    }
}

/// Records the first `head_len` (at most `CLASSES[0]`) bytes of a local
/// server's response leaving, flagged [`DNS_FLAG_HEAD`]: cut on purpose, not
/// by the capture's size.
#[inline(always)]
fn capture_head(skb: *mut __sk_buff, head_len: u32) {
    // SAFETY: the skb pointer is the program's context, valid for its run.
    let packet_len = unsafe { (*skb).len };
    if packet_len == 0 {
        return;
    }
    let captured_len = if packet_len < head_len {
        packet_len
    } else {
        head_len
    };
    capture_into::<{ CLASSES[0] }>(
        skb,
        DNS_FLAG_EGRESS | DNS_FLAG_HEAD,
        packet_len,
        captured_len,
    );
}

/// Reserves a record with an `N`-byte data area and copies the first
/// `captured_len` packet bytes into it.
#[inline(always)]
fn capture_into<const N: usize>(
    skb: *mut __sk_buff,
    flags: u32,
    packet_len: u32,
    captured_len: u32,
) {
    record_packet::<N>(
        skb,
        EVENT_KIND_DNS_PACKET,
        flags,
        packet_len,
        captured_len,
        LOSS_DNS_PACKET,
    );
}

/// Reserves a record of `kind` with an `N`-byte data area and copies the
/// first `captured_len` packet bytes into it.
#[inline(always)]
pub(crate) fn record_packet<const N: usize>(
    skb: *mut __sk_buff,
    kind: u32,
    flags: u32,
    packet_len: u32,
    captured_len: u32,
    loss_slot: u32,
) {
    if captured_len == 0 || captured_len > N as u32 {
        return;
    }
    let copy_len = verifier_len::<N>(captured_len);
    let Some(mut entry) = EVENTS.reserve::<DnsPacketEvent<N>>(0) else {
        count_loss(loss_slot);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at the reserved record, sized for
    // DnsPacketEvent<N>; the helper copies `copy_len` ≤ N bytes into its
    // N-byte data area; the other helpers read the skb, the context.
    unsafe {
        let data = core::ptr::addr_of_mut!((*event).data);
        if bpf_skb_load_bytes(skb.cast(), 0, data.cast(), copy_len) != 0 {
            entry.discard(0);
            count_loss(loss_slot);
            return;
        }
        core::ptr::addr_of_mut!((*event).header).write(DnsPacketHeader {
            kind,
            flags,
            // Tick resolution (4 ms at HZ=250) is plenty to place a DNS
            // message in time where the kernel has the coarse clock.
            timestamp_ns: clock::now_ns(),
            cgroup_id: bpf_skb_cgroup_id(skb),
            socket_cookie: bpf_get_socket_cookie(skb.cast()),
            packet_len,
            captured_len,
        });
    }
    entry.submit(SUBMIT_FLAGS);
}

/// `len`, which the caller has checked to lie in `1..=N`, in a register the
/// verifier knows to lie there.
///
/// The helper's length must be provably non-zero. The compiler turns a
/// lower-bound check into `len != 0` or folds both bounds into one
/// comparison of `len - 1`, and verifiers before 6.8 learn nothing about
/// `len` from either (Debian 12's 6.1 refuses the program: "R4 min value is
/// outside of the allowed memory range"). Signed comparisons against
/// constants on the very register passed on are what every verifier tracks;
/// for an in-range `len` both jumps are taken and the value is unchanged.
#[inline(always)]
fn verifier_len<const N: usize>(len: u32) -> u32 {
    let mut len = len as u64;
    // SAFETY: two compares and moves on one register; no memory is touched.
    unsafe {
        core::arch::asm!(
            "if {len} s> 0 goto +1",
            "{len} = 1",
            "if {len} s<= {max} goto +1",
            "{len} = {max}",
            len = inout(reg) len,
            max = const N,
            options(nomem, nostack),
        );
    }
    len as u32
}
