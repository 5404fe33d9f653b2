//! Hostile DNS for the kernel tests, in Rust: sockets made inside the lab's
//! namespaces (a thread enters the namespace, makes the socket, and the
//! socket stays there), a seeded generator, and the structure-aware
//! response builder the `detector_state` fuzz target uses.
use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use crate::netns::NetNs;

/// The builder of `fuzz/src/wire.rs`, shared by path: the fuzz workspace
/// and this one have no crate in common but pinwatch.
#[path = "../../fuzz/src/wire.rs"]
pub mod wire;

pub use wire::fragment;

/// Issue 10's crash input: x.example A, and in the answer section an OPT
/// record with 12 bytes of RDATA (hickory's `Display` of it fails).
pub const OPT_ANSWER: [u8; 50] = [
    0x33, 0x33, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, b'x', 7, b'e', b'x', b'a', b'm', b'p', b'l',
    b'e', 0, 0, 1, 0, 1, 0, 0x00, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x08,
    b'A', b'B', b'C', b'D', b'E', b'F', b'G', b'H',
];

/// Runs `make` on a thread that entered `ns`; what it creates (sockets)
/// belongs to that namespace for good.
pub fn in_ns<T: Send>(ns: &NetNs, make: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{}", ns.name());
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // SAFETY: setns on an open namespace file; it changes only
                // this thread's network namespace.
                let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(
                    entered,
                    0,
                    "setns {path}: {}",
                    std::io::Error::last_os_error()
                );
                make()
            })
            .join()
            .expect("the namespace thread panicked")
    })
}

/// A UDP socket bound to `addr` in `ns`, with a short read timeout.
pub fn udp_in(ns: &NetNs, addr: SocketAddr) -> UdpSocket {
    let socket = in_ns(ns, || UdpSocket::bind(addr)).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket
}

pub fn tcp_listener_in(ns: &NetNs, addr: SocketAddr) -> TcpListener {
    in_ns(ns, || TcpListener::bind(addr)).unwrap_or_else(|e| panic!("listen {addr}: {e}"))
}

pub fn tcp_connect_in(ns: &NetNs, addr: SocketAddr) -> TcpStream {
    let stream = in_ns(ns, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2))
    })
    .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream
}

/// A raw IPv4 socket in `ns` that sends packets whose IP header the caller
/// writes (IP_HDRINCL): for fragments of any offset.
pub struct RawV4(OwnedFd);

impl RawV4 {
    pub fn new(ns: &NetNs) -> RawV4 {
        in_ns(ns, || {
            // SAFETY: plain socket(2); the fd is owned right away.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            // SAFETY: fd is a new socket nobody else owns.
            RawV4(unsafe { OwnedFd::from_raw_fd(fd) })
        })
    }

    /// Sends one whole IPv4 packet to its destination address.
    pub fn send(&self, packet: &[u8], destination: Ipv4Addr) {
        let address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(destination).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: the buffer and the address outlive the call; their
        // lengths are passed.
        let sent = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&raw const address).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        // The kernel may refuse a malformed one; that is fine for a flood.
        let _ = sent;
    }
}

/// A DNS query for `name` (A, RD set).
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut bytes = id.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    wire::name(&mut bytes, name, 0);
    bytes.extend_from_slice(&[0, 1, 0, 1]);
    bytes
}

/// A plain answer to `query` (its id and question copied) with one A
/// record pointing at the question.
pub fn a_answer(query: &[u8], address: Ipv4Addr) -> Vec<u8> {
    let mut bytes = query.to_vec();
    bytes[2] = 0x81;
    bytes[3] = 0x80;
    bytes[7] = 1;
    bytes.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    bytes.extend_from_slice(&address.octets());
    bytes
}

/// A UDP datagram (header and payload, checksum 0: none) from port 53.
pub fn udp_datagram(to: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut datagram = 53u16.to_be_bytes().to_vec();
    datagram.extend_from_slice(&to.port().to_be_bytes());
    datagram.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    datagram
}

/// SplitMix64: a seeded, reproducible stream of choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

impl wire::Choices for Rng {
    fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// The daemon's resident set, in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
