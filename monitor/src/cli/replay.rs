//! `pinwatch replay FILE [-c CONFIG] [--max-bytes SIZE]`: alerts for a
//! capture, as NDJSON on stdout; one summary line on stderr. Exit 0 ran
//! clean, 1 alerts raised, 2 bad input (configuration, unreadable, too long
//! or corrupt capture).
use std::{fs::File, io::Read, path::PathBuf, process::ExitCode};

use crate::{
    alert::{AgentInfo, sink::AlertWriter},
    config::{Config, DEFAULT_CONFIG_PATH},
    replay,
};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Capture (pcap or pcapng): a file, a pipe or a device; `-` reads
    /// standard input.
    #[arg(value_name = "FILE")]
    capture: PathBuf,
    /// Configuration file.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Most bytes of capture read (suffixes KiB, MiB, GiB, TiB); a longer
    /// file, pipe or device is refused (exit 2).
    #[arg(long = "max-bytes", value_name = "SIZE", default_value = "4GiB", value_parser = parse_size)]
    max_bytes: u64,
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
    let name = args.capture.display();
    let input = match open(args) {
        Ok(input) => input,
        Err(reason) => {
            eprintln!("pinwatch: {name}: {reason}");
            return ExitCode::from(2);
        }
    };
    let mut writer = AlertWriter::stdout(AgentInfo::from_host());
    let mut write_error = None;
    // Streamed a record at a time: a pipe or a device is never held whole.
    let outcome = replay::replay_from(input, args.max_bytes, &config, |alert| {
        if write_error.is_none()
            && let Err(error) = writer.write(alert)
        {
            write_error = Some(error);
        }
    });
    eprintln!("pinwatch replay {name}: {}", outcome.summary);
    if let Some(error) = outcome.error {
        eprintln!("pinwatch: {name}: {error}");
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

/// The capture's reader; a regular file longer than the limit is refused
/// before a byte is read.
fn open(args: &ReplayArgs) -> Result<Box<dyn Read>, String> {
    if args.capture.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = File::open(&args.capture).map_err(|e| format!("cannot open: {e}"))?;
    let metadata = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if metadata.is_dir() {
        return Err("is a directory, not a capture".into());
    }
    if metadata.is_file() && metadata.len() > args.max_bytes {
        return Err(format!(
            "capture of {} bytes is longer than the limit of {} bytes; --max-bytes raises it",
            metadata.len(),
            args.max_bytes
        ));
    }
    // Read in large chunks already: no BufReader.
    Ok(Box::new(file))
}

/// `4294967296`, `512MiB`, `4GiB` (binary units; `K`, `M`, `G`, `T` and
/// `KB`… mean the same).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (a number, then KiB, MiB, GiB or TiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (KiB, MiB, GiB or TiB)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("3k"), Ok(3 << 10));
        assert!(parse_size("").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
