//! The cgroup_skb programs and the interface hook's entry point: which
//! packets are DNS, a database conversation's opening, or nothing to
//! pinwatch, decided on every packet of the host.
use aya_ebpf::{
    bindings::__sk_buff,
    macros::{cgroup_skb, classifier},
    programs::{SkBuffContext, TcContext},
};
use pinwatch_common::{DNS_FLAG_EGRESS, DNS_PORT};

use super::{
    capture::capture,
    db,
    packet::{
        ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP, IPV6_HEADER_LEN, load, read_in_place,
        walk_ipv6_extensions,
    },
    sent, tc,
};

const ALLOW: i32 = 1;

/// tc action "no verdict": the next program on the hook (or the stack) decides.
const TC_ACT_UNSPEC: i32 = -1;

#[cgroup_skb(egress)]
pub fn pw_dns_egress(ctx: SkBuffContext) -> i32 {
    match classify(ctx.skb.skb, true) {
        Class::Dns => capture(ctx.skb.skb, DNS_FLAG_EGRESS),
        Class::FromServer { ipv6, l4_offset } => {
            if !sent::record(ctx.skb.skb, ipv6, l4_offset) {
                capture(ctx.skb.skb, DNS_FLAG_EGRESS);
            }
        }
        Class::DbSegment => db::capture_segment(ctx.skb.skb, true),
        Class::Other => {}
    }
    ALLOW
}

#[cgroup_skb(ingress)]
pub fn pw_dns_ingress(ctx: SkBuffContext) -> i32 {
    match classify(ctx.skb.skb, false) {
        Class::Dns => capture(ctx.skb.skb, 0),
        // Only egress classifies a packet as one from a server.
        Class::FromServer { .. } => capture(ctx.skb.skb, 0),
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
    /// A UDP datagram leaving a socket on this host from port 53: a local
    /// server's answer, of which the detector needs only its addresses and
    /// id ([`sent`]), or else a query sent from port 53, captured whole.
    FromServer {
        ipv6: bool,
        l4_offset: u32,
    },
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
                false,
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
                    true,
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
                true,
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

#[inline(always)]
fn classify_transport(
    skb: *mut __sk_buff,
    ipv6: bool,
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
        if egress && src == DNS_PORT {
            return Class::FromServer { ipv6, l4_offset };
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
