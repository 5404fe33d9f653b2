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

/// One end-to-end test per rule family, the program and status checks,
/// and the reload and stale-program paths: (test binary, test name).
/// `cargo xtask vmtest --kernel SERIES` runs it.
pub const PORTABILITY_SUBSET: &[(&str, &str)] = &[
    // The first three are also the CI subset (`CI_SUBSET`).
    (
        "kernels",
        "every_program_is_attached_or_degraded_with_a_reason",
    ),
    (
        "kernels",
        "an_interface_the_hook_refuses_is_reported_and_degrades_health",
    ),
    (
        "foundation",
        "forged_a_answer_and_the_connect_that_follows_raise_alerts",
    ),
    (
        "spoofing",
        "reply_nobody_asked_for_is_unsolicited_in_a_namespace",
    ),
    (
        "plaintext",
        "startup_message_first_raises_plaintext_naming_process_user_and_database",
    ),
    ("transports", "forged_answer_over_tcp_is_diverged"),
    (
        "transports",
        "fragmented_forged_reply_on_a_new_interface_is_reported",
    ),
    (
        "enforce",
        "block_refuses_unpinned_connects_with_eperm_and_raises_db_connect_blocked",
    ),
    (
        "reload",
        "sighup_with_a_wider_pinned_set_silences_the_same_answer",
    ),
    ("stale", "orphaned_programs_are_detached_and_reported"),
];
/// What `cargo xtask test` runs on every kernel, inside CI's time: every
/// program loads and attaches (or is reported degraded), an interface the
/// hook refuses degrades health, and a forged answer and the connect to it
/// raise `dns-answer-diverged` and `unexpected-db-peer`: the first three of
/// the portability subset. The whole
/// portability subset takes about 13 minutes a kernel under emulation.
pub const CI_SUBSET: &[(&str, &str)] = PORTABILITY_SUBSET.split_at(3).0;

/// Which tests a VM runs.
#[derive(Clone, Copy)]
pub enum Plan {
    Ci,
    Portability,
    All,
}

impl Plan {
    /// `None`: every test.
    fn tests(self) -> Option<&'static [(&'static str, &'static str)]> {
        match self {
            Plan::Ci => Some(CI_SUBSET),
            Plan::Portability => Some(PORTABILITY_SUBSET),
            Plan::All => None,
        }
    }
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
    let plan = if args.all {
        Plan::All
    } else {
        Plan::Portability
    };
    run_series(&series, plan, args.update_readme)
}

/// The matrix `cargo xtask test` runs after the host suite: every series,
/// the CI subset.
pub fn run_matrix() -> anyhow::Result<()> {
    let series: Vec<&'static kernels::Series> = kernels::SERIES.iter().collect();
    run_series(&series, Plan::Ci, false)
}

fn run_series(
    series: &[&'static kernels::Series],
    plan: Plan,
    update_readme: bool,
) -> anyhow::Result<()> {
    install_virtme()?;
    shell::cargo(&["build", "--package", "pinwatch"])?;
    let binaries = script::test_binaries()?;
    let mut failures = Vec::new();
    for series in series {
        let started = Instant::now();
        let image = kernels::image(series)?;
        let results = Path::new("target/vmtest/results").join(series.name);
        let _ = fs::remove_dir_all(&results);
        fs::create_dir_all(&results)?;
        let results = results.canonicalize()?;
        let script = script::write(&results, &binaries, plan)?;
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
        let (passed, failed) = crate::test::totals(&boot.output);
        let status = table::Measured::read(series, &results);
        let verdict = match (&status, boot.success, passed) {
            (Err(error), _, _) => Err(format!("no usable status from the daemon: {error:#}")),
            (Ok(_), false, _) => Err(format!("{failed} test(s) failed")),
            (Ok(_), true, 0) => Err("no test ran".to_owned()),
            (Ok(measured), true, _) => measured.check(),
        };
        eprintln!(
            "vmtest {}: {passed} passed, {failed} failed, boot and tests {:.0} s (with the kernel fetch {:.0} s)",
            series.name,
            boot.elapsed.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        match verdict {
            Ok(()) => {}
            Err(why) => {
                eprintln!(
                    "vmtest {}: FAILED: {why}; console in {}",
                    series.name,
                    results.join("console.log").display()
                );
                failures.push(series.name);
            }
        }
    }
    // The table says what was measured, failures or not.
    let table = table::check_readme(update_readme).context("the README's kernel table");
    if !failures.is_empty() {
        bail!("vmtest failed on {}", failures.join(", "));
    }
    table
}
