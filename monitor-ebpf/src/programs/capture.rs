//! Copying a packet into the ring buffer: the capture classes, each a
//! record of constant size as `bpf_ringbuf_reserve` requires, and the copy
//! length written so that every verifier from 5.10 accepts it.
use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::{bpf_get_socket_cookie, bpf_skb_cgroup_id, bpf_skb_load_bytes},
};
use pinwatch_common::{
    DNS_CAPTURE_CLASSES, DNS_FLAG_TRUNCATED, DnsPacketEvent, DnsPacketHeader,
    EVENT_KIND_DNS_PACKET, LOSS_DNS_PACKET,
};

use super::{
    clock,
    maps::{EVENTS, SUBMIT_FLAGS, count_loss},
};

/// The capture classes by position; naming the length here makes a change
/// to the number of classes fail to compile until `capture` handles it.
pub(crate) const CLASSES: [usize; 3] = DNS_CAPTURE_CLASSES;

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
