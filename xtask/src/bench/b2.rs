//! B2: the DNS throughput tax. dnsperf saturates dnsmasq on the loopback of
//! a namespace of our own (port 53, which the kernel filter captures), with
//! and without pinwatch, alternating runs.
use std::{
    fmt::Write as _,
    net::UdpSocket,
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};

use super::{
    DATABASES, dns,
    lab::{Daemon, Netns, TrivialHooks, scratch},
    measure::{median, verdict},
};

const SECONDS: u32 = 10;
const PAIRS: usize = 3;
const GOAL: f64 = 0.97;

pub fn run() -> anyhow::Result<String> {
    let netns = Netns::new("b2")?;
    let queries = scratch("b2-queries.txt");
    let names: String = (0..1000).map(|i| format!("h{i}.bench.test A\n")).collect();
    std::fs::write(&queries, names)?;
    let _dnsmasq = Dnsmasq::start(&netns)?;
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut floor = Vec::new();
    let mut lost = 0;
    let mut seen = Vec::new();
    // Warm dnsmasq and the page cache once, unmeasured.
    dnsperf(&netns, &queries, 2)?;
    for _ in 0..PAIRS {
        without.push(dnsperf(&netns, &queries, SECONDS)?.qps);
        {
            let _hooks = TrivialHooks::attach()?;
            floor.push(dnsperf(&netns, &queries, SECONDS)?.qps);
        }
        let daemon = Daemon::start(DATABASES)?;
        let before = daemon.counter("dns_messages")?;
        let result = dnsperf(&netns, &queries, SECONDS)?;
        // Each response passes egress and ingress on loopback: two
        // captures; a query only its egress (arriving queries are skipped).
        let expected = result.sent + 2 * result.completed;
        let messages = super::b4::settled(&daemon)? - before;
        seen.push(messages as f64 / expected as f64);
        lost += daemon.counter("events_lost")?;
        with.push(result.qps);
    }
    let _ = std::fs::remove_file(&queries);
    let (off, on) = (median(&without), median(&with));
    let ratio = on / off;
    let floor_qps = median(&floor);
    let floor_ratio = floor_qps / off;
    let mut md = String::new();
    writeln!(md, "## B2 DNS throughput tax\n")?;
    writeln!(
        md,
        "dnsperf against dnsmasq (local zone, no logging) on 127.0.0.1:53 in a network namespace \
         the bench creates, {SECONDS} s at saturation (`-q 500`), {PAIRS} runs each without \
         pinwatch, with only the trivial programs (`return 1`) on the cgroup root's egress and \
         ingress hooks, and with pinwatch, alternating; medians. Every query and response passes the \
         egress and the ingress program; pinwatch captures three messages per query (the \
         query as it leaves, the response as it leaves — summarized in the kernel to its \
         addresses and id — and as it arrives; a query arriving at the server is passed \
         over in the kernel).\n"
    )?;
    writeln!(
        md,
        "Reproduce: `cargo xtask bench --only b2` (source `xtask/src/bench/b2.rs`; the measured command is `ip netns exec NS dnsperf -s 127.0.0.1 -d QUERIES -l {SECONDS} -q 500`).\n"
    )?;
    writeln!(md, "| | queries/s | runs |")?;
    writeln!(md, "| --- | ---: | --- |")?;
    writeln!(md, "| without pinwatch | {off:.0} | {} |", list(&without))?;
    writeln!(
        md,
        "| trivial programs only (the floor) | {floor_qps:.0} | {} |",
        list(&floor)
    )?;
    writeln!(md, "| with pinwatch | {on:.0} | {} |", list(&with))?;
    writeln!(md)?;
    writeln!(
        md,
        "- Ratio with/without: **{ratio:.3}** — goal ≥ {GOAL}: {}",
        verdict(ratio >= GOAL)
    )?;
    writeln!(
        md,
        "- Ratio with the trivial programs only / without: **{floor_ratio:.3}**: what any \
         design that sees the host's packets on these hooks keeps at best, before it reads a \
         byte. pinwatch's ratio to that floor: **{:.3}**",
        on / floor_qps
    )?;
    writeln!(
        md,
        "- Events lost (`counters.events_lost`, all runs): **{lost}** — goal 0: {}",
        verdict(lost == 0)
    )?;
    writeln!(
        md,
        "- DNS messages the daemon counted ÷ messages captured (sent + 2 × answered): {}\n",
        seen.iter()
            .map(|s| format!("{s:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(
        md,
        "{} On this 2-core machine dnsperf and dnsmasq take both cores at saturation, so \
         every nanosecond a watcher spends comes out of their throughput. The programs' \
         in-kernel work (B1) and the daemon's userspace cost per DNS message (see \"Where \
         the time goes in userspace\" under B4) come on top of the floor.\n",
        if floor_ratio < GOAL {
            format!(
                "The floor itself, four runs of a program that returns at once per query, is \
                 below the ≥ {GOAL} goal in this run: no design on these hooks can meet it here."
            )
        } else {
            format!(
                "The floor leaves {:.3} of the throughput for the programs' work and the \
                 daemon's before the ≥ {GOAL} goal is missed.",
                floor_ratio - GOAL
            )
        }
    )?;
    Ok(md)
}

fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) struct Perf {
    pub qps: f64,
    pub sent: u64,
    pub completed: u64,
}

pub(super) fn dnsperf(
    netns: &Netns,
    queries: &std::path::Path,
    seconds: u32,
) -> anyhow::Result<Perf> {
    let out = netns
        .command("dnsperf")
        .args(["-s", "127.0.0.1", "-p", "53", "-q", "500", "-l"])
        .arg(seconds.to_string())
        .arg("-d")
        .arg(queries)
        .output()
        .context("cannot run dnsperf")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |label: &str| -> anyhow::Result<f64> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .with_context(|| format!("dnsperf printed no `{label}`:\n{text}"))?;
        let value = line.split(':').nth(1).context("odd line")?;
        Ok(value
            .split_whitespace()
            .next()
            .context("odd line")?
            .parse()?)
    };
    if !out.status.success() {
        bail!(
            "dnsperf failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Perf {
        qps: field("Queries per second")?,
        sent: field("Queries sent")? as u64,
        completed: field("Queries completed")? as u64,
    })
}

pub(super) struct Dnsmasq(Child);

impl Dnsmasq {
    pub(super) fn start(netns: &Netns) -> anyhow::Result<Dnsmasq> {
        let child = netns
            .command("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                "--group=root",
                "--local-ttl=300",
                "--address=/bench.test/192.0.2.1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start dnsmasq")?;
        let dnsmasq = Dnsmasq(child);
        let answered = netns.spawn(|| -> std::io::Result<bool> {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.connect("127.0.0.1:53")?;
            socket.set_read_timeout(Some(Duration::from_millis(100)))?;
            let mut buf = [0u8; 512];
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                // Refused (ICMP, at once) until dnsmasq listens: try again.
                let _ = socket.send(&dns::query(1, "ready.bench.test", 1));
                match socket.recv(&mut buf) {
                    Ok(_) => return Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(_) => {}
                }
            }
            Ok(false)
        })?;
        if !answered
            .join()
            .map_err(|_| anyhow::anyhow!("probe panicked"))??
        {
            let dig = netns
                .command("dig")
                .args(["+short", "+tries=1", "@127.0.0.1", "ready.bench.test"])
                .output()?;
            bail!(
                "dnsmasq did not answer on 127.0.0.1:53 within 5 s (dig from the namespace: {})",
                String::from_utf8_lossy(&dig.stdout).trim()
            );
        }
        Ok(dnsmasq)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
