//! B7: `pinwatch replay` against tshark decoding DNS from the same capture
//! of a million messages, written here (pcap, Ethernet link type).
use std::{
    fmt::Write as _,
    io::{BufWriter, Write},
    net::Ipv4Addr,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, bail};

use super::{
    DATABASES,
    dns::{HOST, query, response},
    lab::{PINWATCH, scratch},
    measure::{median, verdict},
};

const MESSAGES: usize = 1_000_000;
const RUNS: usize = 3;
const GOAL: f64 = 10.0;
const TSHARK: [&str; 10] = [
    "-n",
    "-T",
    "fields",
    "-e",
    "dns.id",
    "-e",
    "dns.qry.name",
    "-e",
    "dns.a",
    "-r",
];

pub fn run() -> anyhow::Result<String> {
    let capture = scratch("b7.pcap");
    let config = scratch("b7.toml");
    write_capture(&capture)?;
    std::fs::write(
        &config,
        format!("{DATABASES}\n[alerts]\nsink = \"stdout\"\n"),
    )?;
    let size = std::fs::metadata(&capture)?.len();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        ours.push(time(
            Command::new(PINWATCH)
                .arg("replay")
                .arg(&capture)
                .arg("-c")
                .arg(&config),
            true,
        )?);
        theirs.push(time(
            Command::new("tshark").args(TSHARK).arg(&capture),
            false,
        )?);
    }
    let _ = std::fs::remove_file(&capture);
    let _ = std::fs::remove_file(&config);
    let (p, t) = (median(&ours), median(&theirs));
    let ratio = t / p;
    let mut md = String::new();
    writeln!(md, "## B7 replay throughput against tshark\n")?;
    writeln!(
        md,
        "One pcap (Ethernet) of {MESSAGES} DNS messages over IPv4/UDP ({:.0} MiB, written by \
         `xtask/src/bench/b7.rs`): queries and responses in turn, responses of one, two and \
         twelve A records for the watched name inside its pinned set (so no alerts are \
         written). Wall time of `pinwatch replay CAPTURE -c CONFIG > /dev/null` against \
         `tshark {} CAPTURE > /dev/null` (decoding every DNS message and printing its id, name \
         and addresses), {RUNS} runs each, alternating; medians. Reproduce: `cargo xtask bench \
         --only b7`.\n",
        size as f64 / (1 << 20) as f64,
        TSHARK.join(" "),
    )?;
    writeln!(md, "| | seconds (median) | messages/s | runs |")?;
    writeln!(md, "| --- | ---: | ---: | --- |")?;
    for (label, values, median) in [("pinwatch replay", &ours, p), ("tshark", &theirs, t)] {
        writeln!(
            md,
            "| {label} | {median:.2} | {:.0} | {} |",
            MESSAGES as f64 / median,
            values
                .iter()
                .map(|v| format!("{v:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    writeln!(
        md,
        "\n- pinwatch replay is **{ratio:.1}×** as fast as tshark — goal ≥ {GOAL}×: {}\n",
        verdict(ratio >= GOAL)
    )?;
    writeln!(
        md,
        "Replay runs the daemon's decoder and detector, so where the goal is missed the profile \
         is the one under B4 (\"Where the time goes in userspace\").\n"
    )?;
    Ok(md)
}

/// Seconds the command took; its output is discarded. `replay` exits 1
/// when it raised alerts, which is a run all the same.
fn time(command: &mut Command, replay: bool) -> anyhow::Result<f64> {
    let start = Instant::now();
    let out = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot start the decoder")?;
    let seconds = start.elapsed().as_secs_f64();
    let ran = out.status.success() || (replay && out.status.code() == Some(1));
    if !ran {
        bail!(
            "{:?} failed ({}): {}",
            command,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(seconds)
}

fn write_capture(path: &Path) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    // pcap global header: magic, v2.4, zone, sigfigs, snaplen, Ethernet.
    out.write_all(&0xa1b2_c3d4_u32.to_le_bytes())?;
    out.write_all(&[2, 0, 4, 0])?;
    out.write_all(&[0; 8])?;
    out.write_all(&65_535_u32.to_le_bytes())?;
    out.write_all(&1_u32.to_le_bytes())?;
    let pinned = |n: u8| Ipv4Addr::new(192, 0, 2, n);
    let answers: [Vec<Ipv4Addr>; 3] = [
        vec![pinned(10)],
        vec![pinned(10), pinned(11)],
        (1..=12).map(pinned).collect(),
    ];
    for i in 0..MESSAGES {
        let id = (i / 2) as u16;
        let client_port = 20_000 + (i / 2 % 40_000) as u16;
        let (dns, ports, src, dst) = if i % 2 == 0 {
            (
                query(id, HOST, 1),
                (client_port, 53),
                [192, 0, 2, 100],
                [198, 51, 100, 53],
            )
        } else {
            let set = &answers[(i / 2) % 3];
            (
                response(id, HOST, set),
                (53, client_port),
                [198, 51, 100, 53],
                [192, 0, 2, 100],
            )
        };
        let frame = frame(src, dst, ports, &dns);
        let micros = i as u32;
        out.write_all(&(1_700_000_000 + micros / 1_000_000).to_le_bytes())?;
        out.write_all(&(micros % 1_000_000).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&frame)?;
    }
    out.flush()?;
    Ok(())
}

/// Ethernet + IPv4 + UDP around `payload` (UDP checksum 0: none, as IPv4 allows).
fn frame(src: [u8; 4], dst: [u8; 4], ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42 + payload.len());
    f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&ports.0.to_be_bytes());
    f.extend_from_slice(&ports.1.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}
