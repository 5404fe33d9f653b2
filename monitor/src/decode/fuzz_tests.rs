//! Garbage in, errors out: a deterministic random walk over inputs that must
//! never panic. Inputs are biased towards the shapes each layer accepts, so
//! the walk gets past the first length check and into hickory's parser.
use std::{mem::size_of, time::SystemTime};

use pinwatch_common::{ConnectEvent as RawConnect, DNS_CAPTURE_CLASSES, DnsPacketHeader};

use super::test_packets::*;
use super::*;
use crate::event::Direction;

/// xorshift64*: enough randomness for a smoke fuzz, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    /// Flips a few random bytes of `base` and maybe cuts it short.
    fn mutate(&mut self, base: &[u8]) -> Vec<u8> {
        let mut out = base.to_vec();
        for _ in 0..=self.below(4) {
            let i = self.below(out.len());
            out[i] = self.next() as u8;
        }
        if self.below(4) == 0 {
            out.truncate(self.below(out.len() + 1));
        }
        out
    }
}

#[test]
fn random_records_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let clock = Clock::fixed(SystemTime::UNIX_EPOCH);
    let header = size_of::<DnsPacketHeader>();
    let [small, medium, large] = DNS_CAPTURE_CLASSES;
    let sizes = [
        0,
        3,
        4,
        79,
        size_of::<RawConnect>(),
        header,
        header + small,
        header + small + 8,
        header + medium,
        header + large - 8,
        header + large,
        1500,
    ];
    let mut decoded = (0, 0);
    let mut dns_classes = [0; DNS_CAPTURE_CLASSES.len()];
    for _ in 0..6000 {
        let len = sizes[rng.below(sizes.len())];
        let mut bytes = rng.bytes(len);
        if bytes.len() >= 8 {
            // Valid kinds, and sometimes valid flags or family, reach the
            // field checks.
            bytes[..4].copy_from_slice(&(1 + rng.below(2) as u32).to_ne_bytes());
            if rng.below(2) == 0 {
                bytes[4..8].copy_from_slice(&[2u32, 10, 0, 1, 3][rng.below(5)].to_ne_bytes());
            }
        }
        let class = bytes.len().checked_sub(header);
        if class.is_some_and(|class| DNS_CAPTURE_CLASSES.contains(&class)) && rng.below(2) == 0 {
            // Plausible lengths (packet_len, captured_len at 32 and 36), now
            // and then just past the class.
            let class = class.unwrap_or_default();
            let captured = rng.below(class + 2) as u32;
            let packet = captured + rng.below(100) as u32;
            bytes[32..36].copy_from_slice(&packet.to_ne_bytes());
            bytes[36..40].copy_from_slice(&captured.to_ne_bytes());
        }
        if bytes.len() == size_of::<RawConnect>() && rng.below(2) == 0 {
            // Known actions now and then (and one unknown), so connect
            // records get past the action check.
            let at = std::mem::offset_of!(RawConnect, action);
            bytes[at..at + 4].copy_from_slice(&[0u32, 1, 2][rng.below(3)].to_ne_bytes());
        }
        // At an odd address too, same bytes.
        let start = rng.below(2);
        let mut buffer = vec![0u8; start + bytes.len()];
        buffer[start..].copy_from_slice(&bytes);
        match decode_record(&buffer[start..], &clock) {
            Ok(Record::Dns(packet)) => {
                decoded.0 += 1;
                // Only whole records of a class decode, and never yield more
                // than the class holds.
                let class = bytes.len().saturating_sub(header);
                let index = DNS_CAPTURE_CLASSES.iter().position(|&c| c == class);
                assert!(index.is_some(), "decoded a {class}-byte data area");
                dns_classes[index.unwrap_or_default()] += 1;
                assert!(packet.ip_packet.len() <= class);
                let _ = dns_events(&packet);
            }
            Ok(Record::Connect(_)) => decoded.1 += 1,
            Ok(Record::DnsOwner(_) | Record::DnsSent(_)) => {}
            Ok(Record::DbSegment(packet)) => {
                assert!(packet.ip_packet.len() <= pinwatch_common::DB_SEGMENT_BYTES);
                let _ = crate::decode::db_segment_event(&packet);
            }
            Err(_) => {}
        }
    }
    assert!(
        decoded.0 > 10 && decoded.1 > 10,
        "decoded (dns, connect) {decoded:?}"
    );
    assert!(
        dns_classes.iter().all(|&n| n > 20),
        "decoded DNS records per class {dns_classes:?}"
    );
}

#[test]
fn random_packets_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let response = a_response(1, "db.example.com.", &[[10, 0, 0, 1], [10, 0, 0, 2]]);
    let seeds = [
        udp4(
            [10, 0, 0, 53],
            [10, 0, 0, 2],
            (53, 40000),
            &response.to_vec().unwrap(),
        ),
        udp6(
            "fd00::53".parse().unwrap(),
            "fd00::2".parse().unwrap(),
            (53, 40000),
            &response.to_vec().unwrap(),
        ),
        tcp4(
            [10, 0, 0, 53],
            [10, 0, 0, 2],
            (53, 40000),
            &framed(&[&response, &response]),
        ),
    ];
    let (mut parsed, mut dns_errors) = (0, 0);
    for i in 0..20_000 {
        let input = match i % 4 {
            // Pure noise behind a plausible version nibble.
            0 => {
                let len = rng.below(200);
                let mut b = rng.bytes(len);
                if let Some(first) = b.first_mut() {
                    *first = if rng.below(2) == 0 { 0x45 } else { 0x60 };
                }
                b
            }
            _ => {
                let seed = &seeds[rng.below(seeds.len())];
                rng.mutate(seed)
            }
        };
        let truncated = rng.below(2) == 0;
        match parse_ip_dns(&input, meta(Direction::Ingress, truncated)) {
            Ok(events) => parsed += events.len(),
            Err(
                DecodeError::Dns { .. }
                | DecodeError::Truncated {
                    layer: "DNS message",
                    ..
                },
            ) => dns_errors += 1,
            Err(_) => {}
        }
    }
    // The walk must reach hickory, not stop at the IP header every time.
    assert!(
        parsed > 100 && dns_errors > 100,
        "parsed {parsed}, DNS errors {dns_errors}"
    );
}
