//! `pinwatch run`: the pipeline kernel source → detector → alert sink, and
//! the state the operator surfaces read.
mod detect;
mod notify;
mod privileges;
mod reload;
mod stale;
mod state;

pub use state::Shared;

use std::{sync::Arc, thread};

use tokio::sync::mpsc;

use crate::{
    alert::{
        AgentInfo,
        sink::{AlertWriter, SinkError},
    },
    config::{AlertSink, Config},
    control::{ControlError, ControlServer},
    decode::Clock,
    detector::Detector,
    kernel::{
        self, KernelError, Policy, Probes,
        source::{KernelSource, SourceError, SourceStats},
    },
    metrics::{self, MetricsError},
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
    #[error("the detector thread failed: {0}")]
    Detector(String),
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
}

impl DaemonError {
    /// SPEC's exit codes: 3 when the kernel or privileges are not enough, 2
    /// for configuration problems (an alert path that cannot be opened), 1
    /// for failures while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Kernel(_) => 3,
            DaemonError::Stale(error) => error.exit_code(),
            DaemonError::Sink(SinkError::Open { .. } | SinkError::Journal(_))
            | DaemonError::Control(_)
            | DaemonError::Metrics(_)
            | DaemonError::Watch(_) => 2,
            _ => 1,
        }
    }
}

/// Gives the heap pages freed so far back to the kernel. Loading the
/// programs parses the kernel's BTF (megabytes of types, freed once loaded),
/// and glibc keeps freed heap memory for reuse: without this, that parse
/// stays in the daemon's resident set for its whole life. musl (the static
/// release build) has no malloc_trim: its allocator returns freed pages itself.
#[cfg(target_env = "gnu")]
pub(crate) fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free heap pages; it takes the
    // allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
pub(crate) fn release_freed_memory() {}

/// Runs until `shutdown` resolves. Programs are detached when this returns,
/// whether it returns with an error or not.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let supervisor = reload::Supervisor::install(&config)?;
    let writer = open_sink(&config)?;
    let metrics_listener = match config.metrics {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    kernel::preflight()?;
    // After the privilege check: without root, creating /run/pinwatch would
    // fail first and hide the message that names the missing capability.
    let control = ControlServer::bind(&config.control)?;
    let cgroup_root = kernel::find_cgroup2_root()?;
    // Before attaching, so this daemon's own programs are not in the way.
    let stale_alert = stale::check(&cgroup_root)?;
    let policy = Policy::from_config(&config);
    let mut probes = Probes::attach_with_policy(&cgroup_root, &policy)?;
    let interface_hooks = kernel::interfaces::attach(&mut probes)?;
    let (ring, lost) = probes.take_event_maps()?;
    let stats = Arc::new(SourceStats::default());
    let source = KernelSource::new(ring, lost, Clock::from_system(), stats.clone())?;
    release_freed_memory();
    // Before any thread starts: capabilities are per thread, and new
    // threads inherit the reduced sets.
    match privileges::drop_after_attach() {
        Ok(dropped) => tracing::info!(?dropped, "capabilities dropped after attaching"),
        Err(error) => tracing::warn!("cannot drop capabilities after attaching: {error}"),
    }

    let shared = Arc::new(Shared::new(
        config.clone(),
        Detector::new(&config),
        probes.programs().to_vec(),
        stats,
    ));
    // Dropped on every return path: stops serving, removes the socket file.
    let _control = control.spawn(shared.clone());
    // Dropped on every return path: the interface links go with it.
    let _interface_hooks = interface_hooks.spawn();
    let _metrics = metrics_listener.map(|listener| metrics::spawn(listener, shared.clone()));
    let writer = stale::report(stale_alert, writer, &shared);
    let (events_tx, events_rx) = mpsc::channel(PIPELINE_DEPTH);
    let detector_thread = {
        let shared = shared.clone();
        thread::Builder::new()
            .name("pinwatch-detect".into())
            .spawn(move || detect::run(events_rx, &shared, writer))
            .map_err(|e| DaemonError::Detector(e.to_string()))?
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
    let result = {
        let supervise = supervisor.run(&shared, &mut probes, events_tx.clone());
        tokio::select! {
            result = source.run(events_tx, shutdown) => result,
            never = supervise => match never {},
        }
    };
    notify::stopping();
    // Detach before waiting for the detector to finish its backlog.
    drop(probes);
    log_enforcement_stopped(&shared.config());
    let detected = detector_thread
        .join()
        .map_err(|_| DaemonError::Detector("panicked".into()))?;
    result?;
    detected
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
