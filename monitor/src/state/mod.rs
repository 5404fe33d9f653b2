//! What the running daemon knows, below the daemon and the surfaces that
//! report on it: the detector thread and the source write it, and status,
//! metrics and health each render one [`Snapshot`] of it.
mod health;
mod history;
mod snapshot;
#[cfg(test)]
pub(crate) mod tests;

pub use health::{Health, RECENCY, kernel_limits, missing_detections};
pub use history::{AlertHistory, RECENT_ALERTS, RecentAlert};
pub use snapshot::{Counters, DatabaseState, HostnameState, Snapshot};

use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use crate::{
    alert::Alert,
    clock::TimeBase,
    config::Config,
    detector::Detector,
    kernel::{ProgramStatus, features::KernelFeatures, interfaces, source::SourceStats},
};

pub struct Shared {
    /// The daemon's time base: every time kept here is on it.
    pub time: Arc<TimeBase>,
    pub started_at: SystemTime,
    config: Mutex<Arc<Config>>,
    detector: Mutex<Detector>,
    programs: Mutex<Vec<ProgramStatus>>,
    /// The interface hook's live coverage, merged into `programs()`.
    interface_coverage: Mutex<Option<interfaces::CoverageHandle>>,
    /// What the kernel offered at start.
    kernel: Mutex<Option<KernelFeatures>>,
    pub source: Arc<SourceStats>,
    /// Recent alerts and the last sink failure, for `status`.
    alert_history: Mutex<AlertHistory>,
    /// What the folded alert stream wrote.
    pub alert_stream: StreamStats,
}

/// What the alert stream wrote, kept by the detector thread (detections
/// themselves are the detector's counters).
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Lines written, summaries included.
    pub lines: AtomicU64,
    /// Alerts folded into summaries instead of written on their own line.
    pub folded: AtomicU64,
    /// Lines the sink failed to write (they went to the diagnostic log).
    pub write_errors: AtomicU64,
    /// Lines of rules about a socket that went out naming no process.
    pub without_process: AtomicU64,
}

impl Shared {
    pub fn new(
        config: Config,
        detector: Detector,
        programs: Vec<ProgramStatus>,
        source: Arc<SourceStats>,
        time: Arc<TimeBase>,
    ) -> Shared {
        Shared {
            started_at: time.now(),
            time,
            config: Mutex::new(Arc::new(config)),
            detector: Mutex::new(detector),
            programs: Mutex::new(programs),
            interface_coverage: Mutex::new(None),
            kernel: Mutex::new(None),
            source,
            alert_history: Mutex::new(AlertHistory::default()),
            alert_stream: StreamStats::default(),
        }
    }

    /// Notes a line the sink was handed and its verdict (`Err` carries the
    /// sink's message) at daemon time `now`: counted for metrics, kept for
    /// status.
    pub fn note_written(&self, alert: &Alert, written: Result<(), String>, now: SystemTime) {
        self.alert_stream.lines.fetch_add(1, Ordering::Relaxed);
        if alert.rule.names_a_process() && alert.process.is_none() {
            self.alert_stream
                .without_process
                .fetch_add(1, Ordering::Relaxed);
        }
        if written.is_err() {
            self.alert_stream
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
        }
        self.alert_history().record(alert, written, now);
    }

    pub(crate) fn alert_history(&self) -> MutexGuard<'_, AlertHistory> {
        self.alert_history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A poisoned lock means a panic elsewhere; the state itself is still
    /// the best account there is, so keep serving it.
    pub fn detector(&self) -> MutexGuard<'_, Detector> {
        self.detector.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_config(&self, config: Config) {
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }

    /// Every program as it is now: the interface hook's coverage is read
    /// live, since interfaces come and go.
    pub fn programs(&self) -> Vec<ProgramStatus> {
        let mut programs = self
            .programs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let coverage = self
            .interface_coverage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(coverage) = coverage {
            for program in programs
                .iter_mut()
                .filter(|p| p.name == interfaces::PROGRAM)
            {
                let now = coverage.snapshot();
                program.attached = !now.covered.is_empty();
                program.interfaces = Some(now);
            }
        }
        programs
    }

    pub fn set_interface_coverage(&self, coverage: interfaces::CoverageHandle) {
        *self
            .interface_coverage
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(coverage);
    }

    pub fn kernel(&self) -> Option<KernelFeatures> {
        self.kernel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_kernel(&self, features: KernelFeatures) {
        *self.kernel.lock().unwrap_or_else(PoisonError::into_inner) = Some(features);
    }
}
