//! Types that cross the kernel/userspace boundary.
//!
//! Every record is `#[repr(C)]`, `Copy`, fixed-size and padded explicitly, so
//! the layout the eBPF programs write is the layout userspace reads. Kinds and
//! flags travel as integers; userspace converts them with `TryFrom` and never
//! transmutes kernel bytes into enums or bools.
#![no_std]

/// Record kinds: the first `u32` of every ring-buffer record.
pub const EVENT_KIND_DNS_PACKET: u32 = 1;
pub const EVENT_KIND_CONNECT: u32 = 2;

/// Packet bytes copied per DNS packet, counted from the IP header. Enough for
/// a 1232-byte DNS message (the EDNS size recommended since DNS Flag Day 2020)
/// behind the largest IPv4 header and TCP header with options; longer packets
/// arrive truncated and flagged.
pub const DNS_CAPTURE_BYTES: usize = 1360;

/// `DnsPacketEvent::flags` bits.
pub const DNS_FLAG_EGRESS: u32 = 1 << 0;
pub const DNS_FLAG_TRUNCATED: u32 = 1 << 1;

/// Indices into the per-CPU `EVENTS_LOST` array: ring-buffer reservations
/// that failed, per record kind.
pub const LOSS_DNS_PACKET: u32 = 0;
pub const LOSS_CONNECT: u32 = 1;
pub const LOSS_SLOTS: u32 = 2;

/// The well-known DNS port; the kernel filter captures UDP and TCP packets
/// from or to it.
pub const DNS_PORT: u16 = 53;

/// One IP packet to or from port 53, as the cgroup_skb hooks saw it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsPacketEvent {
    pub kind: u32,
    pub flags: u32,
    /// CLOCK_MONOTONIC nanoseconds (`bpf_ktime_get_ns`).
    pub timestamp_ns: u64,
    /// cgroup v2 id of the socket's cgroup.
    pub cgroup_id: u64,
    pub socket_cookie: u64,
    /// Length of the whole packet from the IP header on.
    pub packet_len: u32,
    /// Bytes of `data` that hold packet bytes.
    pub captured_len: u32,
    pub data: [u8; DNS_CAPTURE_BYTES],
}

/// A TCP connect(2) to a watched port, from the cgroup connect4/connect6 hooks.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ConnectEvent {
    pub kind: u32,
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u32,
    pub timestamp_ns: u64,
    /// `bpf_get_current_pid_tgid`: thread-group id (the pid) in the upper
    /// half, thread id in the lower.
    pub pid_tgid: u64,
    /// `bpf_get_current_uid_gid`: gid in the upper half, uid in the lower.
    pub uid_gid: u64,
    pub cgroup_id: u64,
    /// Destination address in network byte order; IPv4 uses the first four
    /// bytes. Read from the kernel's copy of the sockaddr, not user memory.
    pub daddr: [u8; 16],
    /// Destination port in host byte order.
    pub dport: u16,
    pub _pad: [u8; 6],
    /// `comm` of the calling thread, NUL-padded.
    pub comm: [u8; 16],
}

/// Watched-port map value; room for per-port policy later.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PortPolicy {
    pub flags: u32,
}

const _: () = assert!(core::mem::size_of::<DnsPacketEvent>() == 40 + DNS_CAPTURE_BYTES);
const _: () = assert!(core::mem::size_of::<ConnectEvent>() == 80);
const _: () = assert!(core::mem::size_of::<PortPolicy>() == 4);
const _: () = assert!(DNS_CAPTURE_BYTES % 8 == 0);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain-old-data: repr(C), no padding holes left implicit, every
    // bit pattern valid.
    unsafe impl aya::Pod for super::PortPolicy {}
}
