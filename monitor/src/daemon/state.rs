//! What the running daemon knows, shared between the detector thread and
//! the surfaces that report on it.
use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::SystemTime,
};

use crate::{
    config::Config,
    detector::Detector,
    kernel::{ProgramStatus, source::SourceStats},
};

pub struct Shared {
    pub started_at: SystemTime,
    config: Mutex<Arc<Config>>,
    detector: Mutex<Detector>,
    programs: Mutex<Vec<ProgramStatus>>,
    pub source: Arc<SourceStats>,
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
        }
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
