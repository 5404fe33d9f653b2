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
pub const EVENT_KIND_DB_SEGMENT: u32 = 3;
pub const EVENT_KIND_DNS_OWNER: u32 = 4;
pub const EVENT_KIND_DNS_SENT: u32 = 5;

/// Packet bytes copied per DNS packet at most, counted from the IP header:
/// the largest of [`DNS_CAPTURE_CLASSES`]. Enough for a 1232-byte DNS message
/// (the EDNS size recommended since DNS Flag Day 2020) behind the largest IPv4
/// header (60 bytes) and TCP header with options (60 bytes) plus TCP's 2-byte
/// length prefix: 1354 bytes, rounded up to a multiple of 8. Longer packets
/// arrive truncated and flagged.
pub const DNS_CAPTURE_BYTES: usize = 1360;

/// Data-area sizes of DNS packet records, smallest first.
///
/// `bpf_ringbuf_reserve` takes only a constant size, so the kernel reserves
/// the smallest class that holds the packet (or the largest, cut) rather than
/// `DNS_CAPTURE_BYTES` for every packet. A typical query or response (under
/// 200 bytes of packet) then takes a 304-byte ring slot instead of 1408, and
/// the ring holds 4.6 times as many of them before it overflows. The middle
/// class holds a 512-byte message (the classic UDP limit) behind the same
/// worst-case headers as `DNS_CAPTURE_BYTES` (634 bytes). A smaller smallest
/// class (128, 192) measured no cheaper in the kernel.
pub const DNS_CAPTURE_CLASSES: [usize; 3] = [256, 640, DNS_CAPTURE_BYTES];

/// `DnsPacketHeader::flags` bits.
pub const DNS_FLAG_EGRESS: u32 = 1 << 0;
pub const DNS_FLAG_TRUNCATED: u32 = 1 << 1;
/// Seen by the tc ingress program on a host interface, before IP
/// reassembly and socket lookup; without it, seen on a socket (cgroup_skb).
pub const DNS_FLAG_INTERFACE: u32 = 1 << 2;
/// The record's data starts with a 14-byte Ethernet header (tc records);
/// the IP packet follows it.
pub const DNS_FLAG_ETHERNET: u32 = 1 << 3;
/// Only the IP, UDP and DNS headers were copied, on purpose: a UDP response
/// leaving a socket on this host, whose records the detector does not read
/// there (it judges the response where it is delivered). The programs now
/// write a [`DnsSentEvent`] instead; the daemon still reads these records,
/// which a ring adopted from an earlier version may hold.
pub const DNS_FLAG_HEAD: u32 = 1 << 4;
/// Ethernet header length in records flagged [`DNS_FLAG_ETHERNET`].
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Key of the map of fragmented UDP datagrams whose first fragment came
/// from port 53, so their later fragments (which carry no ports) are
/// captured too. IPv4 uses the first four bytes of each address and the
/// 16-bit identification.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FragmentKey {
    pub source: [u8; 16],
    pub destination: [u8; 16],
    pub id: u32,
    /// 4 or 6.
    pub version: u32,
}

/// Fragmented DNS datagrams followed at once by the tc program.
pub const FRAGMENT_MAX_ENTRIES: u32 = 4096;

/// Indices into the per-CPU `EVENTS_LOST` array: ring-buffer reservations
/// that failed, per record kind.
pub const LOSS_DNS_PACKET: u32 = 0;
pub const LOSS_CONNECT: u32 = 1;
pub const LOSS_DB_SEGMENT: u32 = 2;
pub const LOSS_DNS_OWNER: u32 = 3;
pub const LOSS_SLOTS: u32 = 4;

/// Indices into the `DAEMON` array, the daemon's side of the kernel state
/// that outlives it (maps pinned in bpffs): its heartbeat, which the connect
/// hooks read to fail open once no daemon runs, what it chose for that
/// case, and the losses it already reported (so a daemon that adopts the
/// maps reports only those of the gap).
pub const DAEMON_HEARTBEAT_NS: u32 = 0;
pub const DAEMON_FLAGS: u32 = 1;
/// `DAEMON_LOSS_REPORTED + LOSS_*`: the `EVENTS_LOST` sum last reported.
pub const DAEMON_LOSS_REPORTED: u32 = 2;
pub const DAEMON_SLOTS: u32 = DAEMON_LOSS_REPORTED + LOSS_SLOTS;
/// `DAEMON_FLAGS` bit: enforcement stays in force when no daemon runs
/// (`[kernel] on_crash = "keep-enforcing"`).
pub const DAEMON_FLAG_KEEP_ENFORCING: u64 = 1 << 0;
/// How long after the last heartbeat the connect hooks still refuse when
/// the daemon chose to fail open; it beats every second.
pub const DAEMON_HEARTBEAT_GRACE_NS: u64 = 5_000_000_000;

/// The well-known DNS port; the kernel filter captures UDP and TCP packets
/// from or to it.
pub const DNS_PORT: u16 = 53;

/// Fixed part of a DNS packet record: one IP packet to or from port 53, as
/// the cgroup_skb hooks saw it. Naturally aligned fields, no padding.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsPacketHeader {
    pub kind: u32,
    pub flags: u32,
    /// CLOCK_MONOTONIC nanoseconds at tick resolution
    /// (`bpf_ktime_get_coarse_ns`, the same clock base).
    pub timestamp_ns: u64,
    /// cgroup v2 id of the socket's cgroup.
    pub cgroup_id: u64,
    pub socket_cookie: u64,
    /// Length of the whole packet from the IP header on.
    pub packet_len: u32,
    /// Bytes of `data` that hold packet bytes; at most `N`.
    pub captured_len: u32,
}

/// A DNS packet record whose data area holds `N` bytes, `N` one of
/// [`DNS_CAPTURE_CLASSES`]. The record is `size_of::<DnsPacketHeader>() + N`
/// bytes long, so its length tells the reader its class.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsPacketEvent<const N: usize> {
    pub header: DnsPacketHeader,
    pub data: [u8; N],
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
    pub _pad: [u8; 2],
    /// `CONNECT_ACTION_*`: what the hook answered the connect.
    pub action: u32,
    /// `comm` of the calling thread, NUL-padded.
    pub comm: [u8; 16],
    /// `bpf_get_socket_cookie` of the connecting socket: ties the connection's
    /// first bytes ([`DbSegmentEvent`]) to this process.
    pub socket_cookie: u64,
}

/// Packet bytes copied per database-connection segment, from the IP header
/// on: the headers (at most 120 bytes) and the start of the payload, which
/// holds a PostgreSQL-wire SSLRequest or StartupMessage with its user and
/// database names.
pub const DB_SEGMENT_BYTES: usize = 256;

/// One of the first TCP segments with payload of a connection to a watched
/// port, seen on the client's socket: the first two the client sends and the
/// first the server answers. The header is the DNS packet header, `kind`
/// [`EVENT_KIND_DB_SEGMENT`], flags `DNS_FLAG_EGRESS` for client → server.
pub type DbSegmentEvent = DnsPacketEvent<DB_SEGMENT_BYTES>;

/// Per-connection count of captured segments (LRU map keyed by socket
/// cookie), so only the opening of a connection is copied.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DbFlow {
    pub client_segments: u32,
    pub server_segments: u32,
}

/// Segments captured per connection and direction.
pub const DB_CLIENT_SEGMENTS: u32 = 2;
pub const DB_SERVER_SEGMENTS: u32 = 1;

/// `ConnectEvent::action`: the hook let the connect proceed.
pub const CONNECT_ACTION_ALLOWED: u32 = 0;
/// `ConnectEvent::action`: the hook refused the connect (connect(2) fails
/// with EPERM).
pub const CONNECT_ACTION_BLOCKED: u32 = 1;

/// Watched-port map value.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PortPolicy {
    /// `PORT_FLAG_*` bits.
    pub flags: u32,
}

/// `PortPolicy::flags`: some database on this port has `mode = "block"`, so
/// a connect whose address is in no `PINNED_V4`/`PINNED_V6` entry for the
/// port is refused.
pub const PORT_FLAG_ENFORCE: u32 = 1 << 0;

/// Bits of the port in front of the address in the pinned-set trie keys.
pub const PIN_KEY_PORT_BITS: u32 = 16;

/// Data of an IPv4 pinned-set LPM trie key: the port, then the address, both
/// in network byte order, so one trie holds every enforced port and a
/// prefix of `PIN_KEY_PORT_BITS + n` matches that port and an address /n.
/// Byte arrays: no alignment, no implicit padding, no byte-order surprise.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct PinKeyV4 {
    pub port: [u8; 2],
    pub addr: [u8; 4],
}

/// [`PinKeyV4`] for IPv6 addresses.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct PinKeyV6 {
    pub port: [u8; 2],
    pub addr: [u8; 16],
}

/// Value of the pinned-set tries; its presence is what counts.
pub const PIN_PRESENT: u32 = 1;
/// Entries per pinned-set trie: pinned CIDRs times ports, over the
/// databases on enforced ports.
pub const PIN_MAX_ENTRIES: u32 = 16384;
/// Entries of `WATCHED_PORTS`: distinct ports over all databases.
pub const WATCHED_PORTS_MAX_ENTRIES: u32 = 1024;

/// `DnsOwnerEvent::role`: a socket sending plain DNS (UDP or TCP to port 53).
pub const OWNER_ROLE_DNS: u32 = 0;
/// `DnsOwnerEvent::role`: a TCP connect to port 853 (DNS over TLS).
pub const OWNER_ROLE_DOT: u32 = 1;
/// `DnsOwnerEvent::role`: a TCP connect to port 443 of a well-known DNS over
/// HTTPS resolver address.
pub const OWNER_ROLE_DOH: u32 = 2;

/// Which process owns a socket that talks DNS: from the cgroup sendmsg and
/// connect hooks, once per socket (an LRU map keeps the record by cookie,
/// and the daemon reads it back when it needs it again), so the
/// detector can name the process behind the cgroup_skb packets, which carry
/// only the socket cookie.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsOwnerEvent {
    pub kind: u32,
    /// `OWNER_ROLE_*`.
    pub role: u32,
    pub timestamp_ns: u64,
    pub pid_tgid: u64,
    pub uid_gid: u64,
    pub cgroup_id: u64,
    pub socket_cookie: u64,
    /// Destination address in network byte order; IPv4 in the first four bytes.
    pub daddr: [u8; 16],
    /// Destination port in host byte order.
    pub dport: u16,
    pub _pad: [u8; 2],
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u32,
    /// `comm` of the calling thread, NUL-padded.
    pub comm: [u8; 16],
}

/// A UDP DNS response leaving a socket on this host (a local server's
/// answer), [`EVENT_KIND_DNS_SENT`]: the stub path needs only when it left,
/// its addresses and its id, and the response is judged whole where it is
/// delivered. Read from the packet in place, with no helper but the clock.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsSentEvent {
    pub kind: u32,
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u32,
    /// As [`DnsPacketHeader::timestamp_ns`].
    pub timestamp_ns: u64,
    /// Addresses in network byte order; IPv4 in the first four bytes.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Ports and the DNS message id, in host byte order.
    pub sport: u16,
    pub dport: u16,
    pub id: u16,
    pub _pad: [u8; 2],
}

/// Sockets remembered, with their owner record, in the owner LRU map.
pub const DNS_OWNER_MAX_ENTRIES: u32 = 16_384;

const _: () = assert!(core::mem::size_of::<DnsOwnerEvent>() == 88);
const _: () = assert!(core::mem::size_of::<DnsPacketHeader>() == 40);
const _: () = assert!(core::mem::size_of::<DnsSentEvent>() == 56);
const _: () = assert!(core::mem::size_of::<ConnectEvent>() == 88);
const _: () = assert!(core::mem::size_of::<DbSegmentEvent>() == 40 + DB_SEGMENT_BYTES);
const _: () = assert!(core::mem::size_of::<DbFlow>() == 8);
const _: () = assert!(core::mem::size_of::<FragmentKey>() == 40);
const _: () = assert!(core::mem::size_of::<PortPolicy>() == 4);
const _: () = assert!(core::mem::offset_of!(ConnectEvent, action) == 60);
const _: () = assert!(core::mem::size_of::<PinKeyV4>() == 6);
const _: () = assert!(core::mem::size_of::<PinKeyV6>() == 18);

// 1232-byte DNS message + 60-byte IPv4 header + 60-byte TCP header + 2-byte
// TCP length prefix.
const _: () = assert!(DNS_CAPTURE_BYTES >= 1232 + 60 + 60 + 2);
// Classes ascend, end at DNS_CAPTURE_BYTES, and keep records a multiple of 8
// (the ring buffer's alignment) with no tail padding.
const _: () = {
    let mut i = 0;
    while i < DNS_CAPTURE_CLASSES.len() {
        assert!(DNS_CAPTURE_CLASSES[i].is_multiple_of(8));
        assert!(i == 0 || DNS_CAPTURE_CLASSES[i - 1] < DNS_CAPTURE_CLASSES[i]);
        i += 1;
    }
    assert!(DNS_CAPTURE_CLASSES[DNS_CAPTURE_CLASSES.len() - 1] == DNS_CAPTURE_BYTES);
};
const _: () = assert!(
    core::mem::size_of::<DnsPacketEvent<{ DNS_CAPTURE_CLASSES[0] }>>()
        == 40 + DNS_CAPTURE_CLASSES[0]
);
const _: () = assert!(
    core::mem::size_of::<DnsPacketEvent<{ DNS_CAPTURE_CLASSES[1] }>>()
        == 40 + DNS_CAPTURE_CLASSES[1]
);
const _: () = assert!(
    core::mem::size_of::<DnsPacketEvent<{ DNS_CAPTURE_CLASSES[2] }>>()
        == 40 + DNS_CAPTURE_CLASSES[2]
);
const _: () = assert!(core::mem::offset_of!(DnsPacketEvent<{ DNS_CAPTURE_BYTES }>, data) == 40);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain-old-data: repr(C), no padding holes left implicit, every
    // bit pattern valid.
    unsafe impl aya::Pod for super::PortPolicy {}
    // SAFETY: as above: byte arrays only.
    unsafe impl aya::Pod for super::PinKeyV4 {}
    // SAFETY: as above: byte arrays only.
    unsafe impl aya::Pod for super::PinKeyV6 {}
    // SAFETY: as above: integers and byte arrays, padding explicit (88
    // bytes, asserted above); read back from the owner map.
    unsafe impl aya::Pod for super::DnsOwnerEvent {}
}
