use std::net::Ipv6Addr;

use etherparse::{IpNumber, Ipv4Header, Ipv6Header, PacketBuilder, UdpHeader};

use super::*;
use crate::decode::test_packets::{a_response, aaaa_response, meta, query};
use crate::event::Direction;

const NAME: &str = "db.example.com.";
const RESOLVER: [u8; 4] = [192, 0, 2, 53];
const CLIENT: [u8; 4] = [198, 51, 100, 10];

fn tcp_segment(seq: u32, payload: &[u8], fin: bool) -> Vec<u8> {
    let mut builder = PacketBuilder::ipv4(RESOLVER, CLIENT, 64).tcp(53, 40000, seq, 64240);
    if fin {
        builder = builder.fin();
    }
    let mut bytes = Vec::new();
    builder.write(&mut bytes, payload).unwrap();
    bytes
}

fn tcp_syn(seq: u32, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ipv4(RESOLVER, CLIENT, 64)
        .tcp(53, 40000, seq, 64240)
        .syn();
    let mut bytes = Vec::new();
    builder.write(&mut bytes, payload).unwrap();
    bytes
}

fn framed(message: &hickory_proto::op::Message) -> Vec<u8> {
    let body = message.to_vec().unwrap();
    let mut bytes = (body.len() as u16).to_be_bytes().to_vec();
    bytes.extend(body);
    bytes
}

/// A DNS response over UDP as an IP payload (UDP header on).
fn udp_datagram(message: &hickory_proto::op::Message) -> Vec<u8> {
    let dns = message.to_vec().unwrap();
    let header = UdpHeader {
        source_port: 53,
        destination_port: 40000,
        length: (8 + dns.len()) as u16,
        checksum: 0,
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend(dns);
    bytes
}

fn ipv4_fragment(id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let mut header =
        Ipv4Header::new(data.len() as u16, 64, IpNumber::UDP, RESOLVER, CLIENT).unwrap();
    header.identification = id;
    header.more_fragments = more;
    header.fragment_offset = etherparse::IpFragOffset::try_new((offset / 8) as u16).unwrap();
    header.header_checksum = header.calc_header_checksum();
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(data);
    bytes
}

/// IPv6 with the given extension headers (already chained, the last one's
/// next header UDP) in front of `payload`.
fn ipv6_with(first_next: u8, extensions: &[u8], payload: &[u8]) -> Vec<u8> {
    let header = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: (extensions.len() + payload.len()) as u16,
        next_header: IpNumber(first_next),
        hop_limit: 64,
        source: "2001:db8::53".parse::<Ipv6Addr>().unwrap().octets(),
        destination: "2001:db8::10".parse::<Ipv6Addr>().unwrap().octets(),
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(extensions);
    bytes.extend_from_slice(payload);
    bytes
}

fn ingress() -> PacketMeta {
    meta(Direction::Ingress, false)
}

#[test]
fn tcp_message_split_after_its_length_prefix() {
    let mut assembler = Assembler::default();
    let bytes = framed(&a_response(7, NAME, &[[203, 0, 113, 9]]));
    let first = tcp_segment(1000, &bytes[..2], false);
    let second = tcp_segment(1002, &bytes[2..], false);
    let none = assembler.push(&first, ingress(), 9, Hook::Socket).unwrap();
    assert!(none.is_empty());
    let events = assembler.push(&second, ingress(), 9, Hook::Socket).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message.id(), 7);
    assert_eq!(events[0].transport, Transport::Tcp);
    assert_eq!(events[0].socket_cookie, 9);
    assert_eq!(events[0].source, "192.0.2.53:53".parse().unwrap());
}

#[test]
fn tcp_two_messages_in_one_segment_and_out_of_order() {
    let mut assembler = Assembler::default();
    let mut bytes = framed(&query(1, NAME));
    bytes.extend(framed(&a_response(2, NAME, &[[203, 0, 113, 9]])));
    let cut = 20;
    let late = tcp_segment(5000, &bytes[..cut], false);
    let early = tcp_segment(5000 + cut as u32, &bytes[cut..], true);
    assert!(
        assembler
            .push(&early, ingress(), 1, Hook::Socket)
            .unwrap()
            .is_empty()
    );
    let events = assembler.push(&late, ingress(), 1, Hook::Socket).unwrap();
    let ids: Vec<u16> = events.iter().map(|e| e.message.id()).collect();
    assert_eq!(ids, [1, 2]);
    // A retransmission after FIN starts a new flow that frames nothing.
    assert!(
        assembler
            .push(&early, ingress(), 1, Hook::Socket)
            .unwrap()
            .is_empty()
    );
}

/// What a capture holds: the SYN (its sequence number is the one before
/// the first data byte), then the data, then the FIN, with repeats.
#[test]
fn tcp_messages_after_a_bare_syn_are_framed_from_the_next_sequence_number() {
    let mut assembler = Assembler::default();
    let mut bytes = framed(&a_response(4, NAME, &[[203, 0, 113, 9]]));
    bytes.extend(framed(&a_response(5, NAME, &[[203, 0, 113, 9]])));
    let isn = u32::MAX; // and the first data byte's number wraps to 0
    let push = |assembler: &mut Assembler, packet: &[u8]| {
        let events = assembler.push(packet, ingress(), 0, Hook::Socket).unwrap();
        events.iter().map(|e| e.message.id()).collect::<Vec<_>>()
    };
    assert!(push(&mut assembler, &tcp_syn(isn, &[])).is_empty());
    // A repeated SYN changes nothing.
    assert!(push(&mut assembler, &tcp_syn(isn, &[])).is_empty());
    let first = tcp_segment(isn.wrapping_add(1), &bytes[..10], false);
    assert!(push(&mut assembler, &first).is_empty());
    let second = tcp_segment(isn.wrapping_add(11), &bytes[10..], false);
    assert_eq!(push(&mut assembler, &second), [4, 5]);
    assert!(push(&mut assembler, &second).is_empty(), "retransmitted");
    let fin = tcp_segment(isn.wrapping_add(1 + bytes.len() as u32), &[], true);
    assert!(push(&mut assembler, &fin).is_empty());
    assert!(push(&mut assembler, &second).is_empty(), "after the FIN");
    assert_eq!(assembler.stats().tcp.messages, 2);
}

/// The daemon's path: the kernel copies only segments with payload, so the
/// one SYN it sees carries data (TCP Fast Open) — which starts after the
/// SYN's own sequence number.
#[test]
fn tcp_fast_open_data_in_the_syn_is_framed_with_what_follows() {
    let mut assembler = Assembler::default();
    let first = framed(&query(8, NAME));
    let second = framed(&query(9, NAME));
    let syn = tcp_syn(1000, &first);
    let events = assembler.push(&syn, ingress(), 3, Hook::Socket).unwrap();
    assert_eq!(events.len(), 1);
    let next = tcp_segment(1001 + first.len() as u32, &second, false);
    let events = assembler.push(&next, ingress(), 3, Hook::Socket).unwrap();
    let ids: Vec<u16> = events.iter().map(|e| e.message.id()).collect();
    assert_eq!(ids, [9]);
}

#[test]
fn tcp_segment_cut_by_the_capture_is_reported_not_parsed() {
    let mut assembler = Assembler::default();
    let bytes = framed(&a_response(3, NAME, &[[203, 0, 113, 9]]));
    let packet = tcp_segment(1, &bytes, false);
    let cut = &packet[..packet.len() - 5];
    let error = assembler
        .push(cut, meta(Direction::Ingress, true), 1, Hook::Socket)
        .unwrap_err();
    assert!(matches!(error, DecodeError::Truncated { .. }), "{error}");
    assert_eq!(assembler.stats().tcp.messages_cut, 1);
}

#[test]
fn udp_passes_straight_through() {
    let mut assembler = Assembler::default();
    let message = a_response(4, NAME, &[[203, 0, 113, 9]]);
    let packet = ipv4_fragment(1, 0, false, &udp_datagram(&message));
    let events = assembler
        .push(&packet, ingress(), 0, Hook::Interface)
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(!events[0].fragmented);
    assert_eq!(events[0].seen_at, Hook::Interface);
}

#[test]
fn ipv4_fragments_are_reassembled_into_one_fragmented_event() {
    let mut assembler = Assembler::default();
    let addresses: Vec<[u8; 4]> = (1..=60).map(|i| [203, 0, 113, i]).collect();
    let datagram = udp_datagram(&a_response(5, NAME, &addresses));
    assert!(datagram.len() > 800);
    let first = ipv4_fragment(77, 0, true, &datagram[..400]);
    let second = ipv4_fragment(77, 400, true, &datagram[400..800]);
    let last = ipv4_fragment(77, 800, false, &datagram[800..]);
    for packet in [&last, &first] {
        assert!(
            assembler
                .push(packet, ingress(), 0, Hook::Interface)
                .unwrap()
                .is_empty()
        );
    }
    let events = assembler
        .push(&second, ingress(), 0, Hook::Interface)
        .unwrap();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert!(event.fragmented && !event.truncated);
    assert_eq!(event.message.answers().len(), 60);
    assert_eq!(event.source.port(), 53);
    assert_eq!(event.seen_at, Hook::Interface);
}

#[test]
fn a_fragmented_response_missing_a_piece_is_reported_at_expiry() {
    let mut assembler = Assembler::default();
    let addresses: Vec<[u8; 4]> = (1..=60).map(|i| [203, 0, 113, i]).collect();
    let datagram = udp_datagram(&a_response(6, NAME, &addresses));
    let first = ipv4_fragment(78, 0, true, &datagram[..400]);
    assert!(
        assembler
            .push(&first, ingress(), 0, Hook::Interface)
            .unwrap()
            .is_empty()
    );
    let later = ingress().timestamp + std::time::Duration::from_secs(10);
    let events = assembler.expire(later);
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert!(event.fragmented && event.truncated);
    assert_eq!(event.message.id(), 6);
    assert_eq!(event.message.queries()[0].name().to_string(), NAME);
    // The answers that fit in the first fragment are there to check.
    assert!(!event.message.answers().is_empty());
}

#[test]
fn ipv6_extension_headers_in_front_of_udp() {
    let message = aaaa_response(8, NAME, &["2001:db8::bad".parse().unwrap()]);
    let udp = udp_datagram(&message);
    // Hop-by-hop (PadN to 8 bytes) → destination options → UDP.
    let extensions = [60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
    let packet = ipv6_with(0, &extensions, &udp);
    let events = decode::parse_ip_dns(&packet, ingress()).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message.id(), 8);
    // Routing header (type 0 segments left 0) too.
    let routing = [17, 0, 0, 0, 0, 0, 0, 0];
    let packet = ipv6_with(43, &routing, &udp);
    assert_eq!(decode::parse_ip_dns(&packet, ingress()).unwrap().len(), 1);
}

#[test]
fn ipv6_fragments_are_reassembled() {
    let mut assembler = Assembler::default();
    let addresses: Vec<Ipv6Addr> = (1..=40u16)
        .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
        .collect();
    let datagram = udp_datagram(&aaaa_response(9, NAME, &addresses));
    let fragment = |offset: usize, more: bool, data: &[u8]| {
        let field = ((offset / 8) as u16) << 3 | u16::from(more);
        let mut header = vec![17, 0];
        header.extend(field.to_be_bytes());
        header.extend(0xabcd_u32.to_be_bytes());
        ipv6_with(44, &header, data)
    };
    let first = fragment(0, true, &datagram[..512]);
    let last = fragment(512, false, &datagram[512..]);
    assert!(
        assembler
            .push(&first, ingress(), 0, Hook::Interface)
            .unwrap()
            .is_empty()
    );
    let events = assembler
        .push(&last, ingress(), 0, Hook::Interface)
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].fragmented);
    assert_eq!(events[0].message.answers().len(), 40);
}

/// A capture the replay fuzzer found: an IPv6 packet whose extension header
/// claims more bytes than the packet has. It must be skipped, not read past.
#[test]
fn ipv6_extension_header_longer_than_the_packet_is_not_read_past() {
    let mut packet = vec![0x60, 0, 0, 0, 0, 0x30, 0, 64];
    packet.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0x51, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
    ]);
    packet.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0x51, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ]);
    // Hop-by-hop options claiming (255 + 1) * 8 bytes, in a 12-byte remainder.
    packet.extend_from_slice(&[17, 255, 0, 0, 0, 0, 0, 0, 0, 53, 0x9c, 0x40]);
    assert_eq!(super::ipv6_fragment(&packet), None);
    let mut assembler = super::Assembler::default();
    let meta = crate::decode::PacketMeta {
        timestamp: std::time::UNIX_EPOCH,
        direction: crate::event::Direction::Ingress,
        cgroup_id: 0,
        truncated: false,
    };
    let _ = assembler.push(&packet, meta, 0, crate::event::Hook::Socket);
    // A fragment header behind a destination-options header is found.
    let mut fragmented = packet[..40].to_vec();
    fragmented[6] = 60;
    fragmented.extend_from_slice(&[44, 0, 0, 0, 0, 0, 0, 0]);
    fragmented.extend_from_slice(&[17, 0, 0x05, 0x09, 0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(
        super::ipv6_fragment(&fragmented),
        Some((0x0508, true, 0xdead_beef))
    );
}

/// Each message that does not decode is counted, also beside one that does
/// and inside a reassembled datagram.
#[test]
fn every_undecodable_message_is_counted() {
    let mut assembler = Assembler::default();
    let garbage = [0u8, 5, 0xff, 0xff, 0xff, 0xff, 0xff];
    let mut bytes = garbage.to_vec();
    bytes.extend(framed(&a_response(4, NAME, &[[203, 0, 113, 9]])));
    bytes.extend(garbage);
    let events = assembler
        .push(&tcp_segment(1, &bytes, false), ingress(), 0, Hook::Socket)
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(assembler.stats().malformed, 2);
    // A datagram in two fragments whose DNS message is shorter than a
    // header.
    let mut datagram = udp_datagram(&a_response(5, NAME, &[[203, 0, 113, 9]]));
    datagram.truncate(8 + 8);
    datagram[4..6].copy_from_slice(&16u16.to_be_bytes());
    for (offset, more, part) in [(0, true, &datagram[..8]), (8, false, &datagram[8..])] {
        let packet = ipv4_fragment(9, offset, more, part);
        let events = assembler
            .push(&packet, ingress(), 0, Hook::Interface)
            .unwrap();
        assert!(events.is_empty());
    }
    assert_eq!(assembler.stats().malformed, 3);
    // A plain datagram that does not parse; traffic that is not DNS is not
    // malformed.
    let packet = ipv4_fragment(2, 0, false, &datagram);
    assert!(assembler.push(&packet, ingress(), 0, Hook::Socket).is_err());
    assert_eq!(assembler.stats().malformed, 4);
    let mut not_dns = datagram.clone();
    not_dns[..4].copy_from_slice(&[0x30, 0x39, 0x30, 0x39]);
    let packet = ipv4_fragment(3, 0, false, &not_dns);
    assert!(assembler.push(&packet, ingress(), 0, Hook::Socket).is_err());
    assert_eq!(assembler.stats().malformed, 4);
}
