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
    for test in PORTABILITY_SUBSET {
        if !binaries.contains_key(test.binary) {
            bail!(
                "the portability subset names test binary {}, which cargo did not build",
                test.binary
            );
        }
    }
    Ok(binaries)
}

/// Writes results/run.sh: start the daemon alone and save its status, then
/// run the tests, one binary after another, and exit non-zero if any failed
/// (or, for [`Plan::BenchB1`], run B1 instead of the tests). Every step
/// prints how long it took (`vmtest: STEP took S s`), the boot included.
pub fn write(
    results: &Path,
    binaries: &BTreeMap<String, PathBuf>,
    plan: Plan,
    daemon: &Path,
) -> anyhow::Result<PathBuf> {
    let root = std::env::current_dir()?;
    let mut script = String::new();
    let r = results.display();
    let daemon = daemon.display();
    writeln!(
        script,
        r#"#!/bin/bash
# Written by `cargo xtask vmtest`; runs inside the VM as root.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
# Software emulation: the harness stretches its start and stop timeouts.
export PINWATCH_TEST_SLOWDOWN=4
# The tests start this build of the daemon (see `cargo xtask vmtest`).
export PINWATCH_BIN={daemon}
cd {root}
echo "vmtest: kernel $(uname -r)"
echo "vmtest: boot took $(cut -d' ' -f1 /proc/uptime) s"
# Step times in bash alone: microseconds from $EPOCHREALTIME.
step() {{ step_name=$1; step_start=${{EPOCHREALTIME/./}}; }}
took() {{
    local us=$(( ${{EPOCHREALTIME/./}} - step_start ))
    printf 'vmtest: %s took %d.%d s\n' "$step_name" $(( us / 1000000 )) $(( us % 1000000 / 100000 ))
}}
# What legacy tc and the tests' tunnels load on demand, loaded before the
# clock starts: module loads over 9p take seconds under emulation.
step modules
for module in sch_ingress cls_bpf veth tun; do modprobe -q "$module" 2>/dev/null; done
ip link set lo up
took
failed=0
# The daemon on its own: does it start here, and what does it report?
step "daemon start"
$PINWATCH_BIN run -c config/pinwatch.toml > {r}/alerts.ndjson 2> {r}/daemon.log &
daemon=$!
for _ in $(seq 1 1200); do
    grep -q "pinwatch ready" {r}/daemon.log && break
    kill -0 $daemon 2>/dev/null || break
    sleep 0.1
done
took
step "daemon status and stop"
$PINWATCH_BIN status --json > {r}/status.json
echo "vmtest: status exit $?"
kill -TERM $daemon 2>/dev/null
wait $daemon
echo "vmtest: daemon exit $?"
took
cat {r}/daemon.log"#,
        root = root.display(),
    )?;
    let selected: Vec<(&String, Vec<&str>)> = match plan {
        Plan::BenchB1 => Vec::new(),
        Plan::All => binaries.keys().map(|b| (b, Vec::new())).collect(),
        Plan::Portability => binaries
            .keys()
            .filter_map(|binary| {
                let tests: Vec<&str> = PORTABILITY_SUBSET
                    .iter()
                    .filter(|t| t.binary == binary)
                    .map(|t| t.test)
                    .collect();
                (!tests.is_empty()).then_some((binary, tests))
            })
            .collect(),
    };
    for (binary, tests) in selected {
        let exe = &binaries[binary];
        let filter = if tests.is_empty() {
            String::new()
        } else {
            format!(" --exact {}", tests.join(" "))
        };
        writeln!(
            script,
            r#"echo "vmtest: {binary}"
step {binary}
{exe} --test-threads=1{filter} || failed=1
took"#,
            exe = exe.display()
        )?;
    }
    if let Plan::BenchB1 = plan {
        writeln!(
            script,
            r#"step b1
{bench} > {r}/b1.md || failed=1
took
cat {r}/b1.md"#,
            bench = super::B1_BINARY,
        )?;
    }
    writeln!(script, "exit $failed")?;
    let path = results.join("run.sh");
    fs::write(&path, script)?;
    Ok(path)
}
