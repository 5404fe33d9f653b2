//! Kernel records and captured packets → typed events.
//!
//! Two steps, so the daemon and `pinwatch replay` share the second:
//! - [`decode_record`]: ring-buffer bytes → [`Record`] (a [`DnsPacket`] still
//!   holding raw IP bytes, or a finished connect event);
//! - [`dns_events`] / [`parse_ip_dns`]: IP packet → UDP/TCP → DNS messages.
//!
//! Split by layer: `record` (kernel structs), `packet` (IP/UDP/TCP),
//! `dns` (the DNS payload and its TCP framing), `message` (one DNS message
//! read as a stub resolver reads it), `pgwire` (the first message
//! of a PostgreSQL-wire connection).
mod clock;
mod dns;
mod error;
mod message;
mod packet;
pub mod pgwire;
mod record;
mod segment;

#[cfg(test)]
pub(crate) mod evasions;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
pub(crate) mod test_packets;

pub use clock::Clock;
// One DNS message from bytes, for `crate::reassembly`'s reassembled datagrams.
pub use dns::udp_message;
pub use error::DecodeError;
pub use message::{Parsed, read_message};
pub use packet::{DnsEvents, PacketMeta, dns_event, dns_events, parse_ip_dns};
pub use record::{DnsPacket, DnsPacketRef, Record, decode_record, dns_owner, dns_packet_ref};
pub use segment::db_segment_event;
