//! A DNS server of the tests' own that answers with crafted bytes, a glibc
//! client (`getent ahostsv4`: getaddrinfo) to prove what the C library
//! accepts, and sockets opened inside a lab namespace from the test process.
//!
//! The crafted responses are the unit tests' own
//! (`monitor/src/decode/evasions.rs`, included here), so the kernel tests
//! send exactly the bytes the detector's tests judge.
use std::{
    fs::File,
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    process::Output,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::{cmd::describe, netns::NetNs};

#[path = "../../monitor/src/decode/evasions.rs"]
mod evasions;

pub use evasions::{Evasion, LONG_CHAIN, PADDED_LEN, injected, question, response};

/// Runs `f` on a thread that joined `ns`'s network namespace: sockets it
/// opens live there, whatever thread uses them later.
pub fn in_netns<T: Send + 'static>(ns: &NetNs, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        // SAFETY: setns on an open namespace fd; it changes only the calling
        // thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|_| panic!("the thread in {} panicked", ns.name()))
}

/// A UDP socket bound to `addr` inside `ns`.
pub fn udp_socket_in(ns: &NetNs, addr: SocketAddr) -> UdpSocket {
    in_netns(ns, move || {
        UdpSocket::bind(addr).unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"))
    })
}

/// What the server answers a query with, in order (several datagrams: a
/// race of forgeries); empty: no answer.
pub type Responder = dyn Fn(&[u8]) -> Vec<Vec<u8>> + Send + Sync;

/// A UDP DNS server on `addr` in a namespace, answering each query with
/// what its responder crafts. Drop stops it.
pub struct CraftedServer {
    socket: UdpSocket,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CraftedServer {
    pub fn start(ns: &NetNs, addr: SocketAddr, respond: Box<Responder>) -> CraftedServer {
        let socket = udp_socket_in(ns, addr);
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let socket = socket.try_clone().expect("clone the server socket");
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, peer)) = socket.recv_from(&mut buffer) else {
                        continue;
                    };
                    for answer in respond(&buffer[..len]) {
                        let _ = socket.send_to(&answer, peer);
                    }
                }
            })
        };
        CraftedServer {
            socket,
            stop,
            thread: Some(thread),
        }
    }

    /// Sends `bytes` from the server's socket to `to`, asked or not.
    pub fn send_to(&self, bytes: &[u8], to: SocketAddr) {
        self.socket
            .send_to(bytes, to)
            .unwrap_or_else(|e| panic!("cannot send to {to}: {e}"));
    }
}

impl Drop for CraftedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The question name of a query, dotted, in lower case.
pub fn question_name(query: &[u8]) -> Option<String> {
    let (_, question) = question(query)?;
    let mut labels = Vec::new();
    let mut rest = question;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0 {
            break;
        }
        let (label, tail) = tail.split_at_checked(usize::from(len))?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        rest = tail;
    }
    Some(labels.join("."))
}

/// Whether the query asks for an A record.
pub fn asks_for_a(query: &[u8]) -> bool {
    question(query).is_some_and(|(_, q)| q.len() >= 4 && q[q.len() - 4..q.len() - 2] == [0, 1])
}

/// `getent ahostsv4 NAME` in `ns`: getaddrinfo(AF_INET) through the lab's
/// resolv.conf, as an application resolves.
pub fn getent_ahostsv4(ns: &NetNs, name: &str) -> Output {
    let mut cmd = ns.command("getent");
    cmd.args(["ahostsv4", name]);
    let line = describe(&cmd);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"))
}
