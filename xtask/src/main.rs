//! `cargo xtask …`: sets up the machine, runs the daemon, the tests and the
//! benchmarks. Plain `cargo build` stays the way to build.
mod bench;
mod demo;
mod disk;
mod dist;
mod fuzz;
mod kernel_lock;
mod libtest;
// The one list of what setup installs, shared with the tests' harness.
#[path = "../../tests/src/provision.rs"]
#[allow(dead_code, reason = "the harness uses parts xtask does not")]
mod provision;
mod setup;
mod shell;
mod test;
mod vmtest;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and testing pinwatch needs (idempotent): Debian
    /// packages, the tests' Python venv (/opt/pinwatch-tests/venv, pinned
    /// pip packages), rust-src for nightly, bpf-linker.
    Setup,
    /// Set up, build in release mode, and run the daemon on config/pinwatch.toml.
    Run {
        /// Configuration file.
        #[arg(short = 'c', long = "config", default_value = "config/pinwatch.toml")]
        config: String,
    },
    /// Set up, then run every test: unit tests and the kernel integration
    /// tests (root required; they fail, never skip, without it).
    Test,
    /// Set up, then build the release artifacts into target/dist/: the static
    /// musl tarball, the .deb, the .rpm, the OCI image archive, SHA256SUMS.
    Dist,
    /// Run the benchmarks (root) and write BENCHMARKS.md.
    Bench(bench::Args),
    /// Set up, build pinwatch and show it catching a forged DNS answer in a
    /// lab of network namespaces (root); removes everything it created.
    Demo,
    /// Boot Debian's kernels under QEMU (virtme-ng) and run the portability
    /// subset of the kernel tests in each, or every test with --all.
    Vmtest(vmtest::Args),
    /// Run the cargo-fuzz targets in fuzz/ (nightly; installs cargo-fuzz if
    /// missing): each for --seconds, or 20 s with --smoke.
    Fuzz {
        /// The short bounded run that `cargo xtask test` does.
        #[arg(long)]
        smoke: bool,
        /// Seconds per target (the long run: an hour each).
        #[arg(long, default_value_t = 3600)]
        seconds: u32,
        /// Run all targets at once instead of one after another.
        #[arg(long)]
        parallel: bool,
        /// Run nothing: print the last run's figures from its logs
        /// (target/fuzz-logs/) as a Markdown table.
        #[arg(long)]
        summarize: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    shell::enter_workspace_root()?;
    match cli.command {
        Command::Setup => setup::run(),
        Command::Run { config } => {
            setup::run()?;
            shell::cargo(&["build", "--release", "--package", "pinwatch"])?;
            shell::exec("target/release/pinwatch", &["run", "-c", &config])
        }
        Command::Test => {
            disk::ensure_room(std::path::Path::new("target"), disk::TEST_RUN_BYTES)?;
            setup::run()?;
            test::run()
        }
        Command::Dist => {
            setup::run()?;
            dist::run()
        }
        Command::Bench(args) => {
            setup::run()?;
            bench::run(&args)
        }
        Command::Vmtest(args) => {
            setup::run()?;
            vmtest::run(&args)
        }
        Command::Fuzz {
            summarize: true, ..
        } => fuzz::print_summary_of_logs(),
        Command::Fuzz {
            smoke,
            seconds,
            parallel,
            ..
        } => fuzz::run(if smoke { fuzz::SMOKE_SECONDS } else { seconds }, parallel),
        Command::Demo => {
            setup::run()?;
            demo::run()
        }
    }
}
