//! `pinwatch run --handover`: a new daemon takes over from the one
//! running, with no moment in which the hooks are detached or records are
//! dropped. The old daemon gets SIGUSR2 (what the systemd unit's `ExecStop`
//! sends on `systemctl restart`): it reads what the ring buffer holds,
//! writes its alerts and exits, leaving its links and maps pinned. Once it
//! is gone, this daemon adopts them (`kernel::pins`): it switches each link
//! to its own program in one step and reads the records that arrived
//! meanwhile.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use crate::kernel::stale::{self, StaleError};

/// How long the old daemon may take to drain and exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error(transparent)]
    Query(#[from] StaleError),
    #[error("cannot ask the running pinwatch (pid {pid}) to hand over: {source}")]
    Signal { pid: u32, source: std::io::Error },
    #[error(
        "the running pinwatch (pid {pid}) did not hand over within {timeout:?} of SIGUSR2; it keeps running"
    )]
    Timeout { pid: u32, timeout: Duration },
}

/// Asks the running daemon, if any, to hand over, and waits until it no
/// longer holds the programs.
pub(super) fn take_over(cgroup_root: &Path) -> Result<(), HandoverError> {
    let Some((pid, comm)) = stale::running_daemon(cgroup_root)? else {
        tracing::info!("no running pinwatch to take over from");
        return Ok(());
    };
    tracing::info!(pid, %comm, "asking the running pinwatch to hand over (SIGUSR2)");
    let raw = libc::pid_t::try_from(pid).unwrap_or(libc::pid_t::MAX);
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(raw, libc::SIGUSR2) } != 0 {
        return Err(HandoverError::Signal {
            pid,
            source: std::io::Error::last_os_error(),
        });
    }
    let deadline = Instant::now() + EXIT_TIMEOUT;
    // A zombie holds no descriptors: what counts is that no process holds
    // the programs any more, not that the pid is reaped.
    while stale::running_daemon(cgroup_root)?.is_some_and(|(holder, _)| holder == pid) {
        if Instant::now() > deadline {
            return Err(HandoverError::Timeout {
                pid,
                timeout: EXIT_TIMEOUT,
            });
        }
        std::thread::sleep(POLL);
    }
    tracing::info!(pid, "the old pinwatch handed over");
    Ok(())
}
