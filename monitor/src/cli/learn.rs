//! `pinwatch learn --for DURATION [--hostname NAME]… [-c FILE] [--aggregate]`:
//! prints the `[[database]]` tables it would pin; changes no file.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use crate::{
    config::Config,
    learn::{self, LearnError, Plan, RenderOptions},
};

#[derive(Debug, clap::Args)]
pub(super) struct LearnArgs {
    /// How long to watch, such as "30s" or "5m"; Ctrl-C ends early and prints what was seen.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    duration: Duration,
    /// A hostname to learn (repeatable); required without -c.
    #[arg(long = "hostname", value_name = "NAME")]
    hostnames: Vec<String>,
    /// Learn for this configuration's databases (names, ports and modes kept).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Pin one covering network per address family instead of each address seen.
    #[arg(long)]
    aggregate: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be longer than zero".into()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("not a duration such as \"30s\" or \"5m\": {error}")),
    }
}

/// Exit 0 printed, 2 bad input, 3 kernel or privileges not enough.
pub(super) fn learn(args: &LearnArgs) -> ExitCode {
    super::init_tracing();
    match plan(args).and_then(|plan| watch_and_print(args, &plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn plan(args: &LearnArgs) -> Result<Plan, LearnError> {
    let config = args.config.as_deref().map(Config::load).transpose()?;
    Plan::new(config.as_ref(), &args.hostnames)
}

fn watch_and_print(args: &LearnArgs, plan: &Plan) -> Result<(), LearnError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LearnError::Runtime)?;
    let started = std::time::SystemTime::now();
    let learner = runtime.block_on(async {
        let interrupted = super::run::termination().map_err(LearnError::Runtime)?;
        let stop = async {
            tokio::select! {
                () = tokio::time::sleep(args.duration) => {}
                () = interrupted => {}
            }
        };
        let hostnames: Vec<&str> = plan.hostnames().collect();
        learn::watch(plan, stop, || {
            tracing::info!(
                "pinwatch learn: watching answers for {} for {}",
                hostnames.join(", "),
                humantime::format_duration(args.duration)
            );
        })
        .await
    })?;
    let options = RenderOptions {
        aggregate: args.aggregate,
        started,
        ended: std::time::SystemTime::now(),
    };
    let rendered = learn::render(plan, &learner, &options);
    for note in &rendered.notes {
        tracing::warn!("{note}");
    }
    print!("{}", rendered.toml);
    Ok(())
}
