use std::{path::Path, process::ExitCode};

use tokio::signal::unix::{SignalKind, signal};

use crate::{
    config::Config,
    daemon::{self, RunOptions, Stop},
};

pub fn run(path: &Path, options: RunOptions) -> ExitCode {
    super::init_tracing();
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = match stop_signals() {
            Ok(shutdown) => shutdown,
            Err(error) => {
                tracing::error!("cannot install signal handlers: {error}");
                return Err(ExitCode::FAILURE);
            }
        };
        daemon::run(config, options, shutdown)
            .await
            .map_err(|error| {
                tracing::error!("{error}");
                ExitCode::from(error.exit_code())
            })
    });
    match result {
        Ok(Stop::Clean) => {
            tracing::info!("pinwatch stopped; programs detached and unpinned");
            ExitCode::SUCCESS
        }
        Ok(Stop::Handover) => {
            tracing::info!("pinwatch stopped for a handover; programs left attached and pinned");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub(super) fn termination() -> std::io::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}

/// Resolves on the first SIGINT or SIGTERM (a clean stop) or SIGUSR2 (a
/// handover: `systemctl restart`, or a new daemon taking over).
fn stop_signals() -> std::io::Result<impl Future<Output = Stop>> {
    let clean = termination()?;
    let mut handover = signal(SignalKind::user_defined2())?;
    Ok(async move {
        tokio::select! {
            () = clean => Stop::Clean,
            _ = handover.recv() => {
                tracing::info!("SIGUSR2 received, handing over");
                Stop::Handover
            }
        }
    })
}
