//! Packets built with etherparse's PacketBuilder around hickory messages.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::{
    op::MessageType,
    rr::{RData, RecordType},
};

use super::*;
use crate::decode::test_packets::*;

const CLIENT: [u8; 4] = [10, 0, 0, 2];
const RESOLVER: [u8; 4] = [10, 0, 0, 53];
const NAME: &str = "db.example.com.";

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from(ip), port)
}

fn answers_v4(event: &DnsEvent) -> Vec<Ipv4Addr> {
    let data = event.message.answers().iter().map(|r| r.data());
    data.filter_map(|d| if let RData::A(a) = d { Some(a.0) } else { None })
        .collect()
}

#[test]
fn ipv4_udp_query() {
    let payload = query(0x1111, NAME).to_vec().unwrap();
    let packet = udp4(CLIENT, RESOLVER, (40000, 53), &payload);
    let events = parse_ip_dns(&packet, meta(Direction::Egress, false)).unwrap();
    let [event] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(event.timestamp, SystemTime::UNIX_EPOCH + T0);
    assert_eq!(event.direction, Direction::Egress);
    assert_eq!(event.transport, Transport::Udp);
    assert_eq!(event.source, addr(CLIENT, 40000));
    assert_eq!(event.destination, addr(RESOLVER, 53));
    assert_eq!((event.cgroup_id, event.truncated), (42, false));
    assert_eq!(event.message.id(), 0x1111);
    assert_eq!(event.message.message_type(), MessageType::Query);
    let question = event.message.query().unwrap();
    assert_eq!(
        (question.name().to_string().as_str(), question.query_type()),
        (NAME, RecordType::A)
    );
}

#[test]
fn ipv4_udp_response_with_a_answers() {
    let payload = a_response(0x2222, NAME, &[[10, 9, 8, 7], [10, 9, 8, 6]])
        .to_vec()
        .unwrap();
    let packet = udp4(RESOLVER, CLIENT, (53, 40000), &payload);
    let events = parse_ip_dns(&packet, meta(Direction::Ingress, false)).unwrap();
    let [event] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(event.direction, Direction::Ingress);
    assert_eq!(
        (event.source, event.destination),
        (addr(RESOLVER, 53), addr(CLIENT, 40000))
    );
    assert_eq!(event.message.message_type(), MessageType::Response);
    assert_eq!(
        answers_v4(event),
        [Ipv4Addr::new(10, 9, 8, 7), Ipv4Addr::new(10, 9, 8, 6)]
    );
    assert_eq!(event.message.answers()[0].name().to_string(), NAME);
    assert_eq!(event.message.answers()[0].ttl(), 300);
}

#[test]
fn ipv6_udp_aaaa_response() {
    let (resolver, client): (Ipv6Addr, Ipv6Addr) =
        ("fd00::53".parse().unwrap(), "fd00::2".parse().unwrap());
    let answer: Ipv6Addr = "2001:db8::10".parse().unwrap();
    let payload = aaaa_response(3, NAME, &[answer]).to_vec().unwrap();
    let packet = udp6(resolver, client, (53, 50000), &payload);
    let events = parse_ip_dns(&packet, meta(Direction::Ingress, false)).unwrap();
    let [event] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(event.source, SocketAddr::new(resolver.into(), 53));
    assert_eq!(event.destination, SocketAddr::new(client.into(), 50000));
    assert_eq!(
        event.message.query().unwrap().query_type(),
        RecordType::AAAA
    );
    let RData::AAAA(got) = event.message.answers()[0].data() else {
        panic!("not AAAA")
    };
    assert_eq!(got.0, answer);
}

#[test]
fn tcp_two_messages_in_one_segment() {
    let first = a_response(1, NAME, &[[10, 0, 0, 1]]);
    let second = a_response(2, "replica.example.com.", &[[10, 0, 0, 2], [10, 0, 0, 3]]);
    let packet = tcp4(RESOLVER, CLIENT, (53, 40001), &framed(&[&first, &second]));
    let events = parse_ip_dns(&packet, meta(Direction::Ingress, false)).unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.transport == Transport::Tcp && e.source == addr(RESOLVER, 53))
    );
    assert_eq!((events[0].message.id(), events[1].message.id()), (1, 2));
    assert_eq!(
        answers_v4(&events[1]),
        [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)]
    );
}

#[test]
fn tcp_partial_trailing_message_is_ignored() {
    let mut segment = framed(&[&query(5, NAME)]);
    let next = framed(&[&query(6, NAME)]);
    segment.extend_from_slice(&next[..next.len() / 2]);
    let packet = tcp4(CLIENT, RESOLVER, (40001, 53), &segment);
    let events = parse_ip_dns(&packet, meta(Direction::Egress, false)).unwrap();
    let [event] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(event.message.id(), 5);
    assert_eq!(event.destination, addr(RESOLVER, 53));
}

#[test]
fn tcp_empty_segment_yields_nothing() {
    let packet = tcp4(CLIENT, RESOLVER, (40001, 53), &[]);
    assert!(
        parse_ip_dns(&packet, meta(Direction::Egress, false))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn dns_events_reads_the_kernel_packet() {
    let payload = query(9, NAME).to_vec().unwrap();
    let packet = DnsPacket {
        timestamp: SystemTime::UNIX_EPOCH,
        direction: Direction::Egress,
        cgroup_id: 5,
        truncated: false,
        socket_cookie: 1,
        ip_packet: udp4(CLIENT, RESOLVER, (40000, 53), &payload),
        seen_at: crate::event::Hook::Socket,
    };
    let events = dns_events(&packet).unwrap();
    assert_eq!(
        (events.len(), events[0].cgroup_id, events[0].message.id()),
        (1, 5, 9)
    );
}

#[test]
fn other_ports_are_not_dns() {
    let payload = query(1, NAME).to_vec().unwrap();
    let packet = udp4(CLIENT, RESOLVER, (5353, 5354), &payload);
    let err = parse_ip_dns(&packet, meta(Direction::Egress, false)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::NotDns {
                source_port: 5353,
                destination_port: 5354
            }
        ),
        "{err}"
    );
    let packet = tcp4(CLIENT, RESOLVER, (1, 2), &[]);
    assert!(matches!(
        parse_ip_dns(&packet, meta(Direction::Egress, false)),
        Err(DecodeError::NotDns { .. })
    ));
}

#[test]
fn other_protocols_are_rejected() {
    let mut packet = udp4(
        CLIENT,
        RESOLVER,
        (40000, 53),
        &query(1, NAME).to_vec().unwrap(),
    );
    packet[9] = 47; // GRE
    let err = parse_ip_dns(&packet, meta(Direction::Egress, false)).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnsupportedProtocol { protocol: 47 }),
        "{err}"
    );
}

#[test]
fn fragments_are_reported() {
    let packet = udp4(
        RESOLVER,
        CLIENT,
        (53, 40000),
        &a_response(1, NAME, &[[1, 2, 3, 4]]).to_vec().unwrap(),
    );
    // Later fragment: offset 185 units (1480 bytes), no more fragments.
    let mut later = packet.clone();
    later[6..8].copy_from_slice(&185u16.to_be_bytes());
    let err = parse_ip_dns(&later, meta(Direction::Ingress, false)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Fragment {
                offset: 1480,
                more_fragments: false
            }
        ),
        "{err}"
    );
    // First fragment: offset 0, more fragments set.
    let mut first = packet;
    first[6] = 0x20;
    let err = parse_ip_dns(&first, meta(Direction::Ingress, false)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Fragment {
                offset: 0,
                more_fragments: true
            }
        ),
        "{err}"
    );
}

#[test]
fn truncated_capture_still_yields_a_complete_message() {
    // The message is whole; only bytes after it (here padding) are cut.
    let mut payload = a_response(1, NAME, &[[10, 9, 8, 7]]).to_vec().unwrap();
    let message_end = 28 + payload.len();
    payload.extend_from_slice(&[0; 64]);
    let packet = udp4(RESOLVER, CLIENT, (53, 40000), &payload);
    for flagged in [true, false] {
        // Unflagged, the IP length promising more than is present gives it away.
        let events = parse_ip_dns(
            &packet[..message_end + 10],
            meta(Direction::Ingress, flagged),
        )
        .unwrap();
        let [event] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert!(event.truncated);
        assert_eq!(answers_v4(event), [Ipv4Addr::new(10, 9, 8, 7)]);
    }
}

#[test]
fn truncated_capture_that_does_not_parse() {
    let payload = a_response(1, NAME, &[[10, 9, 8, 7], [10, 9, 8, 6]])
        .to_vec()
        .unwrap();
    let packet = udp4(RESOLVER, CLIENT, (53, 40000), &payload);
    // Cut inside the second answer: the first is judged, the cut noted.
    let cut = &packet[..packet.len() - 5];
    let events = parse_ip_dns(cut, meta(Direction::Ingress, true)).unwrap();
    assert_eq!(answers_v4(&events[0]), [Ipv4Addr::new(10, 9, 8, 7)]);
    let malformed = events[0].malformed.as_ref().unwrap();
    assert!(malformed.cut && malformed.record == 1, "{malformed:?}");
    // Cut inside the DNS header.
    let err = parse_ip_dns(&packet[..28 + 8], meta(Direction::Ingress, true)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Truncated {
                layer: "DNS message",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("capture truncated inside the DNS message"),
        "{err}"
    );

    let err = parse_ip_dns(&packet[..24], meta(Direction::Ingress, true)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Truncated {
                layer: "UDP header",
                ..
            }
        ),
        "{err}"
    );
    let err = parse_ip_dns(&packet[..12], meta(Direction::Ingress, true)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Truncated {
                layer: "IP header",
                ..
            }
        ),
        "{err}"
    );

    // TCP cut inside its only message.
    let tcp = tcp4(
        RESOLVER,
        CLIENT,
        (53, 40000),
        &framed(&[&a_response(1, NAME, &[[1, 1, 1, 1]])]),
    );
    let err = parse_ip_dns(&tcp[..tcp.len() - 5], meta(Direction::Ingress, true)).unwrap_err();
    assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
}

#[test]
fn malformed_headers_and_garbage() {
    let m = meta(Direction::Egress, false);
    assert!(matches!(parse_ip_dns(&[], m), Err(DecodeError::Ip(_))));
    assert!(matches!(
        parse_ip_dns(&[0x45; 12], m),
        Err(DecodeError::Ip(_))
    ));
    assert!(matches!(
        parse_ip_dns(&[0x00; 40], m),
        Err(DecodeError::Ip(_))
    ));

    // IP total length consistent, but only 4 bytes of UDP header behind it.
    let mut packet = udp4(CLIENT, RESOLVER, (40000, 53), &[1, 2, 3]);
    packet.truncate(24);
    packet[2..4].copy_from_slice(&24u16.to_be_bytes());
    let err = parse_ip_dns(&packet, m).unwrap_err();
    assert!(matches!(err, DecodeError::Headers(_)), "{err}");

    // A UDP datagram to port 53 that is not DNS.
    let packet = udp4(CLIENT, RESOLVER, (40000, 53), &[0xff; 5]);
    let err = parse_ip_dns(&packet, m).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Dns {
                transport: "UDP",
                ..
            }
        ),
        "{err}"
    );
}

/// A response leaving a socket on this host is read to its header: the
/// detector judges it where it is delivered, and as it leaves only its id
/// and addresses feed the stub path. The kernel copies just that much
/// (`DNS_FLAG_HEAD`), so the cut must not read as a fault.
#[test]
fn response_sent_from_this_host_is_read_to_its_header() {
    let payload = a_response(0x2323, NAME, &[[10, 9, 8, 7]]).to_vec().unwrap();
    let packet = udp4(RESOLVER, CLIENT, (53, 40000), &payload);
    let head = &packet[..20 + 8 + 12];
    for (bytes, cut) in [(&packet[..], false), (head, true)] {
        let events = parse_ip_dns(bytes, meta(Direction::Egress, cut)).unwrap();
        let [event] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(event.message.id(), 0x2323);
        assert_eq!(event.message.message_type(), MessageType::Response);
        assert_eq!(
            (event.source, event.destination),
            (addr(RESOLVER, 53), addr(CLIENT, 40000))
        );
        assert!(event.message.answers().is_empty());
        assert!(event.malformed.is_none(), "{:?}", event.malformed);
    }
    // The same response delivered is read whole.
    let events = parse_ip_dns(&packet, meta(Direction::Ingress, false)).unwrap();
    assert_eq!(answers_v4(&events[0]), [Ipv4Addr::new(10, 9, 8, 7)]);
}

/// A query is read to its questions (the detector keys and compares
/// queries by id and question only), whichever way it goes.
#[test]
fn query_is_read_to_its_questions() {
    let mut message = query(0x4545, NAME);
    message.add_additional(hickory_proto::rr::Record::from_rdata(
        hickory_proto::rr::Name::from_ascii(NAME).unwrap(),
        60,
        RData::A(hickory_proto::rr::rdata::A::new(10, 1, 1, 1)),
    ));
    let payload = message.to_vec().unwrap();
    for direction in [Direction::Egress, Direction::Ingress] {
        let packet = udp4(CLIENT, RESOLVER, (40000, 53), &payload);
        let events = parse_ip_dns(&packet, meta(direction, false)).unwrap();
        let event = &events[0];
        assert_eq!(event.message.queries().len(), 1);
        assert_eq!(event.message.query().unwrap().name().to_ascii(), NAME);
        assert!(event.message.additionals().is_empty());
        assert!(event.malformed.is_none());
    }
}
