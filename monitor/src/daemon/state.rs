//! What the running daemon knows, shared between the detector thread and
//! the surfaces that report on it.
use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::SystemTime,
};

use crate::{
    alert::fold::StreamStats,
    config::Config,
    detector::Detector,
    kernel::{ProgramStatus, source::SourceStats},
    status::AlertHistory,
};

pub struct Shared {
    pub started_at: SystemTime,
    config: Mutex<Arc<Config>>,
    detector: Mutex<Detector>,
    programs: Mutex<Vec<ProgramStatus>>,
    pub source: Arc<SourceStats>,
    /// Recent alerts and sink failures, for `status`.
    alert_history: Mutex<AlertHistory>,
    /// What the folded alert stream wrote, for metrics.
    pub alert_stream: StreamStats,
}

impl Shared {
    pub fn new(
        config: Config,
        detector: Detector,
        programs: Vec<ProgramStatus>,
        source: Arc<SourceStats>,
    ) -> Shared {
        Shared {
            started_at: SystemTime::now(),
            config: Mutex::new(Arc::new(config)),
            detector: Mutex::new(detector),
            programs: Mutex::new(programs),
            source,
            alert_history: Mutex::new(AlertHistory::default()),
            alert_stream: StreamStats::default(),
        }
    }

    pub fn alert_history(&self) -> MutexGuard<'_, AlertHistory> {
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
