//! The lock every engineer's kernel tests take: whatever loads pinwatch's
//! programs on the host (the kernel tests, the benchmarks) must not overlap
//! another daemon, which would see (and add to) the same host-wide traffic,
//! and whose stale-program check would detach the other's programs.
use std::{
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
};

use anyhow::Context;

pub const KERNEL_LOCK: &str = "/tmp/pinwatch-kernel.lock";

/// Held until dropped (closing the file releases the flock); empty when a
/// parent process holds the lock for us.
pub struct KernelLock(#[allow(dead_code)] Option<File>);

/// Blocks until the lock is free; `who` names the waiter in the message.
/// Under `flock /tmp/pinwatch-kernel.lock cargo xtask …` the lock is already
/// ours: a second flock on a new open of the file would wait for ever.
pub fn take(who: &str) -> anyhow::Result<KernelLock> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(KERNEL_LOCK)
        .with_context(|| format!("cannot open {KERNEL_LOCK}"))?;
    if held_by_an_ancestor(&file) {
        return Ok(KernelLock(None));
    }
    eprintln!("{who}: waiting for {KERNEL_LOCK} (other kernel tests hold it while they run)");
    // SAFETY: flock on an fd we own; it blocks until the lock is free.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).context("flock");
    }
    Ok(KernelLock(Some(file)))
}

/// Whether /proc/locks shows the flock on `file` held by this process's
/// parent, grandparent, and so on.
fn held_by_an_ancestor(file: &File) -> bool {
    let Ok(meta) = file.metadata() else {
        return false;
    };
    let key = format!(
        "{:02x}:{:02x}:{}",
        libc::major(meta.dev()),
        libc::minor(meta.dev()),
        meta.ino()
    );
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return false;
    };
    let holders: Vec<u32> = locks
        .lines()
        .filter(|line| !line.contains("->"))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&key.as_str()))
                .then(|| fields.get(4)?.parse().ok())
                .flatten()
        })
        .collect();
    let mut pid = std::process::id();
    while let Some(parent) = parent_of(pid) {
        if holders.contains(&parent) {
            return true;
        }
        pid = parent;
    }
    false
}

/// The parent pid from /proc/PID/stat (the field after the `(comm)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    let parent: u32 = after_comm.split_whitespace().nth(1)?.parse().ok()?;
    (parent > 1).then_some(parent)
}
