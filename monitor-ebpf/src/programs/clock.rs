//! The timestamp of every record, from the clock the kernel has.
//!
//! `bpf_ktime_get_coarse_ns` (tick resolution, Linux 5.11) is cheap;
//! `bpf_ktime_get_ns` is precise and older, and costs as much as the rest of
//! a capture in virtual machines. Both count CLOCK_MONOTONIC. Userspace sets
//! [`PW_COARSE_CLOCK`] at load from a probe of the kernel; it lives in
//! `.rodata`, which the loader freezes, so the verifier sees a constant,
//! walks only the branch taken and drops the other — a kernel without the
//! coarse helper never sees its call.
use aya_ebpf::helpers::generated::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns};

/// 1: the coarse clock; 0: the precise one. Overridden at load.
// Unmangled so the loader finds it by name in `.rodata`.
#[unsafe(no_mangle)]
static PW_COARSE_CLOCK: u32 = 1;

/// CLOCK_MONOTONIC nanoseconds.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: a read of an initialized static. Volatile, so the compiler
    // keeps the load of the value the loader wrote instead of folding the
    // initializer above.
    let coarse = unsafe { core::ptr::read_volatile(&raw const PW_COARSE_CLOCK) };
    if coarse != 0 {
        // SAFETY: the helper takes no arguments; this branch is only walked
        // on kernels that have it.
        unsafe { bpf_ktime_get_coarse_ns() }
    } else {
        // SAFETY: the helper takes no arguments.
        unsafe { bpf_ktime_get_ns() }
    }
}
