//! Readings the benchmarks take: process CPU and memory from /proc, BPF
//! program run time from the kernel's statistics, and order statistics.
use std::collections::BTreeMap;

use anyhow::Context;

/// utime + stime of `pid`, in nanoseconds (from clock ticks).
pub fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("odd /proc/pid/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[11].parse()?;
    let stime: u64 = fields[12].parse()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Ok((utime + stime) * 1_000_000_000 / hz)
}

/// Resident memory of `pid` in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("odd VmRSS")?
        .parse()?)
}

/// Turns on `kernel.bpf_stats_enabled` while alive, restoring it after.
pub struct BpfStats {
    before: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub fn enable() -> anyhow::Result<BpfStats> {
        let before = std::fs::read_to_string(BPF_STATS)?;
        std::fs::write(BPF_STATS, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(BpfStats { before })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, self.before.trim());
    }
}

/// (run time ns, run count) summed per loaded program name, from bpftool.
pub fn bpf_programs() -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let out = std::process::Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .context("cannot run bpftool")?;
    let programs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut sums = BTreeMap::new();
    for program in programs.as_array().into_iter().flatten() {
        let Some(name) = program["name"].as_str() else {
            continue;
        };
        let entry: &mut (u64, u64) = sums.entry(name.to_owned()).or_default();
        entry.0 += program["run_time_ns"].as_u64().unwrap_or(0);
        entry.1 += program["run_cnt"].as_u64().unwrap_or(0);
    }
    Ok(sums)
}

/// Run time of the programs whose names start with `prefix`, summed.
pub fn bpf_run_time_ns(prefix: &str) -> anyhow::Result<u64> {
    Ok(bpf_programs()?
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(_, (ns, _))| ns)
        .sum())
}

pub fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

/// Nearest-rank percentile.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// CLOCK_MONOTONIC in nanoseconds (the clock base of the kernel's packet
/// timestamps).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}
