//! `pinwatch replay FILE [-c CONFIG]`: alerts for a capture, as NDJSON on
//! stdout; one summary line on stderr. Exit 0 ran clean, 1 alerts raised,
//! 2 bad input (configuration, unreadable or corrupt capture).
use std::{path::PathBuf, process::ExitCode};

use crate::{
    alert::{AgentInfo, sink::AlertWriter},
    config::{Config, DEFAULT_CONFIG_PATH},
    replay,
};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Capture file (pcap or pcapng).
    #[arg(value_name = "FILE")]
    capture: PathBuf,
    /// Configuration file.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

pub fn replay(args: &ReplayArgs) -> ExitCode {
    // Diagnostics (malformed packets, at debug level) go to stderr, so that
    // stdout holds alerts only.
    super::init_tracing();
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("pinwatch: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    // The whole file is read at once: the parser then names byte offsets
    // exactly, and captures worth replaying fit in memory.
    let bytes = match std::fs::read(&args.capture) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("pinwatch: cannot read {}: {error}", args.capture.display());
            return ExitCode::from(2);
        }
    };
    let mut writer = AlertWriter::stdout(AgentInfo::from_host());
    let mut write_error = None;
    let outcome = replay::replay(&bytes, &config, |alert| {
        if write_error.is_none()
            && let Err(error) = writer.write(alert)
        {
            write_error = Some(error);
        }
    });
    eprintln!(
        "pinwatch replay {}: {}",
        args.capture.display(),
        outcome.summary
    );
    if let Some(error) = outcome.error {
        eprintln!("pinwatch: {}: {error}", args.capture.display());
        return ExitCode::from(2);
    }
    if let Some(error) = write_error {
        eprintln!("pinwatch: {error}");
        return ExitCode::from(2);
    }
    if outcome.summary.alerts > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
