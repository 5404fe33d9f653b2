//! Userspace cost per DNS message of TCP reassembly (framing included, DNS
//! parse excluded), and the memory bound of the reassembly tables under a
//! flood. Goal: under 1 µs per message. Run alone with
//! `cargo bench -p pinwatch --bench reassembly`.
//!
//! The flood check runs first and prints one line: one million segments
//! of distinct TCP flows (a reply with a random id and port each, never
//! finished) and one million first fragments of distinct datagrams, with
//! the most bytes the tables held at any moment. It panics if the bound is
//! exceeded.
use std::{
    hint::black_box,
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use criterion::{Criterion, criterion_group, criterion_main};
use pinwatch::reassembly::{
    fragments::{DatagramKey, Fragment, FragmentLimits, FragmentTable},
    tcp::{FlowKey, Limits, Segment, TcpReassembler},
};

/// A length-prefixed DNS-sized message (the bytes do not matter here).
fn framed(len: usize, fill: u8) -> Vec<u8> {
    let mut bytes = (len as u16).to_be_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(fill, len));
    bytes
}

fn key(port: u16, cookie: u64) -> FlowKey {
    FlowKey {
        source: "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
        destination: SocketAddr::new("198.51.100.10".parse().unwrap(), port),
        socket_cookie: cookie,
    }
}

fn flood() {
    let limits = Limits::default();
    let frag_limits = FragmentLimits::default();
    let mut tcp = TcpReassembler::new(limits);
    let mut fragments = FragmentTable::new(frag_limits);
    // xorshift: deterministic "random" ids and ports.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let partial = framed(120, 7);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (mut tcp_peak, mut frag_peak) = (0, 0);
    for i in 0..1_000_000u64 {
        let r = next();
        // Each reply's first 100 bytes: a message that never completes.
        let segment = Segment {
            seq: r as u32,
            payload: &partial[..100],
            wire_len: 100,
            fin: false,
            rst: false,
            timestamp: t0 + Duration::from_micros(i),
        };
        tcp.push(key(r as u16, i), segment);
        tcp_peak = tcp_peak.max(tcp.buffered_bytes());
        let fragment = Fragment {
            offset: 0,
            more_fragments: true,
            data: &partial,
            wire_len: partial.len(),
            timestamp: t0 + Duration::from_micros(i),
        };
        let datagram = DatagramKey {
            source: "192.0.2.53".parse().unwrap(),
            destination: "198.51.100.10".parse().unwrap(),
            id: (r >> 32) as u32,
        };
        fragments.push(datagram, fragment);
        frag_peak = frag_peak.max(fragments.buffered_bytes());
    }
    assert!(tcp_peak <= limits.total_bytes && tcp.flow_count() <= limits.flows);
    assert!(frag_peak <= frag_limits.total_bytes);
    println!(
        "flood of 1,000,000 replies: TCP reassembly peak {tcp_peak} bytes in at most {} flows \
         (bound {} bytes, {} flows; {} flows evicted), fragment table peak {frag_peak} bytes \
         (bound {} bytes, {} datagrams; {} evicted)",
        tcp.flow_count(),
        limits.total_bytes,
        limits.flows,
        tcp.stats().flows_evicted,
        frag_limits.total_bytes,
        frag_limits.datagrams,
        fragments.stats().datagrams_evicted,
    );
}

fn per_message(c: &mut Criterion) {
    flood();
    let message = framed(120, 1);
    let mut group = c.benchmark_group("reassembly");
    group.throughput(criterion::Throughput::Elements(1));
    // One message per segment, in order: the common case.
    group.bench_function("tcp_one_message_per_segment", |b| {
        let mut tcp = TcpReassembler::default();
        let mut seq = 0u32;
        let now = SystemTime::UNIX_EPOCH;
        b.iter(|| {
            let out = tcp.push(
                key(40000, 1),
                Segment {
                    seq,
                    payload: black_box(&message),
                    wire_len: message.len(),
                    fin: false,
                    rst: false,
                    timestamp: now,
                },
            );
            seq = seq.wrapping_add(message.len() as u32);
            black_box(out)
        });
    });
    // The length prefix and the message in separate segments (two pushes
    // per message).
    group.bench_function("tcp_message_split_in_two", |b| {
        let mut tcp = TcpReassembler::default();
        let mut seq = 0u32;
        let now = SystemTime::UNIX_EPOCH;
        b.iter(|| {
            for part in [&message[..2], &message[2..]] {
                let out = tcp.push(
                    key(40000, 1),
                    Segment {
                        seq,
                        payload: black_box(part),
                        wire_len: part.len(),
                        fin: false,
                        rst: false,
                        timestamp: now,
                    },
                );
                seq = seq.wrapping_add(part.len() as u32);
                black_box(out);
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = per_message
}
criterion_main!(benches);
