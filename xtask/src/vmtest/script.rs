//! The bash script a VM runs, and the host-built test binaries it calls.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use super::{PORTABILITY_SUBSET, Plan};

/// Builds the integration tests without running them: test name → binary.
pub fn test_binaries() -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "test",
            "--package",
            "pinwatch-integration-tests",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start cargo")?;
    if !out.status.success() {
        bail!("building the integration tests failed");
    }
    let mut binaries = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "test"));
        if let (true, Some(name), Some(exe)) = (
            is_test,
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            binaries.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    for (binary, _) in PORTABILITY_SUBSET {
        if !binaries.contains_key(*binary) {
            bail!("the portability subset names test binary {binary}, which cargo did not build");
        }
    }
    Ok(binaries)
}

/// Writes results/run.sh: start the daemon alone and save its status, then
/// run the tests, one binary after another, and exit non-zero if any failed.
pub fn write(
    results: &Path,
    binaries: &BTreeMap<String, PathBuf>,
    plan: Plan,
) -> anyhow::Result<PathBuf> {
    let root = std::env::current_dir()?;
    let mut script = String::new();
    let r = results.display();
    writeln!(
        script,
        r#"#!/bin/bash
# Written by `cargo xtask vmtest`; runs inside the VM as root.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
# Software emulation: the harness stretches its start and stop timeouts.
export PINWATCH_TEST_SLOWDOWN=4
cd {root}
echo "vmtest: kernel $(uname -r)"
# What legacy tc and the tests' tunnels load on demand, loaded before the
# clock starts: module loads over 9p take seconds under emulation.
for module in sch_ingress cls_bpf veth tun; do modprobe -q "$module" 2>/dev/null; done
ip link set lo up
failed=0
# The daemon on its own: does it start here, and what does it report?
target/debug/pinwatch run -c config/pinwatch.toml > {r}/alerts.ndjson 2> {r}/daemon.log &
daemon=$!
for _ in $(seq 1 240); do
    grep -q "pinwatch ready" {r}/daemon.log && break
    kill -0 $daemon 2>/dev/null || break
    sleep 0.5
done
target/debug/pinwatch status --json > {r}/status.json
echo "vmtest: status exit $?"
kill -TERM $daemon 2>/dev/null
wait $daemon
echo "vmtest: daemon exit $?"
cat {r}/daemon.log"#,
        root = root.display(),
    )?;
    let plan: Vec<(&String, Vec<&str>)> = match plan.tests() {
        None => binaries.keys().map(|b| (b, Vec::new())).collect(),
        Some(subset) => binaries
            .keys()
            .filter_map(|binary| {
                let tests: Vec<&str> = subset
                    .iter()
                    .filter(|(b, _)| b == binary)
                    .map(|(_, t)| *t)
                    .collect();
                (!tests.is_empty()).then_some((binary, tests))
            })
            .collect(),
    };
    for (binary, tests) in plan {
        let exe = &binaries[binary];
        let filter = if tests.is_empty() {
            String::new()
        } else {
            format!(" --exact {}", tests.join(" "))
        };
        writeln!(
            script,
            r#"echo "vmtest: {binary}"
start=$(date +%s)
{exe} --test-threads=1{filter} || failed=1
echo "vmtest: {binary} took $(( $(date +%s) - start )) s""#,
            exe = exe.display()
        )?;
    }
    writeln!(script, "exit $failed")?;
    let path = results.join("run.sh");
    fs::write(&path, script)?;
    Ok(path)
}
