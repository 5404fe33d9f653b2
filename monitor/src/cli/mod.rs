//! The command line: one module per subcommand.
mod check_config;
mod learn;
mod replay;
mod run;
mod status;
mod unload;

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;

#[derive(Debug, Parser)]
#[command(
    name = "pinwatch",
    version,
    about = "Pins database hostnames to their addresses and alerts on forged DNS answers"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground: alerts to the configured sink, diagnostics to stderr.
    Run(RunArgs),
    /// Validate a configuration and print a short normalized summary (exit 0 valid, 2 invalid).
    CheckConfig(ConfigArg),
    /// Ask the running daemon for its state (exit 0 healthy, 1 degraded or an alert in the last 15 minutes, 2 unreachable).
    Status(status::StatusArgs),
    /// Run the daemon's decoder and detector over a pcap/pcapng capture; alerts as NDJSON on stdout (exit 0 ran, 1 alerts raised, 2 bad input).
    Replay(replay::ReplayArgs),
    /// Watch the DNS answers for some hostnames for a while and print the [[database]] TOML that would pin them; changes no file (exit 0 printed, 2 bad input, 3 kernel or privileges).
    Learn(learn::LearnArgs),
    /// Detach and unpin everything pinwatch left in the kernel (its pinned programs, links and maps); refused while a daemon runs (exit 0 done, 2 a daemon runs or bad file, 3 kernel or privileges).
    Unload(ConfigArg),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Take over from a running pinwatch (an upgrade in place): ask it to
    /// hand over (SIGUSR2), adopt its pinned programs once it exits, and
    /// read what they captured meanwhile; without it a second daemon is
    /// refused.
    #[arg(long)]
    handover: bool,
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// Configuration file.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

/// Parses the arguments and runs the subcommand. Usage errors exit 2.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    match cli.command {
        Command::Run(args) => run::run(
            &args.config.config,
            crate::daemon::RunOptions {
                take_over: args.handover,
            },
        ),
        Command::CheckConfig(args) => check_config::check_config(&args.config),
        Command::Status(args) => status::status(&args),
        Command::Replay(args) => replay::replay(&args),
        Command::Learn(args) => learn::learn(&args),
        Command::Unload(args) => unload::unload(&args.config),
    }
}

/// Diagnostics go to stderr, filtered by RUST_LOG (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
