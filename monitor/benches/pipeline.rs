//! B4: userspace cost per DNS message of decode (IP + UDP headers) + DNS
//! parse + detect, beside two baselines measured in the same run: copying
//! the packet's bytes, and hickory-proto's parse of the DNS message alone.
//! `cargo xtask bench` reads the medians from target/criterion and prints
//! the ratios; run alone with `cargo bench -p pinwatch --bench pipeline`.
use std::{hint::black_box, net::Ipv6Addr, time::Duration, time::SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use hickory_proto::{
    op::{Edns, Message, MessageType, Query},
    rr::{Name, RData, Record, RecordType, rdata},
};
use pinwatch::{
    config::{Config, HostDefaults},
    decode::{PacketMeta, parse_ip_dns},
    detector::Detector,
    event::{Direction, Event},
};

const HOST: &str = "cockroach.prod.internal.";
const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["cockroach.prod.internal"]
ports = [26257]
pinned = ["192.0.2.0/24", "2001:db8::/32"]

[dns]
trusted_resolvers = ["198.51.100.53"]
"#;

/// The corpus: (id, DNS payload). Answers for the configured hostname are
/// inside the pinned set, so detect runs its whole check and raises nothing.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let host = Name::from_ascii(HOST).unwrap();
    let a = |last: u8| RData::A(rdata::A([192, 0, 2, last].into()));
    let mut cases = Vec::new();

    let mut m = response(&host, RecordType::A);
    m.add_answer(Record::from_rdata(host.clone(), 30, a(10)));
    cases.push(("a", m.to_vec().unwrap()));

    let mut m = response(&host, RecordType::AAAA);
    let v6: Ipv6Addr = "2001:db8::10".parse().unwrap();
    m.add_answer(Record::from_rdata(host.clone(), 30, RData::AAAA(v6.into())));
    cases.push(("aaaa", m.to_vec().unwrap()));

    // app.example. → lb.example. → cockroach.prod.internal. → A
    let alias = Name::from_ascii("app.bench.test.").unwrap();
    let middle = Name::from_ascii("lb.bench.test.").unwrap();
    let mut m = response(&alias, RecordType::A);
    m.add_answer(Record::from_rdata(
        alias.clone(),
        30,
        RData::CNAME(rdata::CNAME(middle.clone())),
    ));
    m.add_answer(Record::from_rdata(
        middle,
        30,
        RData::CNAME(rdata::CNAME(host.clone())),
    ));
    m.add_answer(Record::from_rdata(host.clone(), 30, a(11)));
    cases.push(("cname_chain", m.to_vec().unwrap()));

    let mut m = response(&host, RecordType::A);
    for last in 1..=12 {
        m.add_answer(Record::from_rdata(host.clone(), 30, a(last)));
    }
    cases.push(("records_12", m.to_vec().unwrap()));

    cases.push(("edns_1232", edns_response(&host, 1232)));
    cases.push(("malformed", vec![0xff; 100]));
    cases
}

fn response(name: &Name, record_type: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(0x4242)
        .set_message_type(MessageType::Response)
        .set_recursion_desired(true)
        .set_recursion_available(true)
        .add_query(Query::query(name.clone(), record_type));
    m
}

/// An A answer with an EDNS OPT record, padded with TXT data to `size` bytes.
fn edns_response(host: &Name, size: usize) -> Vec<u8> {
    let mut m = response(host, RecordType::A);
    m.add_answer(Record::from_rdata(
        host.clone(),
        30,
        RData::A(rdata::A([192, 0, 2, 12].into())),
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    let base = m.to_vec().unwrap().len();
    // A TXT record costs its owner (a pointer, 2) + type, class, ttl,
    // rdlength (10) + one length byte per string.
    let mut text = size - base - 12;
    let mut strings = Vec::new();
    while text > 0 {
        let chunk = text.min(255);
        strings.push("x".repeat(chunk - 1));
        text -= chunk;
    }
    m.add_additional(Record::from_rdata(
        host.clone(),
        30,
        RData::TXT(rdata::TXT::new(strings)),
    ));
    let bytes = m.to_vec().unwrap();
    assert_eq!(bytes.len(), size, "EDNS case is not {size} bytes");
    bytes
}

/// The DNS payload in an IPv4/UDP packet from the resolver, as the kernel
/// hands it over.
fn ip_packet(payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ipv4([198, 51, 100, 53], [192, 0, 2, 100], 64).udp(53, 40_000);
    let mut packet = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut packet, payload).unwrap();
    packet
}

/// The DNS payload in an IPv4/UDP packet from the client to the resolver.
fn query_packet(payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ipv4([192, 0, 2, 100], [198, 51, 100, 53], 64).udp(40_000, 53);
    let mut packet = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut packet, payload).unwrap();
    packet
}

/// The common case on a resolver host (B2's and B10's load): a query for a
/// name no database uses leaves, and its answer comes back. Both messages
/// per iteration, baselines included.
fn exchange(c: &mut Criterion, config: &Config, meta: PacketMeta) {
    let name = Name::from_ascii("h42.bench.test.").unwrap();
    let mut query = Message::new();
    query
        .set_id(0x4242)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), RecordType::A));
    let query = query.to_vec().unwrap();
    let mut answer = response(&name, RecordType::A);
    answer.add_answer(Record::from_rdata(
        name,
        300,
        RData::A(rdata::A([192, 0, 2, 1].into())),
    ));
    let answer = answer.to_vec().unwrap();
    let packets = [
        (query_packet(&query), Direction::Egress),
        (ip_packet(&answer), Direction::Ingress),
    ];
    let mut group = c.benchmark_group("exchange_unwatched");
    group.bench_function("copy", |b| {
        b.iter(|| black_box((packets[0].0.to_vec(), packets[1].0.to_vec())))
    });
    group.bench_function("hickory", |b| {
        b.iter(|| {
            black_box((
                Message::from_vec(black_box(&query)).ok(),
                Message::from_vec(black_box(&answer)).ok(),
            ))
        })
    });
    let mut detector = Detector::new(config);
    group.bench_function("pipeline", |b| {
        b.iter(|| {
            let mut alerts = 0;
            for (packet, direction) in &packets {
                let meta = PacketMeta {
                    direction: *direction,
                    ..meta
                };
                if let Ok(events) = parse_ip_dns(black_box(packet), meta) {
                    for event in events {
                        alerts += detector.observe(&Event::Dns(event)).len();
                    }
                }
            }
            // Every answer matches its query: an alert means the case is wrong.
            assert_eq!(alerts, 0);
            black_box(alerts)
        })
    });
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let config = Config::from_toml(CONFIG, None, &HostDefaults::default()).unwrap();
    let meta = PacketMeta {
        timestamp: SystemTime::now(),
        direction: Direction::Ingress,
        cgroup_id: 1,
        truncated: false,
    };
    for (id, payload) in corpus() {
        let packet = ip_packet(&payload);
        let mut group = c.benchmark_group(id);
        group.bench_function("copy", |b| b.iter(|| black_box(packet.to_vec())));
        group.bench_function("hickory", |b| {
            b.iter(|| black_box(Message::from_vec(black_box(&payload)).ok()))
        });
        let mut detector = Detector::new(&config);
        group.bench_function("pipeline", |b| {
            b.iter(|| {
                let mut alerts = 0;
                if let Ok(events) = parse_ip_dns(black_box(&packet), meta) {
                    for event in events {
                        alerts += detector.observe(&Event::Dns(event)).len();
                    }
                }
                black_box(alerts)
            })
        });
        group.finish();
    }
    exchange(c, &config, meta);
}

criterion_group! {
    name = benches;
    // Short, so the whole suite stays within its time budget; the medians
    // of 18 × ~2 s of samples are stable to a few percent here.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = pipeline
}
criterion_main!(benches);
