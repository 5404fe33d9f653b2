use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use pinwatch_common::{
    DAEMON_SLOTS, DbFlow, LOSS_SLOTS, PIN_MAX_ENTRIES, PinKeyV4, PinKeyV6, PortPolicy,
    WATCHED_PORTS_MAX_ENTRIES,
};

/// All records, in the order they were reserved.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Ports whose connects are reported; filled by the daemon from the config.
#[map]
pub static WATCHED_PORTS: HashMap<u16, PortPolicy> =
    HashMap::with_max_entries(WATCHED_PORTS_MAX_ENTRIES, 0);

/// `WATCHED_PORTS` as a bitmap (bit `port % 64` of word `port / 64`), for
/// the packet hooks: an array lookup is inlined by the verifier and costs a
/// load, where a hash lookup on every TCP packet of the host would not.
#[map]
pub static WATCHED_PORT_BITS: Array<u64> = Array::with_max_entries(1024, 0);

/// Segments captured so far per connection to a watched port, keyed by the
/// client socket's cookie; least recently used connections are forgotten.
#[map]
pub static DB_FLOWS: LruHashMap<u64, DbFlow> = LruHashMap::with_max_entries(16_384, 0);

/// Pinned IPv4 sets of the enforced ports, keyed by (port, address prefix);
/// filled by the daemon. A connect to an enforced port whose address matches
/// no entry for that port is refused.
#[map]
pub static PINNED_V4: LpmTrie<PinKeyV4, u32> = LpmTrie::with_max_entries(PIN_MAX_ENTRIES, 0);

/// [`PINNED_V4`] for IPv6 destinations (IPv4-mapped ones go to `PINNED_V4`).
#[map]
pub static PINNED_V6: LpmTrie<PinKeyV6, u32> = LpmTrie::with_max_entries(PIN_MAX_ENTRIES, 0);

/// Failed ring-buffer reservations per CPU, indexed by `LOSS_*`.
#[map]
pub static EVENTS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_SLOTS, 0);

/// The daemon's heartbeat, its `on_crash` choice and the losses it
/// reported, indexed by `DAEMON_*`; written by the daemon only.
#[map]
pub static DAEMON: Array<u64> = Array::with_max_entries(DAEMON_SLOTS, 0);

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
        // SAFETY: a map value pointer from the lookup just made; the slot is
        // per-CPU, so no other writer races this increment.
        unsafe { *counter += 1 };
    }
}
