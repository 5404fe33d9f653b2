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
    kernel::{ProgramStatus, features::KernelFeatures, interfaces, source::SourceStats},
    status::AlertHistory,
};

pub struct Shared {
    pub started_at: SystemTime,
    config: Mutex<Arc<Config>>,
    detector: Mutex<Detector>,
    programs: Mutex<Vec<ProgramStatus>>,
    /// The interface hook's live coverage, merged into `programs()`.
    interface_coverage: Mutex<Option<interfaces::CoverageHandle>>,
    /// What the kernel offered at start.
    kernel: Mutex<Option<KernelFeatures>>,
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
            interface_coverage: Mutex::new(None),
            kernel: Mutex::new(None),
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
