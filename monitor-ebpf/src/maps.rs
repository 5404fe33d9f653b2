use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
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

/// Unread bytes past which a submit wakes the reader.
const WAKEUP_THRESHOLD: u64 = 64 * 1024;

/// Decides, before reserving, whether the coming submit wakes the reader:
/// only the first record into an empty buffer (the reader is asleep and
/// nothing else will wake it) or one that finds the buffer filling up. The
/// reader batches everything in between on its own short timer, so a busy
/// resolver does not cost one wakeup per packet.
#[inline(always)]
pub fn wakeup_flags() -> u64 {
    let unread = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    if unread == 0 || unread >= WAKEUP_THRESHOLD {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

#[inline(always)]
pub fn count_loss(slot: u32) {
    if let Some(counter) = EVENTS_LOST.get_ptr_mut(slot) {
        // Per-CPU slot: no other writer can race this increment.
        unsafe { *counter += 1 };
    }
}
