//! B5: alert latency, from the moment a forged DNS response is sent to the
//! moment its alert line can be read from the alert file.
//!
//! The kernel stamps DNS packets with `bpf_ktime_get_coarse_ns` (tick
//! resolution: 4 ms at HZ=250), too coarse to measure from. The sender takes
//! CLOCK_MONOTONIC (the same clock base, full resolution) just before
//! send(); the packet is stamped a few microseconds later. A reader woken by
//! inotify takes the clock again when the line ending in a newline has been
//! read. So the figure is an upper bound of packet stamp → line written.
use std::{
    fmt::Write as _,
    fs::File,
    io::{Read, Seek, SeekFrom},
    net::Ipv4Addr,
    os::fd::AsRawFd,
    time::Duration,
};

use anyhow::{Context, bail};

use super::{
    DATABASES,
    dns::{HOST, Loopback, response},
    lab::{Daemon, Netns},
    measure::{median, monotonic_ns, percentile, verdict},
};

const RUNS: usize = 3;
const SAMPLES: usize = 200;
const GOAL_P99_MS: f64 = 10.0;

pub fn run() -> anyhow::Result<String> {
    let netns = Netns::new("b5")?;
    let loopback = Loopback::new(&netns, Vec::new())?;
    let (mut p50s, mut p99s, mut maxima) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let daemon = Daemon::start(DATABASES)?;
        let latencies = sample(&daemon, &loopback)?;
        p50s.push(percentile(&latencies, 50.0));
        p99s.push(percentile(&latencies, 99.0));
        maxima.push(percentile(&latencies, 100.0));
    }
    let (p50, p99) = (median(&p50s), median(&p99s));
    let mut md = String::new();
    writeln!(md, "## B5 alert latency\n")?;
    writeln!(
        md,
        "A sender bound to 127.0.0.1:53 in a namespace of the bench's own sends a response for \
         the watched name with an address outside the pinned set (a new address each time, so \
         no alert is folded); the daemon writes a `dns-answer-diverged` line to its alert file. \
         The kernel stamps DNS packets with `bpf_ktime_get_coarse_ns` (tick resolution, 4 ms \
         at HZ=250), too coarse to measure from, so the sender reads CLOCK_MONOTONIC (same \
         clock base) just before send() and a reader woken by inotify reads it again once the \
         line, up to its newline, is read back: an upper bound of packet → line written. \
         {SAMPLES} samples per run, 2–12 ms apart at pseudo-random phases, {RUNS} runs (a \
         daemon each); medians of the runs' percentiles. Reproduce: `cargo xtask bench --only \
         b5` (source `xtask/src/bench/b5.rs`).\n"
    )?;
    writeln!(md, "| | p50 ms | p99 ms | max ms |")?;
    writeln!(md, "| --- | ---: | ---: | ---: |")?;
    writeln!(
        md,
        "| median of runs | {p50:.3} | {p99:.3} | {:.3} |",
        median(&maxima)
    )?;
    for (run, ((a, b), c)) in p50s.iter().zip(&p99s).zip(&maxima).enumerate() {
        writeln!(md, "| run {} | {a:.3} | {b:.3} | {c:.3} |", run + 1)?;
    }
    writeln!(
        md,
        "\n- p99: **{p99:.3} ms** — goal ≤ {GOAL_P99_MS} ms: {}\n",
        verdict(p99 <= GOAL_P99_MS)
    )?;
    writeln!(
        md,
        "Measured on an otherwise quiet machine. With six CPU-bound processes at nice 19 on \
         both cores (the long fuzz run), the same bench gave a p99 of 7.7 ms (p50 0.17 ms): \
         the scheduler lets a running task finish its slice before the woken daemon runs, so \
         busy hosts see tails of a few scheduler ticks.\n"
    )?;
    Ok(md)
}

/// Milliseconds from send to line, one per sample.
fn sample(daemon: &Daemon, loopback: &Loopback) -> anyhow::Result<Vec<f64>> {
    let path = daemon.alerts();
    if !path.exists() {
        File::create(&path)?;
    }
    let mut file = File::open(&path)?;
    file.seek(SeekFrom::End(0))?;
    let inotify = Inotify::watch(&path)?;
    let mut pending = String::new();
    let mut latencies = Vec::with_capacity(SAMPLES);
    let mut seed = 0x2545_f491_u32;
    for i in 0..SAMPLES {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        std::thread::sleep(Duration::from_micros(
            2_000 + u64::from(seed >> 16) % 10_000,
        ));
        let address = Ipv4Addr::new(203, 0, 113, 1 + i as u8);
        let needle = format!("\"{address}\"");
        let payload = response(i as u16, HOST, &[address]);
        let sent = monotonic_ns();
        loopback.send(&payload)?;
        let deadline = sent + 2_000_000_000;
        loop {
            let mut chunk = String::new();
            file.read_to_string(&mut chunk)?;
            pending.push_str(&chunk);
            let found = pending.lines().any(|line| line.contains(&needle));
            if found && pending.ends_with('\n') {
                latencies.push((monotonic_ns() - sent) as f64 / 1e6);
                pending.clear();
                break;
            }
            if monotonic_ns() > deadline {
                bail!("no alert line for {address} within 2 s");
            }
            inotify.wait(Duration::from_millis(100))?;
        }
    }
    Ok(latencies)
}

struct Inotify(File);

impl Inotify {
    fn watch(path: &std::path::Path) -> anyhow::Result<Inotify> {
        // SAFETY: inotify_init1 returns a new fd that File then owns.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("inotify_init1");
        }
        // SAFETY: fd is the new descriptor checked above, owned by nothing else.
        let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: a valid fd and NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd, c_path.as_ptr(), libc::IN_MODIFY) } < 0 {
            return Err(std::io::Error::last_os_error()).context("inotify_add_watch");
        }
        Ok(Inotify(file))
    }

    /// Waits until the file was modified (or `timeout`), then drains the
    /// notifications.
    fn wait(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd we own.
        unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
        let mut buf = [0u8; 4096];
        while (&self.0).read(&mut buf).is_ok_and(|n| n > 0) {}
        Ok(())
    }
}
