//! In-kernel cost per packet of pinwatch's cgroup_skb programs, as a ratio to
//! a trivial program (`return 1`) attached beside them on the same hook, from
//! the kernel's BPF run-time statistics. Run by `cargo xtask bench` (root).
//!
//! Traffic goes over loopback, so every packet passes the egress programs on
//! the way out and the ingress programs on the way in.
use std::{
    collections::BTreeSet,
    fs::File,
    net::UdpSocket,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::Context;
use aya::{
    Ebpf,
    maps::RingBuf,
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, ProgramInfo},
    sys::{Stats, enable_stats},
};
use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{Name, RData, Record, RecordType, rdata},
};
use pinwatch::kernel::{EBPF_OBJECT, Probes, find_cgroup2_root};

const PACKETS_PER_RUN: usize = 100_000;
const RUNS: usize = 5;

struct Workload {
    name: &'static str,
    source_port: u16,
    destination_port: u16,
    payload: Vec<u8>,
    /// Highest acceptable ratio to the trivial program, where there is one.
    goal: Option<f64>,
    /// Also measure the record floor (`pw_rec_*`: reserve, copy,
    /// submit, nothing judged) on this traffic.
    record_floor: bool,
}

fn main() -> anyhow::Result<()> {
    let _stats = enable_stats(Stats::RunTime).context("enable BPF run-time statistics")?;
    let root = find_cgroup2_root()?;
    let mut probes = Probes::attach(&root, &BTreeSet::from([26257]))?;
    let maps = probes.take_event_maps()?;
    let (mut ring, lost) = (maps.ring, maps.lost);
    let mut baseline = Ebpf::load(EBPF_OBJECT)?;
    // The record floor writes to the reference object's own ring buffer.
    let mut floor_ring = RingBuf::try_from(
        baseline
            .take_map("EVENTS")
            .context("reference EVENTS map")?,
    )?;
    // Drain the ring buffers as the daemon would, so reservations succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                while ring.next().is_some() {}
                while floor_ring.next().is_some() {}
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let cgroup = File::open(&root)?;
    for (name, attach_type) in [
        ("pw_base_egress", CgroupSkbAttachType::Egress),
        ("pw_base_ingress", CgroupSkbAttachType::Ingress),
    ] {
        let program: &mut CgroupSkb = baseline.program_mut(name).context(name)?.try_into()?;
        program.load()?;
        program.attach(&cgroup, attach_type, CgroupAttachMode::Single)?;
    }
    for (name, _) in RECORD_FLOOR {
        let program: &mut CgroupSkb = baseline.program_mut(name).context(name)?.try_into()?;
        program.load()?;
    }

    let workloads = [
        Workload {
            name: "non-DNS UDP (64 B)",
            source_port: 40_100,
            destination_port: 40_101,
            payload: vec![0x5a; 64],
            goal: Some(1.5),
            record_floor: false,
        },
        Workload {
            name: "DNS query",
            source_port: 40_102,
            destination_port: 53,
            payload: query_bytes(),
            goal: None,
            record_floor: false,
        },
        Workload {
            name: "DNS response, 512 B",
            source_port: 53,
            destination_port: 40_103,
            payload: response_bytes(512),
            goal: Some(3.0),
            record_floor: true,
        },
        Workload {
            name: "DNS response, 1232 B",
            source_port: 53,
            destination_port: 40_104,
            payload: response_bytes(1232),
            goal: Some(3.0),
            record_floor: true,
        },
        Workload {
            name: "malformed on port 53 (100 B)",
            source_port: 53,
            destination_port: 40_105,
            payload: vec![0xff; 100],
            goal: None,
            record_floor: false,
        },
    ];
    println!(
        "| traffic | hook | pinwatch ns/packet | trivial ns/packet | ratio | goal | record floor ns/packet | record floor ÷ trivial |"
    );
    println!("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |");
    for workload in &workloads {
        let samples = measure(workload, false)?;
        // In runs of their own: the floor's copies must not cool the cache
        // for pinwatch's measured runs.
        let floor_samples = if workload.record_floor {
            let mut links = Vec::new();
            for (name, attach_type) in RECORD_FLOOR {
                let program: &mut CgroupSkb =
                    baseline.program_mut(name).context(name)?.try_into()?;
                links.push((
                    name,
                    program.attach(&cgroup, attach_type, CgroupAttachMode::Single)?,
                ));
            }
            let samples = measure(workload, true);
            for (name, link) in links {
                let program: &mut CgroupSkb =
                    baseline.program_mut(name).context(name)?.try_into()?;
                program.detach(link)?;
            }
            samples?
        } else {
            Vec::new()
        };
        for (hook, pw, base, floor) in [("egress", 0, 2, 4), ("ingress", 1, 3, 5)] {
            let pw_ns = median(samples.iter().map(|s| s[pw]).collect());
            let base_ns = median(samples.iter().map(|s| s[base]).collect());
            let ratio = pw_ns / base_ns;
            let verdict = match workload.goal {
                Some(goal) if ratio <= goal => format!("≤ {goal}×: met"),
                Some(goal) => format!("≤ {goal}×: **missed**"),
                None => "—".to_owned(),
            };
            let floor = if workload.record_floor {
                let floor_ns = median(floor_samples.iter().map(|s| s[floor]).collect());
                let floor_base_ns = median(floor_samples.iter().map(|s| s[base]).collect());
                format!("{floor_ns:.1} | {:.2}×", floor_ns / floor_base_ns)
            } else {
                "— | —".to_owned()
            };
            println!(
                "| {} | {hook} | {pw_ns:.1} | {base_ns:.1} | {ratio:.2}× | {verdict} | {floor} |",
                workload.name
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    drainer.join().ok();
    // A failed reservation is cheaper than a capture: losses would flatter
    // the figures, so they are reported beside them.
    let lost: u64 = (0..pinwatch_common::LOSS_SLOTS)
        .map(|slot| lost.get(&slot, 0).map(|values| values.iter().sum::<u64>()))
        .sum::<Result<u64, _>>()?;
    println!("\nRecords lost during the measurement (ring buffer full): {lost}.");
    Ok(())
}

/// Per-packet ns of the programs over `RUNS` runs of the workload, in
/// [`snapshot`]'s order.
fn measure(workload: &Workload, record_floor: bool) -> anyhow::Result<Vec<[f64; 6]>> {
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let before = snapshot(record_floor)?;
        send(workload)?;
        let after = snapshot(record_floor)?;
        samples.push(std::array::from_fn(|i| per_packet(before[i], after[i])));
    }
    Ok(samples)
}

/// The record floor's programs, attached only while their traffic runs.
const RECORD_FLOOR: [(&str, CgroupSkbAttachType); 2] = [
    ("pw_rec_egress", CgroupSkbAttachType::Egress),
    ("pw_rec_ingress", CgroupSkbAttachType::Ingress),
];

/// Run time and run count of the programs, fresh from the kernel, in a
/// fixed order: pinwatch egress, ingress, trivial egress, ingress, record
/// floor egress, ingress (zeros unless `record_floor`).
fn snapshot(record_floor: bool) -> anyhow::Result<Vec<(u64, u64)>> {
    let loaded: Vec<ProgramInfo> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .collect();
    let mut names = vec![
        "pw_dns_egress",
        "pw_dns_ingress",
        "pw_base_egress",
        "pw_base_ingress",
    ];
    if record_floor {
        names.extend(RECORD_FLOOR.map(|(name, _)| name));
    }
    let mut costs = names
        .iter()
        .map(|name| {
            let mut matching = loaded.iter().filter(|p| p.name_as_str() == Some(name));
            let info = matching
                .next()
                .with_context(|| format!("{name} is not loaded"))?;
            anyhow::ensure!(
                matching.next().is_none(),
                "{name} is loaded twice: is another pinwatch running?"
            );
            Ok((info.run_time().as_nanos() as u64, info.run_count()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    costs.resize(6, (0, 0));
    Ok(costs)
}

fn per_packet(before: (u64, u64), after: (u64, u64)) -> f64 {
    let runs = after.1.saturating_sub(before.1).max(1);
    after.0.saturating_sub(before.0) as f64 / runs as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn send(workload: &Workload) -> anyhow::Result<()> {
    let receiver = UdpSocket::bind(("127.0.0.1", workload.destination_port))?;
    let sender = UdpSocket::bind(("127.0.0.1", workload.source_port))?;
    sender.connect(("127.0.0.1", workload.destination_port))?;
    receiver.set_nonblocking(true)?;
    let mut sink = [0u8; 2048];
    for i in 0..PACKETS_PER_RUN {
        sender.send(&workload.payload)?;
        if i % 64 == 0 {
            while receiver.recv(&mut sink).is_ok() {}
        }
    }
    Ok(())
}

fn query_bytes() -> Vec<u8> {
    let mut message = Message::new();
    message.set_id(7).add_query(Query::query(
        Name::from_ascii("db.bench.test.").unwrap(),
        RecordType::A,
    ));
    message.to_vec().unwrap()
}

/// A real DNS response padded with TXT data to `size` bytes.
fn response_bytes(size: usize) -> Vec<u8> {
    let name = Name::from_ascii("db.bench.test.").unwrap();
    let mut message = Message::new();
    message
        .set_id(7)
        .set_message_type(MessageType::Response)
        .add_query(Query::query(name.clone(), RecordType::A));
    message.add_answer(Record::from_rdata(
        name.clone(),
        30,
        RData::A(rdata::A([192, 0, 2, 10].into())),
    ));
    let base = message.to_vec().unwrap().len();
    let txt_len = size.saturating_sub(base + 12 + 14);
    let chunks: Vec<String> = (0..txt_len.div_ceil(255))
        .map(|i| "x".repeat((txt_len - i * 255).min(254)))
        .collect();
    message.add_additional(Record::from_rdata(
        name,
        30,
        RData::TXT(rdata::TXT::new(chunks)),
    ));
    message.to_vec().unwrap()
}
