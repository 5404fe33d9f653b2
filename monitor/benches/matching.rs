//! Query/response matching: the userspace cost per DNS message of matching
//! alone and of the whole detector on query/response pairs, beside a
//! baseline in the same run (cloning the two events), and the matching
//! table's memory bound under a flood.
//! `cargo xtask bench --only b9` prints the section; run alone with
//! `cargo bench -p pinwatch --bench matching`.
//!
//! The flood runs first and prints one line: one million queries from
//! distinct client ports, each followed by a reply with a random id (a
//! Kaminsky-style guess), with the most table entries held at any moment.
//! It panics if the bound is exceeded.
use std::{
    hint::black_box,
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{Name, RData, Record, RecordType, rdata},
};
use pinwatch::{
    config::{Config, HostDefaults},
    detector::Detector,
    event::{Direction, DnsEvent, Event, Hook, Transport},
};

const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["cockroach.prod.internal"]
ports = [26257]
pinned = ["192.0.2.0/24"]

[dns]
trusted_resolvers = ["198.51.100.53"]
"#;
/// The matching table's bound on the queries it holds at once.
const MAX_QUERIES: usize = 65_536;
const FLOOD: u32 = 1_000_000;

fn detector() -> Detector {
    let config = Config::from_toml(CONFIG, None, &HostDefaults::default()).expect("valid config");
    Detector::new(&config)
}

fn message(id: u16, response: bool) -> Message {
    let name = Name::from_ascii("www.example.test.").unwrap();
    let mut message = Message::new();
    message
        .set_id(id)
        .add_query(Query::query(name.clone(), RecordType::A));
    if response {
        message.set_message_type(MessageType::Response);
        message.add_answer(Record::from_rdata(
            name,
            60,
            RData::A(rdata::A([203, 0, 113, 7].into())),
        ));
    }
    message
}

fn event(at: SystemTime, client_port: u16, message: Message, query: bool) -> Event {
    let client = SocketAddr::new("198.51.100.10".parse().unwrap(), client_port);
    let server: SocketAddr = "198.51.100.53:53".parse().unwrap();
    let (direction, source, destination) = if query {
        (Direction::Egress, client, server)
    } else {
        (Direction::Ingress, server, client)
    };
    Event::Dns(DnsEvent {
        timestamp: at,
        direction,
        transport: Transport::Udp,
        source,
        destination,
        cgroup_id: 7,
        truncated: false,
        socket_cookie: u64::from(client_port),
        message,
        seen_at: Hook::Socket,
        fragmented: false,
        malformed: None,
    })
}

/// xorshift: deterministic random ids without a dependency.
fn next(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

/// The process's resident set (`VmRSS`) or its peak (`VmHWM`), KiB.
fn resident_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn flood() {
    let resident_before = resident_kib("VmRSS:");
    let mut detector = detector();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut rng = 0x9e37_79b9u32;
    let mut most = 0;
    let began = std::time::Instant::now();
    for i in 0..FLOOD {
        // All within one query timeout: nothing expires, only the bound holds.
        let at = start + Duration::from_micros(u64::from(i));
        let port = 1024 + (i % 64_000) as u16;
        let query_id = next(&mut rng) as u16;
        detector.observe(&event(at, port, message(query_id, false), true));
        detector.observe(&event(at, port, message(query_id ^ 0x5a5a, true), false));
        if i % 4096 == 0 {
            most = most.max(detector.outstanding_queries());
        }
    }
    most = most.max(detector.outstanding_queries());
    let per_message = began.elapsed().as_nanos() as f64 / f64::from(2 * FLOOD);
    // The whole process: the detector's tables and the allocator's slack.
    let grown_mib = resident_kib("VmHWM:").saturating_sub(resident_before) as f64 / 1024.0;
    println!(
        "matching flood: {FLOOD} queries from {} client ports, each answered by a random-id reply: \
         at most {most} queries held (bound {MAX_QUERIES}, at most 16 per leg); the process's peak \
         resident set grew {grown_mib:.1} MiB; {per_message:.0} ns per message including building \
         the events",
        64_000
    );
    assert!(
        most <= MAX_QUERIES,
        "the matching table held {most} queries, over its bound of {MAX_QUERIES}"
    );
}

fn bench(c: &mut Criterion) {
    flood();
    let mut group = c.benchmark_group("matching");
    group.throughput(Throughput::Elements(2));
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let pairs: Vec<(Event, Event)> = (0..1024u16)
        .map(|i| {
            (
                event(at, 20_000 + i, message(i, false), true),
                event(at, 20_000 + i, message(i, true), false),
            )
        })
        .collect();
    group.bench_function("clone_pair", |b| {
        let mut i = 0;
        b.iter(|| {
            let (query, response) = &pairs[i % pairs.len()];
            i += 1;
            black_box((query.clone(), response.clone()))
        })
    });
    let mut matching_only = detector();
    group.bench_function("matching_only", |b| {
        let mut i = 0;
        b.iter(|| {
            let (query, response) = &pairs[i % pairs.len()];
            i += 1;
            if let (Event::Dns(query), Event::Dns(response)) = (query, response) {
                black_box(matching_only.observe_matching_only(black_box(query)));
                black_box(matching_only.observe_matching_only(black_box(response)));
            }
        })
    });
    let mut detector = detector();
    group.bench_function("query_then_response", |b| {
        let mut i = 0;
        b.iter(|| {
            let (query, response) = &pairs[i % pairs.len()];
            i += 1;
            black_box(detector.observe(black_box(query)));
            black_box(detector.observe(black_box(response)));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
