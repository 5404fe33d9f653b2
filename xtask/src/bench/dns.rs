//! DNS messages on the wire, built by hand (xtask stays free of a DNS
//! library), and a paced UDP sender of them.
use std::{
    net::{Ipv4Addr, UdpSocket},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

/// The hostname the benchmark databases watch.
pub const HOST: &str = "cockroach.prod.internal";

fn name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// A response to `host` A with one A record per address (the owner names
/// point back at the question).
pub fn response(id: u16, host: &str, addresses: &[Ipv4Addr]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 16 * addresses.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x81, 0x80, 0, 1]);
    out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    name(&mut out, host);
    out.extend_from_slice(&[0, 1, 0, 1]);
    for address in addresses {
        // Pointer to the question name at offset 12; A, IN, TTL 30, 4 bytes.
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
        out.extend_from_slice(&address.octets());
    }
    out
}

/// A query for `host` with type `qtype`.
pub fn query(id: u16, host: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    name(&mut out, host);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    out
}

/// Sends `payload` from `socket` (connected) at `rate` packets per second
/// for `duration`, in batches of `sendmmsg` every millisecond. Returns the
/// packets sent and the rate achieved.
pub fn flood(socket: &UdpSocket, payload: &[u8], rate: u64, duration: Duration) -> (u64, f64) {
    const BATCH: usize = 64;
    let batch = vec![payload; BATCH];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if sent >= due {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        let count = (due - sent).min(BATCH as u64) as usize;
        sent += send_all(socket, &batch[..count]);
    }
    (sent, sent as f64 / start.elapsed().as_secs_f64())
}

/// A sender bound to 127.0.0.1:53 and a receiver that never reads, in a
/// namespace of their own: each response passes the egress program and the
/// ingress program (which runs before the full receive queue drops it), so
/// pinwatch captures two DNS messages per packet while the receiver costs
/// no CPU.
pub struct Loopback {
    sender: UdpSocket,
    _receiver: UdpSocket,
    payload: Vec<u8>,
}

/// The receiver's port.
const SINK_PORT: u16 = 40600;

impl Loopback {
    pub fn new(netns: &super::lab::Netns, payload: Vec<u8>) -> anyhow::Result<Loopback> {
        let (sender, receiver) = netns
            .spawn(|| -> std::io::Result<(UdpSocket, UdpSocket)> {
                let receiver = UdpSocket::bind(("127.0.0.1", SINK_PORT))?;
                let sender = UdpSocket::bind("127.0.0.1:53")?;
                sender.connect(("127.0.0.1", SINK_PORT))?;
                Ok((sender, receiver))
            })?
            .join()
            .map_err(|_| anyhow::anyhow!("socket setup panicked"))??;
        Ok(Loopback {
            sender,
            _receiver: receiver,
            payload,
        })
    }

    /// Sends at `rate` packets per second for `duration`; see [`flood`].
    pub fn flood(&self, rate: u64, duration: Duration) -> (u64, f64) {
        flood(&self.sender, &self.payload, rate, duration)
    }

    /// One packet with another payload (latency probes).
    pub fn send(&self, payload: &[u8]) -> std::io::Result<usize> {
        self.sender.send(payload)
    }
}

/// A client and a server on loopback in a namespace of the bench's own,
/// neither reading: the client sends queries for the watched name to
/// 127.0.0.1:53 and the server answers each (same id, inside the pinned
/// set). Every packet passes the egress and the ingress program; each
/// exchange is three DNS events of ordinary traffic (the query leaving,
/// the answer leaving and arriving, matched to its query; the kernel
/// passes over queries arriving at a server).
pub struct Exchange {
    client: UdpSocket,
    server: UdpSocket,
}

/// The client's port.
const CLIENT_PORT: u16 = 40601;
/// Queries in flight per round: the matching table holds 16 per socket.
const ROUND: usize = 16;
/// DNS events the daemon captures per packet sent (three per two packets).
pub const EXCHANGE_EVENTS_PER_PACKET: f64 = 1.5;

impl Exchange {
    pub fn new(netns: &super::lab::Netns) -> anyhow::Result<Exchange> {
        let (client, server) = netns
            .spawn(|| -> std::io::Result<(UdpSocket, UdpSocket)> {
                let server = UdpSocket::bind("127.0.0.1:53")?;
                let client = UdpSocket::bind(("127.0.0.1", CLIENT_PORT))?;
                client.connect("127.0.0.1:53")?;
                server.connect(("127.0.0.1", CLIENT_PORT))?;
                Ok((client, server))
            })?
            .join()
            .map_err(|_| anyhow::anyhow!("socket setup panicked"))??;
        Ok(Exchange { client, server })
    }

    /// Sends rounds of 16 queries and their 16 answers, new ids each round,
    /// at `rate` packets per second for `duration`. Returns the packets
    /// sent and the rate achieved.
    pub fn flood(&self, rate: u64, duration: Duration) -> (u64, f64) {
        let address: Ipv4Addr = [192, 0, 2, 10].into();
        let mut queries: Vec<Vec<u8>> = (0..ROUND).map(|_| query(0, HOST, 1)).collect();
        let mut answers: Vec<Vec<u8>> = (0..ROUND).map(|_| response(0, HOST, &[address])).collect();
        let start = Instant::now();
        let mut sent = 0u64;
        let mut round = 0u16;
        while start.elapsed() < duration {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            if sent + 2 * ROUND as u64 > due {
                std::thread::sleep(Duration::from_micros(500));
                continue;
            }
            for (k, (query, answer)) in queries.iter_mut().zip(answers.iter_mut()).enumerate() {
                let id = round.wrapping_mul(ROUND as u16).wrapping_add(k as u16);
                query[..2].copy_from_slice(&id.to_be_bytes());
                answer[..2].copy_from_slice(&id.to_be_bytes());
            }
            let sending_queries: Vec<&[u8]> = queries.iter().map(Vec::as_slice).collect();
            let sending_answers: Vec<&[u8]> = answers.iter().map(Vec::as_slice).collect();
            sent +=
                send_all(&self.client, &sending_queries) + send_all(&self.server, &sending_answers);
            round = round.wrapping_add(1);
        }
        (sent, sent as f64 / start.elapsed().as_secs_f64())
    }
}

/// One `sendmmsg` of every payload on a connected socket; returns how many
/// went out.
fn send_all(socket: &UdpSocket, payloads: &[&[u8]]) -> u64 {
    let mut iov: Vec<libc::iovec> = payloads
        .iter()
        .map(|payload| libc::iovec {
            iov_base: payload.as_ptr() as *mut _,
            iov_len: payload.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is plain data; zeroed is a valid empty header.
            let mut header = unsafe { std::mem::zeroed::<libc::mmsghdr>() };
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            header
        })
        .collect();
    // SAFETY: the headers point at iovecs and payloads that outlive the call.
    let n = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as u32,
            0,
        )
    };
    n.max(0) as u64
}
