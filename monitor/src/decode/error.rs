//! What can go wrong turning kernel bytes or captured packets into events.
use etherparse::err::{ip::LaxHeaderSliceError, packet::SliceError};
use thiserror::Error;

/// Why a ring-buffer record or a captured packet could not be decoded.
///
/// Every input, however hostile, ends in an event or one of these; decoding
/// never panics.
#[derive(Debug, Clone, Error)]
pub enum DecodeError {
    /// Fewer than four bytes: not even the record kind is there.
    #[error("kernel record of {len} bytes is too short to hold its kind (4 bytes)")]
    MissingKind { len: usize },

    #[error(
        "kernel record of kind {kind} is {len} bytes, shorter than the {expected} bytes of its struct"
    )]
    ShortRecord {
        kind: u32,
        len: usize,
        expected: usize,
    },

    /// Records are reserved at exactly their struct size, so extra bytes mean
    /// kernel and userspace disagree on the layout.
    #[error(
        "kernel record of kind {kind} is {len} bytes, longer than the {expected} bytes of its struct"
    )]
    LongRecord {
        kind: u32,
        len: usize,
        expected: usize,
    },

    /// DNS packet records are reserved at the header size plus one capture
    /// class; any other length means kernel and userspace disagree on the
    /// layout or the classes.
    #[error(
        "DNS packet record is {len} bytes, not one of the lengths of its size classes \
         ({expected:?} bytes)"
    )]
    DnsRecordLen {
        len: usize,
        expected: &'static [usize],
    },

    #[error("kernel record has unknown kind {0}")]
    UnknownKind(u32),

    #[error("connect record has unknown address family {0} (expected AF_INET 2 or AF_INET6 10)")]
    BadFamily(u32),

    #[error("connect record has unknown action {0} (expected 0 allowed or 1 blocked)")]
    BadAction(u32),

    #[error(
        "DNS owner record has unknown role {0} (expected 0 DNS, 1 DNS over TLS or 2 DNS over HTTPS)"
    )]
    BadOwnerRole(u32),

    #[error("DNS packet record has unknown flag bits {flags:#x}")]
    BadFlags { flags: u32 },

    #[error(
        "DNS packet record claims {captured_len} captured bytes of a {packet_len}-byte packet \
         (capture buffer holds {capacity})"
    )]
    BadCapturedLen {
        captured_len: u32,
        packet_len: u32,
        capacity: usize,
    },

    /// The IP header itself is malformed or missing.
    #[error("malformed IP header: {0}")]
    Ip(#[source] LaxHeaderSliceError),

    /// A header after the IP header (IPv6 extension, UDP, TCP) is malformed.
    #[error("malformed header after the IP header: {0}")]
    Headers(#[source] SliceError),

    /// Neither UDP nor TCP.
    #[error("IP protocol {protocol} is neither UDP (17) nor TCP (6)")]
    UnsupportedProtocol { protocol: u8 },

    #[error("neither port is 53 (source port {source_port}, destination port {destination_port})")]
    NotDns {
        source_port: u16,
        destination_port: u16,
    },

    /// An IP fragment: its DNS bytes make sense only after reassembly.
    /// `offset` is in bytes; the first fragment has offset 0 and
    /// `more_fragments` set.
    #[error(
        "IP fragment at byte offset {offset} (more fragments: {more_fragments}); not reassembled"
    )]
    Fragment { offset: u32, more_fragments: bool },

    /// The capture stopped before the data did, and the bytes present do not
    /// decode.
    #[error("capture truncated inside the {layer}: {detail}")]
    Truncated { layer: &'static str, detail: String },

    /// The DNS message does not parse.
    #[error("malformed DNS message over {transport}: {detail}")]
    Dns {
        transport: &'static str,
        detail: String,
    },
}
