//! Records are built from the real `pinwatch_common` structs and fed in at an
//! aligned and an odd offset, as aya may hand them.
use std::{
    mem::size_of,
    net::{Ipv4Addr, Ipv6Addr},
    slice,
    time::{Duration, SystemTime},
};

use pinwatch_common::{DNS_CAPTURE_BYTES, DnsPacketEvent as RawDnsPacket};

use super::*;
use crate::decode::test_packets::T0;

/// The capture classes by name; the `[usize; 3]` breaks the build if their
/// number changes without these tests.
const CLASSES: [usize; 3] = DNS_CAPTURE_CLASSES;
const SMALL: usize = CLASSES[0];
const MEDIUM: usize = CLASSES[1];
const LARGE: usize = CLASSES[2];

fn clock() -> Clock {
    Clock::fixed(SystemTime::UNIX_EPOCH + T0)
}

fn bytes_of<T: Plain>(record: &T) -> Vec<u8> {
    // SAFETY: Plain types have no implicit padding, so all size_of::<T>()
    // bytes are initialized.
    unsafe { slice::from_raw_parts((record as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// The bytes of a whole DNS record, as the kernel reserves it.
fn dns_bytes<const N: usize>(record: &RawDnsPacket<N>) -> Vec<u8> {
    assert_eq!(
        size_of::<RawDnsPacket<N>>(),
        size_of::<RawDnsHeader>() + N,
        "no tail padding"
    );
    // SAFETY: the header is Plain and the data a byte array, with no padding
    // between or after them (asserted above).
    unsafe {
        slice::from_raw_parts(
            (record as *const RawDnsPacket<N>).cast::<u8>(),
            size_of::<RawDnsPacket<N>>(),
        )
    }
    .to_vec()
}

/// Decodes `bytes` as given and again starting at an odd address.
fn decode_both_ways(bytes: &[u8]) -> Result<Record, DecodeError> {
    let aligned = decode_record(bytes, &clock());
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(bytes);
    let odd = &shifted[1..];
    assert_eq!(
        odd.as_ptr() as usize % 2,
        1,
        "allocations are at least 2-aligned"
    );
    let unaligned = decode_record(odd, &clock());
    assert_eq!(format!("{aligned:?}"), format!("{unaligned:?}"));
    aligned
}

/// A record of class `N`; the data area after the packet is filled with
/// 0xee, which must never reach the decoded packet.
fn raw_dns<const N: usize>(flags: u32, packet: &[u8], packet_len: u32) -> RawDnsPacket<N> {
    let mut raw = RawDnsPacket {
        header: RawDnsHeader {
            kind: EVENT_KIND_DNS_PACKET,
            flags,
            timestamp_ns: 2_500_000_000,
            cgroup_id: 0x1234,
            socket_cookie: 99,
            packet_len,
            captured_len: packet.len() as u32,
        },
        data: [0xee; N],
    };
    raw.data[..packet.len()].copy_from_slice(packet);
    raw
}

fn raw_connect(family: u32, daddr: [u8; 16], comm: &[u8]) -> RawConnect {
    let mut raw = RawConnect {
        kind: EVENT_KIND_CONNECT,
        family,
        timestamp_ns: 1_000,
        pid_tgid: (4321 << 32) | 4325,
        uid_gid: (100 << 32) | 1000,
        cgroup_id: 77,
        daddr,
        dport: 5432,
        _pad: [0; 2],
        action: CONNECT_ACTION_ALLOWED,
        comm: [0; 16],
        socket_cookie: 0xc00c1e,
    };
    raw.comm[..comm.len()].copy_from_slice(comm);
    raw
}

/// A packet that fills `len` bytes of a class-`N` record decodes to exactly
/// those bytes, aligned or not.
fn check_dns_class<const N: usize>(len: usize) {
    let packet: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let raw = raw_dns::<N>(DNS_FLAG_EGRESS, &packet, len as u32);
    let bytes = dns_bytes(&raw);
    assert_eq!(bytes.len(), 40 + N);
    let Record::Dns(dns) = decode_both_ways(&bytes).unwrap() else {
        panic!("not DNS")
    };
    assert_eq!(
        dns.timestamp,
        SystemTime::UNIX_EPOCH + T0 + Duration::from_millis(2500)
    );
    assert_eq!(dns.direction, Direction::Egress);
    assert_eq!(dns.cgroup_id, 0x1234);
    assert_eq!(dns.socket_cookie, 99);
    assert!(!dns.truncated);
    assert_eq!(dns.ip_packet, packet, "class {N}, {len} bytes");
    assert_eq!(dns.meta().cgroup_id, 0x1234);
    // Read in place, as the daemon reads the ring: the same packet.
    let in_place = dns_packet_ref(&bytes, &clock()).unwrap().unwrap();
    assert_eq!(in_place, dns.borrowed());
    assert_eq!(in_place.meta(), dns.meta());
}

#[test]
fn dns_packet_record_each_class() {
    assert_eq!(DNS_CAPTURE_CLASSES, [SMALL, MEDIUM, LARGE]);
    assert_eq!(LARGE, DNS_CAPTURE_BYTES);
    check_dns_class::<SMALL>(6);
    check_dns_class::<SMALL>(SMALL);
    check_dns_class::<MEDIUM>(SMALL + 1);
    check_dns_class::<MEDIUM>(MEDIUM);
    check_dns_class::<LARGE>(MEDIUM + 1);
    check_dns_class::<LARGE>(LARGE);
    // Nothing captured is still a well-formed record.
    check_dns_class::<SMALL>(0);
}

#[test]
fn dns_packet_record_truncated_ingress() {
    let packet = [7u8; DNS_CAPTURE_BYTES];
    let raw = raw_dns::<LARGE>(DNS_FLAG_TRUNCATED, &packet, 3000);
    let Record::Dns(dns) = decode_both_ways(&dns_bytes(&raw)).unwrap() else {
        panic!("not DNS")
    };
    assert_eq!(dns.direction, Direction::Ingress);
    assert!(dns.truncated);
    assert_eq!(dns.ip_packet.len(), DNS_CAPTURE_BYTES);

    // Lengths that say "cut" win over a missing flag, in any class.
    let raw = raw_dns::<LARGE>(0, &packet, 3000);
    let Record::Dns(dns) = decode_both_ways(&dns_bytes(&raw)).unwrap() else {
        panic!("not DNS")
    };
    assert!(dns.truncated);
    let raw = raw_dns::<SMALL>(0, &packet[..100], 101);
    let Record::Dns(dns) = decode_both_ways(&dns_bytes(&raw)).unwrap() else {
        panic!("not DNS")
    };
    assert!(dns.truncated);
    assert_eq!(dns.ip_packet.len(), 100);
}

#[test]
fn in_place_reading_is_for_dns_packet_records_only() {
    let connect = bytes_of(&raw_connect(2, [0; 16], b"psql"));
    assert!(dns_packet_ref(&connect, &clock()).is_none());
    assert!(dns_packet_ref(&[1, 0], &clock()).is_none());
    let mut bad = dns_bytes(&raw_dns::<SMALL>(DNS_FLAG_EGRESS, &[0; 8], 8));
    bad.pop();
    assert!(matches!(
        dns_packet_ref(&bad, &clock()),
        Some(Err(DecodeError::DnsRecordLen { .. }))
    ));
}

#[test]
fn dns_packet_record_bad_fields() {
    let mut raw = raw_dns::<SMALL>(0, &[0x45; 10], 10);
    raw.header.flags = 1 << 7;
    assert!(matches!(
        decode_both_ways(&dns_bytes(&raw)),
        Err(DecodeError::BadFlags { flags: 0x80 })
    ));

    let mut raw = raw_dns::<SMALL>(0, &[0x45; 10], 10);
    raw.header.captured_len = 11;
    assert!(matches!(
        decode_both_ways(&dns_bytes(&raw)),
        Err(DecodeError::BadCapturedLen {
            captured_len: 11,
            packet_len: 10,
            capacity: SMALL
        })
    ));

    raw.header.captured_len = DNS_CAPTURE_BYTES as u32 + 1;
    raw.header.packet_len = u32::MAX;
    assert!(matches!(
        decode_both_ways(&dns_bytes(&raw)),
        Err(DecodeError::BadCapturedLen { .. })
    ));

    // captured_len must fit the record's own class, not merely the largest.
    let mut raw = raw_dns::<SMALL>(0, &[0x45; 10], 3000);
    raw.header.captured_len = SMALL as u32 + 1;
    let err = decode_both_ways(&dns_bytes(&raw)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::BadCapturedLen {
                captured_len,
                packet_len: 3000,
                capacity: SMALL
            } if captured_len == SMALL as u32 + 1
        ),
        "{err}"
    );
    let mut raw = raw_dns::<MEDIUM>(0, &[0x45; 10], 3000);
    raw.header.captured_len = MEDIUM as u32 + 1;
    assert!(matches!(
        decode_both_ways(&dns_bytes(&raw)),
        Err(DecodeError::BadCapturedLen {
            capacity: MEDIUM,
            ..
        })
    ));
    // The largest class holds all of its bytes.
    let mut raw = raw_dns::<LARGE>(0, &[0x45; 10], 3000);
    raw.header.captured_len = LARGE as u32;
    assert!(decode_both_ways(&dns_bytes(&raw)).is_ok());
}

#[test]
fn connect_record_ipv4() {
    let mut daddr = [0xee; 16];
    daddr[..4].copy_from_slice(&[10, 1, 2, 3]);
    let raw = raw_connect(2, daddr, b"psql");
    let Record::Connect(event) = decode_both_ways(&bytes_of(&raw)).unwrap() else {
        panic!("not connect")
    };
    assert_eq!(
        event.timestamp,
        SystemTime::UNIX_EPOCH + T0 + Duration::from_micros(1)
    );
    assert_eq!(event.destination, "10.1.2.3:5432".parse().unwrap());
    let p = &event.process;
    assert_eq!((p.pid, p.tid, p.uid, p.gid), (4321, 4325, 1000, 100));
    assert_eq!((p.name.as_str(), p.cgroup_id), ("psql", 77));
    assert_eq!(event.socket_cookie, 0xc00c1e);
}

#[test]
fn connect_record_ipv6_and_mapped() {
    let v6: Ipv6Addr = "2001:db8::5".parse().unwrap();
    // A full 16-byte comm has no NUL; bytes that are not UTF-8 come out lossy.
    let comm = *b"abcdefghijklmn\xff\xfe";
    let raw = raw_connect(10, v6.octets(), &comm);
    let Record::Connect(event) = decode_both_ways(&bytes_of(&raw)).unwrap() else {
        panic!("not connect")
    };
    assert_eq!(event.destination, "[2001:db8::5]:5432".parse().unwrap());
    assert_eq!(event.process.name, "abcdefghijklmn\u{fffd}\u{fffd}");

    let mapped = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped();
    let raw = raw_connect(10, mapped.octets(), b"x");
    let Record::Connect(event) = decode_both_ways(&bytes_of(&raw)).unwrap() else {
        panic!("not connect")
    };
    assert_eq!(
        event.destination,
        "[::ffff:192.0.2.1]:5432".parse().unwrap()
    );
}

#[test]
fn connect_record_action() {
    let raw = raw_connect(2, [0; 16], b"x");
    let Record::Connect(event) = decode_both_ways(&bytes_of(&raw)).unwrap() else {
        panic!("not connect")
    };
    assert_eq!(event.action, ConnectAction::Allowed);

    let mut raw = raw_connect(10, [0; 16], b"x");
    raw.action = CONNECT_ACTION_BLOCKED;
    let Record::Connect(event) = decode_both_ways(&bytes_of(&raw)).unwrap() else {
        panic!("not connect")
    };
    assert_eq!(event.action, ConnectAction::Blocked);

    // Never guess at a verdict the kernel did not give.
    raw.action = 7;
    assert!(matches!(
        decode_both_ways(&bytes_of(&raw)),
        Err(DecodeError::BadAction(7))
    ));
}

#[test]
fn connect_record_bad_family() {
    let raw = raw_connect(1, [0; 16], b"x");
    assert!(matches!(
        decode_both_ways(&bytes_of(&raw)),
        Err(DecodeError::BadFamily(1))
    ));
}

#[test]
fn record_lengths_and_kinds() {
    assert!(matches!(
        decode_both_ways(&[]),
        Err(DecodeError::MissingKind { len: 0 })
    ));
    assert!(matches!(
        decode_both_ways(&[1, 0]),
        Err(DecodeError::MissingKind { len: 2 })
    ));
    assert!(matches!(
        decode_both_ways(&9u32.to_ne_bytes()),
        Err(DecodeError::UnknownKind(9))
    ));

    let connect = bytes_of(&raw_connect(2, [0; 16], b"x"));
    let err = decode_both_ways(&connect[..87]).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::ShortRecord {
                kind: 2,
                len: 87,
                expected: 88
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "kernel record of kind 2 is 87 bytes, shorter than the 88 bytes of its struct"
    );
    let mut long = connect.clone();
    long.push(0);
    assert!(matches!(
        decode_both_ways(&long),
        Err(DecodeError::LongRecord {
            kind: 2,
            len: 89,
            ..
        })
    ));

    // A DNS record is the header plus exactly one class: every other
    // length is refused, naming it.
    let dns = dns_bytes(&raw_dns::<LARGE>(0, &[0x45], 1));
    let expected = [40 + SMALL, 40 + MEDIUM, 40 + LARGE];
    for len in [
        0,
        4,
        39,
        40,
        41,
        80,
        40 + SMALL - 8,
        40 + SMALL - 1,
        40 + SMALL + 1,
        40 + SMALL + 8,
        40 + MEDIUM - 1,
        40 + MEDIUM + 1,
        40 + LARGE - 1,
    ] {
        let err = decode_both_ways(&dns[..len]).unwrap_err();
        if len < 4 {
            assert!(matches!(err, DecodeError::MissingKind { .. }), "{err}");
            continue;
        }
        assert!(
            matches!(err, DecodeError::DnsRecordLen { len: l, expected: e } if l == len && e == expected),
            "{len}: {err}"
        );
    }
    let mut long = dns.clone();
    long.push(0);
    let err = decode_both_ways(&long).unwrap_err();
    assert!(
        matches!(err, DecodeError::DnsRecordLen { len: 1401, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "DNS packet record is 1401 bytes, not one of the lengths of its size classes \
             ({expected:?} bytes)"
        )
    );
    // The old fixed size is still a valid (largest-class) record.
    assert_eq!(dns.len(), 1400);
    assert!(decode_both_ways(&dns).is_ok());
}

fn raw_owner(role: u32, family: u32, daddr: [u8; 16], dport: u16) -> RawDnsOwner {
    let mut comm = [0u8; 16];
    comm[..7].copy_from_slice(b"dnsmasq");
    RawDnsOwner {
        kind: EVENT_KIND_DNS_OWNER,
        role,
        timestamp_ns: 2_000,
        pid_tgid: (812 << 32) | 813,
        uid_gid: (65534 << 32) | 65534,
        cgroup_id: 9,
        socket_cookie: 0xd115,
        daddr,
        dport,
        _pad: [0; 2],
        family,
        comm,
    }
}

#[test]
fn dns_owner_record_names_the_process_and_socket() {
    let mut daddr = [0u8; 16];
    daddr[..4].copy_from_slice(&[192, 0, 2, 53]);
    let raw = raw_owner(OWNER_ROLE_DNS, 2, daddr, 53);
    let Ok(Record::DnsOwner(owner)) = decode_both_ways(&bytes_of(&raw)) else {
        panic!("an owner record");
    };
    assert_eq!(owner.socket_cookie, 0xd115);
    assert_eq!(owner.role, OwnerRole::Dns);
    assert_eq!(owner.process.pid, 812);
    assert_eq!(owner.process.tid, 813);
    assert_eq!(owner.process.uid, 65534);
    assert_eq!(owner.process.name, "dnsmasq");
    assert_eq!(owner.process.cgroup_id, 9);
    assert_eq!(owner.destination, "192.0.2.53:53".parse().unwrap());

    let v6 = Ipv6Addr::new(0x2606, 0x4700, 0x4700, 0, 0, 0, 0, 0x1111);
    let raw = raw_owner(OWNER_ROLE_DOH, 10, v6.octets(), 443);
    let Ok(Record::DnsOwner(owner)) = decode_both_ways(&bytes_of(&raw)) else {
        panic!("an owner record");
    };
    assert_eq!(owner.role, OwnerRole::DnsOverHttps);
    assert_eq!(owner.destination, SocketAddr::new(v6.into(), 443));
    let raw = raw_owner(OWNER_ROLE_DOT, 2, daddr, 853);
    assert!(matches!(
        decode_both_ways(&bytes_of(&raw)),
        Ok(Record::DnsOwner(DnsOwnerEvent {
            role: OwnerRole::DnsOverTls,
            ..
        }))
    ));
}

#[test]
fn dns_owner_record_bad_fields() {
    let raw = raw_owner(7, 2, [0; 16], 53);
    assert!(matches!(
        decode_both_ways(&bytes_of(&raw)),
        Err(DecodeError::BadOwnerRole(7))
    ));
    let raw = raw_owner(OWNER_ROLE_DNS, 3, [0; 16], 53);
    assert!(matches!(
        decode_both_ways(&bytes_of(&raw)),
        Err(DecodeError::BadFamily(3))
    ));
    let bytes = bytes_of(&raw_owner(OWNER_ROLE_DNS, 2, [0; 16], 53));
    assert!(matches!(
        decode_both_ways(&bytes[..bytes.len() - 8]),
        Err(DecodeError::ShortRecord {
            kind: EVENT_KIND_DNS_OWNER,
            ..
        })
    ));
}

fn raw_sent(family: u32, saddr: [u8; 16], daddr: [u8; 16]) -> RawDnsSent {
    RawDnsSent {
        kind: EVENT_KIND_DNS_SENT,
        family,
        timestamp_ns: 3_000,
        saddr,
        daddr,
        sport: 53,
        dport: 40000,
        id: 0x5151,
        _pad: [0; 2],
    }
}

/// A local server's response leaving, as the kernel summarizes it: when,
/// from and to where, and its id; over IPv4 and IPv6, and nothing else.
#[test]
fn dns_sent_record_of_a_response_leaving() {
    let mut server = [0u8; 16];
    server[..4].copy_from_slice(&[10, 0, 0, 53]);
    let mut client = [0u8; 16];
    client[..4].copy_from_slice(&[10, 0, 0, 2]);
    let Ok(Record::DnsSent(sent)) = decode_both_ways(&bytes_of(&raw_sent(2, server, client)))
    else {
        panic!("a sent record");
    };
    assert_eq!(sent.source, "10.0.0.53:53".parse().unwrap());
    assert_eq!(sent.destination, "10.0.0.2:40000".parse().unwrap());
    assert_eq!(sent.id, 0x5151);
    assert_eq!(sent.timestamp, clock().to_system_time(3_000));

    let (stub, app) = (
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
    );
    let Ok(Record::DnsSent(sent)) =
        decode_both_ways(&bytes_of(&raw_sent(10, stub.octets(), app.octets())))
    else {
        panic!("a sent record");
    };
    assert_eq!(sent.source, SocketAddr::new(stub.into(), 53));
    assert_eq!(sent.destination, SocketAddr::new(app.into(), 40000));

    assert!(matches!(
        decode_both_ways(&bytes_of(&raw_sent(3, server, client))),
        Err(DecodeError::BadFamily(3))
    ));
    let bytes = bytes_of(&raw_sent(2, server, client));
    assert!(matches!(
        decode_both_ways(&bytes[..bytes.len() - 8]),
        Err(DecodeError::ShortRecord {
            kind: EVENT_KIND_DNS_SENT,
            ..
        })
    ));
}

/// A local server's response as an earlier version recorded it leaving (a
/// ring adopted across an upgrade may hold these): IP, UDP and DNS headers
/// only (`DNS_FLAG_HEAD`), in the smallest class. It decodes to its id and
/// addresses, and the cut is no fault of the message.
#[test]
fn dns_head_record_of_a_response_leaving() {
    use crate::decode::test_packets::{a_response, udp4};
    let payload = a_response(0x5151, "db.example.com.", &[[10, 0, 0, 5]])
        .to_vec()
        .unwrap();
    let packet = udp4([10, 0, 0, 53], [10, 0, 0, 2], (53, 40000), &payload);
    let head = &packet[..20 + 8 + 12];
    let raw = raw_dns::<SMALL>(DNS_FLAG_EGRESS | DNS_FLAG_HEAD, head, packet.len() as u32);
    let Record::Dns(dns) = decode_both_ways(&dns_bytes(&raw)).unwrap() else {
        panic!("not DNS")
    };
    assert_eq!(dns.direction, Direction::Egress);
    assert!(dns.truncated);
    assert_eq!(dns.ip_packet, head);
    let events = crate::decode::dns_events(&dns).unwrap();
    let [event] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(event.message.id(), 0x5151);
    assert_eq!(event.source.port(), 53);
    assert_eq!(event.socket_cookie, 99);
    assert!(event.malformed.is_none(), "{:?}", event.malformed);
}
