//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/` (see fuzz/README.md).
//!
//! `--smoke` builds every target once and runs each for a bounded time; any
//! crash, leak or timeout fails it. Without `--smoke`, each target runs for
//! `--seconds` (the long run). New inputs go to a scratch corpus, so the
//! checked-in seeds (`fuzz/corpus/<target>/seed-*`) stay as they are.
use std::{
    path::PathBuf,
    process::{Child, Command, ExitStatus},
};

use anyhow::{Context, bail};

/// Every target in fuzz/fuzz_targets.
pub const TARGETS: [&str; 7] = [
    "decode_record",
    "dns_path",
    "detector_state",
    "reassembly",
    "config",
    "control_request",
    "replay_capture",
];
/// Builds with rustc 1.95 and drives the installed nightly.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
pub const SMOKE_SECONDS: u32 = 20;

/// Runs every target for `seconds`: one after another, or all at once with
/// `parallel` (a long run on a machine with cores to spare; each libFuzzer
/// process uses one core).
pub fn run(seconds: u32, parallel: bool) -> anyhow::Result<()> {
    install_cargo_fuzz()?;
    // The eBPF object is not needed to fuzz userspace parsers; skipping it
    // keeps the sanitizer build from rebuilding the kernel programs.
    nightly(&["fuzz", "build", "--fuzz-dir", "fuzz"])?;
    let runs = TARGETS
        .iter()
        .map(|target| TargetRun::new(target, seconds))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if parallel {
        let children = runs
            .iter()
            .map(|run| run.spawn().map(|child| (run, child)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut failed = Vec::new();
        let mut cpu = Vec::new();
        for (run, mut child) in children {
            let before = children_cpu_seconds();
            let status = child.wait().context("waiting for a fuzz target")?;
            cpu.push(children_cpu_seconds() - before);
            if !run.report(status) {
                failed.push(run.target);
            }
        }
        print_summary(&runs, Some(&cpu));
        if !failed.is_empty() {
            bail!(
                "fuzz targets failed: {}; inputs are under fuzz/artifacts/<target>/",
                failed.join(", ")
            );
        }
    } else {
        let mut cpu = Vec::new();
        for run in &runs {
            let before = children_cpu_seconds();
            let status = run.spawn()?.wait().context("waiting for a fuzz target")?;
            cpu.push(children_cpu_seconds() - before);
            if !run.report(status) {
                bail!(
                    "fuzz target {} failed; the input is under fuzz/artifacts/{}/",
                    run.target,
                    run.target
                );
            }
        }
        print_summary(&runs, Some(&cpu));
    }
    println!(
        "fuzz: {} targets ran {seconds} s each without a crash",
        TARGETS.len()
    );
    Ok(())
}

/// One target's libFuzzer run, its thousands of progress lines kept in a
/// log under target/fuzz-logs/ instead of the test output.
struct TargetRun {
    target: &'static str,
    args: Vec<String>,
    log: PathBuf,
}

impl TargetRun {
    fn new(target: &'static str, seconds: u32) -> anyhow::Result<TargetRun> {
        // New inputs go to a scratch corpus under target/, kept between runs
        // and never committed; the checked-in seeds stay.
        let scratch = std::env::current_dir()
            .context("cannot read the working directory")?
            .join(format!("target/fuzz-scratch/{target}"));
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        let args = [
            "fuzz",
            "run",
            "--fuzz-dir",
            "fuzz",
            target,
            &scratch.to_string_lossy(),
            &format!("fuzz/corpus/{target}"),
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=2048",
            "-timeout=10",
            "-print_final_stats=1",
        ]
        .map(String::from)
        .to_vec();
        let log = PathBuf::from(format!("target/fuzz-logs/{target}.log"));
        Ok(TargetRun { target, args, log })
    }

    fn spawn(&self) -> anyhow::Result<Child> {
        eprintln!(
            "+ cargo +nightly {} > {}",
            self.args.join(" "),
            self.log.display()
        );
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = std::fs::File::create(&self.log)
            .with_context(|| format!("cannot create {}", self.log.display()))?;
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        nightly_command(&args)
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("cannot start cargo +nightly")
    }

    /// Prints the log's last lines (all of the crash report on failure);
    /// returns whether the run passed.
    fn report(&self, status: ExitStatus) -> bool {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = if status.success() { 12 } else { 60 };
        eprintln!(
            "fuzz {}: {status} (full log: {})",
            self.target,
            self.log.display()
        );
        for line in &lines[lines.len().saturating_sub(tail)..] {
            eprintln!("    {line}");
        }
        status.success()
    }
}

/// Prints the long run's figures from the targets' logs as a Markdown table
/// (for BENCHMARKS.md): the last status line's executions, edge coverage,
/// features and corpus size, the run's wall time, and the CPU seconds each
/// target used when known.
pub fn print_summary_of_logs() -> anyhow::Result<()> {
    let runs = TARGETS
        .iter()
        .map(|target| TargetRun::new(target, 0))
        .collect::<anyhow::Result<Vec<_>>>()?;
    print_summary(&runs, None);
    Ok(())
}

fn print_summary(runs: &[TargetRun], cpu: Option<&[f64]>) {
    println!(
        "| target | wall s | CPU s | executions | coverage (edges) | features | corpus | crashes |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (index, run) in runs.iter().enumerate() {
        let text = std::fs::read_to_string(&run.log).unwrap_or_default();
        let status = LibFuzzerStatus::last_of(&text);
        let cpu = cpu.map_or_else(|| "—".to_owned(), |c| format!("{:.0}", c[index]));
        // Failures libFuzzer leaves behind; a slow unit is only a warning.
        let crashes = std::fs::read_dir(format!("fuzz/artifacts/{}", run.target))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|entry| {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        ["crash-", "leak-", "timeout-", "oom-"]
                            .iter()
                            .any(|prefix| name.starts_with(prefix))
                    })
                    .count()
            })
            .unwrap_or(0);
        match status {
            Some(s) => println!(
                "| `{}` | {} | {cpu} | {} | {} | {} | {} | {crashes} |",
                run.target,
                s.seconds.map_or_else(|| "—".to_owned(), |v| v.to_string()),
                s.runs,
                s.coverage,
                s.features,
                s.corpus
            ),
            None => println!(
                "| `{}` | — | {cpu} | no status in {} | | | | {crashes} |",
                run.target,
                run.log.display()
            ),
        }
    }
}

/// The counters of libFuzzer's last status line (`#RUNS ... cov: N ft: N
/// corp: N/SIZE ...`) and its closing `Done RUNS runs in S second(s)`.
struct LibFuzzerStatus {
    runs: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
    seconds: Option<u64>,
}

impl LibFuzzerStatus {
    fn last_of(log: &str) -> Option<LibFuzzerStatus> {
        let line = log
            .lines()
            .rev()
            .find(|line| line.starts_with('#') && line.contains(" cov: "))?;
        let field = |name: &str| -> Option<u64> {
            let rest = line.split(name).nth(1)?;
            let value = rest.split_whitespace().next()?;
            value.split('/').next()?.parse().ok()
        };
        let runs = line[1..].split_whitespace().next()?.parse().ok()?;
        let seconds = log.lines().rev().find_map(|line| {
            let rest = line.strip_prefix("Done ")?;
            rest.split(" runs in ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        Some(LibFuzzerStatus {
            runs,
            coverage: field(" cov: ")?,
            features: field(" ft: ")?,
            corpus: field(" corp: ")?,
            seconds,
        })
    }
}

/// CPU seconds (user + system) of the children waited for so far.
fn children_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage = unsafe { std::mem::zeroed::<libc::rusage>() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
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
