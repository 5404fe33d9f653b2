//! The command line: one module per subcommand.
mod check_config;
mod learn;
mod replay;
mod run;
mod status;

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
    Run(ConfigArg),
    /// Validate a configuration and print a short normalized summary (exit 0 valid, 2 invalid).
    CheckConfig(ConfigArg),
    /// Ask the running daemon for its state (exit 0 healthy, 1 degraded or an alert in the last 15 minutes, 2 unreachable).
    Status(status::StatusArgs),
    /// Run the daemon's decoder and detector over a pcap/pcapng capture; alerts as NDJSON on stdout (exit 0 ran, 1 alerts raised, 2 bad input).
    Replay(replay::ReplayArgs),
    /// Watch the DNS answers for some hostnames for a while and print the [[database]] TOML that would pin them; changes no file (exit 0 printed, 2 bad input, 3 kernel or privileges).
    Learn(learn::LearnArgs),
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
        Command::Run(args) => run::run(&args.config),
        Command::CheckConfig(args) => check_config::check_config(&args.config),
        Command::Status(args) => status::status(&args),
        Command::Replay(args) => replay::replay(&args),
        Command::Learn(args) => learn::learn(&args),
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
