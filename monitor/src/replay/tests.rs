//! Replays of captures built here: the rules a capture can show, benign
//! traffic, and files cut or corrupted at every kind of place.
use std::{
    borrow::Cow,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use etherparse::PacketBuilder;
use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{Name, RData, Record, RecordType, rdata::A},
};
use pcap_file::{
    DataLink,
    pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::EnhancedPacketBlock,
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
        },
    },
};

use super::*;
use crate::{alert::Rule, config::HostDefaults};

const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["db.lab.test"]
ports = [26257]
pinned = ["192.0.2.0/24"]
"#;

const CLIENT: [u8; 4] = [198, 51, 100, 10];
const RESOLVER: [u8; 4] = [198, 51, 100, 53];
const FORGED: [u8; 4] = [203, 0, 113, 66];
const PINNED: [u8; 4] = [192, 0, 2, 7];
/// 2026-09-21T14:13:20Z
const T0: u64 = 1_790_000_000;

fn config() -> Config {
    Config::from_toml(CONFIG, None, &HostDefaults::default()).unwrap()
}

fn at(micros: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_micros(micros)
}

fn response(id: u16, name: &str, address: [u8; 4]) -> Vec<u8> {
    let name = Name::from_str(name).unwrap();
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Response)
        .add_query(Query::query(name.clone(), RecordType::A))
        .add_answer(Record::from_rdata(name, 30, RData::A(A(address.into()))));
    message.to_vec().unwrap()
}

fn ethernet_udp(src: [u8; 4], dst: [u8; 4], ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .udp(ports.0, ports.1);
    let mut out = Vec::new();
    builder.write(&mut out, payload).unwrap();
    out
}

fn ethernet_syn(src: [u8; 4], dst: [u8; 4], port: u16) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(40000, port, 1, 65535)
        .syn();
    let mut out = Vec::new();
    builder.write(&mut out, &[]).unwrap();
    out
}

/// A little-endian microsecond pcap of Ethernet frames at the given times.
fn pcap(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&262_144u32.to_le_bytes());
    file.extend_from_slice(&1u32.to_le_bytes());
    for (micros, frame) in frames {
        file.extend_from_slice(&((T0 + micros / 1_000_000) as u32).to_le_bytes());
        file.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(frame);
    }
    file
}

/// The attack: a forged answer for the database's name, then the client's
/// SYN to the forged address.
fn attack() -> Vec<(u64, Vec<u8>)> {
    vec![
        (
            10,
            ethernet_udp(
                RESOLVER,
                CLIENT,
                (53, 40000),
                &response(7, "db.lab.test", FORGED),
            ),
        ),
        (20, ethernet_syn(CLIENT, FORGED, 26257)),
    ]
}

fn run(file: &[u8]) -> (Outcome, Vec<Alert>) {
    let mut alerts = Vec::new();
    let outcome = replay(file, &config(), |alert| alerts.push(alert.clone()));
    (outcome, alerts)
}

#[test]
fn a_forged_answer_and_the_connect_that_follows_raise_both_rules() {
    let (outcome, alerts) = run(&pcap(&attack()));
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.summary.packets, 2);
    assert_eq!(outcome.summary.dns_messages, 1);
    assert_eq!(outcome.summary.connects, 1);
    assert_eq!(outcome.summary.alerts, 2);
    assert_eq!(outcome.summary.malformed, 0);
    let [dns, peer] = &alerts[..] else {
        panic!("two alerts expected: {alerts:#?}");
    };
    assert_eq!(dns.rule, Rule::DnsAnswerDiverged);
    assert_eq!(dns.timestamp, at(10), "the packet's own time");
    assert_eq!(dns.database.as_deref(), Some("orders"));
    let facts = dns.dns.as_ref().unwrap();
    assert_eq!(facts.question_name, "db.lab.test");
    assert_eq!(dns.unexpected_ips, [IpAddr::from(FORGED)]);

    assert_eq!(peer.rule, Rule::UnexpectedDbPeer);
    assert_eq!(peer.timestamp, at(20));
    assert_eq!(peer.database.as_deref(), Some("orders"));
    assert_eq!(
        peer.destination,
        Some((Ipv4Addr::from(FORGED), 26257).into())
    );
    assert_eq!(peer.destination_domain.as_deref(), Some("db.lab.test"));
    assert!(peer.message.contains("process unknown"), "{}", peer.message);

    // The ECS line carries no made-up process.
    let agent = crate::alert::AgentInfo {
        host_name: "h".into(),
        version: "0".into(),
    };
    let line: serde_json::Value =
        serde_json::from_str(&crate::alert::encode(peer, &agent, "x")).unwrap();
    assert!(
        line.get("process").is_none() && line.get("user").is_none(),
        "{line}"
    );
    assert_eq!(line["@timestamp"], "2026-09-21T14:13:20.000020Z");
}

#[test]
fn pinned_answers_and_connects_raise_nothing() {
    let frames = vec![
        (
            10,
            ethernet_udp(
                RESOLVER,
                CLIENT,
                (53, 40000),
                &response(7, "db.lab.test", PINNED),
            ),
        ),
        (20, ethernet_syn(CLIENT, PINNED, 26257)),
        // A SYN to a port nobody watches, and a forged answer for a name
        // nobody configured.
        (30, ethernet_syn(CLIENT, FORGED, 22)),
        (
            40,
            ethernet_udp(
                RESOLVER,
                CLIENT,
                (53, 40001),
                &response(8, "www.lab.test", FORGED),
            ),
        ),
    ];
    let (outcome, alerts) = run(&pcap(&frames));
    assert_eq!(outcome.error, None);
    assert!(alerts.is_empty(), "{alerts:#?}");
    assert_eq!(outcome.summary.packets, 4);
    assert_eq!(outcome.summary.dns_messages, 2);
    assert_eq!(outcome.summary.connects, 1);
}

#[test]
fn repeats_are_folded_as_in_the_daemon() {
    let answer = response(7, "db.lab.test", FORGED);
    let frames: Vec<_> = (0..5)
        .map(|i| {
            (
                i * 1_000_000,
                ethernet_udp(RESOLVER, CLIENT, (53, 40000), &answer),
            )
        })
        .collect();
    let (outcome, alerts) = run(&pcap(&frames));
    assert_eq!(outcome.summary.alerts, 5);
    // The first at once, the four repeats in one summary at the end.
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(outcome.summary.alert_lines, 2);
    assert_eq!(alerts[1].repeats.as_ref().unwrap().count, 4);
}

#[test]
fn pcapng_timestamps_follow_the_interface_resolution() {
    let (outcome, alerts) = run(&attack_pcapng(9));
    assert_eq!(outcome.error, None);
    let times: Vec<_> = alerts.iter().map(|a| a.timestamp).collect();
    assert_eq!(times, [at(10), at(20)]);
}

#[test]
fn a_cut_capture_names_the_offset_of_the_broken_record_and_keeps_earlier_alerts() {
    let file = pcap(&attack());
    let second_record = 24 + 16 + attack()[0].1.len();
    for cut in 0..file.len() {
        let (outcome, alerts) = run(&file[..cut]);
        let error = outcome.error.unwrap_or_else(|| {
            // Cut exactly between records: a shorter, valid file.
            assert!(cut == 24 || cut == second_record, "cut at {cut} read clean");
            CaptureError::TooShort { len: 0 }
        });
        let expected_offset = if cut < 24 {
            0
        } else if cut < second_record {
            24
        } else {
            second_record
        };
        if cut != 24 && cut != second_record {
            assert_eq!(error.offset(), expected_offset, "cut at {cut}: {error}");
            assert!(
                error
                    .to_string()
                    .contains(&format!("offset {expected_offset}")),
                "{error}"
            );
        }
        // The forged answer before the cut is still reported.
        assert_eq!(
            alerts.len(),
            usize::from(cut >= second_record),
            "cut at {cut}"
        );
    }
}

#[test]
fn garbage_magic_and_huge_records_are_refused_with_their_offset() {
    let (outcome, _) = run(b"GARBAGE GARBAGE GARBAGE GARBAGE");
    let error = outcome.error.unwrap();
    assert!(
        matches!(error, CaptureError::UnknownFormat { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("0x47415242"), "{error}");

    let mut file = pcap(&attack());
    // The first record's captured length: 4 GiB - 1.
    file[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let error = run(&file).0.error.unwrap();
    assert_eq!(
        error,
        CaptureError::RecordTooLong {
            offset: 24,
            len: u64::from(u32::MAX),
            limit: 262_144
        }
    );

    // pcapng with a block length past the end of the file.
    let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![],
        })
        .unwrap();
    let mut file = writer.into_inner();
    let idb = file.len() - 20;
    file[idb + 4..idb + 8].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let error = run(&file).0.error.unwrap();
    assert!(
        matches!(error, CaptureError::RecordTooLong { offset, .. } if offset == idb),
        "{error}"
    );
}

#[test]
fn random_corruption_never_panics() {
    let clean = pcap(&attack());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let mut file = clean.clone();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state as usize) % file.len();
            file[i] = (state >> 32) as u8;
        }
        let _ = run(&file);
    }
}

/// Block starts of a little-endian pcapng file, walked by their lengths.
fn block_starts(file: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < file.len() {
        starts.push(at);
        at += u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
    }
    starts
}

/// The attack as pcapng, timestamps in units of 10^-`resolution` s.
fn attack_pcapng(resolution: u8) -> Vec<u8> {
    let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![InterfaceDescriptionOption::IfTsResol(resolution)],
        })
        .unwrap();
    for (micros, frame) in attack() {
        let units = (T0 * 1_000_000 + micros) * 10u64.pow(u32::from(resolution) - 6);
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                // pcap-file writes the raw 64-bit count as given.
                timestamp: Duration::from_nanos(units),
                original_len: frame.len() as u32,
                data: Cow::Owned(frame),
                options: vec![],
            })
            .unwrap();
    }
    writer.into_inner()
}

#[test]
fn a_cut_pcapng_says_truncated_at_the_offset_of_the_cut_block() {
    let file = attack_pcapng(6);
    let starts = block_starts(&file);
    assert_eq!(starts.len(), 4, "section, interface, two packets");
    for cut in 4..file.len() {
        let (outcome, alerts) = run(&file[..cut]);
        if starts.contains(&cut) && cut >= starts[1] {
            assert_eq!(outcome.error, None, "cut at {cut}, between blocks");
            continue;
        }
        let start = *starts.iter().rfind(|&&start| start <= cut).unwrap();
        // A section header's length is read in the byte order its magic
        // (bytes 8 to 12) announces.
        let known = if start == 0 { 12 } else { 8 };
        let declared = if cut - start >= known {
            u32::from_le_bytes(file[start + 4..start + 8].try_into().unwrap()) as usize
        } else {
            12
        };
        let error = outcome.error.unwrap();
        assert_eq!(
            error,
            CaptureError::Truncated {
                offset: start,
                what: if start == 0 {
                    "section header block"
                } else {
                    "block"
                }
                .into(),
                needed: declared,
                present: cut - start,
            },
            "cut at {cut}"
        );
        let text = error.to_string();
        assert!(
            text.contains(&format!("truncated at offset {start}:")),
            "cut at {cut}: {text}"
        );
        assert_eq!(alerts.len(), usize::from(cut > starts[3]), "cut at {cut}");
    }
}

/// A block that is all there but whose option runs out inside it is
/// corrupt, not cut.
#[test]
fn a_whole_pcapng_block_with_a_short_option_is_corrupt_not_truncated() {
    let mut file = attack_pcapng(6);
    let idb = block_starts(&file)[1];
    // if_tsresol (code 9) with a length of 0: pcap-file asks for more bytes.
    let option = idb + 16;
    assert_eq!(file[option..option + 2], [9, 0]);
    file[option + 2..option + 4].copy_from_slice(&0u16.to_le_bytes());
    let error = run(&file).0.error.unwrap();
    assert!(
        matches!(&error, CaptureError::Corrupt { offset, .. } if *offset == idb),
        "{error}"
    );
}

/// Zeros where records should be (a hole in a sparse file) are refused at
/// the first of them, not read on to the end.
#[test]
fn zeros_after_the_file_header_are_corrupt() {
    let mut file = pcap(&attack());
    let end = file.len();
    file.resize(end + 4096, 0);
    let (outcome, alerts) = run(&file);
    let error = outcome.error.unwrap();
    assert!(
        matches!(&error, CaptureError::Corrupt { offset, .. } if *offset == end),
        "{error}"
    );
    assert_eq!(alerts.len(), 2, "the records before the hole are judged");
    // pcapng: a block of type 0 and length 0.
    let mut file = attack_pcapng(6);
    let end = file.len();
    file.resize(end + 4096, 0);
    let error = run(&file).0.error.unwrap();
    assert!(
        matches!(&error, CaptureError::Corrupt { offset, .. } if *offset == end),
        "{error}"
    );
}

/// A forged answer for `first` reached through a CNAME to `second`.
fn chained_response(first: &str, second: &str) -> Vec<u8> {
    let (first, second) = (
        Name::from_str(first).unwrap(),
        Name::from_str(second).unwrap(),
    );
    let mut message = Message::new();
    message
        .set_id(9)
        .set_message_type(MessageType::Response)
        .add_query(Query::query(first.clone(), RecordType::A))
        .add_answer(Record::from_rdata(
            first,
            30,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(second.clone())),
        ))
        .add_answer(Record::from_rdata(second, 30, RData::A(A(FORGED.into()))));
    message.to_vec().unwrap()
}

#[test]
fn a_chain_through_two_configured_names_is_one_detection() {
    let answer = chained_response("db.lab.test", "db2.lab.test");
    let frames = vec![(10, ethernet_udp(RESOLVER, CLIENT, (53, 40000), &answer))];
    for (toml, lines) in [
        // Both names one database's: one line.
        (
            "[[database]]\nname = \"orders\"\nhostnames = [\"db.lab.test\", \"db2.lab.test\"]\npinned = [\"192.0.2.0/24\"]\n",
            1,
        ),
        // Two databases: a line for each, one detection still.
        (
            "[[database]]\nname = \"orders\"\nhostnames = [\"db.lab.test\"]\npinned = [\"192.0.2.0/24\"]\n\
             [[database]]\nname = \"billing\"\nhostnames = [\"db2.lab.test\"]\npinned = [\"192.0.2.0/24\"]\n",
            2,
        ),
    ] {
        let config = Config::from_toml(toml, None, &HostDefaults::default()).unwrap();
        let mut alerts = Vec::new();
        let outcome = replay(&pcap(&frames), &config, |alert| alerts.push(alert.clone()));
        assert_eq!(outcome.summary.alerts, 1, "{alerts:#?}");
        assert_eq!(alerts.len(), lines, "{alerts:#?}");
        assert!(alerts.iter().all(|a| a.rule == Rule::DnsAnswerDiverged));
        assert!(alerts.iter().all(|a| a.repeats.is_none()), "{alerts:#?}");
    }
}

/// Each message that does not decode, or decodes only up to a fault, is
/// counted; one for a configured hostname is judged and raised.
#[test]
fn every_malformed_message_is_counted_and_raised_for_a_configured_name() {
    let good = response(7, "db.lab.test", PINNED);
    // Shorter than a DNS header.
    let garbage = [0xff; 8];
    // ARCOUNT overstated by one: a stub resolver takes the answer.
    let mut overstated = response(8, "db.lab.test", PINNED);
    overstated[11] += 1;
    // Over TCP: garbage, a good message, garbage, in one segment.
    let mut stream = Vec::new();
    for message in [&garbage[..], &good, &garbage] {
        stream.extend_from_slice(&(message.len() as u16).to_be_bytes());
        stream.extend_from_slice(message);
    }
    let mut tcp = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(RESOLVER, CLIENT, 64)
        .tcp(53, 40000, 1, 65535)
        .write(&mut tcp, &stream)
        .unwrap();
    let frames = vec![
        (10, ethernet_udp(RESOLVER, CLIENT, (53, 40000), &garbage)),
        (20, tcp),
        // Too short for Ethernet.
        (30, vec![0; 6]),
        (40, ethernet_udp(RESOLVER, CLIENT, (53, 40001), &overstated)),
    ];
    let (outcome, alerts) = run(&pcap(&frames));
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.summary.dns_messages, 2, "{}", outcome.summary);
    assert_eq!(outcome.summary.malformed, 5, "{}", outcome.summary);
    let [alert] = &alerts[..] else {
        panic!("one alert, for the overstated answer: {alerts:#?}");
    };
    assert_eq!(alert.rule, Rule::DnsAnswerDiverged);
    assert!(alert.malformed.is_some(), "{alert:#?}");
    assert_eq!(alert.timestamp, at(40));
}
