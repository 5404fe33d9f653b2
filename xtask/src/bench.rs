//! `cargo xtask bench`: runs the benchmarks and writes BENCHMARKS.md.
//!
//! Figures are ratios against a baseline measured in the same run, because
//! these machines are shared and noisy: absolute nanoseconds move from run
//! to run, the ratio to a program that does nothing much less.
use std::fmt::Write as _;

use anyhow::{Context, bail};

use crate::{setup, shell};

pub fn run() -> anyhow::Result<()> {
    if !setup::is_root() {
        bail!("the in-kernel benchmark loads eBPF programs: run it as root");
    }
    shell::cargo(&[
        "build",
        "--release",
        "--package",
        "pinwatch",
        "--example",
        "kernel_cost",
    ])?;
    eprintln!("+ target/release/examples/kernel_cost");
    let table = shell::output("target/release/examples/kernel_cost", &[])?;
    if !table.contains("| --- |") {
        bail!("kernel_cost printed no table (run target/release/examples/kernel_cost to see why)");
    }
    let kernel = shell::output("uname", &["-r"])?;
    let cpu = shell::output(
        "sh",
        &["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
    )?;
    let cores = shell::output("nproc", &[])?;
    let mut doc = String::new();
    writeln!(doc, "# pinwatch benchmarks\n")?;
    writeln!(
        doc,
        "Regenerate with `cargo xtask bench` (root). Every figure is a median of 5 runs, and every"
    )?;
    writeln!(
        doc,
        "ratio compares against a baseline measured side by side in the same run.\n"
    )?;
    writeln!(
        doc,
        "Machine: {} cores, {}, kernel {}.\n",
        cores.trim(),
        cpu.trim(),
        kernel.trim()
    )?;
    writeln!(
        doc,
        "## In-kernel cost per packet of the cgroup_skb programs\n"
    )?;
    writeln!(
        doc,
        "Measured with the kernel's BPF run-time statistics (`BPF_ENABLE_STATS`, as"
    )?;
    writeln!(
        doc,
        "`kernel.bpf_stats_enabled` does): run time ÷ run count of `pw_dns_egress` and"
    )?;
    writeln!(
        doc,
        "`pw_dns_ingress`, against a trivial program (`return 1`) attached beside them on the"
    )?;
    writeln!(
        doc,
        "same hook of the cgroup v2 root. 100,000 UDP packets per run over loopback, so each"
    )?;
    writeln!(
        doc,
        "packet passes both egress and ingress. Both sides include the kernel's own fixed cost of"
    )?;
    writeln!(
        doc,
        "running a program and timing it. Source: `monitor/examples/kernel_cost.rs`.\n"
    )?;
    writeln!(
        doc,
        "Goals: at most 1.5× the trivial program on non-DNS packets, at most 4× on DNS"
    )?;
    writeln!(doc, "responses.\n")?;
    doc.push_str(&table);
    std::fs::write("BENCHMARKS.md", doc).context("writing BENCHMARKS.md")?;
    eprintln!("wrote BENCHMARKS.md");
    Ok(())
}
