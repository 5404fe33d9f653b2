//! B3: nanoseconds pinwatch adds to connect()+close() on a watched port and
//! on an unwatched one, from loops against local listeners in a namespace
//! of our own, alternating runs without and with the daemon.
use std::{
    fmt::Write as _,
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use anyhow::Context;

use super::{
    DATABASES,
    lab::{Daemon, Netns, TrivialHooks},
    measure::{BpfStats, bpf_programs, median, verdict},
};

pub const WATCHED: u16 = 26257;
const UNWATCHED: u16 = 40500;
const ITERATIONS: usize = 30_000;
const PAIRS: usize = 3;

pub fn run() -> anyhow::Result<String> {
    let netns = Netns::new("b3")?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut acceptors = Vec::new();
    for port in [WATCHED, UNWATCHED] {
        let stop = stop.clone();
        let listener = netns
            .spawn(move || TcpListener::bind(("127.0.0.1", port)))?
            .join()
            .map_err(|_| anyhow::anyhow!("bind panicked"))??;
        acceptors.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                drop(listener.accept());
            }
        }));
    }
    // Unmeasured warm-up.
    loops(&netns, 2_000)?;
    let Alternated {
        off,
        floor,
        on,
        programs,
    } = alternate(PAIRS, true, || loops(&netns, ITERATIONS))?;
    stop.store(true, Ordering::Relaxed);
    // Wake the acceptors so they see the flag.
    loops(&netns, 1)?;
    for acceptor in acceptors {
        let _ = acceptor.join();
    }

    let mut md = String::new();
    writeln!(md, "## B3 connect tax\n")?;
    writeln!(
        md,
        "connect() + close() of a TCP socket to a listener on 127.0.0.1 in a namespace of the \
         bench's own, {ITERATIONS} iterations per port per run, each timed alone (the median is \
         taken); {PAIRS} runs without and {PAIRS} with pinwatch, alternating; medians of the runs. \
         The watched port is {WATCHED} (pinned 127.0.0.0/8, so no alert), the unwatched \
         {UNWATCHED}. The socket closes with SO_LINGER 0 (a reset, no TIME_WAIT) so ports never \
         run out; socket() is outside the timed part.\n"
    )?;
    writeln!(
        md,
        "Reproduce: `cargo xtask bench --only b3` (source `xtask/src/bench/b3.rs`).\n"
    )?;
    writeln!(
        md,
        "| port | without ns | trivial programs only ns | with ns | added ns | added by the floor ns | ratio | goal |"
    )?;
    writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    )?;
    for (index, label, goal) in [(0, "watched", 1000.0), (1, "unwatched", 100.0)] {
        let without = median(&off.iter().map(|r: &[f64; 2]| r[index]).collect::<Vec<_>>());
        let with = median(&on.iter().map(|r: &[f64; 2]| r[index]).collect::<Vec<_>>());
        let trivial = median(
            &floor
                .iter()
                .map(|r: &[f64; 2]| r[index])
                .collect::<Vec<_>>(),
        );
        let added = with - without;
        writeln!(
            md,
            "| {label} | {without:.0} | {trivial:.0} | {with:.0} | {added:.0} | {:.0} | {:.3}× | ≤ {goal:.0} ns: {} |",
            trivial - without,
            with / without,
            verdict(added <= goal)
        )?;
    }
    let connects = (2 * ITERATIONS * PAIRS) as f64;
    writeln!(
        md,
        "\nRuns (median ns, watched / unwatched): without {}; trivial programs only {}; with {}. On a machine this noisy a \
         difference of ~1% of a connect is within run-to-run spread; the BPF run-time \
         statistics, from one more run per pair with `kernel.bpf_stats_enabled` on (its \
         timing discarded: the statistics' own clock reads add to every program run), say \
         what pinwatch's programs themselves cost:\n",
        runs(&off),
        runs(&floor),
        runs(&on)
    )?;
    writeln!(md, "| program | runs | ns/run | ns per connect+close |")?;
    writeln!(md, "| --- | ---: | ---: | ---: |")?;
    for (name, (ns, count)) in &programs {
        writeln!(
            md,
            "| `{name}` | {count} | {:.0} | {:.0} |",
            *ns as f64 / *count as f64,
            *ns as f64 / connects
        )?;
    }
    writeln!(md)?;
    md.push_str(super::analysis::CONNECT);
    md.push('\n');
    Ok(md)
}

/// What pinwatch's programs cost during the runs with it: name → (run
/// time ns, runs), from the kernel's BPF statistics.
pub type ProgramCosts = std::collections::BTreeMap<String, (u64, u64)>;

/// What [`alternate`] measured: without pinwatch, with only the trivial
/// programs on the packet hooks (when asked for), with pinwatch.
pub struct Alternated<T> {
    pub off: Vec<T>,
    pub floor: Vec<T>,
    pub on: Vec<T>,
    pub programs: ProgramCosts,
}

/// Runs `measure` `pairs` times without and with the daemon (and, with
/// `floor`, with only the trivial programs attached), alternating so drift
/// hits all alike; returns the series and the programs' costs.
///
/// The timed runs with the daemon have the kernel's BPF statistics off:
/// they read the clock twice around every program run, which here costs
/// more than a small program itself. The programs' costs come from one more
/// run per pair with the statistics on, whose timing is discarded.
pub fn alternate<T>(
    pairs: usize,
    floor: bool,
    mut measure: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<Alternated<T>> {
    let (mut off, mut floors, mut on) = (Vec::new(), Vec::new(), Vec::new());
    let mut programs = ProgramCosts::new();
    for _ in 0..pairs {
        off.push(measure()?);
        if floor {
            let _hooks = TrivialHooks::attach()?;
            floors.push(measure()?);
        }
        let daemon = Daemon::start(DATABASES)?;
        on.push(measure()?);
        let stats = BpfStats::enable()?;
        let before = bpf_programs()?;
        measure()?;
        let after = bpf_programs()?;
        drop(stats);
        for (name, (ns, count)) in after {
            let (b_ns, b_count) = before.get(&name).copied().unwrap_or_default();
            if name.starts_with("pw_") && count > b_count {
                let entry = programs.entry(name).or_insert((0, 0));
                entry.0 += ns - b_ns;
                entry.1 += count - b_count;
            }
        }
        drop(daemon);
    }
    Ok(Alternated {
        off,
        floor: floors,
        on,
        programs,
    })
}

fn runs(values: &[[f64; 2]]) -> String {
    values
        .iter()
        .map(|r| format!("{:.0}/{:.0}", r[0], r[1]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Median ns of connect()+close() to the watched and to the unwatched port,
/// iterations interleaved so drift hits both alike.
fn loops(netns: &Netns, iterations: usize) -> anyhow::Result<[f64; 2]> {
    let handle = netns.spawn(move || -> std::io::Result<[f64; 2]> {
        let mut samples = [
            Vec::with_capacity(iterations),
            Vec::with_capacity(iterations),
        ];
        for _ in 0..iterations {
            for (index, port) in [WATCHED, UNWATCHED].into_iter().enumerate() {
                samples[index].push(connect_close(port)?);
            }
        }
        Ok([median(&samples[0]), median(&samples[1])])
    })?;
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("connect loop panicked"))?
        .context("connect loop")
}

fn connect_close(port: u16) -> std::io::Result<f64> {
    // SAFETY: plain socket calls on an fd this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as u32,
        );
        let address = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let start = Instant::now();
        let rc = libc::connect(
            fd,
            (&raw const address).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        );
        let error = (rc != 0).then(std::io::Error::last_os_error);
        libc::close(fd);
        let elapsed = start.elapsed().as_nanos() as f64;
        match error {
            Some(error) => Err(error),
            None => Ok(elapsed),
        }
    }
}
