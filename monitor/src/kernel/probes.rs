use std::{collections::BTreeSet, fs::File, path::Path};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr},
};
use serde::Serialize;

use super::{BpfFailure, EBPF_OBJECT, KernelError, policy::Policy};

/// What `status` reports per program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramStatus {
    pub name: &'static str,
    pub kind: &'static str,
    pub attached: bool,
}

enum Hook {
    Skb(CgroupSkbAttachType),
    SockAddr,
}

struct ProgramSpec {
    name: &'static str,
    kind: &'static str,
    hook: Hook,
}

/// Flags 0 for bpf_link_create, which the kernel turns into multi mode.
const ATTACH_MODE: CgroupAttachMode = CgroupAttachMode::Single;

const PROGRAMS: [ProgramSpec; 8] = [
    ProgramSpec {
        name: "pw_dns_egress",
        kind: "cgroup_skb/egress",
        hook: Hook::Skb(CgroupSkbAttachType::Egress),
    },
    ProgramSpec {
        name: "pw_dns_ingress",
        kind: "cgroup_skb/ingress",
        hook: Hook::Skb(CgroupSkbAttachType::Ingress),
    },
    ProgramSpec {
        name: "pw_connect4",
        kind: "cgroup/connect4",
        hook: Hook::SockAddr,
    },
    ProgramSpec {
        name: "pw_connect6",
        kind: "cgroup/connect6",
        hook: Hook::SockAddr,
    },
    // Which process owns each DNS socket (monitor-ebpf/src/dns_owner.rs).
    ProgramSpec {
        name: "pw_dns_sendmsg4",
        kind: "cgroup/sendmsg4",
        hook: Hook::SockAddr,
    },
    ProgramSpec {
        name: "pw_dns_sendmsg6",
        kind: "cgroup/sendmsg6",
        hook: Hook::SockAddr,
    },
    ProgramSpec {
        name: "pw_dns_connect4",
        kind: "cgroup/connect4",
        hook: Hook::SockAddr,
    },
    ProgramSpec {
        name: "pw_dns_connect6",
        kind: "cgroup/connect6",
        hook: Hook::SockAddr,
    },
];

/// The loaded object with its programs attached to the cgroup v2 root.
///
/// Attachments are bpf_links owned by this process: dropping `Probes`
/// detaches everything, and so does the kernel if the process dies, so a
/// crash never leaves programs behind — nor enforcement: once the daemon is
/// gone, no connect is refused (fail-open, on purpose; see the README).
pub struct Probes {
    ebpf: Ebpf,
    programs: Vec<ProgramStatus>,
}

impl Probes {
    /// Loads every program and attaches it in multi mode (beside systemd's,
    /// Cilium's or Tetragon's programs on the same cgroup), after the
    /// watched ports are in place so the first connect is already seen.
    ///
    /// Multi mode comes from the attachment being a bpf_link (kernel ≥ 5.7;
    /// the ring buffer already needs 5.8): the kernel always attaches cgroup
    /// links with BPF_F_ALLOW_MULTI and refuses that flag when it is passed
    /// explicitly, hence `ATTACH_MODE`.
    pub fn attach(
        cgroup_root: &Path,
        watched_ports: &BTreeSet<u16>,
    ) -> Result<Probes, KernelError> {
        Probes::attach_with_policy(cgroup_root, &Policy::monitor(watched_ports))
    }

    /// [`Probes::attach`] with `policy` (watched ports, enforced ports and
    /// their pinned sets) in the maps before the first program runs.
    pub fn attach_with_policy(cgroup_root: &Path, policy: &Policy) -> Result<Probes, KernelError> {
        if EBPF_OBJECT.is_empty() {
            return Err(KernelError::NoObject);
        }
        raise_memlock_limit();
        let ebpf = Ebpf::load(EBPF_OBJECT).map_err(KernelError::Object)?;
        let mut probes = Probes {
            ebpf,
            programs: Vec::new(),
        };
        probes.set_policy(policy)?;
        let cgroup = File::open(cgroup_root).map_err(|source| KernelError::Read {
            path: cgroup_root.into(),
            source,
        })?;
        for spec in &PROGRAMS {
            probes.attach_one(spec, &cgroup, cgroup_root)?;
            probes.programs.push(ProgramStatus {
                name: spec.name,
                kind: spec.kind,
                attached: true,
            });
        }
        Ok(probes)
    }

    fn attach_one(
        &mut self,
        spec: &ProgramSpec,
        cgroup: &File,
        cgroup_root: &Path,
    ) -> Result<(), KernelError> {
        let load_error = |source: BpfFailure| KernelError::Load {
            program: spec.name,
            kind: spec.kind,
            source,
        };
        let refused = |error| load_error(BpfFailure::program(error));
        let attach_error = |error| KernelError::Attach {
            program: spec.name,
            kind: spec.kind,
            cgroup: cgroup_root.into(),
            source: BpfFailure::program(error),
        };
        let program = self
            .ebpf
            .program_mut(spec.name)
            .ok_or_else(|| load_error(BpfFailure::Missing))?;
        match spec.hook {
            Hook::Skb(attach_type) => {
                let program: &mut CgroupSkb = program.try_into().map_err(refused)?;
                program.load().map_err(refused)?;
                program
                    .attach(cgroup, attach_type, ATTACH_MODE)
                    .map_err(attach_error)?;
            }
            Hook::SockAddr => {
                let program: &mut CgroupSockAddr = program.try_into().map_err(refused)?;
                program.load().map_err(refused)?;
                program.attach(cgroup, ATTACH_MODE).map_err(attach_error)?;
            }
        }
        Ok(())
    }

    /// Replaces the watched ports and what is enforced on them; see
    /// `policy::apply` for the order that refuses no legitimate connect.
    pub fn set_policy(&mut self, policy: &Policy) -> Result<(), KernelError> {
        super::policy::apply(&mut self.ebpf, policy)
    }

    /// Hands the ring buffer and the loss counters to the event source.
    pub fn take_event_maps(
        &mut self,
    ) -> Result<(RingBuf<MapData>, PerCpuArray<MapData, u64>), KernelError> {
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(KernelError::Map {
                map: name,
                source: BpfFailure::Taken,
            })
        };
        let ring = take(&mut self.ebpf, "EVENTS")?;
        let ring = RingBuf::try_from(ring).map_err(|e| KernelError::Map {
            map: "EVENTS",
            source: BpfFailure::map(e),
        })?;
        let lost = take(&mut self.ebpf, "EVENTS_LOST")?;
        let lost = PerCpuArray::try_from(lost).map_err(|e| KernelError::Map {
            map: "EVENTS_LOST",
            source: BpfFailure::map(e),
        })?;
        Ok((ring, lost))
    }

    /// The object, for `interfaces` to load and attach its tc program.
    pub(super) fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Lists a program attached outside this module (`interfaces`).
    pub(super) fn add_program(&mut self, status: ProgramStatus) {
        self.programs.push(status);
    }

    pub fn programs(&self) -> &[ProgramStatus] {
        &self.programs
    }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones use
/// the memory cgroup, where this is harmless.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass; failure only matters on old kernels.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    if ret != 0 {
        tracing::debug!(
            "could not raise RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}
