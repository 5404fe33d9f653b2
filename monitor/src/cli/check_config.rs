use std::{path::Path, process::ExitCode};

use crate::config::Config;

pub fn check_config(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            print!("{}", config.summary());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pinwatch: invalid configuration: {error}");
            ExitCode::from(2)
        }
    }
}
