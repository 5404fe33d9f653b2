//! B9: DNS query/response matching and TCP/fragment reassembly: the tables'
//! memory bounds under a flood of a million random-id replies, and the
//! userspace cost per message (criterion, monitor/benches/matching.rs and
//! reassembly.rs), beside a baseline measured in the same run.
use std::fmt::Write as _;

use anyhow::Context;

use super::measure::verdict;
use crate::shell;

pub fn run() -> anyhow::Result<String> {
    let matching = shell::cargo_tee(&["bench", "--package", "pinwatch", "--bench", "matching"])?;
    let reassembly =
        shell::cargo_tee(&["bench", "--package", "pinwatch", "--bench", "reassembly"])?;
    let flood_lines: Vec<&str> = matching
        .lines()
        .chain(reassembly.lines())
        .filter(|line| line.contains("flood"))
        .collect();
    let clone = estimate("matching", "clone_pair")? / 2.0;
    let matching_only = estimate("matching", "matching_only")? / 2.0;
    let detect = estimate("matching", "query_then_response")? / 2.0;
    let mut md = String::new();
    writeln!(md, "## B9 DNS matching and reassembly tables\n")?;
    writeln!(
        md,
        "Criterion medians (`cargo bench -p pinwatch --bench matching` and `--bench reassembly`); \
         reproduce the section with `cargo xtask bench --only b9`. The floods print the most the \
         tables held and panic past their bounds.\n"
    )?;
    for line in &flood_lines {
        writeln!(md, "- {}", line.trim())?;
    }
    writeln!(md)?;
    writeln!(
        md,
        "| per DNS message | ns | ratio to the baseline | goal |"
    )?;
    writeln!(md, "| --- | ---: | ---: | --- |")?;
    writeln!(
        md,
        "| baseline: cloning the query and response events | {clone:.0} | 1.00× | — |"
    )?;
    writeln!(
        md,
        "| query/response matching alone on a query and its response (the matching table, \
         the spoofing rules, the stub path) | {matching_only:.0} | {:.2}× | ≤ 1000 ns: {} |",
        matching_only / clone,
        verdict(matching_only <= 1000.0)
    )?;
    writeln!(
        md,
        "| the whole `Detector::observe` on the same pair (matching, the answer checks, the \
         recent-answer table) | {detect:.0} | {:.2}× | — |",
        detect / clone,
    )?;
    for (function, label) in [
        (
            "tcp_one_message_per_segment",
            "TCP reassembly, one message per segment",
        ),
        (
            "tcp_message_split_in_two",
            "TCP reassembly, a message split over two segments",
        ),
    ] {
        if let Ok(ns) = estimate("reassembly", function) {
            writeln!(
                md,
                "| {label} | {ns:.0} | {:.2}× | ≤ 1000 ns: {} |",
                ns / clone,
                verdict(ns <= 1000.0)
            )?;
        }
    }
    writeln!(md)?;
    Ok(md)
}

/// Criterion's median (ns) for `group/function` from target/criterion.
fn estimate(group: &str, function: &str) -> anyhow::Result<f64> {
    let path = format!("target/criterion/{group}/{function}/new/estimates.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    json["median"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("{path} has no median"))
}
