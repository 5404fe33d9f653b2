//! `cargo xtask vmtest`: pinwatch on the kernels its users run.
//!
//! Each Debian kernel of the matrix ([`kernels::SERIES`]) boots under QEMU
//! with virtme-ng, one at a time (boots are CPU-heavy), sharing this
//! machine's root read-only; inside, as root, a bash script starts the
//! daemon alone and saves `pinwatch status --json` (what loaded, what is
//! degraded and why), then runs the integration-test binaries built on the
//! host: the portability subset, or with `--all` every test. The status
//! each kernel gave is kept in target/vmtest/results/SERIES/ and is what
//! the README's kernel table is checked against ([`table`]).
mod kernels;
mod script;
pub mod table;
mod virtme;

use std::{fs, path::Path, time::Instant};

use anyhow::{Context, bail};

use crate::shell;

pub use virtme::{PACKAGES, install as install_virtme};

/// One test of the portability subset, and what it shows on a kernel.
pub struct VmTest {
    pub binary: &'static str,
    pub test: &'static str,
    /// What the README's kernel table credits the kernel with when it passed.
    pub covers: &'static str,
}

const fn vm_test(binary: &'static str, test: &'static str, covers: &'static str) -> VmTest {
    VmTest {
        binary,
        test,
        covers,
    }
}

/// What `cargo xtask test` and `cargo xtask vmtest --kernel SERIES` run on
/// every kernel: every program loads and attaches or is reported degraded
/// with a reason (status, metrics, /healthz), one end-to-end test per rule
/// family, and the reload and stale-program paths. One test each, since
/// under emulation every test costs its daemon start (BENCHMARKS.md).
pub const PORTABILITY_SUBSET: &[VmTest] = &[
    vm_test(
        "kernels",
        "every_program_is_attached_or_degraded_with_a_reason",
        "programs",
    ),
    vm_test(
        "foundation",
        "forged_a_answer_and_the_connect_that_follows_raise_alerts",
        "answer, connect",
    ),
    vm_test(
        "spoofing",
        "reply_nobody_asked_for_is_unsolicited_in_a_namespace",
        "matching",
    ),
    vm_test(
        "plaintext",
        "startup_message_first_raises_plaintext_naming_process_user_and_database",
        "plaintext",
    ),
    vm_test("transports", "forged_answer_over_tcp_is_diverged", "TCP"),
    vm_test(
        "transports",
        "fragmented_forged_reply_on_a_new_interface_is_reported",
        "fragments",
    ),
    vm_test(
        "enforce",
        "block_refuses_unpinned_connects_with_eperm_and_raises_db_connect_blocked",
        "enforcement",
    ),
    vm_test(
        "reload",
        "sighup_with_a_wider_pinned_set_silences_the_same_answer",
        "reload",
    ),
    vm_test(
        "stale",
        "orphaned_programs_are_detached_and_reported",
        "stale programs",
    ),
];

/// What a VM runs.
#[derive(Clone, Copy)]
pub enum Plan {
    Portability,
    All,
    /// BENCHMARKS.md's B1 (in-kernel cost per packet), no tests.
    BenchB1,
}

// Not in the subset: tests/tests/attribution.rs turns the owner tables over
// with 20,000 sockets, which overflows the ring buffer of a daemon slowed
// down by emulation; the kernel side it relies on (the owner map's values)
// is loaded on every kernel by the tests above.

#[derive(clap::Args)]
pub struct Args {
    /// Kernel series to boot (5.10, 6.1, 6.12); repeat for several. None
    /// with --update-readme: rewrite the table from the last results only.
    #[arg(long = "kernel", required_unless_present = "update_readme")]
    kernels: Vec<String>,
    /// Run every integration test in the VM, not the portability subset.
    #[arg(long)]
    all: bool,
    /// Instead of tests, measure BENCHMARKS.md's B1 (in-kernel cost per
    /// packet, as ratios to a trivial program) inside the VM.
    #[arg(long, value_parser = ["b1"], conflicts_with = "all")]
    bench: Option<String>,
    /// Rewrite the README's kernel table from what the VMs measured,
    /// instead of failing when it differs.
    #[arg(long)]
    update_readme: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.kernels.is_empty() {
        return table::check_readme(true);
    }
    let series: Vec<&'static kernels::Series> = args
        .kernels
        .iter()
        .map(|name| kernels::series(name))
        .collect::<anyhow::Result<_>>()?;
    let plan = match (args.all, &args.bench) {
        (_, Some(_)) => Plan::BenchB1,
        (true, None) => Plan::All,
        (false, None) => Plan::Portability,
    };
    run_series(&series, plan, args.update_readme)
}

/// The matrix `cargo xtask test` runs after the host suite: every series,
/// the portability subset.
pub fn run_matrix() -> anyhow::Result<()> {
    let series: Vec<&'static kernels::Series> = kernels::SERIES.iter().collect();
    run_series(&series, Plan::Portability, false)
}

/// The daemon the VMs run: the static release build `cargo xtask dist`
/// makes (the same command, so CI builds it once). A debug daemon spends
/// most of its start under emulation outside the kernel (BENCHMARKS.md).
pub const DAEMON: &str = "target/x86_64-unknown-linux-musl/release/pinwatch";
/// BENCHMARKS.md's B1, as `cargo xtask bench` builds it (glibc: its
/// criterion dev-dependencies need a C compiler for musl; the VM shares
/// this machine's root, so its libraries are there).
pub const B1_BINARY: &str = "target/release/examples/kernel_cost";

/// Builds what the VMs run.
fn build(plan: Plan) -> anyhow::Result<()> {
    shell::cargo(&crate::dist::BUILD)?;
    if let Plan::BenchB1 = plan {
        shell::cargo(&[
            "build",
            "--release",
            "--package",
            "pinwatch",
            "--example",
            "kernel_cost",
        ])?;
    }
    Ok(())
}

fn run_series(
    series: &[&'static kernels::Series],
    plan: Plan,
    update_readme: bool,
) -> anyhow::Result<()> {
    install_virtme()?;
    build(plan)?;
    let daemon = Path::new(DAEMON).canonicalize()?;
    let binaries = script::test_binaries()?;
    let mut failures = Vec::new();
    for series in series {
        let started = Instant::now();
        let image = kernels::image(series)?;
        let results = match plan {
            Plan::BenchB1 => Path::new("target/vmtest/bench").join(series.name),
            _ => Path::new("target/vmtest/results").join(series.name),
        };
        let _ = fs::remove_dir_all(&results);
        fs::create_dir_all(&results)?;
        let results = results.canonicalize()?;
        let script = script::write(&results, &binaries, plan, &daemon)?;
        eprintln!(
            "vmtest: booting {} ({}, {})",
            series.name,
            series.debian,
            kernels::package(series)
        );
        let mut boot = virtme::boot(&image, &script, &results)?;
        // A VM that never reached the script (its first line names the
        // kernel) failed to start, which says nothing of pinwatch: once more.
        if !boot.output.contains("vmtest: kernel") {
            eprintln!(
                "vmtest {}: the VM did not reach the test script (console: {:?}); booting again",
                series.name,
                boot.output.trim()
            );
            boot = virtme::boot(&image, &script, &results)?;
        }
        fs::write(results.join("console.log"), &boot.output)?;
        let (passed, failed) = crate::libtest::totals(&boot.output);
        let verdict = judge(series, plan, &boot, &results);
        eprintln!(
            "vmtest {}: {passed} passed, {failed} failed, boot and tests {:.0} s (with the kernel fetch {:.0} s)",
            series.name,
            boot.elapsed.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        if let Err(why) = verdict {
            eprintln!(
                "vmtest {}: FAILED: {why}; console in {}",
                series.name,
                results.join("console.log").display()
            );
            failures.push(series.name);
        }
    }
    // The table says what was measured, failures or not (a bench measures
    // no table row).
    let table = match plan {
        Plan::BenchB1 => Ok(()),
        _ => table::check_readme(update_readme).context("the README's kernel table"),
    };
    if !failures.is_empty() {
        bail!("vmtest failed on {}", failures.join(", "));
    }
    table
}

/// Whether one kernel's run did what its plan asks: a usable status from
/// the daemon alone, then every test passed (each test of the subset by
/// name: a renamed one would otherwise be filtered out unseen), or B1's
/// table printed.
fn judge(
    series: &'static kernels::Series,
    plan: Plan,
    boot: &virtme::Boot,
    results: &Path,
) -> Result<(), String> {
    let measured = table::Measured::read(series, results)
        .map_err(|error| format!("no usable status from the daemon: {error:#}"))?;
    let (passed, failed) = crate::libtest::totals(&boot.output);
    if !boot.success {
        return Err(format!("{failed} test(s) failed"));
    }
    match plan {
        Plan::BenchB1 => {
            let b1 = fs::read_to_string(results.join("b1.md")).unwrap_or_default();
            if !b1.contains("| traffic |") {
                return Err("kernel_cost printed no table".to_owned());
            }
            println!("B1 on {}:\n{b1}", series.name);
            return Ok(());
        }
        Plan::Portability => {
            let missing = table::not_passed(&boot.output);
            if !missing.is_empty() {
                return Err(format!("did not pass: {}", missing.join(", ")));
            }
        }
        Plan::All if passed == 0 => return Err("no test ran".to_owned()),
        Plan::All => {}
    }
    measured.check()
}
