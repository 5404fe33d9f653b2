//! B8: what plaintext detection adds to a watched database connection:
//! connect(), a PostgreSQL StartupMessage, the server's one-byte answer and
//! close(), timed with and without pinwatch (alternating runs), in a
//! namespace of the bench's own.
use std::{
    fmt::Write as _,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use anyhow::Context;

use super::{
    b3::{Alternated, WATCHED, alternate},
    lab::Netns,
    measure::median,
};

const ITERATIONS: usize = 10_000;
const PAIRS: usize = 3;

pub fn run() -> anyhow::Result<String> {
    let netns = Netns::new("b8")?;
    let stop = Arc::new(AtomicBool::new(false));
    let listener = netns
        .spawn(|| TcpListener::bind(("127.0.0.1", WATCHED)))?
        .join()
        .map_err(|_| anyhow::anyhow!("bind panicked"))??;
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((mut stream, _)) = listener.accept() {
                    let _ = stream.read(&mut buffer);
                    let _ = stream.write_all(b"R");
                }
            }
        })
    };
    exchanges(&netns, 1_000)?;
    let Alternated {
        off, on, programs, ..
    } = alternate(PAIRS, false, || exchanges(&netns, ITERATIONS))?;
    stop.store(true, Ordering::Relaxed);
    exchanges(&netns, 1)?;
    let _ = server.join();

    let without = median(&off);
    let with = median(&on);
    let mut md = String::new();
    writeln!(md, "## B8 plaintext detection on a watched connection\n")?;
    writeln!(
        md,
        "connect() to port {WATCHED} on 127.0.0.1 (pinned, so no alert), a 40-byte PostgreSQL \
         StartupMessage, the server's one-byte answer read back, close(); {ITERATIONS} \
         exchanges per run, each timed alone (median), {PAIRS} runs without and {PAIRS} with \
         pinwatch, alternating. With pinwatch the kernel copies the opening segments of the \
         connection (`plaintext-db-connection` is judged on them; this client starts in the \
         clear, the costliest path) and reports the connect.\n"
    )?;
    writeln!(
        md,
        "Reproduce: `cargo xtask bench --only b8` (source `xtask/src/bench/b8.rs`).\n"
    )?;
    writeln!(md, "| without ns | with ns | added ns | ratio |")?;
    writeln!(md, "| ---: | ---: | ---: | ---: |")?;
    writeln!(
        md,
        "| {without:.0} | {with:.0} | {:.0} | {:.3}× |",
        with - without,
        with / without
    )?;
    writeln!(
        md,
        "\nRuns (median ns): without {}; with {}. The issue sets no goal for this figure. What \
         pinwatch's programs themselves cost per exchange, from the BPF run-time statistics of \
         one more run per pair with `kernel.bpf_stats_enabled` on (its timing discarded: the \
         statistics' clock reads add to every program run):\n",
        join(&off),
        join(&on),
    )?;
    writeln!(md, "| program | runs | ns/run | ns per exchange |")?;
    writeln!(md, "| --- | ---: | ---: | ---: |")?;
    let exchanges_measured = (ITERATIONS * PAIRS) as f64;
    for (name, (ns, count)) in &programs {
        writeln!(
            md,
            "| `{name}` | {count} | {:.0} | {:.0} |",
            *ns as f64 / *count as f64,
            *ns as f64 / exchanges_measured
        )?;
    }
    writeln!(md)?;
    Ok(md)
}

fn join(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Median ns of one whole exchange.
fn exchanges(netns: &Netns, iterations: usize) -> anyhow::Result<f64> {
    let handle = netns.spawn(move || -> std::io::Result<f64> {
        let startup = startup_message();
        let mut samples = Vec::with_capacity(iterations);
        let mut answer = [0u8; 1];
        for _ in 0..iterations {
            let start = Instant::now();
            let mut stream = TcpStream::connect(("127.0.0.1", WATCHED))?;
            stream.set_nodelay(true)?;
            reset_on_close(&stream);
            stream.write_all(&startup)?;
            stream.read_exact(&mut answer)?;
            drop(stream);
            samples.push(start.elapsed().as_nanos() as f64);
        }
        Ok(median(&samples))
    })?;
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("exchange loop panicked"))?
        .context("exchange loop")
}

/// SO_LINGER 0: close() resets instead of leaving TIME_WAIT, so tens of
/// thousands of exchanges never run out of ephemeral ports.
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads the struct we pass, on a socket we own.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as u32,
        );
    }
}

fn startup_message() -> Vec<u8> {
    let body = b"user\0bench\0database\0orders\0\0";
    let mut message = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&(3u32 << 16).to_be_bytes());
    message.extend_from_slice(body);
    message
}
