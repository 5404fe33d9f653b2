//! `pinwatch status [--json] [--socket PATH]`: needs no configuration file,
//! only the daemon's control socket.
use std::{path::PathBuf, process::ExitCode};

use crate::{config::DEFAULT_CONTROL_SOCKET, control, status};

#[derive(Debug, clap::Args)]
pub(super) struct StatusArgs {
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// The daemon's control socket (`[control] socket`).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
    socket: PathBuf,
}

/// Exit 0 healthy, 1 degraded or alerting, 2 unreachable.
pub(super) fn status(args: &StatusArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pinwatch: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let reply = match runtime.block_on(control::request_status(&args.socket)) {
        Ok(reply) => reply,
        Err(error) => {
            eprintln!("pinwatch: {error}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!("{}", reply.json);
    } else {
        print!("{}", status::render(&reply.report));
    }
    ExitCode::from(reply.report.exit_code())
}
