//! Ring-buffer records (the `pinwatch_common` structs) to typed records.
//!
//! The kernel writes `#[repr(C)]` structs; aya hands us their bytes with no
//! alignment promise. We check the length for the kind, copy the struct (or,
//! for DNS packets, the fixed header) out with `read_unaligned`, and convert
//! every integer that stands for a choice (kind, family, flags) through an
//! explicit match.
//!
//! A DNS packet record is a [`RawDnsHeader`] followed by a data area of one of
//! the [`DNS_CAPTURE_CLASSES`] sizes; the record's length names its class.
use std::{
    mem::size_of,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    ptr,
    time::SystemTime,
};

use pinwatch_common::{
    CONNECT_ACTION_ALLOWED, CONNECT_ACTION_BLOCKED, ConnectEvent as RawConnect, DB_SEGMENT_BYTES,
    DNS_CAPTURE_CLASSES, DNS_FLAG_EGRESS, DNS_FLAG_ETHERNET, DNS_FLAG_HEAD, DNS_FLAG_INTERFACE,
    DNS_FLAG_TRUNCATED, DnsOwnerEvent as RawDnsOwner, DnsPacketHeader as RawDnsHeader,
    DnsSentEvent as RawDnsSent, ETHERNET_HEADER_LEN, EVENT_KIND_CONNECT, EVENT_KIND_DB_SEGMENT,
    EVENT_KIND_DNS_OWNER, EVENT_KIND_DNS_PACKET, EVENT_KIND_DNS_SENT, OWNER_ROLE_DNS,
    OWNER_ROLE_DOH, OWNER_ROLE_DOT,
};

use super::{Clock, DecodeError, PacketMeta};
use crate::event::{
    ConnectAction, ConnectEvent, Direction, DnsOwnerEvent, DnsSentEvent, Hook, OwnerRole, Process,
};

/// One decoded ring-buffer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Dns(DnsPacket),
    Connect(ConnectEvent),
    /// The opening of a connection to a watched port; same shape as a DNS
    /// packet record (`decode::db_segment_event` reads its payload).
    DbSegment(DnsPacket),
    /// The process behind a DNS socket.
    DnsOwner(DnsOwnerEvent),
    /// A local server's response leaving, summarized.
    DnsSent(DnsSentEvent),
}

/// A captured IP packet carrying DNS, before the DNS payload is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPacket {
    pub timestamp: SystemTime,
    pub direction: Direction,
    pub cgroup_id: u64,
    /// The kernel copied only the first `ip_packet.len()` bytes.
    pub truncated: bool,
    /// The socket the packet belonged to (`bpf_get_socket_cookie`); the key
    /// TCP reassembly will need.
    pub socket_cookie: u64,
    /// Captured bytes from the IP header on.
    pub ip_packet: Vec<u8>,
    /// The cgroup hooks (a socket's packet) or tc ingress (an interface's).
    pub seen_at: Hook,
}

impl DnsPacket {
    pub fn borrowed(&self) -> DnsPacketRef<'_> {
        DnsPacketRef {
            timestamp: self.timestamp,
            direction: self.direction,
            cgroup_id: self.cgroup_id,
            truncated: self.truncated,
            socket_cookie: self.socket_cookie,
            ip_packet: &self.ip_packet,
            seen_at: self.seen_at,
        }
    }

    pub fn meta(&self) -> PacketMeta {
        self.borrowed().meta()
    }
}

/// Decodes one ring-buffer record (bytes as aya's RingBuf hands them; not
/// necessarily aligned) into a typed record.
pub fn decode_record(bytes: &[u8], clock: &Clock) -> Result<Record, DecodeError> {
    let kind_bytes = bytes
        .first_chunk::<4>()
        .ok_or(DecodeError::MissingKind { len: bytes.len() })?;
    match RecordKind::try_from(u32::from_ne_bytes(*kind_bytes))? {
        RecordKind::DnsPacket => {
            dns_packet(bytes, clock, &DNS_CAPTURE_CLASSES, &DNS_RECORD_LENS).map(Record::Dns)
        }
        RecordKind::DbSegment => {
            dns_packet(bytes, clock, &[DB_SEGMENT_BYTES], &DB_RECORD_LENS).map(Record::DbSegment)
        }
        RecordKind::Connect => connect(&read_record(bytes)?, clock).map(Record::Connect),
        RecordKind::DnsOwner => dns_owner(&read_record(bytes)?, clock).map(Record::DnsOwner),
        RecordKind::DnsSent => dns_sent(&read_record(bytes)?, clock).map(Record::DnsSent),
    }
}

enum RecordKind {
    DnsPacket,
    DbSegment,
    Connect,
    DnsOwner,
    DnsSent,
}

impl TryFrom<u32> for RecordKind {
    type Error = DecodeError;
    fn try_from(kind: u32) -> Result<Self, DecodeError> {
        match kind {
            EVENT_KIND_DNS_PACKET => Ok(RecordKind::DnsPacket),
            EVENT_KIND_DB_SEGMENT => Ok(RecordKind::DbSegment),
            EVENT_KIND_CONNECT => Ok(RecordKind::Connect),
            EVENT_KIND_DNS_OWNER => Ok(RecordKind::DnsOwner),
            EVENT_KIND_DNS_SENT => Ok(RecordKind::DnsSent),
            other => Err(DecodeError::UnknownKind(other)),
        }
    }
}

/// A boundary struct that may be copied out of arbitrary bytes.
///
/// # Safety
/// Implementors are `#[repr(C)]` and made only of integers and integer
/// arrays with no implicit padding, so every bit pattern is a valid value.
unsafe trait Plain: Copy {}

// SAFETY: a repr(C) struct of u32/u64/u16 and u8 arrays with explicit
// padding (see the size assertions in pinwatch_common).
unsafe impl Plain for RawDnsHeader {}
// SAFETY: as RawDnsHeader: repr(C), integers and byte arrays, explicit
// padding.
unsafe impl Plain for RawConnect {}
// SAFETY: repr(C), integers and byte arrays, explicit padding.
unsafe impl Plain for RawDnsOwner {}
// SAFETY: repr(C), integers and byte arrays, explicit padding (56 bytes,
// asserted in pinwatch_common).
unsafe impl Plain for RawDnsSent {}

/// A fixed-size record: exactly one struct.
trait KernelRecord: Plain {
    const KIND: u32;
}

impl KernelRecord for RawConnect {
    const KIND: u32 = EVENT_KIND_CONNECT;
}

impl KernelRecord for RawDnsOwner {
    const KIND: u32 = EVENT_KIND_DNS_OWNER;
}

impl KernelRecord for RawDnsSent {
    const KIND: u32 = EVENT_KIND_DNS_SENT;
}

/// Copies a `T` out of the first `size_of::<T>()` bytes of `bytes`.
fn read_prefix<T: Plain>(bytes: &[u8]) -> Option<T> {
    let prefix = bytes.get(..size_of::<T>())?;
    // SAFETY: `prefix` holds exactly size_of::<T>() bytes, any bit pattern is
    // a valid T (Plain), and read_unaligned needs no alignment.
    Some(unsafe { ptr::read_unaligned(prefix.as_ptr().cast::<T>()) })
}

fn read_record<T: KernelRecord>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (kind, len, expected) = (T::KIND, bytes.len(), size_of::<T>());
    if len < expected {
        return Err(DecodeError::ShortRecord {
            kind,
            len,
            expected,
        });
    }
    if len > expected {
        return Err(DecodeError::LongRecord {
            kind,
            len,
            expected,
        });
    }
    read_prefix(bytes).ok_or(DecodeError::ShortRecord {
        kind,
        len,
        expected,
    })
}

/// Lengths of the DNS packet records the kernel may reserve: the header plus
/// each capture class.
const DNS_RECORD_LENS: [usize; DNS_CAPTURE_CLASSES.len()] = {
    let mut lens = DNS_CAPTURE_CLASSES;
    let mut i = 0;
    while i < lens.len() {
        lens[i] += size_of::<RawDnsHeader>();
        i += 1;
    }
    lens
};

/// Length of a database segment record.
const DB_RECORD_LENS: [usize; 1] = [size_of::<RawDnsHeader>() + DB_SEGMENT_BYTES];

/// Splits a packet record into its header and its data area, whose length
/// must be one of `classes` (record lengths `record_lens`).
fn read_dns_record<'a>(
    bytes: &'a [u8],
    classes: &[usize],
    record_lens: &'static [usize],
) -> Result<(RawDnsHeader, &'a [u8]), DecodeError> {
    let bad_len = || DecodeError::DnsRecordLen {
        len: bytes.len(),
        expected: record_lens,
    };
    let (header, data) = bytes
        .split_at_checked(size_of::<RawDnsHeader>())
        .ok_or_else(bad_len)?;
    if !classes.contains(&data.len()) {
        return Err(bad_len());
    }
    let header = read_prefix::<RawDnsHeader>(header).ok_or_else(bad_len)?;
    Ok((header, data))
}

/// `DnsPacketHeader::flags`, checked.
struct DnsFlags {
    direction: Direction,
    truncated: bool,
    seen_at: Hook,
    ethernet: bool,
}

impl TryFrom<u32> for DnsFlags {
    type Error = DecodeError;
    fn try_from(flags: u32) -> Result<Self, DecodeError> {
        let known = DNS_FLAG_EGRESS
            | DNS_FLAG_TRUNCATED
            | DNS_FLAG_INTERFACE
            | DNS_FLAG_ETHERNET
            | DNS_FLAG_HEAD;
        if flags & !known != 0 {
            return Err(DecodeError::BadFlags { flags });
        }
        let direction = match flags & DNS_FLAG_EGRESS {
            0 => Direction::Ingress,
            _ => Direction::Egress,
        };
        Ok(DnsFlags {
            direction,
            // A head record is cut on purpose; the message's header is all
            // its reader needs (`message::Reading::Sent`).
            truncated: flags & (DNS_FLAG_TRUNCATED | DNS_FLAG_HEAD) != 0,
            seen_at: match flags & DNS_FLAG_INTERFACE {
                0 => Hook::Socket,
                _ => Hook::Interface,
            },
            ethernet: flags & DNS_FLAG_ETHERNET != 0,
        })
    }
}

/// A DNS packet record read in place: [`DnsPacket`] with the packet's bytes
/// borrowed from the record (the ring buffer's memory), not copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsPacketRef<'a> {
    pub timestamp: SystemTime,
    pub direction: Direction,
    pub cgroup_id: u64,
    pub truncated: bool,
    pub socket_cookie: u64,
    /// Captured bytes from the IP header on.
    pub ip_packet: &'a [u8],
    pub seen_at: Hook,
}

impl DnsPacketRef<'_> {
    pub fn meta(&self) -> PacketMeta {
        PacketMeta {
            timestamp: self.timestamp,
            direction: self.direction,
            cgroup_id: self.cgroup_id,
            truncated: self.truncated,
        }
    }

    pub fn to_owned(&self) -> DnsPacket {
        DnsPacket {
            timestamp: self.timestamp,
            direction: self.direction,
            cgroup_id: self.cgroup_id,
            truncated: self.truncated,
            socket_cookie: self.socket_cookie,
            ip_packet: self.ip_packet.to_vec(),
            seen_at: self.seen_at,
        }
    }
}

/// Reads a DNS packet record in place; `None` when `bytes` is a record of
/// another kind (decode it with [`decode_record`]).
pub fn dns_packet_ref<'a>(
    bytes: &'a [u8],
    clock: &Clock,
) -> Option<Result<DnsPacketRef<'a>, DecodeError>> {
    let kind = u32::from_ne_bytes(*bytes.first_chunk::<4>()?);
    (kind == EVENT_KIND_DNS_PACKET)
        .then(|| dns_packet_in(bytes, clock, &DNS_CAPTURE_CLASSES, &DNS_RECORD_LENS))
}

fn dns_packet(
    bytes: &[u8],
    clock: &Clock,
    classes: &[usize],
    record_lens: &'static [usize],
) -> Result<DnsPacket, DecodeError> {
    dns_packet_in(bytes, clock, classes, record_lens).map(|packet| packet.to_owned())
}

fn dns_packet_in<'a>(
    bytes: &'a [u8],
    clock: &Clock,
    classes: &[usize],
    record_lens: &'static [usize],
) -> Result<DnsPacketRef<'a>, DecodeError> {
    let (raw, data) = read_dns_record(bytes, classes, record_lens)?;
    let flags = DnsFlags::try_from(raw.flags)?;
    let captured = raw.captured_len as usize;
    if captured > data.len() || raw.captured_len > raw.packet_len {
        return Err(DecodeError::BadCapturedLen {
            captured_len: raw.captured_len,
            packet_len: raw.packet_len,
            capacity: data.len(),
        });
    }
    Ok(DnsPacketRef {
        timestamp: clock.to_system_time(raw.timestamp_ns),
        direction: flags.direction,
        cgroup_id: raw.cgroup_id,
        // The flag and the lengths should agree; if not, believe whichever
        // says bytes are missing.
        truncated: flags.truncated || raw.captured_len < raw.packet_len,
        socket_cookie: raw.socket_cookie,
        // tc records start at the Ethernet header; the IP packet follows.
        ip_packet: data[..captured]
            .get(
                if flags.ethernet {
                    ETHERNET_HEADER_LEN
                } else {
                    0
                }..,
            )
            .unwrap_or_default(),
        seen_at: flags.seen_at,
    })
}

enum Family {
    Inet,
    Inet6,
}

impl TryFrom<u32> for Family {
    type Error = DecodeError;
    fn try_from(family: u32) -> Result<Self, DecodeError> {
        match family {
            2 => Ok(Family::Inet),
            10 => Ok(Family::Inet6),
            other => Err(DecodeError::BadFamily(other)),
        }
    }
}

impl TryFrom<u32> for ConnectAction {
    type Error = DecodeError;
    fn try_from(action: u32) -> Result<Self, DecodeError> {
        match action {
            CONNECT_ACTION_ALLOWED => Ok(ConnectAction::Allowed),
            CONNECT_ACTION_BLOCKED => Ok(ConnectAction::Blocked),
            other => Err(DecodeError::BadAction(other)),
        }
    }
}

fn connect(raw: &RawConnect, clock: &Clock) -> Result<ConnectEvent, DecodeError> {
    let action = ConnectAction::try_from(raw.action)?;
    let ip = address(raw.family, raw.daddr)?;
    Ok(ConnectEvent {
        timestamp: clock.to_system_time(raw.timestamp_ns),
        process: process(raw.pid_tgid, raw.uid_gid, &raw.comm, raw.cgroup_id),
        destination: SocketAddr::new(ip, raw.dport),
        action,
        socket_cookie: raw.socket_cookie,
    })
}

fn address(family: u32, daddr: [u8; 16]) -> Result<IpAddr, DecodeError> {
    Ok(match Family::try_from(family)? {
        Family::Inet => {
            let [a, b, c, d, ..] = daddr;
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
        // An IPv4-mapped address stays as given; the detector canonicalizes.
        Family::Inet6 => IpAddr::V6(Ipv6Addr::from(daddr)),
    })
}

fn process(pid_tgid: u64, uid_gid: u64, comm: &[u8; 16], cgroup_id: u64) -> Process {
    let comm_len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    Process {
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        name: String::from_utf8_lossy(&comm[..comm_len]).into_owned(),
        cgroup_id,
    }
}

impl TryFrom<u32> for OwnerRole {
    type Error = DecodeError;
    fn try_from(role: u32) -> Result<Self, DecodeError> {
        match role {
            OWNER_ROLE_DNS => Ok(OwnerRole::Dns),
            OWNER_ROLE_DOT => Ok(OwnerRole::DnsOverTls),
            OWNER_ROLE_DOH => Ok(OwnerRole::DnsOverHttps),
            other => Err(DecodeError::BadOwnerRole(other)),
        }
    }
}

/// An owner record as the kernel's `DNS_OWNERS` map keeps it (the same
/// layout as the ring-buffer record).
pub fn dns_owner(raw: &RawDnsOwner, clock: &Clock) -> Result<DnsOwnerEvent, DecodeError> {
    let role = OwnerRole::try_from(raw.role)?;
    let ip = address(raw.family, raw.daddr)?;
    Ok(DnsOwnerEvent {
        timestamp: clock.to_system_time(raw.timestamp_ns),
        socket_cookie: raw.socket_cookie,
        process: process(raw.pid_tgid, raw.uid_gid, &raw.comm, raw.cgroup_id),
        role,
        destination: SocketAddr::new(ip, raw.dport),
        resolv_conf: None,
    })
}

pub fn dns_sent(raw: &RawDnsSent, clock: &Clock) -> Result<DnsSentEvent, DecodeError> {
    Ok(DnsSentEvent {
        timestamp: clock.to_system_time(raw.timestamp_ns),
        source: SocketAddr::new(address(raw.family, raw.saddr)?, raw.sport),
        destination: SocketAddr::new(address(raw.family, raw.daddr)?, raw.dport),
        id: raw.id,
    })
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
