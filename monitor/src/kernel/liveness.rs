//! The `DAEMON` map: the daemon's heartbeat, which the connect hooks read to
//! fail open once no daemon runs (unless `on_crash = "keep-enforcing"` set
//! its flag), and the losses it reported, so that a daemon adopting the
//! pinned maps reports only those of the gap.
use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use pinwatch_common::{
    DAEMON_FLAG_KEEP_ENFORCING, DAEMON_FLAGS, DAEMON_HEARTBEAT_NS, DAEMON_LOSS_REPORTED, LOSS_SLOTS,
};

use super::{BpfFailure, KernelError};

/// What `DAEMON` held when the object was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DaemonState {
    /// CLOCK_MONOTONIC nanoseconds of the last heartbeat; 0 for none.
    pub heartbeat_ns: u64,
    /// The `EVENTS_LOST` sums already reported, per `LOSS_*` slot.
    pub reported: [u64; LOSS_SLOTS as usize],
}

/// `DAEMON` as it is: an earlier run's heartbeat and reported losses
/// when the maps were adopted, zeros otherwise.
pub fn read(ebpf: &Ebpf) -> Result<DaemonState, KernelError> {
    let map = daemon_map(ebpf)?;
    let read = |slot: u32| map.get(&slot, 0).unwrap_or(0);
    let mut state = DaemonState {
        heartbeat_ns: read(DAEMON_HEARTBEAT_NS),
        ..DaemonState::default()
    };
    for (slot, reported) in state.reported.iter_mut().enumerate() {
        *reported = read(DAEMON_LOSS_REPORTED + slot as u32);
    }
    Ok(state)
}

/// Writes the first heartbeat and the `on_crash` choice, before any hook
/// runs: a hook that saw no heartbeat would not enforce.
pub fn first_beat(ebpf: &mut Ebpf, keep_enforcing: bool) -> Result<(), KernelError> {
    let map = ebpf.map_mut("DAEMON").ok_or(KernelError::Map {
        map: "DAEMON",
        source: BpfFailure::Missing,
    })?;
    let mut map: Array<&mut MapData, u64> = Array::try_from(map).map_err(|e| KernelError::Map {
        map: "DAEMON",
        source: BpfFailure::map(e),
    })?;
    let flags = if keep_enforcing {
        DAEMON_FLAG_KEEP_ENFORCING
    } else {
        0
    };
    let update_error = |e| KernelError::MapUpdate {
        map: "DAEMON",
        source: BpfFailure::map(e),
    };
    map.set(DAEMON_FLAGS, flags, 0).map_err(update_error)?;
    map.set(DAEMON_HEARTBEAT_NS, monotonic_ns(), 0)
        .map_err(update_error)?;
    Ok(())
}

fn daemon_map(ebpf: &Ebpf) -> Result<Array<&MapData, u64>, KernelError> {
    let map = ebpf.map("DAEMON").ok_or(KernelError::Map {
        map: "DAEMON",
        source: BpfFailure::Missing,
    })?;
    Array::try_from(map).map_err(|e| KernelError::Map {
        map: "DAEMON",
        source: BpfFailure::map(e),
    })
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the kernel's stamps and of
/// the heartbeat the hooks compare with.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}
