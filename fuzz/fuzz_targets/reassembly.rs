//! TCP stream reassembly and IP fragment reassembly, driven by a script of
//! segments and fragments over a few flows, with limits small enough that
//! every bound (flow window, total bytes, flow count, datagram count) is
//! reached. After every step the tables must hold their bounds, and nothing
//! framed may be longer than a DNS message can be.
#![no_main]

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, SystemTime},
};

use libfuzzer_sys::fuzz_target;
use pinwatch::reassembly::{
    fragments::{DatagramKey, Fragment, FragmentLimits, FragmentTable},
    tcp::{FlowKey, Limits, Output, Segment, TcpReassembler},
};

const TCP_LIMITS: Limits = Limits {
    flow_window: 600,
    total_bytes: 1500,
    flows: 3,
    idle: Duration::from_secs(5),
};
const FRAGMENT_LIMITS: FragmentLimits = FragmentLimits {
    datagrams: 3,
    total_bytes: 1500,
    timeout: Duration::from_secs(3),
};

fuzz_target!(|data: &[u8]| {
    let mut tcp = TcpReassembler::new(TCP_LIMITS);
    let mut fragments = FragmentTable::new(FRAGMENT_LIMITS);
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let mut rest = data;
    // One step: [op][flow][seq or offset: 4][wire extra][len] then len bytes.
    while rest.len() >= 8 {
        let (head, tail) = rest.split_at(8);
        let len = usize::from(head[7]).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let op = head[0];
        let number = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
        let wire_len = len + usize::from(head[6] & 0x3f);
        // Time moves on by 0–3 s per step, so idle flows and stale fragments expire.
        now += Duration::from_millis(u64::from(op >> 6) * 1000);
        if op & 1 == 0 {
            let key = FlowKey {
                source: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, head[1] % 5)), 53),
                destination: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200)), 40000),
                socket_cookie: u64::from(head[1] >> 4),
            };
            let segment = Segment {
                seq: number,
                payload,
                wire_len,
                fin: op & 2 != 0,
                rst: op & 0x3c == 0x3c,
                timestamp: now,
            };
            for output in tcp.push(key, segment) {
                if let Output::Message(message) = output {
                    assert!(message.len() <= 65_535, "framed {} bytes", message.len());
                }
            }
            assert!(
                tcp.buffered_bytes() <= TCP_LIMITS.total_bytes,
                "tcp bytes over bound"
            );
            assert!(tcp.flow_count() <= TCP_LIMITS.flows, "tcp flows over bound");
        } else {
            let key = DatagramKey {
                source: IpAddr::V4(Ipv4Addr::new(198, 51, 100, head[1] % 5)),
                destination: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 200)),
                id: u32::from(head[1] >> 4),
            };
            let fragment = Fragment {
                // Fragment offsets are multiples of 8 on the wire; any value
                // up to the largest datagram is tried here.
                offset: (number as usize) % 70_000,
                more_fragments: op & 2 != 0,
                data: payload,
                wire_len,
                timestamp: now,
            };
            for datagram in fragments.push(key, fragment) {
                assert!(
                    datagram.payload.len() <= 65_535,
                    "datagram {} bytes",
                    datagram.payload.len()
                );
            }
            assert!(
                fragments.buffered_bytes() <= FRAGMENT_LIMITS.total_bytes,
                "fragment bytes over bound"
            );
        }
    }
    tcp.expire(now + Duration::from_secs(60));
    assert_eq!(tcp.flow_count(), 0, "idle flows outlived expiry");
    assert_eq!(tcp.buffered_bytes(), 0);
    let _ = fragments.expire(now + Duration::from_secs(60));
    assert_eq!(
        fragments.buffered_bytes(),
        0,
        "stale fragments outlived expiry"
    );
});
