use std::{
    collections::BTreeSet,
    fs::File,
    path::Path,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr},
};
use serde::Serialize;

use super::{
    BpfFailure, EBPF_OBJECT, KernelError, features::Probed, interfaces::InterfaceCoverage,
    policy::Policy,
};

/// What `status` reports per program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramStatus {
    pub name: &'static str,
    pub kind: &'static str,
    /// Attached to its hook; for the interface hook, to at least one
    /// interface.
    pub attached: bool,
    /// Why the program is not running where it should; `None` when it runs
    /// as designed.
    pub error: Option<String>,
    /// The interface hook's coverage; `None` for the cgroup programs.
    pub interfaces: Option<InterfaceCoverage>,
}

impl ProgramStatus {
    /// A program attached as designed.
    pub fn attached(name: &'static str, kind: &'static str) -> ProgramStatus {
        ProgramStatus {
            name,
            kind,
            attached: true,
            error: None,
            interfaces: None,
        }
    }

    /// Why health is degraded on this program's account: one line per
    /// missing detection, naming the hook and what is missing.
    pub fn health_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(error) = &self.error {
            reasons.push(format!(
                "program {} ({}) is not running: {error}",
                self.name, self.kind
            ));
        } else if !self.attached && self.interfaces.is_none() {
            reasons.push(format!(
                "program {} ({}) is not attached",
                self.name, self.kind
            ));
        }
        if let Some(coverage) = &self.interfaces {
            for failed in &coverage.failed {
                reasons.push(format!(
                    "program {} ({}) does not watch interface {}: {}",
                    self.name, self.kind, failed.name, failed.reason
                ));
            }
        }
        reasons
    }
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
    // Which process owns each DNS socket (monitor-ebpf/src/programs/dns_owner.rs).
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
    /// Shared with the interface hooks, which attach with legacy tc through
    /// it and hold it weakly: dropping `Probes` still drops the object.
    ebpf: Arc<Mutex<Ebpf>>,
    programs: Vec<ProgramStatus>,
    features: Probed,
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
        let features = Probed::run();
        let ebpf = EbpfLoader::new()
            .override_global("PW_COARSE_CLOCK", &u32::from(features.coarse_clock), true)
            .load(EBPF_OBJECT)
            .map_err(KernelError::Object)?;
        let mut probes = Probes {
            ebpf: Arc::new(Mutex::new(ebpf)),
            programs: Vec::new(),
            features,
        };
        probes.set_policy(policy)?;
        let cgroup = File::open(cgroup_root).map_err(|source| KernelError::Read {
            path: cgroup_root.into(),
            source,
        })?;
        for spec in &PROGRAMS {
            probes.attach_one(spec, &cgroup, cgroup_root)?;
            probes
                .programs
                .push(ProgramStatus::attached(spec.name, spec.kind));
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
        let mut ebpf = self.ebpf();
        let program = ebpf
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
        super::policy::apply(&mut self.ebpf(), policy)
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
        let mut ebpf = self.ebpf();
        let ring = take(&mut ebpf, "EVENTS")?;
        let ring = RingBuf::try_from(ring).map_err(|e| KernelError::Map {
            map: "EVENTS",
            source: BpfFailure::map(e),
        })?;
        let lost = take(&mut ebpf, "EVENTS_LOST")?;
        let lost = PerCpuArray::try_from(lost).map_err(|e| KernelError::Map {
            map: "EVENTS_LOST",
            source: BpfFailure::map(e),
        })?;
        Ok((ring, lost))
    }

    /// The kernel's socket-owner map, for the event source to read owners
    /// back from.
    pub fn take_owner_map(
        &mut self,
    ) -> Result<aya::maps::HashMap<MapData, u64, pinwatch_common::DnsOwnerEvent>, KernelError> {
        let map = self.ebpf().take_map("DNS_OWNERS").ok_or(KernelError::Map {
            map: "DNS_OWNERS",
            source: BpfFailure::Taken,
        })?;
        aya::maps::HashMap::try_from(map).map_err(|e| KernelError::Map {
            map: "DNS_OWNERS",
            source: BpfFailure::map(e),
        })
    }

    /// The object. Only this process's threads share it, each for a short
    /// map or attach call; a poisoned lock still guards a valid object.
    pub(super) fn ebpf(&self) -> MutexGuard<'_, Ebpf> {
        self.ebpf.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The object for `interfaces`, which must not keep it alive.
    pub(super) fn ebpf_weak(&self) -> Weak<Mutex<Ebpf>> {
        Arc::downgrade(&self.ebpf)
    }

    /// What the start-up probes found.
    pub fn features(&self) -> Probed {
        self.features
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::interfaces::FailedInterface;

    #[test]
    fn health_names_the_hook_and_what_is_missing() {
        assert!(
            ProgramStatus::attached("pw_connect4", "cgroup/connect4")
                .health_reasons()
                .is_empty()
        );
        let refused = ProgramStatus {
            attached: false,
            error: Some("verifier: invalid func".into()),
            ..ProgramStatus::attached("pw_dns_iface", "tcx/ingress")
        };
        assert_eq!(
            refused.health_reasons(),
            vec!["program pw_dns_iface (tcx/ingress) is not running: verifier: invalid func"]
        );
        let partial = ProgramStatus {
            interfaces: Some(InterfaceCoverage {
                covered: vec!["eth0".into()],
                failed: vec![FailedInterface {
                    name: "wg0".into(),
                    reason: "not an Ethernet interface".into(),
                }],
            }),
            ..ProgramStatus::attached("pw_dns_iface", "tcx/ingress")
        };
        assert_eq!(
            partial.health_reasons(),
            vec![
                "program pw_dns_iface (tcx/ingress) does not watch interface wg0: not an Ethernet interface"
            ]
        );
        // No interface to watch is not a missed detection.
        let idle = ProgramStatus {
            attached: false,
            interfaces: Some(InterfaceCoverage::default()),
            ..ProgramStatus::attached("pw_dns_iface", "tcx/ingress")
        };
        assert!(idle.health_reasons().is_empty());
        let detached = ProgramStatus {
            attached: false,
            ..ProgramStatus::attached("pw_connect4", "cgroup/connect4")
        };
        assert_eq!(
            detached.health_reasons(),
            vec!["program pw_connect4 (cgroup/connect4) is not attached"]
        );
    }
}
