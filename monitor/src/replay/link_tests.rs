//! Crafted frames of every supported link type.
use super::*;

/// A minimal IPv4 header (20 bytes) followed by 4 payload bytes.
fn ipv4() -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 24, 0, 0, 0, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&[198, 51, 100, 53, 198, 51, 100, 10]);
    ip.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    ip
}

/// The start of an IPv6 header; the link layer looks at the version only.
fn ipv6() -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
    ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8].repeat(8));
    ip
}

fn ethernet(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn vlan_tag(id: u16, inner_type: u16) -> Vec<u8> {
    let mut tag = id.to_be_bytes().to_vec();
    tag.extend_from_slice(&inner_type.to_be_bytes());
    tag
}

fn sll(protocol: u16, payload: &[u8]) -> Vec<u8> {
    // Packet type (outgoing 4), ARPHRD_ETHER, address length 6, address
    // padded to 8, protocol.
    let mut frame = vec![0, 4, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0];
    frame.extend_from_slice(&protocol.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn sll2(protocol: u16, payload: &[u8]) -> Vec<u8> {
    // Protocol, reserved, interface index 2, ARPHRD_ETHER, packet type 0,
    // address length 6, address padded to 8.
    let mut frame = protocol.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

fn ip_of(link_type: u32, frame: &[u8]) -> Payload<'_> {
    ip_payload(link_type, frame, 40).unwrap()
}

#[test]
fn ethernet_yields_the_ip_packet() {
    let (v4, v6) = (ipv4(), ipv6());
    let frame = ethernet(0x0800, &v4);
    assert_eq!(ip_of(LINKTYPE_ETHERNET, &frame), Payload::Ip(&v4[..]));
    let frame = ethernet(0x86dd, &v6);
    assert_eq!(ip_of(LINKTYPE_ETHERNET, &frame), Payload::Ip(&v6[..]));
}

#[test]
fn vlan_tags_are_peeled() {
    let v4 = ipv4();
    let mut tagged = vlan_tag(7, 0x0800);
    tagged.extend_from_slice(&v4);
    let frame = ethernet(0x8100, &tagged);
    assert_eq!(ip_of(LINKTYPE_ETHERNET, &frame), Payload::Ip(&v4[..]));

    // QinQ: an 802.1ad outer tag around an 802.1Q inner one.
    let mut double = vlan_tag(100, 0x8100);
    double.extend_from_slice(&tagged);
    let frame = ethernet(0x88a8, &double);
    assert_eq!(ip_of(LINKTYPE_ETHERNET, &frame), Payload::Ip(&v4[..]));

    // A tag cut short.
    let frame = ethernet(0x8100, &[0, 7]);
    assert_eq!(ip_of(LINKTYPE_ETHERNET, &frame), Payload::Short);
}

#[test]
fn linux_cooked_captures_yield_the_ip_packet() {
    let (v4, v6) = (ipv4(), ipv6());
    let frame = sll(0x0800, &v4);
    assert_eq!(ip_of(LINKTYPE_LINUX_SLL, &frame), Payload::Ip(&v4[..]));
    let frame = sll2(0x86dd, &v6);
    assert_eq!(ip_of(LINKTYPE_LINUX_SLL2, &frame), Payload::Ip(&v6[..]));
    let frame = sll2(0x0800, &v4);
    assert_eq!(ip_of(LINKTYPE_LINUX_SLL2, &frame), Payload::Ip(&v4[..]));
}

#[test]
fn raw_ip_link_types_yield_the_frame_itself() {
    let (v4, v6) = (ipv4(), ipv6());
    for link_type in [LINKTYPE_RAW, LINKTYPE_IPV4] {
        assert_eq!(ip_of(link_type, &v4), Payload::Ip(&v4[..]));
    }
    for link_type in [LINKTYPE_RAW, LINKTYPE_IPV6] {
        assert_eq!(ip_of(link_type, &v6), Payload::Ip(&v6[..]));
    }
    assert_eq!(ip_of(LINKTYPE_RAW, &[0x10, 0, 0]), Payload::Other);
    assert_eq!(ip_of(LINKTYPE_RAW, &[]), Payload::Short);
}

#[test]
fn other_protocols_and_short_frames_are_told_apart() {
    // ARP over Ethernet, SLL and SLL2.
    let arp = [0u8; 28];
    assert_eq!(
        ip_of(LINKTYPE_ETHERNET, &ethernet(0x0806, &arp)),
        Payload::Other
    );
    assert_eq!(
        ip_of(LINKTYPE_LINUX_SLL, &sll(0x0806, &arp)),
        Payload::Other
    );
    assert_eq!(
        ip_of(LINKTYPE_LINUX_SLL2, &sll2(0x0806, &arp)),
        Payload::Other
    );
    // Each one byte short of its header (14, 16, 20 bytes), or less.
    for (link_type, header) in [
        (LINKTYPE_ETHERNET, 14),
        (LINKTYPE_LINUX_SLL, 16),
        (LINKTYPE_LINUX_SLL2, 20),
    ] {
        for len in [0, 1, header - 1] {
            assert_eq!(
                ip_of(link_type, &[0u8; 20][..len]),
                Payload::Short,
                "{link_type} {len}"
            );
        }
    }
}

#[test]
fn an_unsupported_link_type_names_itself_and_the_offset() {
    let err = ip_payload(105, &ipv4(), 1234).unwrap_err();
    assert_eq!(
        err,
        CaptureError::UnsupportedLinkType {
            offset: 1234,
            link_type: 105
        }
    );
    assert!(err.to_string().contains("byte offset 1234"), "{err}");
}

#[test]
fn bsd_loopback_in_either_byte_order_yields_the_ip_packet() {
    let (v4, v6) = (ipv4(), ipv6());
    let null = |family: [u8; 4], ip: &[u8]| {
        let mut frame = family.to_vec();
        frame.extend_from_slice(ip);
        frame
    };
    // DLT_NULL in the capturing host's byte order: little-endian (x86) and
    // big-endian; AF_INET6 as Linux, the BSDs and macOS number it.
    for family in [[2, 0, 0, 0], [0, 0, 0, 2]] {
        let frame = null(family, &v4);
        assert_eq!(ip_of(LINKTYPE_NULL, &frame), Payload::Ip(&v4[..]));
    }
    for af in [10u32, 24, 28, 30] {
        for family in [af.to_le_bytes(), af.to_be_bytes()] {
            let frame = null(family, &v6);
            assert_eq!(ip_of(LINKTYPE_NULL, &frame), Payload::Ip(&v6[..]), "{af}");
        }
    }
    // LOOP is always big-endian.
    let frame = null([0, 0, 0, 2], &v4);
    assert_eq!(ip_of(LINKTYPE_LOOP, &frame), Payload::Ip(&v4[..]));
    let frame = null([2, 0, 0, 0], &v4);
    assert_eq!(ip_of(LINKTYPE_LOOP, &frame), Payload::Other);
    // Another family, a family that disagrees with the packet, no packet.
    assert_eq!(
        ip_of(LINKTYPE_NULL, &null([7, 0, 0, 0], &v4)),
        Payload::Other
    );
    assert_eq!(
        ip_of(LINKTYPE_NULL, &null([2, 0, 0, 0], &v6)),
        Payload::Other
    );
    assert_eq!(ip_of(LINKTYPE_NULL, &[2, 0, 0, 0]), Payload::Short);
    assert_eq!(ip_of(LINKTYPE_NULL, &[2, 0]), Payload::Short);
}
