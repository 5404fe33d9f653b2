//! The opening of connections to watched database ports, for plaintext
//! detection: the first two segments with payload the client sends and the
//! first the server answers, as seen on the client's socket. Later segments,
//! and the rest of each segment past the first bytes, are never copied.
use aya_ebpf::{bindings::__sk_buff, helpers::generated::bpf_get_socket_cookie};
use pinwatch_common::{
    DB_CLIENT_SEGMENTS, DB_SEGMENT_BYTES, DB_SERVER_SEGMENTS, DNS_FLAG_EGRESS, DbFlow,
    EVENT_KIND_DB_SEGMENT, LOSS_DB_SEGMENT,
};

use super::{
    capture::record_packet,
    maps::{DB_FLOWS, WATCHED_PORT_BITS},
};

/// Whether `port` is a watched database port (bitmap lookup, inlined).
#[inline(always)]
pub fn is_watched(port: u16) -> bool {
    match WATCHED_PORT_BITS.get(u32::from(port) / 64) {
        Some(word) => word & (1u64 << (port % 64)) != 0,
        None => false,
    }
}

#[inline(always)]
pub fn capture_segment(skb: *mut __sk_buff, egress: bool) {
    // SAFETY: the helper reads the skb's socket; 0 when there is none.
    let cookie = unsafe { bpf_get_socket_cookie(skb.cast()) };
    if cookie == 0 {
        return;
    }
    let flow = match DB_FLOWS.get_ptr_mut(cookie) {
        Some(flow) => flow,
        // Only connections whose client side was seen opening are followed.
        None if !egress => return,
        None => {
            let fresh = DbFlow {
                client_segments: 0,
                server_segments: 0,
            };
            if DB_FLOWS.insert(cookie, fresh, 0).is_err() {
                return;
            }
            match DB_FLOWS.get_ptr_mut(cookie) {
                Some(flow) => flow,
                None => return,
            }
        }
    };
    // SAFETY: a map value pointer from the lookup above. Races between CPUs
    // on one connection at worst copy one segment more.
    unsafe {
        if egress {
            if (*flow).client_segments >= DB_CLIENT_SEGMENTS {
                return;
            }
            (*flow).client_segments += 1;
        } else {
            if (*flow).server_segments >= DB_SERVER_SEGMENTS {
                return;
            }
            (*flow).server_segments += 1;
        }
    }
    // SAFETY: the skb pointer is the program's context, valid for its run.
    let packet_len = unsafe { (*skb).len };
    let captured_len = packet_len.min(DB_SEGMENT_BYTES as u32);
    let flags = if egress { DNS_FLAG_EGRESS } else { 0 };
    record_packet::<DB_SEGMENT_BYTES>(
        skb,
        EVENT_KIND_DB_SEGMENT,
        flags,
        packet_len,
        captured_len,
        LOSS_DB_SEGMENT,
    );
}
