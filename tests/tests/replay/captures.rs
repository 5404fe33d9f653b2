//! Captures as other tools and other networks write them: TCP DNS with its
//! handshake, FIN and retransmissions; BSD loopback (DLT_NULL); DNS inside
//! a VXLAN tunnel captured on the underlay, and inside GRE and ERSPAN.
//! tcpdump takes each in the lab; where Linux (or this kernel, which has no
//! GRE) cannot write the form itself (DLT_NULL, a retransmission on demand,
//! GRE), pcap-file rewrites tcpdump's file.
use std::{fs, net::IpAddr, path::Path};

use pcap_file::{
    DataLink,
    pcap::{PcapPacket, PcapReader, PcapWriter},
};

use super::*;

/// The frames of a pcap, with the header to write them back with.
fn read_pcap(path: &Path) -> (pcap_file::pcap::PcapHeader, Vec<PcapPacket<'static>>) {
    let mut reader = PcapReader::new(fs::File::open(path).unwrap()).unwrap();
    let header = reader.header();
    let mut packets = Vec::new();
    while let Some(packet) = reader.next_packet() {
        packets.push(packet.unwrap().into_owned());
    }
    (header, packets)
}

fn write_pcap(path: &Path, header: pcap_file::pcap::PcapHeader, packets: &[PcapPacket<'_>]) {
    let mut writer = PcapWriter::with_header(fs::File::create(path).unwrap(), header).unwrap();
    for packet in packets {
        writer.write_packet(packet).unwrap();
    }
}

/// An Ethernet frame's IPv4 TCP header: (source port, flags, payload length).
fn tcp_of(frame: &[u8]) -> Option<(u16, u8, usize)> {
    if frame.get(12..14)? != [0x08, 0x00] || *frame.get(23)? != 6 {
        return None;
    }
    let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]));
    let tcp = frame.get(14 + ihl..)?;
    let header = usize::from(tcp.get(12)? >> 4) * 4;
    let port = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    Some((port, *tcp.get(13)?, total.checked_sub(ihl + header)?))
}

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;

/// `dig +tcp`: a whole connection (SYN, SYN-ACK, query, response, FINs)
/// whose response carries a forged address; every segment of the response
/// is repeated at once (a retransmission) and again after the FINs.
#[test]
fn replay_judges_tcp_dns_with_its_handshake_fin_and_retransmissions() {
    require_root();
    let dir = Workdir::new("tcp");
    let lab = Lab::new();
    let _dnsmasq = Dnsmasq::start(&lab, &DnsRecords::new().host(DB_HOST, FORGED_V4));
    let capture = dir.path("tcp.pcap");
    let tcpdump = Tcpdump::start(&lab, &capture, &["-i", "pw1", "tcp port 53"]);
    let out = lab
        .client
        .command("dig")
        .args([
            &format!("@{DNS_V4}"),
            DB_HOST,
            "A",
            "+tcp",
            "+short",
            "+time=2",
        ])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(answer.trim(), FORGED_V4.to_string(), "dig +tcp: {out:?}");
    tcpdump.stop();

    let (header, packets) = read_pcap(&capture);
    let flags: Vec<(u16, u8, usize)> = packets.iter().filter_map(|p| tcp_of(&p.data)).collect();
    assert!(
        flags.iter().any(|f| f.1 & SYN != 0),
        "the handshake: {flags:?}"
    );
    assert!(flags.iter().any(|f| f.1 & FIN != 0), "the FIN: {flags:?}");
    let is_response = |p: &PcapPacket<'_>| tcp_of(&p.data).is_some_and(|f| f.0 == 53 && f.2 > 0);
    assert!(packets.iter().any(is_response), "{flags:?}");
    let plain = replay(&capture, &dir.path("pinwatch.toml"));
    let mut rewritten = Vec::new();
    for packet in &packets {
        rewritten.push(packet.clone());
        if is_response(packet) {
            rewritten.push(packet.clone());
        }
    }
    rewritten.extend(packets.iter().filter(|p| is_response(p)).cloned());
    let retransmitted = dir.path("tcp-retransmitted.pcap");
    write_pcap(&retransmitted, header, &rewritten);
    let repeated = replay(&retransmitted, &dir.path("pinwatch.toml"));

    for run in [plain, repeated] {
        let context = format!("exit {}; stderr: {}\n{}", run.code, run.stderr, run.stdout);
        assert_eq!(run.code, 1, "{context}");
        assert_eq!(run.alerts.len(), 1, "one alert, never two: {context}");
        let alert = &run.alerts[0];
        assert_ecs_base(alert, "dns-answer-diverged");
        assert_eq!(str_field(alert, "network.transport"), "tcp", "{alert}");
        assert_eq!(str_field(alert, "dns.question.name"), DB_HOST, "{alert}");
        assert_eq!(
            ip_list_field(alert, "pinwatch.unexpected_ips"),
            [IpAddr::V4(FORGED_V4)]
        );
        let summary = run.stderr.lines().last().unwrap_or_default();
        assert!(
            summary.contains(" 2 DNS messages"),
            "query and response once: {summary}"
        );
        assert!(summary.contains(" 1 alerts"), "{summary}");
        assert!(summary.contains(" 0 malformed"), "{summary}");
    }
}

/// BSD and macOS write loopback captures as DLT_NULL: a 4-byte address
/// family (host byte order) where Ethernet would be. Linux's `lo` is
/// Ethernet, so tcpdump's capture of the attack is rewritten into one.
#[test]
fn replay_finds_the_attack_in_a_bsd_loopback_capture() {
    let dir = Workdir::new("null");
    let ethernet = capture_attack(&dir, "attack-ethernet.pcap", &["-i", "pw1"]);
    let (mut header, packets) = read_pcap(&ethernet);
    assert_eq!(header.datalink, DataLink::ETHERNET);
    header.datalink = DataLink::NULL;
    let null: Vec<PcapPacket<'static>> = packets
        .iter()
        .filter_map(|packet| {
            // AF_INET 2, and AF_INET6 as macOS numbers it (30), little-endian.
            let family: u32 = match packet.data.get(12..14)? {
                [0x08, 0x00] => 2,
                [0x86, 0xdd] => 30,
                _ => return None,
            };
            let mut data = family.to_le_bytes().to_vec();
            data.extend_from_slice(packet.data.get(14..)?);
            Some(PcapPacket::new_owned(
                packet.timestamp,
                data.len() as u32,
                data,
            ))
        })
        .collect();
    let capture = dir.path("attack-null.pcap");
    write_pcap(&capture, header, &null);
    assert_eq!(
        fs::read(&capture).unwrap()[20..24],
        [0, 0, 0, 0],
        "LINKTYPE_NULL"
    );
    assert_attack_found(&replay(&capture, &dir.path("pinwatch.toml")));
}

/// The tunnel's inner addresses: client end, resolver end.
const TUNNEL_CLIENT: &str = "10.99.0.1";
const TUNNEL_DNS: &str = "10.99.0.2";
/// The underlay the tunnel runs over, on the lab link.
const UNDERLAY: [&str; 2] = ["192.168.77.1", "192.168.77.2"];

/// A forged answer that crossed a VXLAN tunnel between the lab's
/// namespaces, captured on the underlay (where an overlay's host or a
/// mirror port sees it): only the outer packets are in the file, and replay
/// must judge the DNS inside.
#[test]
fn replay_judges_dns_inside_vxlan_captured_on_the_underlay() {
    let dir = Workdir::new("vxlan");
    let lab = Lab::new();
    for (ns, dev, local, remote, inner) in [
        (&lab.client, "pw0", UNDERLAY[0], UNDERLAY[1], TUNNEL_CLIENT),
        (&lab.dns, "pw1", UNDERLAY[1], UNDERLAY[0], TUNNEL_DNS),
    ] {
        ns.ip(&["addr", "add", &format!("{local}/24"), "dev", dev]);
        ns.ip(&[
            "link", "add", "vx0", "type", "vxlan", "id", "42", "local", local, "remote", remote,
            "dstport", "4789", "dev", dev,
        ]);
        ns.ip(&["addr", "add", &format!("{inner}/30"), "dev", "vx0"]);
        ns.ip(&["link", "set", "vx0", "up"]);
    }
    // The client reaches the resolver's address through the tunnel.
    lab.client.ip(&[
        "route",
        "add",
        &format!("{DNS_V4}/32"),
        "dev",
        "vx0",
        "src",
        TUNNEL_CLIENT,
    ]);
    let _dnsmasq = Dnsmasq::start(&lab, &DnsRecords::new().host(DB_HOST, FORGED_V4));
    let capture = dir.path("vxlan.pcap");
    let tcpdump = Tcpdump::start(&lab, &capture, &["-i", "pw1", "udp port 4789"]);
    let answer = dig(&lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(
        answer.addresses(),
        [IpAddr::V4(FORGED_V4)],
        "{}",
        answer.raw
    );
    tcpdump.stop();

    let run = replay(&capture, &dir.path("pinwatch.toml"));
    let context = format!("exit {}; {}\n{}", run.code, run.stderr, run.stdout);
    assert_eq!(run.code, 1, "{context}");
    let [alert] = &run.alerts[..] else {
        panic!("one alert expected: {context}");
    };
    assert_ecs_base(alert, "dns-answer-diverged");
    assert_eq!(
        ip_field(alert, "source.ip"),
        IpAddr::V4(DNS_V4),
        "{context}"
    );
    assert_eq!(
        ip_field(alert, "destination.ip"),
        TUNNEL_CLIENT.parse::<IpAddr>().unwrap(),
        "the inner packet's addresses: {context}"
    );
    assert_eq!(
        ip_list_field(alert, "pinwatch.unexpected_ips"),
        [IpAddr::V4(FORGED_V4)]
    );
    let summary = run.stderr.lines().last().unwrap_or_default();
    assert!(summary.contains(" 0 malformed"), "{context}");
}

/// An outer Ethernet + IPv4 header (protocol 47, checksum computed) and a
/// GRE header with `flags` (optional fields filled) and `protocol` around
/// `inner`.
fn gre_frame(flags: u16, protocol: u16, inner: &[u8]) -> Vec<u8> {
    let mut gre = flags.to_be_bytes().to_vec();
    gre.extend_from_slice(&protocol.to_be_bytes());
    for flag in [0x8000u16, 0x2000, 0x1000] {
        if flags & flag != 0 {
            gre.extend_from_slice(&[0, 0, 0, 7]);
        }
    }
    gre.extend_from_slice(inner);
    let total = (20 + gre.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[
        0, 0, 0x40, 0, 64, 47, 0, 0, 192, 168, 77, 1, 192, 168, 77, 2,
    ]);
    let sum: u32 = ip
        .chunks(2)
        .map(|word| u32::from(u16::from_be_bytes([word[0], word[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    ip[10..12].copy_from_slice(&(!((folded & 0xffff) + (folded >> 16)) as u16).to_be_bytes());
    let mut frame = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb, 0x08, 0x00];
    frame.extend(ip);
    frame.extend(gre);
    frame
}

/// GRE cannot be built on this kernel (no CONFIG_NET_IPGRE_DEMUX): the
/// attack tcpdump took in the lab is put inside GRE as a router's tunnel
/// (IP inside, with a key) and a switch's ERSPAN type II session (the whole
/// Ethernet frame inside) deliver it, and replay must find it all the same.
#[test]
fn replay_finds_the_attack_inside_gre_and_erspan() {
    let dir = Workdir::new("gre");
    let ethernet = capture_attack(&dir, "attack-ethernet.pcap", &["-i", "pw1"]);
    let (header, packets) = read_pcap(&ethernet);
    for way in ["gre", "erspan"] {
        let wrapped: Vec<PcapPacket<'static>> = packets
            .iter()
            .filter(|p| matches!(p.data.get(12..14), Some([0x08, 0x00] | [0x86, 0xdd])))
            .map(|p| {
                let data = wrap(way, &p.data);
                PcapPacket::new_owned(p.timestamp, data.len() as u32, data)
            })
            .collect();
        let capture = dir.path(&format!("attack-{way}.pcap"));
        write_pcap(&capture, header, &wrapped);
        assert_attack_found(&replay(&capture, &dir.path("pinwatch.toml")));
    }
}

/// An Ethernet frame as a GRE tunnel carries it (`gre`: the IP packet,
/// its EtherType as the GRE protocol, with a key) or an ERSPAN type II
/// session mirrors it (`erspan`: the whole frame, after a sequence number
/// and the ERSPAN header of session 5).
fn wrap(way: &str, frame: &[u8]) -> Vec<u8> {
    match way {
        "gre" => gre_frame(
            0x2000,
            u16::from_be_bytes([frame[12], frame[13]]),
            &frame[14..],
        ),
        _ => {
            let mut inner = vec![0x10, 0x00, 0x00, 0x05, 0, 0, 0, 0];
            inner.extend_from_slice(frame);
            gre_frame(0x1000, 0x88be, &inner)
        }
    }
}
