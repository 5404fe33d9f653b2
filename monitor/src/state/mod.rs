//! What the running daemon knows, below the daemon and the surfaces that
//! report on it: the detector thread and the source write it, and status,
//! metrics and health each render one [`Snapshot`] of it.
mod health;
mod history;
mod snapshot;
#[cfg(test)]
pub(crate) mod tests;

pub use health::{Health, RECENCY};
pub use history::{AlertHistory, RECENT_ALERTS, RecentAlert};
pub use snapshot::{Counters, DatabaseState, Snapshot};

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
    kernel::{ProgramStatus, source::SourceStats},
};

pub struct Shared {
    /// The daemon's time base: every time kept here is on it.
    pub time: Arc<TimeBase>,
    pub started_at: SystemTime,
    config: Mutex<Arc<Config>>,
    detector: Mutex<Detector>,
    programs: Mutex<Vec<ProgramStatus>>,
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

    pub fn programs(&self) -> Vec<ProgramStatus> {
        self.programs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
