//! `pinwatch run`: the pipeline kernel source → detector → alert sink, and
//! the [`crate::state`] it keeps for the operator surfaces.
mod detect;
mod handover;
mod notify;
mod privileges;
mod process_names;
mod reload;
mod stale;
mod swap;

use std::{sync::Arc, thread};

use tokio::sync::mpsc;

use crate::{
    alert::{
        AgentInfo,
        sink::{AlertWriter, SinkError},
    },
    clock::TimeBase,
    config::OnCrash,
    config::{AlertSink, Config},
    control::{ControlError, ControlServer},
    detector::{Detector, panic_text},
    heap,
    identity::{HostRoots, Resolver},
    kernel::{
        self, AttachOptions, KernelError, Policy, Probes,
        pins::PinDir,
        source::{Adoption, KernelSource, SourceError, SourceStats},
    },
    metrics::{self, MetricsError},
    state::Shared,
};

/// Batches waiting for the detector. When it falls behind, the source stops
/// draining and the kernel counts what it cannot store: loss is reported,
/// never silent. Bursts wait in the ring buffer, which costs no more memory
/// when full; this queue only keeps the detector busy, and with the
/// source's batch bound it holds at most 8 × 1024 records' events.
const PIPELINE_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot start the detector thread: {0}")]
    DetectorSpawn(#[source] std::io::Error),
    /// A panic outside the judging of an event (which is caught): the
    /// alert pipeline itself is broken.
    #[error(
        "pinwatch's own alert pipeline failed (the detector thread panicked outside the judging of an event: {0}); exiting, so that the service manager restarts it"
    )]
    Machinery(String),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("cannot install the SIGHUP handler for reloads: {0}")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Watch(#[from] crate::config::WatchError),
    #[error(transparent)]
    Stale(#[from] kernel::stale::StaleError),
    #[error(transparent)]
    Handover(#[from] handover::HandoverError),
}

/// How the daemon was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, SIGINT: detach and unpin everything.
    Clean,
    /// SIGUSR2 (`systemctl restart`, a new daemon taking over): leave the
    /// programs attached and pinned for the next daemon to adopt.
    Handover,
}

/// What `pinwatch run` was told on its command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// `--handover`: take over from a running daemon instead of refusing.
    pub take_over: bool,
}

impl DaemonError {
    /// SPEC's exit codes: 3 when the kernel or privileges are not enough, 2
    /// for configuration problems (an alert path that cannot be opened), 1
    /// for failures while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Kernel(_) => 3,
            DaemonError::Stale(error) => error.exit_code(),
            DaemonError::Handover(_) => 2,
            DaemonError::Sink(SinkError::Open { .. } | SinkError::Journal(_))
            | DaemonError::Control(_)
            | DaemonError::Metrics(_)
            | DaemonError::Watch(_) => 2,
            _ => 1,
        }
    }
}

/// Runs until `shutdown` resolves. On a clean stop, and on every error, the
/// programs are detached and their pins removed when this returns; on a
/// handover they stay attached and pinned.
pub async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = Stop>,
) -> Result<Stop, DaemonError> {
    let time = Arc::new(TimeBase::host());
    let supervisor = reload::Supervisor::install(&config)?;
    let writer = open_sink(&config)?;
    let cgroup_root = match &config.host.cgroup {
        Some(root) => root.clone(),
        None => kernel::find_cgroup2_root()?,
    };
    if options.take_over {
        kernel::preflight()?;
        // Before binding what the old daemon holds: its sockets.
        handover::take_over(&cgroup_root)?;
    }
    let metrics_listener = match config.metrics {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    kernel::preflight()?;
    // After the privilege check: without root, creating /run/pinwatch would
    // fail first and hide the message that names the missing capability.
    let control = ControlServer::bind(&config.control)?;
    let pins = PinDir::new(&config.kernel.pin_path);
    let (pins, found) = match pins.prepare() {
        Ok(found) => (Some(pins), found),
        Err(error) => {
            tracing::warn!(
                "{error}; the programs are not pinned and die with this process: a crash or restart leaves the host unwatched until pinwatch runs again"
            );
            (None, kernel::pins::Found::default())
        }
    };
    let adopted = match &pins {
        Some(pins) => pins.pinned_ids().map_err(KernelError::from)?,
        None => kernel::pins::PinnedIds::default(),
    };
    // Before attaching, so this daemon's own programs are not in the way;
    // it refuses when another daemon runs.
    let stale_alert = stale::check(&cgroup_root, &time, &adopted)?;
    // From here every return unpins, unless the stop is a handover.
    let mut guard = PinGuard(pins.clone());
    let policy = Policy::from_config(&config);
    let attach = AttachOptions {
        pins: pins.clone(),
        keep_enforcing: config.kernel.on_crash == OnCrash::KeepEnforcing,
    };
    let mut probes = Probes::attach_with(&cgroup_root, &policy, &attach)?;
    let interface_hooks = kernel::interfaces::attach(&mut probes);
    let replaced_alert = match &pins {
        Some(pins) => {
            for dir in &found.other_maps {
                pins.unpin_dir(dir).map_err(KernelError::from)?;
            }
            stale::replaced(&time, &found.other_maps)
        }
        None => None,
    };
    let adoption = found.compatible_maps.then(|| {
        let previous = probes.previous();
        Adoption {
            at: time.now(),
            last_heartbeat: (previous.heartbeat_ns > 0)
                .then(|| time.kernel_clock().to_system_time(previous.heartbeat_ns)),
            reported: previous.reported,
        }
    });
    let maps = probes.take_event_maps()?;
    let stats = Arc::new(SourceStats::default());
    let owners = probes.take_owner_map()?;
    let mut source = KernelSource::new(maps, time.clone(), stats.clone())?.with_owner_map(owners);
    if let Some(adoption) = adoption {
        tracing::info!(
            "adopted the programs and maps an earlier run pinned under {}; reading the records captured while no daemon ran",
            config.kernel.pin_path.display()
        );
        source = source.adopting(adoption);
    }
    // Loading the programs parsed the kernel's BTF: megabytes, freed now.
    heap::release_freed_memory();
    // Before any thread starts: capabilities are per thread, and new
    // threads inherit the reduced sets.
    match privileges::drop_after_attach(interface_hooks.needs_net_admin()) {
        Ok(dropped) => tracing::info!(?dropped, "capabilities dropped after attaching"),
        Err(error) => tracing::warn!("cannot drop capabilities after attaching: {error}"),
    }

    // Responses to queries sent before the hooks saw them are the only ones
    // the warm-up must excuse: before this attach, or before the gap of an
    // adoption (the earlier run saw those queries, this one did not).
    let started = adoption
        .and_then(|a| a.last_heartbeat)
        .unwrap_or_else(|| time.now());
    let shared = Arc::new(Shared::new(
        config.clone(),
        Detector::started_at(&config, started),
        probes.programs().to_vec(),
        stats,
        time,
    ));
    shared.set_interface_coverage(interface_hooks.coverage());
    shared.set_kernel(probes.features().report());
    // Dropped on every return path: stops serving, removes the socket file.
    let _control = control.spawn(shared.clone());
    // Dropped on every return path: the interface links go with it.
    let _interface_hooks = interface_hooks.spawn();
    let _metrics = metrics_listener.map(|listener| metrics::spawn(listener, shared.clone()));
    let writer = stale::report(
        stale_alert.into_iter().chain(replaced_alert),
        writer,
        &shared,
    );
    let (events_tx, events_rx) = mpsc::channel(PIPELINE_DEPTH);
    let identity = Resolver::new(HostRoots {
        proc: config.host.proc.clone(),
        run: config.host.run.clone(),
        cgroup: cgroup_root.clone(),
    });
    let detector_thread = {
        let shared = shared.clone();
        thread::Builder::new()
            .name("pinwatch-detect".into())
            .spawn(move || detect::run(events_rx, &shared, writer, identity))
            .map_err(DaemonError::DetectorSpawn)?
    };

    tracing::info!(
        cgroup = %cgroup_root.display(),
        programs = probes.programs().len(),
        databases = config.databases.len(),
        ports = ?config.watched_ports(),
        enforced = ?policy.enforced_ports(),
        "pinwatch ready"
    );
    notify::ready(&reload::status_line(&config));
    let stop = std::cell::Cell::new(Stop::Clean);
    let result = {
        let supervise = supervisor.run(&shared, &mut probes, events_tx.clone());
        let shutdown = async {
            stop.set(shutdown.await);
        };
        tokio::select! {
            result = source.run(events_tx, shutdown) => result,
            never = supervise => match never {},
        }
    };
    notify::stopping();
    let stop = stop.get();
    if stop == Stop::Handover && result.is_ok() {
        guard.keep();
        tracing::info!(
            "handing over: the programs stay attached and pinned under {} for the next daemon",
            config.kernel.pin_path.display()
        );
    } else {
        // Detach before waiting for the detector to finish its backlog.
        drop(guard);
        drop(probes);
        log_enforcement_stopped(&shared.config());
    }
    let detected = detector_thread
        .join()
        .map_err(|panic| DaemonError::Machinery(panic_text(panic.as_ref()).to_owned()))?;
    result?;
    detected.map(|()| stop)
}

/// Removes the pins when dropped, unless [`PinGuard::keep`] was called:
/// every way out of [`run`] but a handover leaves nothing attached.
struct PinGuard(Option<PinDir>);

impl PinGuard {
    fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some(pins) = self.0.take()
            && let Err(error) = pins.remove_all()
        {
            tracing::error!(
                "{error}: pinwatch's programs may stay attached; run `pinwatch unload`"
            );
        }
    }
}

/// Detaching the connect hooks ends enforcement: from here until pinwatch
/// runs again no connect is refused (fail-open, as after a crash; README
/// "Enforcement"). Said out loud so the log shows when protection stopped.
fn log_enforcement_stopped(config: &Config) {
    let enforced = Policy::from_config(config).enforced_ports();
    if !enforced.is_empty() {
        tracing::warn!(
            ports = ?enforced,
            "enforcement stopped: connects to these ports are no longer refused until pinwatch runs again"
        );
    }
}

fn open_sink(config: &Config) -> Result<AlertWriter, SinkError> {
    let agent = AgentInfo::from_host();
    match &config.alerts.sink {
        AlertSink::Stdout => Ok(AlertWriter::stdout(agent)),
        AlertSink::File(path) => AlertWriter::file(path, agent),
        AlertSink::Journald => AlertWriter::journald(agent),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_detector_thread_that_cannot_start_keeps_the_os_error() {
        let error = DaemonError::DetectorSpawn(std::io::Error::from_raw_os_error(libc::EAGAIN));
        let source = error
            .source()
            .and_then(|e| e.downcast_ref::<std::io::Error>());
        assert_eq!(
            source.and_then(std::io::Error::raw_os_error),
            Some(libc::EAGAIN)
        );
        assert_eq!(error.exit_code(), 1);
    }
}
