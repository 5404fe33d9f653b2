//! The whole test suite: unit tests of every host crate, then the kernel
//! integration tests, which need root and run one at a time (each attaches
//! to the cgroup root and watches the whole host's traffic).
use anyhow::bail;

use crate::{setup, shell};

pub fn run() -> anyhow::Result<()> {
    if !setup::is_root() {
        bail!(
            "the kernel integration tests need root (they load eBPF programs and create network namespaces); they are required, not skipped"
        );
    }
    shell::cargo(&["build", "--package", "pinwatch"])?;
    let mut run = Run::default();
    // Clippy on the eBPF crate, which host builds never compile.
    run.part("eBPF lint", lint_ebpf());
    // --no-fail-fast: one failing test binary must not hide the others.
    run.cargo(
        "unit tests",
        &[
            "test",
            "--no-fail-fast",
            "--package",
            "pinwatch",
            "--package",
            "pinwatch-common",
            "--package",
            "xtask",
        ],
    )?;
    // Parsers of hostile input must not crash: a short bounded fuzz run.
    run.part(
        "fuzz smoke run",
        crate::fuzz::run(crate::fuzz::SMOKE_SECONDS, false),
    );
    // Held for the host kernel's tests only: the build and the VMs do not
    // touch the host's hooks.
    let lock = crate::kernel_lock::take("kernel integration tests")?;
    run.cargo(
        "kernel integration tests",
        &[
            "test",
            "--no-fail-fast",
            "--package",
            "pinwatch-integration-tests",
            "--",
            "--test-threads=1",
        ],
    )?;
    drop(lock);
    // The same programs on the kernels users run (Debian 11, 12, 13).
    run.part("kernel matrix", crate::vmtest::run_matrix());
    run.finish()
}

/// The parts of one test run: every part runs, and the run fails at the end
/// naming each part that failed.
#[derive(Default)]
struct Run {
    output: String,
    failed_parts: Vec<String>,
}

impl Run {
    fn cargo(&mut self, name: &str, args: &[&str]) -> anyhow::Result<()> {
        let (output, status) = shell::cargo_tee_status(args)?;
        self.output += &output;
        if !status.success() {
            self.failed_parts.push(format!("{name} ({status})"));
        }
        Ok(())
    }

    fn part(&mut self, name: &str, result: anyhow::Result<()>) {
        if let Err(error) = result {
            eprintln!("{name} failed: {error:#}");
            self.failed_parts.push(format!("{name}: {error:#}"));
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        let (passed, failed) = crate::libtest::totals(&self.output);
        println!("pinwatch tests: {passed} passed, {failed} failed");
        if !self.failed_parts.is_empty() {
            bail!("failed: {}", self.failed_parts.join("; "));
        }
        if passed == 0 {
            bail!("no test ran");
        }
        Ok(())
    }
}

/// Clippy on the eBPF crate, which host builds never compile: for its own
/// target with nightly, every `unsafe` block documented.
pub fn lint_ebpf() -> anyhow::Result<()> {
    shell::run_in(
        std::path::Path::new("monitor-ebpf"),
        "cargo",
        &[
            "+nightly",
            "clippy",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--target-dir",
            "../target/ebpf-clippy",
            "--",
            "-D",
            "warnings",
            "-D",
            "clippy::undocumented_unsafe_blocks",
        ],
    )
}
