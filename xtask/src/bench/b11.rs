//! B11: no blind window. How long from `systemctl restart` (SIGUSR2 to the
//! running daemon, then a new one) to the first alert judged about what
//! happened in the gap; and how many seconds of DNS traffic the pinned ring
//! buffer holds while no daemon runs.
use std::{fmt::Write as _, net::Ipv4Addr, time::Duration};

use anyhow::{Context, bail};

use super::{
    DATABASES,
    dns::{HOST, Loopback, response},
    lab::{Daemon, Netns},
    measure::{median, monotonic_ns},
};

const RUNS: usize = 5;
/// Responses per second while no daemon runs, and for how long: more
/// than the ring buffer holds.
const FLOOD_RATE: u64 = 5_000;
const FLOOD_FOR: Duration = Duration::from_secs(4);
const RATES: [u64; 4] = [100, 1_000, 5_000, 20_000];

pub fn run() -> anyhow::Result<String> {
    let netns = Netns::new("b11")?;
    let pinned = response(7, HOST, &[Ipv4Addr::new(192, 0, 2, 10)]);
    let loopback = Loopback::new(&netns, pinned)?;
    let (mut ready, mut judged) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let (r, j) = restart(&loopback, run)?;
        ready.push(r);
        judged.push(j);
    }
    let capacity = capacity(&loopback)?;

    let mut md = String::new();
    writeln!(
        md,
        "## B11 restart: time to the first judged alert, backlog capacity\n"
    )?;
    writeln!(
        md,
        "What `systemctl restart pinwatch` does, timed from its start: SIGUSR2 to the running \
         daemon (a handover: it drains and exits, its programs stay attached and pinned), a \
         forged response for the watched name sent while no daemon runs, then a new daemon, \
         which adopts the pins, reads the backlog and writes the `dns-answer-diverged` line \
         (read back from the alert file, polled every millisecond). {RUNS} runs, medians. \
         Reproduce: `cargo xtask bench --only b11` (source `xtask/src/bench/b11.rs`).\n"
    )?;
    writeln!(md, "| | median ms | max ms |")?;
    writeln!(md, "| --- | ---: | ---: |")?;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    writeln!(
        md,
        "| restart → new daemon ready | {:.0} | {:.0} |",
        median(&ready),
        max(&ready)
    )?;
    writeln!(
        md,
        "| restart → first alert about the gap written | {:.0} | {:.0} |\n",
        median(&judged),
        max(&judged)
    )?;
    writeln!(
        md,
        "Backlog capacity: the daemon killed (SIGKILL), {} DNS responses sent at {FLOOD_RATE}/s \
         over loopback while none runs (each passes the egress and the ingress program: two \
         records of {} bytes with the ring's header), then a new daemon: its \
         `pinwatch-restarted` said {} records were kept and {} lost. The 4 MiB ring buffer \
         holds **{:.0} responses** of that size, so while no daemon runs it covers:\n",
        capacity.sent,
        capacity.record_bytes(),
        capacity.backlog,
        capacity.lost,
        capacity.responses()
    )?;
    writeln!(md, "| DNS responses per second | seconds without loss |")?;
    writeln!(md, "| ---: | ---: |")?;
    for rate in RATES {
        writeln!(md, "| {rate} | {:.1} |", capacity.responses() / rate as f64)?;
    }
    writeln!(
        md,
        "\nA response of the kernel's next capture class (> 256 bytes) takes more room; past \
         the capacity, what does not fit is counted and reported exactly (`event-loss`, \
         `pinwatch.restart.records_lost`).\n"
    )?;
    Ok(md)
}

/// Milliseconds from the restart's start to the new daemon being ready,
/// and to the alert about the forged response sent in the gap.
fn restart(loopback: &Loopback, run: usize) -> anyhow::Result<(f64, f64)> {
    let old = Daemon::start(DATABASES)?;
    let start = monotonic_ns();
    old.end_with(libc::SIGUSR2)?;
    let forged = Ipv4Addr::new(203, 0, 113, 100 + run as u8);
    loopback.send(&response(100 + run as u16, HOST, &[forged]))?;
    let new = Daemon::start(DATABASES)?;
    let ready = monotonic_ns();
    let needle = format!("\"{forged}\"");
    let deadline = ready + 10_000_000_000;
    loop {
        let text = std::fs::read_to_string(new.alerts()).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains(&needle) && l.contains("dns-answer-diverged"))
        {
            break;
        }
        if monotonic_ns() > deadline {
            bail!("no alert for {forged} within 10 s of the restart");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let judged = monotonic_ns();
    let ms = |t: u64| (t - start) as f64 / 1e6;
    Ok((ms(ready), ms(judged)))
}

struct Capacity {
    sent: u64,
    backlog: u64,
    lost: u64,
}

impl Capacity {
    /// Records per response sent, from what the new daemon counted (other
    /// traffic of the host in the gap adds a little).
    fn per_response(&self) -> f64 {
        (self.backlog + self.lost) as f64 / self.sent.max(1) as f64
    }

    fn responses(&self) -> f64 {
        self.backlog as f64 / self.per_response()
    }

    fn record_bytes(&self) -> u64 {
        (4u64 << 20) / self.backlog.max(1)
    }
}

fn capacity(loopback: &Loopback) -> anyhow::Result<Capacity> {
    let old = Daemon::start(DATABASES)?;
    old.end_with(libc::SIGKILL)?;
    let (sent, _) = loopback.flood(FLOOD_RATE, FLOOD_FOR);
    let new = Daemon::start(DATABASES)?;
    let deadline = monotonic_ns() + 60_000_000_000;
    let gap = loop {
        let text = std::fs::read_to_string(new.alerts()).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("\"pinwatch-restarted\"")) {
            break serde_json::from_str::<serde_json::Value>(line)?;
        }
        if monotonic_ns() > deadline {
            bail!("no pinwatch-restarted alert within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let restart = &gap["pinwatch"]["restart"];
    let count = |key: &str| {
        restart[key]
            .as_u64()
            .with_context(|| format!("pinwatch.restart.{key} missing: {gap}"))
    };
    Ok(Capacity {
        sent,
        backlog: count("backlog_records")?,
        lost: count("records_lost")?,
    })
}
