//! B10: pinwatch beside Suricata 7 on the same dnsperf load as B2. Suricata
//! reads the bench namespace's loopback with af-packet (two worker
//! threads), parses DNS in its app layer, loads no rules and logs nothing
//! (eve DNS logging off): its parse-only cost, the cheapest way it can
//! look at DNS. Runs alternate none / pinwatch / Suricata.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::{
    DATABASES, b2,
    lab::{Daemon, Netns, scratch},
    measure::{BpfStats, bpf_run_time_ns, cpu_ns, median, rss_kib, verdict},
};
use crate::shell;

const SECONDS: u32 = 10;
const ROUNDS: usize = 3;
pub const SURICATA: &str = "/usr/bin/suricata";

/// Debian 12 ships Suricata 6; 7 comes from bookworm-backports. The suite
/// goes into a sources list of the bench's own, passed to apt on the
/// command line: the machine's lists stay as they are.
pub fn install() -> anyhow::Result<()> {
    if Path::new(SURICATA).exists() {
        return Ok(());
    }
    let dir = scratch("apt");
    std::fs::create_dir_all(&dir)?;
    let list = dir.join("backports.list");
    let keyring = "signed-by=/usr/share/keyrings/debian-archive-keyring.gpg";
    let suites = [
        ("debian", "bookworm"),
        ("debian", "bookworm-updates"),
        ("debian-security", "bookworm-security"),
        ("debian", "bookworm-backports"),
    ];
    let text: String = suites
        .iter()
        .map(|(archive, suite)| {
            format!("deb [{keyring}] http://deb.debian.org/{archive} {suite} main\n")
        })
        .collect();
    std::fs::write(&list, text)?;
    let sourcelist = format!("Dir::Etc::sourcelist={}", list.display());
    let private = [
        "-o",
        sourcelist.as_str(),
        "-o",
        "Dir::Etc::sourceparts=-",
        "-o",
        "APT::Get::List-Cleanup=0",
    ];
    let mut update = vec!["-qq"];
    update.extend(private);
    update.push("update");
    shell::run("apt-get", &update)?;
    let mut options = vec!["-t", "bookworm-backports"];
    options.extend(private);
    let installed = crate::setup::apt_install(&options, &["suricata"]);
    let _ = std::fs::remove_dir_all(&dir);
    installed
}

struct Round {
    qps: f64,
    /// CPU of the watcher (ns) per query completed; 0 for none.
    cpu_per_query: f64,
    /// Of which in pinwatch's programs (BPF run-time statistics).
    bpf_per_query: f64,
    rss_kib: u64,
    /// pinwatch's `counters.events_lost`, Suricata's `capture.kernel_drops`
    /// after the run.
    lost: u64,
}

pub fn run() -> anyhow::Result<String> {
    let netns = Netns::new("b10")?;
    let queries = scratch("b10-queries.txt");
    let names: String = (0..1000).map(|i| format!("h{i}.bench.test A\n")).collect();
    std::fs::write(&queries, names)?;
    // The query file goes whether or not the rounds ran.
    let section = rounds(&netns, &queries);
    let _ = std::fs::remove_file(&queries);
    section
}

fn rounds(netns: &Netns, queries: &Path) -> anyhow::Result<String> {
    let _dnsmasq = b2::Dnsmasq::start(netns)?;
    b2::dnsperf(netns, queries, 2)?;
    let (mut none, mut pinwatch, mut suricata) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        none.push(Round {
            qps: b2::dnsperf(netns, queries, SECONDS)?.qps,
            cpu_per_query: 0.0,
            bpf_per_query: 0.0,
            rss_kib: 0,
            lost: 0,
        });
        pinwatch.push(with_pinwatch(netns, queries)?);
        suricata.push(with_suricata(netns, queries)?);
    }
    report(&none, &pinwatch, &suricata)
}

fn with_pinwatch(netns: &Netns, queries: &Path) -> anyhow::Result<Round> {
    let daemon = Daemon::start(DATABASES)?;
    let stats = BpfStats::enable()?;
    let (cpu, bpf) = (cpu_ns(daemon.pid())?, bpf_run_time_ns("pw_")?);
    let result = b2::dnsperf(netns, queries, SECONDS)?;
    super::b4::settled(&daemon)?;
    let bpf = bpf_run_time_ns("pw_")? - bpf;
    let cpu = cpu_ns(daemon.pid())? - cpu;
    drop(stats);
    let lost = daemon.counter("events_lost")?;
    let completed = result.completed.max(1) as f64;
    Ok(Round {
        qps: result.qps,
        cpu_per_query: (cpu + bpf) as f64 / completed,
        bpf_per_query: bpf as f64 / completed,
        rss_kib: rss_kib(daemon.pid())?,
        lost,
    })
}

fn with_suricata(netns: &Netns, queries: &Path) -> anyhow::Result<Round> {
    let suricata = Suricata::start(netns)?;
    let cpu = cpu_ns(suricata.pid())?;
    let result = b2::dnsperf(netns, queries, SECONDS)?;
    let cpu = cpu_ns(suricata.pid())? - cpu;
    // Its stats are written each second: let the last one land.
    std::thread::sleep(Duration::from_millis(1500));
    let lost = suricata.kernel_drops();
    Ok(Round {
        qps: result.qps,
        cpu_per_query: cpu as f64 / result.completed.max(1) as f64,
        bpf_per_query: 0.0,
        rss_kib: rss_kib(suricata.pid())?,
        lost,
    })
}

fn report(none: &[Round], pinwatch: &[Round], suricata: &[Round]) -> anyhow::Result<String> {
    let qps = |rounds: &[Round]| median(&rounds.iter().map(|r| r.qps).collect::<Vec<_>>());
    let cpu =
        |rounds: &[Round]| median(&rounds.iter().map(|r| r.cpu_per_query).collect::<Vec<_>>());
    let bpf =
        |rounds: &[Round]| median(&rounds.iter().map(|r| r.bpf_per_query).collect::<Vec<_>>());
    let rss = |rounds: &[Round]| {
        median(&rounds.iter().map(|r| r.rss_kib as f64).collect::<Vec<_>>()) / 1024.0
    };
    let runs = |rounds: &[Round]| {
        rounds
            .iter()
            .map(|r| format!("{:.0}", r.qps))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let base = qps(none);
    let mut md = String::new();
    writeln!(md, "## B10 beside Suricata 7 (DNS parse only)\n")?;
    writeln!(
        md,
        "The B2 load (dnsperf against dnsmasq on 127.0.0.1:53 in a namespace of the bench's \
         own, {SECONDS} s at saturation, `-q 500`), {ROUNDS} rounds alternating nothing \
         watching / pinwatch / Suricata {version}. Suricata: af-packet on the namespace's \
         loopback, two worker threads (`--runmode workers`, `cluster_flow`), the DNS app layer \
         on, no rules (`-S /dev/null`), no eve log (so no DNS logging), checksum checks off: \
         its parse-only cost. CPU per query: the watcher's utime + stime (/proc/PID/stat, \
         every thread) over the run ÷ queries completed; for pinwatch plus the run time of \
         its `pw_` programs (BPF statistics on during its runs; their clock reads are \
         counted too). Packet sockets are fed in the sender's softirq, so Suricata's copy \
         of each packet into its ring is charged to dnsperf and dnsmasq, not to Suricata: \
         its figure leaves that out, pinwatch's includes its in-kernel work. Resident \
         memory: VmRSS at the end of the run. Medians of the rounds.\n",
        version = suricata_version()
    )?;
    writeln!(
        md,
        "Reproduce: `cargo xtask bench --only b10` (source `xtask/src/bench/b10.rs`; Suricata \
         7 is installed from bookworm-backports through a private sources list on first run).\n"
    )?;
    writeln!(
        md,
        "| watcher | queries/s | ratio to none | CPU ns/query | of which BPF | resident MiB | runs (queries/s) |"
    )?;
    writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | --- |")?;
    writeln!(
        md,
        "| none | {base:.0} | 1.000 | — | — | — | {} |",
        runs(none)
    )?;
    for (name, rounds) in [("pinwatch", pinwatch), ("Suricata", suricata)] {
        writeln!(
            md,
            "| {name} | {:.0} | {:.3} | {:.0} | {:.0} | {:.1} | {} |",
            qps(rounds),
            qps(rounds) / base,
            cpu(rounds),
            bpf(rounds),
            rss(rounds),
            runs(rounds)
        )?;
    }
    writeln!(md)?;
    let (ours, theirs) = (cpu(pinwatch), cpu(suricata));
    let lost: u64 = pinwatch.iter().map(|r| r.lost).sum();
    let dropped: u64 = suricata.iter().map(|r| r.lost).sum();
    writeln!(
        md,
        "- Lost, all rounds: pinwatch's events (`counters.events_lost`) **{lost}**, \
         Suricata's packets (`capture.kernel_drops`) **{dropped}**. A watcher that falls \
         behind drops what it cannot read, which lowers its CPU per query: figures with \
         loss are a lower bound."
    )?;
    writeln!(
        md,
        "- pinwatch's CPU per query ÷ Suricata's parse-only: **{:.2}×** — goal < 1: {}\n",
        ours / theirs,
        verdict(ours < theirs)
    )?;
    Ok(md)
}

fn suricata_version() -> String {
    shell::output(SURICATA, &["-V"])
        .ok()
        .and_then(|v| {
            v.split_whitespace()
                .skip_while(|w| *w != "version")
                .nth(1)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "7".to_owned())
}

/// Suricata on the namespace's loopback, stopped on drop.
struct Suricata {
    child: Child,
    dir: PathBuf,
}

impl Suricata {
    fn start(netns: &Netns) -> anyhow::Result<Suricata> {
        let dir = scratch("suricata");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("suricata.yaml");
        std::fs::write(&config, CONFIG)?;
        let child = netns
            .command(SURICATA)
            .arg("-c")
            .arg(&config)
            .args(["-S", "/dev/null", "--af-packet=lo", "--runmode", "workers"])
            .args(["-k", "none", "-l"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start suricata")?;
        let suricata = Suricata { child, dir };
        suricata.wait_started()?;
        Ok(suricata)
    }

    /// `ip netns exec` execs the command, so this is Suricata's pid.
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Packets the kernel dropped before Suricata read them (its af-packet
    /// ring was full), from the last totals in stats.log.
    fn kernel_drops(&self) -> u64 {
        let text = std::fs::read_to_string(self.dir.join("stats.log")).unwrap_or_default();
        text.lines()
            .rev()
            .find(|l| l.starts_with("capture.kernel_drops"))
            .and_then(|l| l.split('|').nth(2))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn wait_started(&self) -> anyhow::Result<()> {
        let log = self.dir.join("suricata.log");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Engine started") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "Suricata did not start within 60 s:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    }
}

impl Drop for Suricata {
    fn drop(&mut self) {
        // SAFETY: a signal to the child this value owns.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Parse-only: DNS over UDP and TCP in the app layer, every output off.
const CONFIG: &str = r#"%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: "[127.0.0.0/8]"
    EXTERNAL_NET: "!$HOME_NET"
  port-groups:
    DNS_PORTS: "53"
outputs:
  - eve-log:
      enabled: no
  - stats:
      enabled: yes
      filename: stats.log
      totals: yes
      threads: no
stats:
  enabled: yes
  interval: 1
logging:
  default-log-level: notice
  outputs:
    - console:
        enabled: no
    - file:
        enabled: yes
        level: notice
        filename: suricata.log
af-packet:
  - interface: lo
    threads: 2
    cluster-id: 98
    cluster-type: cluster_flow
    defrag: yes
app-layer:
  protocols:
    dns:
      enabled: yes
      tcp:
        enabled: yes
        detection-ports:
          dp: 53
      udp:
        enabled: yes
        detection-ports:
          dp: 53
"#;
