//! Names the process behind a connect or a DNS socket as `ps` does: by its
//! thread-group leader. The kernel reports the calling thread's name
//! (`isc-net-0000` for dig's network thread); the leader's is read from
//! /proc on the detector thread, never on the runtime that drains the ring
//! buffer and serves control, metrics and reloads.
//!
//! By the time it is read the process may be gone and its pid taken by
//! another. Both reads go through one handle on /proc/PID, which stays bound
//! to the process it was opened for, and the name is taken only when that
//! process still has the reporting thread under the name the kernel gave:
//! otherwise the kernel's thread name stands.
use std::{
    fs::File,
    io::Read,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use nix::{fcntl::OFlag, sys::stat::Mode};

use crate::event::{Event, Process};

/// Leaders looked up per second at most: a flood of connects from threads
/// costs the detector thread a bounded share of its time (three opens and
/// two small reads each); past it, the thread's name is kept.
pub const LOOKUPS_PER_SECOND: u32 = 256;

/// `comm` is at most 15 bytes and a newline.
const MAX_COMM: u64 = 64;

pub struct ProcessNames {
    proc_root: PathBuf,
    budget: u32,
    /// Start of the current second, on the daemon's time base, and the
    /// lookups made in it.
    second: SystemTime,
    used: u32,
}

impl ProcessNames {
    pub fn new(proc_root: impl Into<PathBuf>, budget: u32) -> ProcessNames {
        ProcessNames {
            proc_root: proc_root.into(),
            budget,
            second: SystemTime::UNIX_EPOCH,
            used: 0,
        }
    }

    /// Names the process an event carries, if it carries one.
    pub fn name_event(&mut self, event: &mut Event, now: SystemTime) {
        match event {
            Event::Connect(connect) => self.name(&mut connect.process, now),
            Event::DnsOwner(owner) => self.name(&mut owner.process, now),
            _ => {}
        }
    }

    /// Names `process` by its leader when that can be done safely and
    /// within the budget; `now` is the daemon's time.
    pub fn name(&mut self, process: &mut Process, now: SystemTime) {
        if process.pid == process.tid || process.pid == 0 {
            // The leader itself: the kernel's name is already the one.
            return;
        }
        if now.duration_since(self.second).unwrap_or_default() >= Duration::from_secs(1)
            || now < self.second
        {
            self.second = now;
            self.used = 0;
        }
        if self.used >= self.budget {
            return;
        }
        self.used += 1;
        if let Some(name) = self.leader_name(process) {
            process.name = name;
        }
    }

    fn leader_name(&self, process: &Process) -> Option<String> {
        let dir = File::open(self.proc_root.join(process.pid.to_string())).ok()?;
        let thread = read_comm(&dir, &format!("task/{}/comm", process.tid))?;
        // Not the thread the kernel saw (gone, renamed, or the pid reused):
        // the leader's name would be someone else's.
        if thread != process.name {
            return None;
        }
        read_comm(&dir, "comm")
    }
}

/// `comm` below `dir`, without its newline.
fn read_comm(dir: &File, path: &str) -> Option<String> {
    let fd =
        nix::fcntl::openat(dir, path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
    let mut text = String::new();
    File::from(fd)
        .take(MAX_COMM)
        .read_to_string(&mut text)
        .ok()?;
    Some(text.trim_end_matches('\n').to_owned())
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::mpsc;

    use super::*;

    fn process(pid: u32, tid: u32, name: &str) -> Process {
        Process {
            pid,
            tid,
            uid: 0,
            gid: 0,
            name: name.to_owned(),
            cgroup_id: 0,
        }
    }

    fn own_name() -> String {
        std::fs::read_to_string("/proc/self/comm")
            .unwrap()
            .trim_end()
            .to_owned()
    }

    /// A thread of this process with a name of its own, and its tid; it
    /// lives until the returned sender is dropped.
    pub(in crate::daemon) fn named_thread(name: &str) -> (u32, mpsc::Sender<()>) {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // SAFETY: gettid takes nothing and cannot fail.
                let tid = unsafe { libc::gettid() };
                tid_tx.send(u32::try_from(tid).unwrap()).unwrap();
                let _ = stop_rx.recv();
            })
            .unwrap();
        (tid_rx.recv().unwrap(), stop_tx)
    }

    #[test]
    fn a_thread_is_named_by_its_leader() {
        let (tid, _alive) = named_thread("pw-net-worker");
        let mut names = ProcessNames::new("/proc", LOOKUPS_PER_SECOND);
        let mut thread = process(std::process::id(), tid, "pw-net-worker");
        names.name(&mut thread, SystemTime::UNIX_EPOCH);
        assert_eq!(thread.name, own_name());
    }

    #[test]
    fn a_pid_that_no_longer_has_the_thread_keeps_the_kernels_name() {
        // The kernel saw thread 1 of this pid: this process has no such
        // thread, as when the process exited and its pid went to another.
        let mut names = ProcessNames::new("/proc", LOOKUPS_PER_SECOND);
        let mut stale = process(std::process::id(), 1, "isc-net-0000");
        names.name(&mut stale, SystemTime::UNIX_EPOCH);
        assert_eq!(stale.name, "isc-net-0000");
        // A thread that is there under another name than the kernel saw.
        let (tid, _alive) = named_thread("pw-renamed");
        let mut renamed = process(std::process::id(), tid, "pw-old-name");
        names.name(&mut renamed, SystemTime::UNIX_EPOCH);
        assert_eq!(renamed.name, "pw-old-name");
    }

    #[test]
    fn lookups_stop_at_the_budget_until_the_next_second() {
        let (tid, _alive) = named_thread("pw-budget");
        let mut names = ProcessNames::new("/proc", 2);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let looked_up = |names: &mut ProcessNames, now| {
            let mut thread = process(std::process::id(), tid, "pw-budget");
            names.name(&mut thread, now);
            thread.name != "pw-budget"
        };
        assert!(looked_up(&mut names, at));
        assert!(looked_up(&mut names, at + Duration::from_millis(10)));
        assert!(!looked_up(&mut names, at + Duration::from_millis(20)));
        assert!(looked_up(&mut names, at + Duration::from_secs(1)));
    }
}
