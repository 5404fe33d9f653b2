//! The tc program on the host's interfaces: DNS responses as they arrive,
//! before IP reassembly and socket lookup (see monitor-ebpf/src/tc.rs).
//!
//! Attached with tcx (kernel ≥ 6.6) as bpf_links this process owns, one per
//! Ethernet interface of the daemon's network namespace (the init one under
//! systemd); dropping [`InterfaceHooks`] detaches them, and so does the
//! kernel when the process dies or the interface goes. A task listens to
//! rtnetlink link notifications and attaches to interfaces that appear
//! later (a new NIC, a container's veth host end).
//!
//! Not covered: loopback (every packet on it reaches a socket, and the
//! cgroup hooks see those), interfaces without an Ethernet header (tun,
//! WireGuard, ipip: the program reads the IP header 14 bytes in), and
//! interfaces inside other network namespaces — a container's traffic is
//! seen on the host end of its veth, and at its sockets by the cgroup hooks.
use std::{
    collections::HashMap,
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
};

use aya::programs::SchedClassifier;
use tokio::io::unix::AsyncFd;

use super::{BpfFailure, KernelError, Probes, ProgramStatus, bpf_sys};

pub const PROGRAM: &str = "pw_dns_iface";
const KIND: &str = "tcx/ingress";
/// `ARPHRD_ETHER` in /sys/class/net/*/type (veths and bridges are too).
const ARPHRD_ETHER: &str = "1";
/// rtnetlink multicast group of link (interface) changes.
const RTMGRP_LINK: u32 = 1;

pub struct InterfaceHooks {
    program: OwnedFd,
    /// ifindex → (name, link).
    links: HashMap<u32, (String, OwnedFd)>,
}

/// Loads the tc program from the object `probes` holds and attaches it to
/// every Ethernet interface present.
pub fn attach(probes: &mut Probes) -> Result<InterfaceHooks, KernelError> {
    let load_error = |source| KernelError::Load {
        program: PROGRAM,
        kind: KIND,
        source,
    };
    let refused = |error| load_error(BpfFailure::program(error));
    let program: &mut SchedClassifier = probes
        .ebpf_mut()
        .program_mut(PROGRAM)
        .ok_or_else(|| load_error(BpfFailure::Missing))?
        .try_into()
        .map_err(refused)?;
    program.load().map_err(refused)?;
    let fd = program
        .fd()
        .map_err(refused)?
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| load_error(BpfFailure::Io(e)))?;
    let mut hooks = InterfaceHooks {
        program: fd,
        links: HashMap::new(),
    };
    hooks.rescan();
    probes.add_program(ProgramStatus {
        name: PROGRAM,
        kind: KIND,
        attached: true,
    });
    Ok(hooks)
}

impl InterfaceHooks {
    /// Names of the interfaces the program is attached to.
    pub fn interfaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.links.values().map(|(name, _)| name.clone()).collect();
        names.sort();
        names
    }

    /// Attaches to Ethernet interfaces not yet covered; forgets the links of
    /// interfaces that are gone (the kernel already detached them).
    fn rescan(&mut self) {
        let present = ethernet_interfaces();
        self.links.retain(|ifindex, (name, _)| {
            let kept = present.iter().any(|(i, n)| i == ifindex && n == name);
            if !kept {
                tracing::info!(interface = %name, "interface gone; its DNS hook went with it");
            }
            kept
        });
        for (ifindex, name) in present {
            if self.links.contains_key(&ifindex) {
                continue;
            }
            match bpf_sys::tcx_ingress_link(self.program.as_fd(), ifindex) {
                Ok(link) => {
                    tracing::info!(interface = %name, "DNS responses watched at the interface (tcx ingress)");
                    self.links.insert(ifindex, (name, link));
                }
                // Raced with the interface going away, or a device tcx
                // refuses: the cgroup hooks still see its sockets' traffic.
                Err(error) => {
                    tracing::warn!(interface = %name, "cannot attach the interface DNS hook: {error}")
                }
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

/// (ifindex, name) of this namespace's Ethernet-type interfaces.
fn ethernet_interfaces() -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let read = |file: &str| std::fs::read_to_string(path.join(file)).unwrap_or_default();
        if read("type").trim() != ARPHRD_ETHER {
            continue;
        }
        let Ok(ifindex) = read("ifindex").trim().parse::<u32>() else {
            continue;
        };
        found.push((ifindex, entry.file_name().to_string_lossy().into_owned()));
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
