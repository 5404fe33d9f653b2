//! A local server's UDP response on its way out, as the stub path needs it:
//! when it left, its addresses, ports and id. Nothing else of it matters
//! here (it is judged whole where it is delivered), so the fields are read
//! in place where the headers lie in the linear area, and no helper but the
//! clock is called: the record costs the reservation and a few stores.
use aya_ebpf::bindings::__sk_buff;
use pinwatch_common::{DnsSentEvent, EVENT_KIND_DNS_SENT, LOSS_DNS_PACKET};

use super::{
    clock,
    maps::{EVENTS, SUBMIT_FLAGS, count_loss},
    packet::{IPV6_HEADER_LEN, load, read_in_place},
    sockaddr::{AF_INET, AF_INET6},
};

const IPV4_HEADER_LEN: u32 = 20;
/// The UDP header, then the DNS id and flags.
const UDP_AND_ID_LEN: usize = 12;
/// The flags byte that holds QR, within [`UDP_AND_ID_LEN`].
const FLAGS_AT: usize = 10;

/// The fields read from the packet.
struct Response {
    saddr: [u8; 16],
    daddr: [u8; 16],
    /// UDP header, DNS id and flags.
    udp: [u8; UDP_AND_ID_LEN],
}

/// Records the summary of the UDP datagram from port 53 at `l4_offset`.
/// False when it is no response (QR clear: a query sent from port 53) or
/// cannot be read: the caller then captures it whole.
#[inline(always)]
pub(crate) fn record(skb: *mut __sk_buff, ipv6: bool, l4_offset: u32) -> bool {
    let response = if ipv6 {
        read_v6(skb, l4_offset)
    } else {
        read_v4(skb, l4_offset)
    };
    let Some(response) = response else {
        return false;
    };
    let udp = response.udp;
    if udp[FLAGS_AT] & 0x80 == 0 {
        return false;
    }
    let Some(mut entry) = EVENTS.reserve::<DnsSentEvent>(0) else {
        count_loss(LOSS_DNS_PACKET);
        return true;
    };
    entry.write(DnsSentEvent {
        kind: EVENT_KIND_DNS_SENT,
        family: if ipv6 { AF_INET6 } else { AF_INET },
        timestamp_ns: clock::now_ns(),
        saddr: response.saddr,
        daddr: response.daddr,
        sport: u16::from_be_bytes([udp[0], udp[1]]),
        dport: u16::from_be_bytes([udp[2], udp[3]]),
        id: u16::from_be_bytes([udp[8], udp[9]]),
        _pad: [0; 2],
    });
    entry.submit(SUBMIT_FLAGS);
    true
}

#[inline(always)]
fn read_v4(skb: *mut __sk_buff, l4_offset: u32) -> Option<Response> {
    const IN_PLACE: usize = IPV4_HEADER_LEN as usize + UDP_AND_ID_LEN;
    let mut saddr = [0u8; 16];
    let mut daddr = [0u8; 16];
    // SAFETY: the skb pointer is the program's context, valid for its run.
    let (data, data_end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    if l4_offset == IPV4_HEADER_LEN && data + IN_PLACE <= data_end {
        // SAFETY: IN_PLACE bytes at `data` lie before `data_end`.
        let h: [u8; IN_PLACE] = unsafe { read_in_place(data) };
        saddr[..4].copy_from_slice(&[h[12], h[13], h[14], h[15]]);
        daddr[..4].copy_from_slice(&[h[16], h[17], h[18], h[19]]);
        let mut udp = [0u8; UDP_AND_ID_LEN];
        let mut i = 0;
        while i < UDP_AND_ID_LEN {
            udp[i] = h[IPV4_HEADER_LEN as usize + i];
            i += 1;
        }
        return Some(Response { saddr, daddr, udp });
    }
    // IPv4 options, or headers outside the linear area.
    let addresses = load::<8>(skb, 12)?;
    saddr[..4].copy_from_slice(&[addresses[0], addresses[1], addresses[2], addresses[3]]);
    daddr[..4].copy_from_slice(&[addresses[4], addresses[5], addresses[6], addresses[7]]);
    let udp = load::<UDP_AND_ID_LEN>(skb, l4_offset)?;
    Some(Response { saddr, daddr, udp })
}

#[inline(always)]
fn read_v6(skb: *mut __sk_buff, l4_offset: u32) -> Option<Response> {
    const IN_PLACE: usize = IPV6_HEADER_LEN as usize + UDP_AND_ID_LEN;
    // SAFETY: the skb pointer is the program's context, valid for its run.
    let (data, data_end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    let (addresses, udp) = if l4_offset == IPV6_HEADER_LEN && data + IN_PLACE <= data_end {
        // SAFETY: IN_PLACE bytes at `data` lie before `data_end`.
        let h: [u8; IN_PLACE] = unsafe { read_in_place(data) };
        let mut addresses = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            addresses[i] = h[8 + i];
            i += 1;
        }
        let mut udp = [0u8; UDP_AND_ID_LEN];
        let mut i = 0;
        while i < UDP_AND_ID_LEN {
            udp[i] = h[IPV6_HEADER_LEN as usize + i];
            i += 1;
        }
        (addresses, udp)
    } else {
        // Extension headers, or headers outside the linear area.
        (load::<32>(skb, 8)?, load::<UDP_AND_ID_LEN>(skb, l4_offset)?)
    };
    let mut saddr = [0u8; 16];
    let mut daddr = [0u8; 16];
    saddr.copy_from_slice(&addresses[..16]);
    daddr.copy_from_slice(&addresses[16..]);
    Some(Response { saddr, daddr, udp })
}
