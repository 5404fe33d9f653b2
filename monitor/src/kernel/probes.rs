use std::{
    collections::BTreeSet,
    fs::File,
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{CgroupSkb, CgroupSockAddr},
};
use serde::Serialize;

use super::{
    BpfFailure, EBPF_OBJECT, KernelError, bpf_sys,
    features::Probed,
    interfaces::InterfaceCoverage,
    liveness::{self, DaemonState},
    pins::{MAPS, PinDir, link_or_update},
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
    Skb,
    SockAddr,
}

struct ProgramSpec {
    name: &'static str,
    kind: &'static str,
    hook: Hook,
    attach_type: u32,
}

const PROGRAMS: [ProgramSpec; 8] = [
    ProgramSpec {
        name: "pw_dns_egress",
        kind: "cgroup_skb/egress",
        hook: Hook::Skb,
        attach_type: bpf_sys::BPF_CGROUP_INET_EGRESS,
    },
    ProgramSpec {
        name: "pw_dns_ingress",
        kind: "cgroup_skb/ingress",
        hook: Hook::Skb,
        attach_type: bpf_sys::BPF_CGROUP_INET_INGRESS,
    },
    ProgramSpec {
        name: "pw_connect4",
        kind: "cgroup/connect4",
        hook: Hook::SockAddr,
        attach_type: bpf_sys::BPF_CGROUP_INET4_CONNECT,
    },
    ProgramSpec {
        name: "pw_connect6",
        kind: "cgroup/connect6",
        hook: Hook::SockAddr,
        attach_type: bpf_sys::BPF_CGROUP_INET6_CONNECT,
    },
    // Which process owns each DNS socket (monitor-ebpf/src/programs/dns_owner.rs).
    ProgramSpec {
        name: "pw_dns_sendmsg4",
        kind: "cgroup/sendmsg4",
        hook: Hook::SockAddr,
        attach_type: bpf_sys::BPF_CGROUP_UDP4_SENDMSG,
    },
    ProgramSpec {
        name: "pw_dns_sendmsg6",
        kind: "cgroup/sendmsg6",
        hook: Hook::SockAddr,
        attach_type: bpf_sys::BPF_CGROUP_UDP6_SENDMSG,
    },
    ProgramSpec {
        name: "pw_dns_connect4",
        kind: "cgroup/connect4",
        hook: Hook::SockAddr,
        attach_type: bpf_sys::BPF_CGROUP_INET4_CONNECT,
    },
    ProgramSpec {
        name: "pw_dns_connect6",
        kind: "cgroup/connect6",
        hook: Hook::SockAddr,
        attach_type: bpf_sys::BPF_CGROUP_INET6_CONNECT,
    },
];

/// How the programs attach.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Pin links and maps there (`[kernel] pin_path`), adopting what a
    /// compatible earlier run left; `None`: everything dies with the process.
    pub pins: Option<PinDir>,
    /// `[kernel] on_crash = "keep-enforcing"`.
    pub keep_enforcing: bool,
}

/// The loaded object with its programs attached to the cgroup v2 root.
///
/// Attachments are bpf_links. Without pins they die with the process, and
/// enforcement with them. With pins (the daemon's way) they outlive it: the
/// hooks keep capturing into the pinned ring buffer, the connect hooks fail
/// open once the heartbeat in `DAEMON` is older than its grace period
/// (unless `keep_enforcing`), and the next daemon adopts them; a clean stop
/// removes the pins ([`Probes::unpin_all`]) before dropping this.
pub struct Probes {
    /// Shared with the interface hooks, which attach with legacy tc through
    /// it and hold it weakly: dropping `Probes` still drops the object.
    ebpf: Arc<Mutex<Ebpf>>,
    programs: Vec<ProgramStatus>,
    features: Probed,
    /// The cgroup links; closing them detaches unless they are pinned.
    links: Vec<OwnedFd>,
    pins: Option<PinDir>,
    /// `DAEMON` as this load found it (an earlier run's, when adopted).
    previous: DaemonState,
}

impl Probes {
    /// Loads every program and attaches it (beside systemd's, Cilium's or
    /// Tetragon's programs on the same cgroup), after the watched ports are
    /// in place so the first connect is already seen. Nothing is pinned:
    /// for `pinwatch learn`.
    pub fn attach(
        cgroup_root: &Path,
        watched_ports: &BTreeSet<u16>,
    ) -> Result<Probes, KernelError> {
        Probes::attach_with(
            cgroup_root,
            &Policy::monitor(watched_ports),
            &AttachOptions::default(),
        )
    }

    /// [`Probes::attach`] with `policy` (watched ports, enforced ports and
    /// their pinned sets) in the maps before the first program runs, and
    /// pins as `options` say. A link pinned by an earlier run is switched to
    /// the new program in one step (BPF_LINK_UPDATE); others are created.
    pub fn attach_with(
        cgroup_root: &Path,
        policy: &Policy,
        options: &AttachOptions,
    ) -> Result<Probes, KernelError> {
        if EBPF_OBJECT.is_empty() {
            return Err(KernelError::NoObject);
        }
        raise_memlock_limit();
        let features = Probed::run();
        let coarse_clock = u32::from(features.coarse_clock);
        let mut loader = EbpfLoader::new();
        loader.override_global("PW_COARSE_CLOCK", &coarse_clock, true);
        let paths: Vec<(&str, PathBuf)> = match &options.pins {
            Some(pins) => MAPS.iter().map(|&name| (name, pins.map(name))).collect(),
            None => Vec::new(),
        };
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let ebpf = loader.load(EBPF_OBJECT).map_err(KernelError::Object)?;
        if options.pins.is_some() {
            // A map left out of `MAPS` works, but starts empty after every
            // restart instead of being adopted.
            for (name, _) in ebpf.maps() {
                if !name.starts_with('.') && !MAPS.contains(&name) {
                    tracing::warn!(map = name, "eBPF map not pinned (missing from pins::MAPS)");
                }
            }
        }
        let mut probes = Probes {
            ebpf: Arc::new(Mutex::new(ebpf)),
            programs: Vec::new(),
            features,
            links: Vec::new(),
            pins: options.pins.clone(),
            previous: DaemonState::default(),
        };
        let previous = liveness::read(&probes.ebpf())?;
        probes.previous = previous;
        probes.set_policy(policy)?;
        liveness::first_beat(&mut probes.ebpf(), options.keep_enforcing)?;
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
            source: BpfFailure::Io(error),
        };
        let program_fd = {
            let mut ebpf = self.ebpf();
            let program = ebpf
                .program_mut(spec.name)
                .ok_or_else(|| load_error(BpfFailure::Missing))?;
            let fd = match spec.hook {
                Hook::Skb => {
                    let program: &mut CgroupSkb = program.try_into().map_err(refused)?;
                    program.load().map_err(refused)?;
                    program.fd().map_err(refused)?.as_fd().try_clone_to_owned()
                }
                Hook::SockAddr => {
                    let program: &mut CgroupSockAddr = program.try_into().map_err(refused)?;
                    program.load().map_err(refused)?;
                    program.fd().map_err(refused)?.as_fd().try_clone_to_owned()
                }
            };
            fd.map_err(attach_error)?
        };
        let pin = self.pins.as_ref().map(|pins| pins.link(spec.name));
        let link = link_or_update(program_fd.as_fd(), pin.as_deref(), |program| {
            bpf_sys::cgroup_link(program, cgroup.as_fd(), spec.attach_type)
        })
        .map_err(attach_error)?;
        self.links.push(link);
        Ok(())
    }

    /// What `DAEMON` held at load.
    pub fn previous(&self) -> DaemonState {
        self.previous
    }

    /// Where the pins are, when pinned.
    pub fn pins(&self) -> Option<&PinDir> {
        self.pins.as_ref()
    }

    /// Removes every pin (a clean stop, or `pinwatch unload`): the links
    /// detach once this process closes them, the maps go with the object.
    pub fn unpin_all(&self) -> Result<(), super::pins::PinError> {
        match &self.pins {
            Some(pins) => pins.remove_all(),
            None => Ok(()),
        }
    }

    /// Replaces the watched ports and what is enforced on them; see
    /// `policy::apply` for the order that refuses no legitimate connect.
    pub fn set_policy(&mut self, policy: &Policy) -> Result<(), KernelError> {
        super::policy::apply(&mut self.ebpf(), policy)
    }

    /// Hands the ring buffer and the loss counters to the event source.
    pub fn take_event_maps(&mut self) -> Result<EventMaps, KernelError> {
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
        let daemon = take(&mut ebpf, "DAEMON")?;
        let daemon = Array::try_from(daemon).map_err(|e| KernelError::Map {
            map: "DAEMON",
            source: BpfFailure::map(e),
        })?;
        Ok(EventMaps { ring, lost, daemon })
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

/// The maps the event source reads and writes.
pub struct EventMaps {
    pub ring: RingBuf<MapData>,
    pub lost: PerCpuArray<MapData, u64>,
    /// Written by the source: heartbeat and reported losses.
    pub daemon: Array<MapData, u64>,
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
