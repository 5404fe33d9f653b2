//! Builders for the DNS messages and IP packets the decode tests feed in.
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    str::FromStr,
    time::{Duration, SystemTime},
};

use etherparse::PacketBuilder;
use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA},
    },
};

use super::PacketMeta;
use crate::event::Direction;

pub const T0: Duration = Duration::from_secs(1_700_000_000);

/// The response of issue 10 (50 bytes of DNS; the issue says 51) that switched pinwatch off: question
/// `x.example A IN`, and in the answer section an OPT record (type 41) with
/// 12 bytes of RDATA, whose hickory `Display` always fails.
pub const OPT_ANSWER: [u8; 50] = [
    0x33, 0x33, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, // header: 1 question, 1 answer
    1, b'x', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1, // x.example A IN
    0, 0x00, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0x00, 0x0c, // root OPT 1232, TTL 0, 12 bytes
    0x00, 0x0a, 0x00, 0x08, b'A', b'B', b'C', b'D', b'E', b'F', b'G', b'H', // COOKIE
];

pub fn meta(direction: Direction, truncated: bool) -> PacketMeta {
    PacketMeta {
        timestamp: SystemTime::UNIX_EPOCH + T0,
        direction,
        cgroup_id: 42,
        truncated,
    }
}

pub fn query_for(id: u16, name: &str, record_type: RecordType) -> Message {
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_str(name).unwrap(), record_type));
    message
}

pub fn query(id: u16, name: &str) -> Message {
    query_for(id, name, RecordType::A)
}

pub fn a_response(id: u16, name: &str, addresses: &[[u8; 4]]) -> Message {
    let mut message = query(id, name);
    message.set_message_type(MessageType::Response);
    for &a in addresses {
        let rdata = RData::A(A(Ipv4Addr::from(a)));
        message.add_answer(Record::from_rdata(
            Name::from_str(name).unwrap(),
            300,
            rdata,
        ));
    }
    message
}

pub fn aaaa_response(id: u16, name: &str, addresses: &[Ipv6Addr]) -> Message {
    let mut message = query_for(id, name, RecordType::AAAA);
    message.set_message_type(MessageType::Response);
    for &a in addresses {
        let rdata = RData::AAAA(AAAA(a));
        message.add_answer(Record::from_rdata(Name::from_str(name).unwrap(), 60, rdata));
    }
    message
}

pub fn udp4(src: [u8; 4], dst: [u8; 4], ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ipv4(src, dst, 64).udp(ports.0, ports.1);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).unwrap();
    out
}

pub fn udp6(src: Ipv6Addr, dst: Ipv6Addr, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ipv6(src.octets(), dst.octets(), 64).udp(ports.0, ports.1);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).unwrap();
    out
}

pub fn tcp4(src: [u8; 4], dst: [u8; 4], ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ipv4(src, dst, 64)
        .tcp(ports.0, ports.1, 1000, 65535)
        .psh()
        .ack(1);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).unwrap();
    out
}

/// DNS-over-TCP framing: each message behind its 2-byte length.
pub fn framed(messages: &[&Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        let bytes = m.to_vec().unwrap();
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}
