//! B6: the daemon idle (CPU and resident memory over a quiet minute) and its
//! resident memory after a flood of DNS responses.
use std::{fmt::Write as _, time::Duration};

use super::{
    DATABASES,
    dns::{HOST, Loopback, response},
    lab::{Daemon, Netns},
    measure::{cpu_ns, rss_kib, verdict},
};

const IDLE: Duration = Duration::from_secs(60);
const FLOOD_SHORT: Duration = Duration::from_secs(60);
const FLOOD_LONG: Duration = Duration::from_secs(600);
/// Events per second during the flood (two per packet).
const FLOOD_EVENTS_PER_S: u64 = 100_000;
const CPU_GOAL_PERCENT: f64 = 0.1;
const RSS_GOAL_MIB: f64 = 32.0;

pub fn run(long: bool) -> anyhow::Result<String> {
    let flood_for = if long { FLOOD_LONG } else { FLOOD_SHORT };
    let daemon = Daemon::start(DATABASES)?;
    // Start-up work (loading programs, first status reads) is not idling.
    std::thread::sleep(Duration::from_secs(2));
    let cpu_before = cpu_ns(daemon.pid())?;
    std::thread::sleep(IDLE);
    let cpu = cpu_ns(daemon.pid())? - cpu_before;
    let idle_rss = rss_kib(daemon.pid())? as f64 / 1024.0;
    let idle_percent = cpu as f64 / IDLE.as_nanos() as f64 * 100.0;

    let netns = Netns::new("b6")?;
    let loopback = Loopback::new(&netns, response(9, HOST, &["192.0.2.10".parse()?]))?;
    let (sent, rate) = loopback.flood(FLOOD_EVENTS_PER_S / 2, flood_for);
    let flood_rss = rss_kib(daemon.pid())? as f64 / 1024.0;
    let lost = daemon.counter("events_lost")?;
    let peak = peak_kib(daemon.pid())? as f64 / 1024.0;

    let mut md = String::new();
    writeln!(md, "## B6 idle and memory\n")?;
    writeln!(
        md,
        "The daemon with the bench configuration, no traffic of the bench's own for {} s \
         (whatever else the host does still passes the programs): CPU from utime + stime in \
         /proc/PID/stat (10 ms ticks, so 0.017% resolution over a minute), VmRSS after. Then \
         a flood of DNS responses ({} events/s asked, {rate:.0} packets/s sent, {sent} packets) \
         for {} s ({}), and VmRSS after it. Reproduce: `cargo xtask bench --only b6` (add \
         `--long` for the 10-minute flood; source `xtask/src/bench/b6.rs`).\n",
        IDLE.as_secs(),
        FLOOD_EVENTS_PER_S,
        flood_for.as_secs(),
        if long {
            "the full 10-minute flood, `--long`"
        } else {
            "the short default; `--long` runs 10 minutes"
        }
    )?;
    writeln!(md, "| | figure | goal |")?;
    writeln!(md, "| --- | ---: | --- |")?;
    writeln!(
        md,
        "| CPU idle | {idle_percent:.3}% | < {CPU_GOAL_PERCENT}%: {} |",
        verdict(idle_percent < CPU_GOAL_PERCENT)
    )?;
    writeln!(
        md,
        "| resident memory idle | {idle_rss:.1} MiB | < {RSS_GOAL_MIB} MiB: {} |",
        verdict(idle_rss < RSS_GOAL_MIB)
    )?;
    writeln!(
        md,
        "| resident memory after the {} s flood | {flood_rss:.1} MiB | < {RSS_GOAL_MIB} MiB: {} |",
        flood_for.as_secs(),
        verdict(flood_rss < RSS_GOAL_MIB)
    )?;
    writeln!(md, "| peak resident memory (VmHWM) | {peak:.1} MiB | — |")?;
    writeln!(md, "| events lost in the flood | {lost} | — |\n")?;
    Ok(md)
}

fn peak_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}
