use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use pinwatch_common::{LOSS_SLOTS, PortPolicy};

/// All records, in the order they were reserved.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Ports whose connects are reported; filled by the daemon from the config.
#[map]
pub static WATCHED_PORTS: HashMap<u16, PortPolicy> = HashMap::with_max_entries(1024, 0);

/// Failed ring-buffer reservations per CPU, indexed by `LOSS_*`.
#[map]
pub static EVENTS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_SLOTS, 0);

/// Submit flags for every record: 0 lets the kernel decide, and it wakes
/// the reader only when the reader had consumed everything before this
/// record — that is, when it is idle and nothing else would wake it. While
/// the reader is behind or sleeping its batching interval, records queue up
/// without a wakeup each, so a busy resolver costs one wakeup per drain, not
/// one per packet, and an alert on an idle host is read at once.
pub const SUBMIT_FLAGS: u64 = 0;

#[inline(always)]
pub fn count_loss(slot: u32) {
    if let Some(counter) = EVENTS_LOST.get_ptr_mut(slot) {
        // Per-CPU slot: no other writer can race this increment.
        unsafe { *counter += 1 };
    }
}
