//! Writes the seed corpora, `corpus/<target>/seed-*`: a few well-formed
//! inputs per target, so the fuzzers start past the first length checks.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example make_corpus
//!
//! Kernel records are laid out from the `pinwatch_common` structs' own field
//! offsets, so a layout change is picked up by running this again.
use std::{
    fs,
    mem::{offset_of, size_of},
    path::Path,
    str::FromStr,
};

use etherparse::PacketBuilder;
use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME},
    },
};
use pinwatch_common::{
    ConnectEvent, DNS_CAPTURE_CLASSES, DnsPacketHeader, EVENT_KIND_CONNECT, EVENT_KIND_DNS_PACKET,
};

const CLIENT: [u8; 4] = [198, 51, 100, 10];
const RESOLVER: [u8; 4] = [198, 51, 100, 53];
const FORGED: [u8; 4] = [203, 0, 113, 66];

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let folder = dir.join(target);
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join(format!("seed-{name}")), bytes).unwrap();
    };

    let forged = response("db.lab.test", &[RData::A(A(FORGED.into()))]);
    let cname = response(
        "alias.lab.test",
        &[
            RData::CNAME(CNAME(Name::from_str("db.lab.test.").unwrap())),
            RData::A(A(FORGED.into())),
        ],
    );
    let v6 = response(
        "db.lab.test",
        &[RData::AAAA(AAAA("2001:db8:66::1".parse().unwrap()))],
    );
    let udp_forged = udp4(RESOLVER, CLIENT, &forged);
    let tcp_forged = tcp4(RESOLVER, CLIENT, &framed(&[&query(), &forged]));
    let udp_v6 = udp6(&v6);

    // Kernel records.
    write("decode_record", "connect-v4", &connect_record(2, &FORGED));
    write(
        "decode_record",
        "connect-v6",
        &connect_record(
            10,
            &[
                0x20, 0x01, 0x0d, 0xb8, 0, 0x66, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ],
        ),
    );
    write("decode_record", "dns-udp", &dns_record(&udp_forged, 0));
    write("decode_record", "dns-tcp", &dns_record(&tcp_forged, 1));

    // The DNS path: a flag byte (bit 0 egress, bit 1 truncated), then IP.
    for (name, packet) in [
        ("udp-forged", &udp_forged),
        ("udp-cname", &udp4(RESOLVER, CLIENT, &cname)),
        ("tcp-forged", &tcp_forged),
        ("udp6-aaaa", &udp_v6),
        ("udp-query", &udp4(CLIENT, RESOLVER, &query())),
    ] {
        let mut input = vec![0u8];
        input.extend_from_slice(packet);
        write("dns_path", name, &input);
    }

    // Reassembly script steps: [op][flow][seq or offset: 4][extra wire bytes][len], data.
    let step = |op: u8, flow: u8, number: u32, data: &[u8]| {
        let mut bytes = vec![op, flow];
        bytes.extend_from_slice(&number.to_be_bytes());
        bytes.push(0);
        bytes.push(u8::try_from(data.len()).expect("a step holds at most 255 bytes"));
        bytes.extend_from_slice(data);
        bytes
    };
    let stream = framed(&[&query(), &forged]);
    let (first, second) = stream.split_at(stream.len() / 2);
    let in_order = [
        step(0, 1, 1000, first),
        step(2, 1, 1000 + first.len() as u32, second),
    ]
    .concat();
    let out_of_order = [
        step(0, 1, 1000 + first.len() as u32, second),
        step(2, 1, 1000, first),
    ]
    .concat();
    write("reassembly", "tcp-split", &in_order);
    write("reassembly", "tcp-out-of-order", &out_of_order);
    let datagram = &udp_forged[20..];
    let (head, tail) = datagram.split_at(16);
    write(
        "reassembly",
        "fragments",
        &[step(3, 2, 0, head), step(1, 2, 16, tail)].concat(),
    );

    // detector_state scripts: [op] then the op's choices (see the target).
    // A query from a socket (cookie 0xa11) on leg 0, id 7 for db.lab.test,
    // then the answer to it: raw bytes, or structure-aware with a forged A
    // record and an OPT record.
    let ask = |id: u16, name_index: u8| {
        let mut step = vec![0, 0x40];
        step.extend_from_slice(&id.to_be_bytes());
        step.extend_from_slice(&[name_index, 0]);
        step
    };
    let raw = |bytes: &[u8]| {
        let mut step = vec![5, 0, 0];
        step.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        step.extend_from_slice(bytes);
        step
    };
    let forged_bytes = forged.to_vec().unwrap();
    write(
        "detector_state",
        "forged-answer",
        &[ask(7, 0), raw(&forged_bytes)].concat(),
    );
    // Response op: target 0, how 0, flags, 2 answers, counts true; record
    // 1: pointer to the question, A, IN, TTL, well-formed 203.0.113.66,
    // true RDLENGTH; record 2: pointer, OPT, IN, TTL, well-formed option.
    let structured = [
        ask(7, 0),
        vec![2, 0, 0, 0, 2, 0, 0, 0],
        vec![0, 0, 0, 30, 0, 1, 3],
        vec![0, 9, 0, 30, 0, 3],
        vec![0],
    ]
    .concat();
    write("detector_state", "forged-and-opt", &structured);
    // Issue 10's crash input, answering the query it matches (id 0x3333,
    // x.example A).
    write(
        "detector_state",
        "opt-answer",
        &[ask(0x3333, 4), raw(&OPT_ANSWER)].concat(),
    );
    // Past the startup grace (a 400 s tick), the same unasked by a socket
    // (a made-up target: choice 0x10, id, name), then asked and answered
    // twice: the unsolicited and conflicting paths.
    let mut unasked = vec![9, 200, 5, 0x10, 0x33, 0x33, 4, 0];
    unasked.extend_from_slice(&(OPT_ANSWER.len() as u16).to_be_bytes());
    unasked.extend_from_slice(&OPT_ANSWER);
    write(
        "detector_state",
        "opt-answer-unsolicited",
        &[unasked, ask(0x3333, 4), raw(&OPT_ANSWER), raw(&OPT_ANSWER)].concat(),
    );

    // Configuration.
    let example = fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/pinwatch.toml"))
        .expect("config/pinwatch.toml");
    write("config", "example", &example);
    write(
        "config",
        "small",
        b"[[database]]\nname = \"orders\"\nhostnames = [\"db.lab.test\"]\nports = [26257, 5432]\npinned = [\"192.0.2.0/24\", \"2001:db8::7\"]\nmode = \"block\"\n\n[dns]\ntrusted_resolvers = [\"10.0.0.2\"]\n\n[alerts]\nsink = \"file\"\npath = \"/var/log/pinwatch/alerts.ndjson\"\ndedup_window = \"60s\"\n\n[control]\nsocket = \"/run/pinwatch/pinwatch.sock\"\ngroup = \"pinwatch\"\n\n[metrics]\nlisten = \"127.0.0.1:9464\"\n",
    );

    // Control requests.
    write("control_request", "status", b"{\"command\":\"status\"}\n");
    write("control_request", "unknown", b"{\"command\":\"stop\"}");

    // Captures: pcap (Ethernet, raw IPv6) and pcapng (Linux cooked v2).
    let mut syn = Vec::new();
    PacketBuilder::ipv4(CLIENT, FORGED, 64)
        .tcp(40000, 26257, 1, 65535)
        .syn()
        .write(&mut syn, &[])
        .unwrap();
    let ethernet = |ip: &[u8]| {
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        frame.extend_from_slice(ip);
        frame
    };
    write(
        "replay_capture",
        "pcap-ethernet",
        &pcap(1, &[&ethernet(&udp_forged), &ethernet(&syn)]),
    );
    write("replay_capture", "pcap-raw6", &pcap(101, &[&udp_v6]));
    let sll2 = |ip: &[u8]| {
        let mut frame = vec![
            0x08, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        frame.extend_from_slice(ip);
        frame
    };
    write(
        "replay_capture",
        "pcapng-sll2",
        &pcapng(276, &[&sll2(&tcp_forged), &sll2(&syn)]),
    );
}

/// Issue 10's 50-byte response: x.example A, and an OPT record with 12
/// bytes of RDATA in the answer section.
const OPT_ANSWER: [u8; 50] = [
    0x33, 0x33, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, b'x', 7, b'e', b'x', b'a', b'm', b'p', b'l',
    b'e', 0, 0, 1, 0, 1, 0, 0x00, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x08,
    b'A', b'B', b'C', b'D', b'E', b'F', b'G', b'H',
];

fn query() -> Message {
    let mut message = Message::new();
    message
        .set_id(7)
        .set_message_type(MessageType::Query)
        .add_query(Query::query(
            Name::from_str("db.lab.test.").unwrap(),
            RecordType::A,
        ));
    message
}

fn response(question: &str, answers: &[RData]) -> Message {
    let mut message = Message::new();
    let mut owner = Name::from_str(question).unwrap();
    let qtype = match answers.last() {
        Some(RData::AAAA(_)) => RecordType::AAAA,
        _ => RecordType::A,
    };
    message
        .set_id(7)
        .set_message_type(MessageType::Response)
        .add_query(Query::query(owner.clone(), qtype));
    for data in answers {
        message.add_answer(Record::from_rdata(owner.clone(), 30, data.clone()));
        if let RData::CNAME(target) = data {
            owner = target.0.clone();
        }
    }
    message
}

fn framed(messages: &[&Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        let bytes = message.to_vec().unwrap();
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn udp4(src: [u8; 4], dst: [u8; 4], message: &Message) -> Vec<u8> {
    let (source_port, destination_port) = if src == RESOLVER {
        (53, 40000)
    } else {
        (40000, 53)
    };
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(source_port, destination_port)
        .write(&mut out, &message.to_vec().unwrap())
        .unwrap();
    out
}

fn udp6(message: &Message) -> Vec<u8> {
    let resolver = "2001:db8:51::53".parse::<std::net::Ipv6Addr>().unwrap();
    let client = "2001:db8:51::10".parse::<std::net::Ipv6Addr>().unwrap();
    let mut out = Vec::new();
    PacketBuilder::ipv6(resolver.octets(), client.octets(), 64)
        .udp(53, 40000)
        .write(&mut out, &message.to_vec().unwrap())
        .unwrap();
    out
}

fn tcp4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .tcp(53, 40000, 1000, 65535)
        .psh()
        .ack(1)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn put(record: &mut [u8], offset: usize, bytes: &[u8]) {
    record[offset..offset + bytes.len()].copy_from_slice(bytes);
}

fn connect_record(family: u32, address: &[u8]) -> Vec<u8> {
    let mut record = vec![0u8; size_of::<ConnectEvent>()];
    put(
        &mut record,
        offset_of!(ConnectEvent, kind),
        &EVENT_KIND_CONNECT.to_ne_bytes(),
    );
    put(
        &mut record,
        offset_of!(ConnectEvent, family),
        &family.to_ne_bytes(),
    );
    put(
        &mut record,
        offset_of!(ConnectEvent, timestamp_ns),
        &1_000_000u64.to_ne_bytes(),
    );
    put(
        &mut record,
        offset_of!(ConnectEvent, pid_tgid),
        &((4321u64 << 32) | 4325).to_ne_bytes(),
    );
    put(
        &mut record,
        offset_of!(ConnectEvent, uid_gid),
        &((100u64 << 32) | 1000).to_ne_bytes(),
    );
    put(&mut record, offset_of!(ConnectEvent, daddr), address);
    put(
        &mut record,
        offset_of!(ConnectEvent, dport),
        &26257u16.to_ne_bytes(),
    );
    put(&mut record, offset_of!(ConnectEvent, comm), b"psql");
    record
}

fn dns_record(ip_packet: &[u8], class: usize) -> Vec<u8> {
    let header = size_of::<DnsPacketHeader>();
    let mut record = vec![0u8; header + DNS_CAPTURE_CLASSES[class]];
    let len = (ip_packet.len() as u32).to_ne_bytes();
    put(
        &mut record,
        offset_of!(DnsPacketHeader, kind),
        &EVENT_KIND_DNS_PACKET.to_ne_bytes(),
    );
    put(
        &mut record,
        offset_of!(DnsPacketHeader, timestamp_ns),
        &1_000_000u64.to_ne_bytes(),
    );
    put(&mut record, offset_of!(DnsPacketHeader, packet_len), &len);
    put(&mut record, offset_of!(DnsPacketHeader, captured_len), &len);
    put(&mut record, header, ip_packet);
    record
}

/// Little-endian microsecond pcap.
fn pcap(link_type: u32, frames: &[&[u8]]) -> Vec<u8> {
    let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    file.extend_from_slice(&262_144u32.to_le_bytes());
    file.extend_from_slice(&link_type.to_le_bytes());
    for (i, frame) in frames.iter().enumerate() {
        file.extend_from_slice(&1_790_000_000u32.to_le_bytes());
        file.extend_from_slice(&(i as u32 * 1000).to_le_bytes());
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(frame);
    }
    file
}

/// Little-endian pcapng: section header, one interface, enhanced packets.
fn pcapng(link_type: u32, frames: &[&[u8]]) -> Vec<u8> {
    fn block(file: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        file.extend_from_slice(&kind.to_le_bytes());
        file.extend_from_slice(&total.to_le_bytes());
        file.extend_from_slice(body);
        file.resize(file.len() + padded - body.len(), 0);
        file.extend_from_slice(&total.to_le_bytes());
    }
    let mut file = Vec::new();
    let mut section = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    section.extend_from_slice(&[1, 0, 0, 0]);
    section.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut file, 0x0a0d_0d0a, &section);
    let mut interface = (link_type as u16).to_le_bytes().to_vec();
    interface.extend_from_slice(&[0, 0]);
    interface.extend_from_slice(&262_144u32.to_le_bytes());
    block(&mut file, 1, &interface);
    for (i, frame) in frames.iter().enumerate() {
        let micros = 1_790_000_000_000_000u64 + i as u64 * 1000;
        let mut packet = 0u32.to_le_bytes().to_vec();
        packet.extend_from_slice(&((micros >> 32) as u32).to_le_bytes());
        packet.extend_from_slice(&(micros as u32).to_le_bytes());
        packet.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        packet.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        packet.extend_from_slice(frame);
        block(&mut file, 6, &packet);
    }
    file
}
