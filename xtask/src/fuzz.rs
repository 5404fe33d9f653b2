//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/` (see fuzz/README.md).
//!
//! `--smoke` builds every target once and runs each for a bounded time; any
//! crash, leak or timeout fails it. Without `--smoke`, each target runs for
//! `--seconds` (the long run). New inputs go to a scratch corpus, so the
//! checked-in seeds (`fuzz/corpus/<target>/seed-*`) stay as they are.
use std::process::Command;

use anyhow::{Context, bail};

/// Every target in fuzz/fuzz_targets.
pub const TARGETS: [&str; 5] = [
    "decode_record",
    "dns_path",
    "config",
    "control_request",
    "replay_capture",
];
/// Builds with rustc 1.95 and drives the installed nightly.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
pub const SMOKE_SECONDS: u32 = 20;

pub fn run(seconds: u32) -> anyhow::Result<()> {
    install_cargo_fuzz()?;
    // The eBPF object is not needed to fuzz userspace parsers; skipping it
    // keeps the sanitizer build from rebuilding the kernel programs.
    nightly(&["fuzz", "build", "--fuzz-dir", "fuzz"])?;
    for target in TARGETS {
        let scratch = std::env::temp_dir().join(format!("pinwatch-fuzz-{target}"));
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        let scratch = scratch.to_string_lossy().into_owned();
        let seeds = format!("fuzz/corpus/{target}");
        let max_time = format!("-max_total_time={seconds}");
        let log = std::path::PathBuf::from(format!("target/fuzz-logs/{target}.log"));
        nightly_logged(
            &log,
            &[
                "fuzz",
                "run",
                "--fuzz-dir",
                "fuzz",
                target,
                &scratch,
                &seeds,
                "--",
                &max_time,
                "-rss_limit_mb=2048",
                "-timeout=10",
            ],
        )
        .with_context(|| {
            format!("fuzz target {target} failed; the input is under fuzz/artifacts/{target}/")
        })?;
    }
    println!(
        "fuzz: {} targets ran {seconds} s each without a crash",
        TARGETS.len()
    );
    Ok(())
}

fn install_cargo_fuzz() -> anyhow::Result<()> {
    let version = crate::shell::output("cargo", &["fuzz", "--version"]).unwrap_or_default();
    if version.contains(CARGO_FUZZ_VERSION) {
        return Ok(());
    }
    let spec = format!("cargo-fuzz@{CARGO_FUZZ_VERSION}");
    crate::shell::run("cargo", &["install", &spec, "--locked"]).context("installing cargo-fuzz")
}

/// `cargo +nightly ARGS` through rustup's proxy, whatever toolchain runs xtask.
fn nightly(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("+ cargo +nightly {}", args.join(" "));
    let status = nightly_command(args)
        .status()
        .context("cannot start cargo +nightly")?;
    if !status.success() {
        bail!("cargo +nightly {} failed: {status}", args.join(" "));
    }
    Ok(())
}

/// As [`nightly`], with libFuzzer's thousands of progress lines kept in
/// `log` instead of the test output: its last lines are printed (all of the
/// tail on failure, where the crash report is).
fn nightly_logged(log: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("+ cargo +nightly {} > {}", args.join(" "), log.display());
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let status = nightly_command(args)
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .context("cannot start cargo +nightly")?;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = if status.success() { 2 } else { 60 };
    for line in &lines[lines.len().saturating_sub(tail)..] {
        eprintln!("    {line}");
    }
    if !status.success() {
        bail!(
            "cargo +nightly {} failed: {status} (full log: {})",
            args.join(" "),
            log.display()
        );
    }
    Ok(())
}

fn nightly_command(args: &[&str]) -> Command {
    let mut command = Command::new("cargo");
    command
        .arg("+nightly")
        .args(args)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("CARGO")
        .env("AYA_BUILD_SKIP", "1");
    command
}
