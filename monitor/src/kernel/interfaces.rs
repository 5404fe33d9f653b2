//! The tc program on the host's interfaces: DNS responses as they arrive,
//! before IP reassembly and socket lookup (see monitor-ebpf/src/programs/tc.rs).
//!
//! Attached with tcx (kernel ≥ 6.6) as bpf_links, one per Ethernet
//! interface of the daemon's network namespace (the init one under
//! systemd), pinned as `iface-IFINDEX` beside the cgroup links
//! (`kernel::pins`): they outlive a crash, the next daemon switches them to
//! its program in one step, and a clean stop unpins them before dropping
//! [`InterfaceHooks`], which detaches them; the kernel detaches them when
//! the interface goes. Older kernels get legacy tc: a clsact qdisc and a
//! bpf filter per interface, which cannot be pinned. It is removed when the
//! object is dropped; a filter of a run that died outlives it (and keeps
//! writing to the pinned maps), and the next daemon replaces the one it
//! finds under pinwatch's name — detach then attach, so that hook alone has
//! a moment without a program on those kernels. A task listens to rtnetlink link
//! notifications and attaches to interfaces that appear later (a new NIC, a
//! container's veth host end).
//!
//! Not covered: loopback (every packet on it reaches a socket, and the
//! cgroup hooks see those), interfaces without an Ethernet header (tun,
//! WireGuard, ipip: the program reads the IP header 14 bytes in; they are
//! reported as failed, since responses arriving there are not seen), and
//! interfaces inside other network namespaces — a container's traffic is
//! seen on the host end of its veth, and at its sockets by the cgroup hooks.
use std::{
    collections::HashMap,
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    sync::{Arc, Mutex, PoisonError, Weak},
};

use aya::{
    Ebpf,
    programs::{
        SchedClassifier, TcAttachType,
        tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions},
    },
};
use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;

use super::{
    BpfFailure, Probes, ProgramStatus, bpf_sys,
    pins::{IFACE_PREFIX, PinDir, link_or_update},
};

pub const PROGRAM: &str = "pw_dns_iface";
const KIND_TCX: &str = "tcx/ingress";
const KIND_LEGACY: &str = "tc/ingress (clsact)";
/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK` in /sys/class/net/*/type (veths and
/// bridges are Ethernet too).
const ARPHRD_ETHER: u32 = 1;
const ARPHRD_LOOPBACK: u32 = 772;
/// `IFF_UP` in /sys/class/net/*/flags.
const IFF_UP: u32 = 1;
/// rtnetlink multicast group of link (interface) changes.
const RTMGRP_LINK: u32 = 1;

/// Which interfaces the hook watches, and which it should but does not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceCoverage {
    /// Sorted names.
    pub covered: Vec<String>,
    pub failed: Vec<FailedInterface>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedInterface {
    pub name: String,
    pub reason: String,
}

/// The hooks' current coverage, read by status and metrics while the watch
/// task updates it.
#[derive(Debug, Clone, Default)]
pub struct CoverageHandle(Arc<Mutex<InterfaceCoverage>>);

impl CoverageHandle {
    pub fn snapshot(&self) -> InterfaceCoverage {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, coverage: InterfaceCoverage) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = coverage;
    }
}

enum Mode {
    /// Links from the program's descriptor.
    Tcx(OwnedFd),
    /// Filters attached through the object, which `Probes` owns.
    Legacy(Weak<Mutex<Ebpf>>),
    /// The program did not load: nothing is attached.
    Unloaded,
}

enum Attachment {
    Link(#[allow(dead_code, reason = "held: closing it detaches")] OwnedFd),
    Filter(SchedClassifierLinkId),
}

pub struct InterfaceHooks {
    mode: Mode,
    /// ifindex → (name, attachment).
    links: HashMap<u32, (String, Attachment)>,
    /// Interfaces that could not be attached, by ifindex, so a rescan does
    /// not retry (and re-log) them on every link notification.
    failed: HashMap<u32, FailedInterface>,
    coverage: CoverageHandle,
    /// Where the tcx links are pinned; `None`: not pinned.
    pins: Option<PinDir>,
}

/// Loads the tc program from the object `probes` holds and attaches it to
/// every Ethernet interface present, with tcx where the kernel has it. A
/// program the kernel refuses leaves the hooks empty and the program listed
/// as not running, with the kernel's reason: the cgroup hooks still work.
pub fn attach(probes: &mut Probes) -> InterfaceHooks {
    let tcx = probes.features().tcx;
    let kind = if tcx { KIND_TCX } else { KIND_LEGACY };
    let (mode, error) = match load(probes) {
        Ok(fd) if tcx => (Mode::Tcx(fd), None),
        Ok(_) => (Mode::Legacy(probes.ebpf_weak()), None),
        Err(error) => {
            tracing::warn!("the interface DNS hook is not running: {error}");
            (Mode::Unloaded, Some(error))
        }
    };
    let mut hooks = InterfaceHooks {
        mode,
        links: HashMap::new(),
        failed: HashMap::new(),
        coverage: CoverageHandle::default(),
        pins: probes.pins().cloned(),
    };
    hooks.unpin_absent();
    hooks.rescan();
    probes.add_program(ProgramStatus {
        name: PROGRAM,
        kind,
        attached: !hooks.links.is_empty(),
        error,
        interfaces: Some(hooks.coverage.snapshot()),
    });
    hooks
}

/// Loads the program; its descriptor, for tcx links.
fn load(probes: &mut Probes) -> Result<OwnedFd, String> {
    let mut ebpf = probes.ebpf();
    let program: &mut SchedClassifier = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| "not in the object".to_owned())?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    program
        .load()
        .map_err(|e| BpfFailure::program(e).to_string())?;
    program
        .fd()
        .map_err(|e| e.to_string())?
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| e.to_string())
}

impl InterfaceHooks {
    /// Whether attaching and detaching go through rtnetlink (legacy tc),
    /// which checks CAP_NET_ADMIN on every request.
    pub fn needs_net_admin(&self) -> bool {
        matches!(self.mode, Mode::Legacy(_))
    }

    /// The coverage as it changes, for status and metrics.
    pub fn coverage(&self) -> CoverageHandle {
        self.coverage.clone()
    }

    fn pin(&self, ifindex: u32) -> Option<std::path::PathBuf> {
        let pins = self.pins.as_ref()?;
        Some(pins.link(&format!("{IFACE_PREFIX}{ifindex}")))
    }

    /// Removes the pins an earlier run left for interfaces gone since (the
    /// kernel detached their links with them).
    fn unpin_absent(&self) {
        let Some(pins) = &self.pins else { return };
        let present = interfaces();
        for name in pins.link_names().unwrap_or_default() {
            let Some(ifindex) = name
                .strip_prefix(IFACE_PREFIX)
                .and_then(|i| i.parse::<u32>().ok())
            else {
                continue;
            };
            if !present.iter().any(|i| i.ifindex == ifindex) {
                let _ = pins.unpin(&pins.link(&name));
            }
        }
    }

    /// Attaches to Ethernet interfaces not yet covered; forgets the links of
    /// interfaces that are gone (the kernel already detached them).
    fn rescan(&mut self) {
        let present = interfaces();
        let gone: Vec<u32> = self
            .links
            .iter()
            .filter(|(ifindex, (name, _))| {
                !present
                    .iter()
                    .any(|i| i.ifindex == **ifindex && i.name == *name)
            })
            .map(|(ifindex, _)| *ifindex)
            .collect();
        for ifindex in gone {
            if let Some((name, attachment)) = self.links.remove(&ifindex) {
                tracing::info!(interface = %name, "interface gone; its DNS hook went with it");
                if let (Some(pins), Some(pin)) = (&self.pins, self.pin(ifindex)) {
                    let _ = pins.unpin(&pin);
                }
                self.forget(attachment);
            }
        }
        self.failed.retain(|ifindex, failed| {
            present.iter().any(|i| {
                i.ifindex == *ifindex
                    && i.name == failed.name
                    && (i.up || i.link_type == ARPHRD_ETHER)
            })
        });
        for interface in present {
            if self.links.contains_key(&interface.ifindex)
                || self.failed.contains_key(&interface.ifindex)
            {
                continue;
            }
            // A tunnel that is down carries nothing (ipip's and gre's
            // fallback devices exist once their module is loaded); rescans
            // follow it going up.
            if interface.link_type != ARPHRD_ETHER && !interface.up {
                continue;
            }
            match self.attach_one(&interface) {
                Ok(attachment) => {
                    tracing::info!(interface = %interface.name, "DNS responses watched at the interface");
                    self.links
                        .insert(interface.ifindex, (interface.name, attachment));
                }
                // Raced with the interface going away, a device the kernel
                // refuses, or one without an Ethernet header: the cgroup
                // hooks still see its sockets' traffic, not what never
                // reaches a socket.
                Err(reason) => {
                    tracing::warn!(interface = %interface.name, "cannot attach the interface DNS hook: {reason}");
                    self.failed.insert(
                        interface.ifindex,
                        FailedInterface {
                            name: interface.name,
                            reason,
                        },
                    );
                }
            }
        }
        let mut covered: Vec<String> = self.links.values().map(|(name, _)| name.clone()).collect();
        covered.sort();
        let mut failed: Vec<FailedInterface> = self.failed.values().cloned().collect();
        failed.sort_by(|a, b| a.name.cmp(&b.name));
        self.coverage.set(InterfaceCoverage { covered, failed });
    }

    fn attach_one(&self, interface: &Interface) -> Result<Attachment, String> {
        if interface.link_type != ARPHRD_ETHER {
            return Err(format!(
                "not an Ethernet interface (link type {}): the hook reads the IP header behind an Ethernet header",
                interface.link_type
            ));
        }
        match &self.mode {
            Mode::Tcx(program) => {
                let pin = self.pin(interface.ifindex);
                link_or_update(program.as_fd(), pin.as_deref(), |program| {
                    bpf_sys::tcx_ingress_link(program, interface.ifindex)
                })
                .map(Attachment::Link)
                .map_err(|error| format!("tcx attach refused: {error}"))
            }
            Mode::Legacy(ebpf) => attach_legacy(ebpf, &interface.name).map(Attachment::Filter),
            Mode::Unloaded => Err("the program is not loaded".to_owned()),
        }
    }

    /// Drops what attached to an interface that is gone.
    fn forget(&self, attachment: Attachment) {
        if let (Attachment::Filter(id), Mode::Legacy(ebpf)) = (attachment, &self.mode)
            && let Some(ebpf) = ebpf.upgrade()
        {
            let mut ebpf = ebpf.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(Ok(program)) = ebpf
                .program_mut(PROGRAM)
                .map(<&mut SchedClassifier>::try_from)
            {
                // The filter went with the interface; this forgets its id.
                let _ = program.detach(id);
            }
        }
    }

    /// Runs [`InterfaceHooks::watch`] on the current tokio runtime until the
    /// returned guard is dropped.
    pub fn spawn(self) -> WatchGuard {
        WatchGuard(tokio::spawn(self.watch()).abort_handle())
    }

    /// Follows interfaces that appear or go until the future is dropped;
    /// the links go with `self`.
    pub async fn watch(mut self) {
        let socket = match link_notifications() {
            Ok(socket) => socket,
            Err(error) => {
                tracing::warn!(
                    "cannot listen for new interfaces (rtnetlink): {error}; only interfaces present at start are watched"
                );
                std::future::pending::<()>().await;
                return;
            }
        };
        // An interface that appeared between the scan at attach time and
        // this subscription sent its notification to nobody: scan again.
        self.rescan();
        let mut buffer = vec![0u8; 16 << 10];
        loop {
            let Ok(mut ready) = socket.readable().await else {
                std::future::pending::<()>().await;
                return;
            };
            // The messages only say that something changed; the rescan reads
            // the current state, so their content need not be parsed.
            loop {
                // SAFETY: recv writes at most buffer.len() bytes into buffer.
                let n = unsafe {
                    libc::recv(
                        socket.get_ref().as_raw_fd(),
                        buffer.as_mut_ptr().cast(),
                        buffer.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n <= 0 {
                    break;
                }
            }
            ready.clear_ready();
            self.rescan();
        }
    }
}

/// Stops the watch task, and with it the links, when dropped.
pub struct WatchGuard(tokio::task::AbortHandle);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Attaches the program with legacy tc: a clsact qdisc on the interface
/// (kept if there is one) and a bpf filter on its ingress, after removing a
/// filter of pinwatch's that a run which died left there.
fn attach_legacy(ebpf: &Weak<Mutex<Ebpf>>, name: &str) -> Result<SchedClassifierLinkId, String> {
    let ebpf = ebpf
        .upgrade()
        .ok_or_else(|| "the programs are being unloaded".to_owned())?;
    let mut ebpf = ebpf.lock().unwrap_or_else(PoisonError::into_inner);
    let program: &mut SchedClassifier = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| "not in the object".to_owned())?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    if tc::qdisc_detach_program(name, TcAttachType::Ingress, PROGRAM).is_ok() {
        tracing::warn!(interface = %name, "removed a stale pinwatch tc filter left by an earlier run");
    }
    // EEXIST when the interface has one already; any other failure shows
    // in the attach that follows.
    let _ = tc::qdisc_add_clsact(name);
    program
        .attach_with_options(
            name,
            TcAttachType::Ingress,
            TcAttachOptions::Netlink(NlOptions::default()),
        )
        .map_err(|error| format!("legacy tc attach refused: {}", BpfFailure::program(error)))
}

struct Interface {
    ifindex: u32,
    name: String,
    /// `ARPHRD_*`.
    link_type: u32,
    /// IFF_UP.
    up: bool,
}

/// The names of this namespace's interfaces but loopback.
pub fn names() -> Vec<String> {
    interfaces().into_iter().map(|i| i.name).collect()
}

/// This namespace's interfaces but loopback.
fn interfaces() -> Vec<Interface> {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let read = |file: &str| -> Option<u32> {
            std::fs::read_to_string(path.join(file))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let (Some(link_type), Some(ifindex)) = (read("type"), read("ifindex")) else {
            continue;
        };
        let flags = std::fs::read_to_string(path.join("flags")).unwrap_or_default();
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        if link_type == ARPHRD_LOOPBACK {
            continue;
        }
        found.push(Interface {
            ifindex,
            name: entry.file_name().to_string_lossy().into_owned(),
            link_type,
            up: flags & IFF_UP != 0,
        });
    }
    found
}

/// A non-blocking rtnetlink socket subscribed to link changes.
fn link_notifications() -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a new descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
    let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    address.nl_family = libc::AF_NETLINK as u16;
    address.nl_groups = RTMGRP_LINK;
    // SAFETY: address is a valid sockaddr_nl of the size passed.
    let ret = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const address).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the AsyncFd owns the socket: the descriptor stays open and
    // the same for as long as it is registered.
    unsafe { AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE) }
        .map_err(|error| error.into_parts().1)
}
