use std::time::{Duration, SystemTime};

use super::*;

fn key(cookie: u64) -> FlowKey {
    FlowKey {
        source: "192.0.2.53:53".parse().unwrap(),
        destination: "198.51.100.10:40000".parse().unwrap(),
        socket_cookie: cookie,
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn seg(seq: u32, payload: &[u8]) -> Segment<'_> {
    Segment {
        seq,
        payload,
        wire_len: payload.len(),
        fin: false,
        rst: false,
        timestamp: at(1),
    }
}

/// Messages `[n; len]` with their length prefixes, concatenated.
fn stream(lens: &[(u8, usize)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for &(fill, len) in lens {
        bytes.extend_from_slice(&(len as u16).to_be_bytes());
        bytes.extend(std::iter::repeat_n(fill, len));
    }
    bytes
}

fn messages(out: &[Output]) -> Vec<(u8, usize)> {
    out.iter()
        .map(|o| match o {
            Output::Message(m) => (m[0], m.len()),
            Output::Cut { announced } => (0, *announced),
        })
        .collect()
}

#[test]
fn several_messages_in_one_segment() {
    let mut r = TcpReassembler::default();
    let bytes = stream(&[(1, 30), (2, 40)]);
    let out = r.push(key(1), seg(1000, &bytes));
    assert_eq!(messages(&out), [(1, 30), (2, 40)]);
    assert_eq!(r.buffered_bytes(), 0);
}

#[test]
fn one_message_over_segments_even_the_prefix() {
    let mut r = TcpReassembler::default();
    let bytes = stream(&[(7, 100)]);
    assert!(r.push(key(1), seg(5, &bytes[..1])).is_empty());
    assert!(r.push(key(1), seg(6, &bytes[1..2])).is_empty());
    assert!(r.push(key(1), seg(7, &bytes[2..50])).is_empty());
    let out = r.push(key(1), seg(55, &bytes[50..]));
    assert_eq!(messages(&out), [(7, 100)]);
}

#[test]
fn out_of_order_and_retransmitted_segments() {
    let mut r = TcpReassembler::default();
    let bytes = stream(&[(1, 20), (2, 20)]);
    // Second half first, then a retransmission of it, then the start.
    assert!(r.push(key(1), seg(100 + 30, &bytes[30..])).is_empty());
    assert!(r.push(key(1), seg(100 + 30, &bytes[30..])).is_empty());
    let out = r.push(key(1), seg(100, &bytes[..30]));
    assert_eq!(messages(&out), [(1, 20), (2, 20)]);
    // A retransmission of framed bytes yields nothing again.
    assert!(r.push(key(1), seg(100, &bytes[..30])).is_empty());
    // Overlapping segment: the new part only.
    let more = stream(&[(3, 10)]);
    let mut overlap = bytes[40..].to_vec();
    overlap.extend_from_slice(&more);
    let out = r.push(key(1), seg(140, &overlap));
    assert_eq!(messages(&out), [(3, 10)]);
}

#[test]
fn first_arrival_wins_on_a_repeated_segment() {
    let mut r = TcpReassembler::default();
    let genuine = stream(&[(1, 10)]);
    let mut forged = genuine.clone();
    forged[5] = 9;
    assert!(r.push(key(1), seg(10, &genuine[..2])).is_empty());
    assert!(r.push(key(1), seg(13, &genuine[3..])).is_empty());
    // Same start, different bytes: the copy that arrived first is kept.
    assert!(r.push(key(1), seg(13, &forged[3..])).is_empty());
    let out = r.push(key(1), seg(12, &genuine[2..3]));
    assert_eq!(out, [Output::Message(genuine[2..].to_vec())]);
}

#[test]
fn sequence_numbers_wrap() {
    let mut r = TcpReassembler::default();
    let bytes = stream(&[(4, 20)]);
    let start = u32::MAX - 5;
    assert!(r.push(key(1), seg(start, &bytes[..10])).is_empty());
    let out = r.push(key(1), seg(start.wrapping_add(10), &bytes[10..]));
    assert_eq!(messages(&out), [(4, 20)]);
}

#[test]
fn flows_are_kept_apart_by_cookie() {
    let mut r = TcpReassembler::default();
    let a = stream(&[(1, 10)]);
    let b = stream(&[(2, 10)]);
    assert!(r.push(key(1), seg(0, &a[..5])).is_empty());
    assert!(r.push(key(2), seg(0, &b[..5])).is_empty());
    assert_eq!(messages(&r.push(key(2), seg(5, &b[5..]))), [(2, 10)]);
    assert_eq!(messages(&r.push(key(1), seg(5, &a[5..]))), [(1, 10)]);
}

#[test]
fn a_cut_segment_is_a_gap_not_data() {
    let mut r = TcpReassembler::default();
    let bytes = stream(&[(1, 2000), (2, 30)]);
    // The kernel copied 1300 of the segment's 2002 payload bytes.
    let mut cut = seg(0, &bytes[..1300]);
    cut.wire_len = 2002;
    assert_eq!(r.push(key(1), cut), [Output::Cut { announced: 2000 }]);
    // Framing resumes at the next message.
    let out = r.push(key(1), seg(2002, &bytes[2002..]));
    assert_eq!(messages(&out), [(2, 30)]);
    assert_eq!(r.stats().messages_cut, 1);
}

#[test]
fn a_gap_over_a_boundary_gives_the_flow_up() {
    let mut r = TcpReassembler::default();
    let bytes = stream(&[(1, 10), (2, 10), (3, 10)]);
    let mut cut = seg(0, &bytes[..5]);
    cut.wire_len = 20;
    assert!(messages(&r.push(key(1), cut)).is_empty());
    assert!(r.push(key(1), seg(20, &bytes[20..])).is_empty());
    assert_eq!(r.stats().flows_desynced, 1);
    assert_eq!(r.buffered_bytes(), 0);
}

#[test]
fn fin_and_rst_close_flows_and_idle_ones_expire() {
    let mut r = TcpReassembler::default();
    let bytes = stream(&[(1, 10)]);
    let mut fin = seg(0, &bytes);
    fin.fin = true;
    assert_eq!(messages(&r.push(key(1), fin)), [(1, 10)]);
    assert_eq!(r.flow_count(), 0);
    r.push(key(2), seg(0, &bytes[..4]));
    assert_eq!(r.flow_count(), 1);
    let mut later = seg(0, &bytes[..4]);
    later.timestamp = at(100);
    r.push(key(3), later);
    assert_eq!(r.flow_count(), 1);
    assert_eq!(r.stats().flows_expired, 1);
}

#[test]
fn bounds_hold_under_a_flood_of_partial_flows() {
    let limits = Limits {
        flow_window: 2 * MAX_MESSAGE,
        total_bytes: 64 << 10,
        flows: 100,
        idle: Duration::from_secs(30),
    };
    let mut r = TcpReassembler::new(limits);
    let bytes = stream(&[(1, 1000)]);
    for cookie in 0..10_000 {
        r.push(key(cookie), seg(0, &bytes[..900]));
        assert!(r.flow_count() <= 100);
        assert!(r.buffered_bytes() <= 64 << 10);
    }
    assert!(r.stats().flows_evicted >= 9_900);
    assert!(r.stats().bytes_dropped > 0);
    // Data beyond a flow's window is dropped, not buffered.
    let mut r = TcpReassembler::default();
    r.push(key(1), seg(0, &bytes[..1]));
    r.push(key(1), seg(10_000_000, &bytes));
    assert_eq!(r.buffered_bytes(), 1);
}

#[test]
fn a_retransmission_after_the_fin_is_not_framed_again() {
    let mut r = TcpReassembler::default();
    let bytes = stream(&[(1, 10), (2, 10)]);
    assert_eq!(messages(&r.push(key(1), seg(100, &bytes[..12]))), [(1, 10)]);
    let mut last = seg(112, &bytes[12..]);
    last.fin = true;
    assert_eq!(messages(&r.push(key(1), last)), [(2, 10)]);
    assert_eq!(r.flow_count(), 0);
    // The last segment again, then the first, then a bare FIN: all repeats.
    assert!(r.push(key(1), last).is_empty());
    assert!(r.push(key(1), seg(100, &bytes[..12])).is_empty());
    let mut fin = seg(124, &[]);
    fin.fin = true;
    assert!(r.push(key(1), fin).is_empty());
    assert_eq!(r.flow_count(), 0);
    assert_eq!(r.stats().retransmits_after_end, 3);
    assert_eq!(r.stats().messages, 2);
}

#[test]
fn a_new_stream_on_an_ended_flows_ends_is_framed() {
    let mut r = TcpReassembler::default();
    let first = stream(&[(1, 10)]);
    let mut rst = seg(100, &first);
    rst.rst = true;
    assert_eq!(messages(&r.push(key(1), rst)), [(1, 10)]);
    // The 4-tuple reused with another initial sequence number.
    let second = stream(&[(2, 10)]);
    assert_eq!(messages(&r.push(key(1), seg(900_000, &second))), [(2, 10)]);
    // Forgotten once idle: a repeat of the first stream is a stream again.
    let mut r = TcpReassembler::default();
    let mut fin = seg(100, &first);
    fin.fin = true;
    assert_eq!(messages(&r.push(key(1), fin)), [(1, 10)]);
    let mut late = seg(100, &first);
    late.timestamp = at(100);
    assert_eq!(messages(&r.push(key(1), late)), [(1, 10)]);
}

#[test]
fn ended_flows_are_bounded() {
    let limits = Limits {
        flows: 50,
        ..Limits::default()
    };
    let mut r = TcpReassembler::new(limits);
    let bytes = stream(&[(1, 4)]);
    for cookie in 0..10_000 {
        let mut fin = seg(7, &bytes);
        fin.fin = true;
        assert_eq!(messages(&r.push(key(cookie), fin)), [(1, 4)]);
        assert!(r.ended.len() <= 51);
        assert!(r.ended_order.len() <= 2 * 51 + 64);
    }
}
