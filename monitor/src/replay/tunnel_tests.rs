//! Each tunnel around a DNS datagram, built byte by byte.
use etherparse::{IpNumber, PacketBuilder};

use super::*;

/// The packet every tunnel carries: a UDP datagram from port 53.
fn inner_ip() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([198, 51, 100, 53], [198, 51, 100, 10], 64)
        .udp(53, 40000)
        .write(&mut out, b"not really dns")
        .unwrap();
    out
}

fn inner_ethernet() -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    frame.extend(inner_ip());
    frame
}

fn outer_ip(protocol: IpNumber, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .write(&mut out, protocol, payload)
        .unwrap();
    out
}

fn outer_udp(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv6([0x20; 16], [0x21; 16], 64)
        .udp(33333, port)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// A GRE header with the given flags (optional fields zero) and protocol.
fn gre(flags: u16, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut header = flags.to_be_bytes().to_vec();
    header.extend_from_slice(&protocol.to_be_bytes());
    for flag in [0x8000, 0x2000, 0x1000] {
        if flags & flag != 0 {
            header.extend_from_slice(&[0xab; 4]);
        }
    }
    header.extend_from_slice(payload);
    outer_ip(IpNumber::GRE, &header)
}

fn is_inner(payload: Payload<'_>) -> bool {
    payload == Payload::Ip(&inner_ip()[..])
}

#[test]
fn gre_with_ip_or_ethernet_inside() {
    // Plain, with a key, with checksum, key and sequence number.
    for flags in [0, 0x2000, 0xb000] {
        assert!(
            is_inner(innermost(&gre(flags, 0x0800, &inner_ip()))),
            "{flags:#x}"
        );
        assert!(is_inner(innermost(&gre(flags, 0x6558, &inner_ethernet()))));
    }
    // PPTP's version 1, and a protocol that is not IP: not for replay.
    assert_eq!(innermost(&gre(0x0001, 0x0800, &inner_ip())), Payload::Other);
    assert_eq!(innermost(&gre(0, 0x0806, &[0; 28])), Payload::Other);
    // Flags announcing fields that are not there.
    assert_eq!(
        innermost(&gre(0xb000, 0x0800, &[])[..20 + 8]),
        Payload::Short
    );
}

#[test]
fn erspan_types_one_two_and_three() {
    assert!(is_inner(innermost(&gre(0, 0x88be, &inner_ethernet()))));
    // Type II: version 1, VLAN, session; index.
    let mut two = vec![0x10, 0x00, 0x00, 0x05, 0, 0, 0, 0];
    two.extend(inner_ethernet());
    assert!(is_inner(innermost(&gre(0x1000, 0x88be, &two))));
    // Type III: version 2, timestamp, SGT, frame type 0, with and without
    // the platform subheader (the O flag).
    let three = |o_flag: u8| {
        let mut header = vec![0x20, 0x00, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0, o_flag];
        if o_flag != 0 {
            header.extend_from_slice(&[0xcd; 8]);
        }
        header.extend(inner_ethernet());
        gre(0x1000, 0x22eb, &header)
    };
    assert!(is_inner(innermost(&three(0))));
    assert!(is_inner(innermost(&three(1))));
    // A version that does not match its protocol type.
    let mut wrong = two.clone();
    wrong[0] = 0x20;
    assert_eq!(innermost(&gre(0x1000, 0x88be, &wrong)), Payload::Other);
    assert_eq!(innermost(&gre(0x1000, 0x88be, &two[..5])), Payload::Short);
}

#[test]
fn vxlan_and_geneve_over_udp() {
    let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vxlan.extend(inner_ethernet());
    assert!(is_inner(innermost(&outer_udp(4789, &vxlan))));
    assert!(is_inner(innermost(&outer_udp(8472, &vxlan))));
    // Without the valid-VNI flag it is no VXLAN header.
    let mut no_vni = vxlan.clone();
    no_vni[0] = 0;
    assert_eq!(innermost(&outer_udp(4789, &no_vni)), Payload::Other);
    assert_eq!(innermost(&outer_udp(4789, &vxlan[..6])), Payload::Short);

    // Geneve: two words of options, then Ethernet or IP.
    let geneve = |protocol: u16, inner: &[u8]| {
        let mut header = vec![0x02, 0];
        header.extend_from_slice(&protocol.to_be_bytes());
        header.extend_from_slice(&[0, 0, 42, 0]);
        header.extend_from_slice(&[0xee; 8]);
        header.extend_from_slice(inner);
        outer_udp(6081, &header)
    };
    assert!(is_inner(innermost(&geneve(0x6558, &inner_ethernet()))));
    assert!(is_inner(innermost(&geneve(0x0800, &inner_ip()))));
    // The option length runs past the packet.
    let short = geneve(0x0800, &[]);
    assert_eq!(innermost(&short[..short.len() - 4]), Payload::Short);
    // Other UDP traffic is no tunnel.
    let plain = outer_udp(53, &vxlan);
    assert_eq!(innermost(&plain), Payload::Ip(&plain[..]));
}

#[test]
fn nesting_is_peeled_up_to_the_depth_limit() {
    let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vxlan.extend(inner_ethernet());
    let nested = gre(0x2000, 0x86dd, &outer_udp(4789, &vxlan));
    assert!(is_inner(innermost(&nested)));
    let mut packet = inner_ip();
    for _ in 0..MAX_DEPTH {
        packet = gre(0, 0x0800, &packet);
    }
    assert!(is_inner(innermost(&packet)));
    let deeper = gre(0, 0x0800, &packet);
    // One tunnel too many: what is left is judged as it is (not DNS).
    assert_eq!(
        innermost(&deeper),
        Payload::Ip(&gre(0, 0x0800, &inner_ip())[..])
    );
}
