//! The kernel side as userspace sees it: checks that the host can run the
//! programs, loading and attaching them, their maps, and the ring-buffer
//! source.
mod bpf_sys;
mod cgroup;
mod failure;
pub mod features;
pub mod interfaces;
mod liveness;
mod owners;
pub mod pins;
mod policy;
mod preflight;
mod probes;
pub mod source;
pub mod stale;
pub mod unload;

pub use cgroup::find_cgroup2_root;
pub use failure::BpfFailure;
pub use liveness::DaemonState;
pub use policy::Policy;
pub use preflight::preflight;
pub use probes::{AttachOptions, EventMaps, Probes, ProgramStatus};

use std::path::PathBuf;

/// The eBPF object built by build.rs from monitor-ebpf.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pinwatch"));

/// The kernel or the privileges are not enough (exit code 3). Each variant
/// names what is missing.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "missing privileges: pinwatch needs {missing} (run as root, or grant them as ambient capabilities)"
    )]
    Capabilities { missing: String },
    #[error(
        "no cgroup v2 mount found in /proc/self/mountinfo: pinwatch attaches its programs to the cgroup v2 root (mount one with `mount -t cgroup2 none /sys/fs/cgroup`)"
    )]
    NoCgroup2,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "this pinwatch binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild with the eBPF toolchain"
    )]
    NoObject,
    #[error("the kernel refused pinwatch's eBPF object: {0}")]
    Object(#[source] aya::EbpfError),
    #[error("the kernel refused to load program {program} ({kind}): {source}")]
    Load {
        program: &'static str,
        kind: &'static str,
        source: BpfFailure,
    },
    #[error("cannot attach program {program} ({kind}) to the cgroup v2 root {cgroup}: {source}")]
    Attach {
        program: &'static str,
        kind: &'static str,
        cgroup: PathBuf,
        source: BpfFailure,
    },
    #[error("eBPF map {map} is missing or of the wrong type: {source}")]
    Map {
        map: &'static str,
        source: BpfFailure,
    },
    #[error(transparent)]
    Pins(#[from] pins::PinError),
    #[error("cannot update eBPF map {map}: {source}")]
    MapUpdate {
        map: &'static str,
        source: BpfFailure,
    },
}
