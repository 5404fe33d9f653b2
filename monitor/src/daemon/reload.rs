//! SIGHUP, or a change to the file under `[config] watch = true`
//! (`config::ConfigWatch`): re-read the configuration and validate it whole, then swap the
//! kernel's watched ports and enforcement (`mode`, the pinned sets of the
//! enforced ports), the detector's pinned sets and the configuration that
//! status reports, together, under the detector lock. A refused file
//! changes nothing: the old configuration stays in force, a
//! `config-reload-failed` alert goes down the pipeline like every other
//! alert, and stderr says why.
use std::convert::Infallible;

use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc,
    time::{Interval, MissedTickBehavior},
};

use super::{DaemonError, Shared, notify, swap};
use crate::{
    config::{AlertSink, Config, ConfigError, ConfigWatch, OnCrash, WatchError},
    event::{Event, ReloadFailure},
    kernel::{KernelError, Policy, Probes},
};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the configuration was not read from a file, so there is none to re-read")]
    NoFile,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{key} changed from {old} to {new}: pinwatch applies it only at start; restart pinwatch to change it, or put the old value back"
    )]
    NeedsRestart {
        key: &'static str,
        old: String,
        new: String,
    },
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// The signals and timers the main task serves while the source runs.
pub(super) struct Supervisor {
    hangup: Signal,
    watchdog: Option<Interval>,
    /// `[config] watch = true`: file changes reload like SIGHUP.
    watch: Option<ConfigWatch>,
}

impl Supervisor {
    /// Installs the SIGHUP handler, and the file watch when `config` asks
    /// for it; call it early, since until then SIGHUP's default action ends
    /// the process.
    pub(super) fn install(config: &Config) -> Result<Supervisor, DaemonError> {
        let hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
        let watchdog = notify::watchdog_interval().map(|period| {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        let watch = match (&config.path, config.watch) {
            (Some(path), true) => Some(ConfigWatch::new(path, &config.hash)?),
            (None, true) => return Err(WatchError::NoFile.into()),
            (_, false) => None,
        };
        Ok(Supervisor {
            hangup,
            watchdog,
            watch,
        })
    }

    /// Serves reloads and watchdog pings until it is dropped.
    pub(super) async fn run(
        mut self,
        shared: &Shared,
        probes: &mut Probes,
        events: mpsc::Sender<Vec<Event>>,
    ) -> Infallible {
        loop {
            tokio::select! {
                Some(()) = self.hangup.recv() => {
                    reload(shared, probes, &events, "SIGHUP received").await;
                    if let Some(watch) = &mut self.watch {
                        watch.rescan();
                    }
                }
                () = changed(&mut self.watch) => {
                    reload(shared, probes, &events, "the configuration file changed").await;
                }
                () = tick(&mut self.watchdog) => {
                    // Taking the detector lock shows the detector thread is
                    // not wedged while holding it; a hung daemon stops
                    // pinging and systemd restarts it.
                    drop(shared.detector());
                    notify::watchdog();
                }
            }
        }
    }
}

async fn changed(watch: &mut Option<ConfigWatch>) {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

async fn tick(watchdog: &mut Option<Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What `systemctl status` shows beside the unit's state.
pub(super) fn status_line(config: &Config) -> String {
    let ports: Vec<String> = config.watched_ports().iter().map(u16::to_string).collect();
    format!(
        "watching {} database(s) on port(s) {}; configuration sha256 {}",
        config.databases.len(),
        ports.join(", "),
        config.hash
    )
}

async fn reload(
    shared: &Shared,
    probes: &mut Probes,
    events: &mpsc::Sender<Vec<Event>>,
    cause: &str,
) {
    notify::reloading();
    let in_force = shared.config();
    let file = in_force.path.clone().unwrap_or_default();
    tracing::info!(file = %file.display(), "{cause}, reloading the configuration");
    match apply(&in_force, shared, probes) {
        Ok(config) => tracing::info!(
            file = %file.display(),
            sha256 = %config.hash,
            databases = config.databases.len(),
            ports = ?config.watched_ports(),
            enforced = ?Policy::from_config(&config).enforced_ports(),
            "configuration reloaded"
        ),
        Err(error) => {
            tracing::error!(
                file = %file.display(),
                "configuration reload failed, the previous configuration stays in force: {error}"
            );
            let failure = ReloadFailure {
                timestamp: shared.time.now(),
                file,
                reason: error.to_string(),
                hash_in_force: in_force.hash.clone(),
            };
            // The detector thread owns the alert writer; the alert takes the
            // same road as every other (counters, folding, the sink).
            if events
                .send(vec![Event::ReloadFailed(failure)])
                .await
                .is_err()
            {
                tracing::error!("the detector thread has stopped; no config-reload-failed alert");
            }
        }
    }
    notify::ready(&status_line(&shared.config()));
}

/// Validates everything before touching anything, then swaps. Events queued
/// before the swap are judged against the new sets: they are judged when
/// the detector reaches them, as they always are.
fn apply(in_force: &Config, shared: &Shared, probes: &mut Probes) -> Result<Config, ReloadError> {
    let path = in_force.path.as_deref().ok_or(ReloadError::NoFile)?;
    let config = Config::load(path)?;
    needs_restart(in_force, &config)?;

    let mut detector = shared.detector();
    let (old, new) = (Policy::from_config(in_force), Policy::from_config(&config));
    if let Err(error) = set_policy(probes, &old, &new) {
        // Put the kernel back in step with the configuration still in force.
        if let Err(restore) = set_policy(probes, &new, &old) {
            tracing::error!(
                "cannot restore the watched ports {:?} (enforced {:?}): {restore}",
                old.ports.keys().collect::<Vec<_>>(),
                old.enforced_ports()
            );
        }
        return Err(error.into());
    }
    detector.reconfigure(&config);
    shared.set_config(config.clone());
    Ok(config)
}

/// Goes from `old` to `new` within the maps' capacities ([`swap::steps`]).
fn set_policy(probes: &mut Probes, old: &Policy, new: &Policy) -> Result<(), KernelError> {
    swap::steps(old, new)
        .iter()
        .try_for_each(|step| probes.set_policy(step))
}

/// Settings that live in resources opened at start (the alert sink, the
/// control socket, the metrics listener, the folding windows): a reload that
/// changes them is refused whole rather than half applied.
fn needs_restart(old: &Config, new: &Config) -> Result<(), ReloadError> {
    for (key, describe) in RESTART_ONLY {
        let (before, after) = (describe(old), describe(new));
        if before != after {
            return Err(ReloadError::NeedsRestart {
                key,
                old: before,
                new: after,
            });
        }
    }
    Ok(())
}

/// How a setting reads in a message.
type Describe = fn(&Config) -> String;

/// Each setting only a restart applies.
const RESTART_ONLY: [(&str, Describe); 11] = [
    ("alerts.sink", |config| match &config.alerts.sink {
        AlertSink::Stdout => "stdout".to_owned(),
        AlertSink::File(path) => format!("file {}", path.display()),
        AlertSink::Journald => "journald".to_owned(),
    }),
    ("alerts.dedup_window", |config| {
        humantime::format_duration(config.alerts.dedup_window).to_string()
    }),
    ("control.socket", |config| {
        config.control.socket.display().to_string()
    }),
    ("control.group", |config| {
        config
            .control
            .group
            .clone()
            .unwrap_or_else(|| "none".into())
    }),
    ("metrics.listen", |config| {
        config.metrics.map_or("off".into(), |addr| addr.to_string())
    }),
    ("host.proc", |config| config.host.proc.display().to_string()),
    ("host.run", |config| config.host.run.display().to_string()),
    ("host.cgroup", |config| {
        config
            .host
            .cgroup
            .as_ref()
            .map_or("found in mountinfo".into(), |p| p.display().to_string())
    }),
    ("config.watch", |config| config.watch.to_string()),
    ("kernel.pin_path", |config| {
        config.kernel.pin_path.display().to_string()
    }),
    ("kernel.on_crash", |config| match config.kernel.on_crash {
        OnCrash::FailOpen => "fail-open".to_owned(),
        OnCrash::KeepEnforcing => "keep-enforcing".to_owned(),
    }),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[[database]]\nname = \"orders\"\nhostnames = [\"db.lab.test\"]\npinned = [\"192.0.2.0/24\"]\n{extra}"
        );
        crate::fixtures::config(&text)
    }

    fn refused_key(old: &str, new: &str) -> Option<&'static str> {
        match needs_restart(&config(old), &config(new)) {
            Ok(()) => None,
            Err(ReloadError::NeedsRestart { key, .. }) => Some(key),
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn pins_ports_and_resolvers_reload_without_restart() {
        let wider = "[[database]]\nname = \"billing\"\nhostnames = [\"billing.lab.test\"]\nports = [5432]\npinned = [\"203.0.113.0/24\"]\n[dns]\ntrusted_resolvers = [\"198.51.100.53\"]\n";
        assert_eq!(refused_key("", wider), None);
    }

    #[test]
    fn mode_reloads_without_restart_both_ways() {
        assert_eq!(refused_key("", "mode = \"block\"\n"), None);
        assert_eq!(
            refused_key("mode = \"block\"\n", "mode = \"monitor\"\n"),
            None
        );
    }

    #[test]
    fn settings_opened_at_start_need_a_restart_and_say_so() {
        let file = "[alerts]\nsink = \"file\"\npath = \"/var/log/pinwatch/alerts.ndjson\"\n";
        assert_eq!(refused_key("", file), Some("alerts.sink"));
        assert_eq!(
            refused_key("", "[alerts]\ndedup_window = \"5s\"\n"),
            Some("alerts.dedup_window")
        );
        assert_eq!(
            refused_key("", "[control]\nsocket = \"/run/other.sock\"\n"),
            Some("control.socket")
        );
        assert_eq!(
            refused_key("", "[control]\ngroup = \"ops\"\n"),
            Some("control.group")
        );
        assert_eq!(
            refused_key("", "[metrics]\nlisten = \"127.0.0.1:9464\"\n"),
            Some("metrics.listen")
        );
        assert_eq!(
            refused_key("[config]\nwatch = true\n", ""),
            Some("config.watch")
        );
        let error = needs_restart(&config(""), &config(file)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "alerts.sink changed from stdout to file /var/log/pinwatch/alerts.ndjson: pinwatch applies it only at start; restart pinwatch to change it, or put the old value back"
        );
    }
}
