//! Giving up the capabilities that only loading and attaching needed.
//!
//! CAP_NET_ADMIN (attaching to the cgroup) and CAP_PERFMON (loading
//! programs that read process details) are used once, at start; the
//! attachments are bpf_links that live on without them. CAP_BPF stays:
//! reload updates the watched-ports map, and kernels before 6.5 with
//! unprivileged BPF disabled (Debian's default) check it on every bpf()
//! call. CAP_SYS_ADMIN, the older umbrella for all of this, goes too when
//! CAP_BPF is there to take its place. Other capabilities a root daemon
//! holds are left alone: other parts of the daemon may need them (the
//! systemd unit grants none beyond these three). With legacy tc (kernels
//! before 6.6) CAP_NET_ADMIN stays: its filters are not links, so attaching
//! to a new interface and detaching at exit are rtnetlink requests.
//!
//! Capabilities are per thread: this must run before the daemon starts
//! threads, so that every thread it starts inherits the reduced sets.
use caps::{CapSet, Capability};

/// Capabilities the daemon no longer needs once its programs are attached.
pub(super) fn drop_after_attach(
    keep_net_admin: bool,
) -> Result<Vec<Capability>, caps::errors::CapsError> {
    let held = caps::read(None, CapSet::Permitted)?;
    let mut unneeded = vec![Capability::CAP_PERFMON];
    if !keep_net_admin {
        unneeded.push(Capability::CAP_NET_ADMIN);
    }
    if held.contains(&Capability::CAP_BPF) {
        unneeded.push(Capability::CAP_SYS_ADMIN);
    }
    unneeded.retain(|cap| held.contains(cap));
    for &cap in &unneeded {
        // Ambient and effective first: the kernel refuses a permitted set
        // that no longer covers them.
        for set in [
            CapSet::Ambient,
            CapSet::Effective,
            CapSet::Inheritable,
            CapSet::Permitted,
        ] {
            caps::drop(None, set, cap)?;
        }
    }
    Ok(unneeded)
}
