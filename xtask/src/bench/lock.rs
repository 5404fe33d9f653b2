//! The lock every engineer's kernel tests take: a benchmark that loads
//! pinwatch's programs must not overlap another daemon, which would see (and
//! add to) the same host-wide traffic.
use std::{fs::File, os::fd::AsRawFd};

use anyhow::Context;

pub const KERNEL_LOCK: &str = "/tmp/pinwatch-kernel.lock";

/// Held until dropped (closing the file releases the flock).
pub struct KernelLock(#[allow(dead_code)] File);

pub fn take() -> anyhow::Result<KernelLock> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(KERNEL_LOCK)
        .with_context(|| format!("cannot open {KERNEL_LOCK}"))?;
    eprintln!("bench: waiting for {KERNEL_LOCK} (other kernel tests hold it while they run)");
    // SAFETY: flock on an fd we own; it blocks until the lock is free.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).context("flock");
    }
    Ok(KernelLock(file))
}
