//! Whether the daemon is doing its job, judged from a [`Snapshot`]: one
//! reason per detection that is not running or report that is not arriving.
use std::time::Duration;

use super::Snapshot;
use crate::kernel::ProgramStatus;

/// How long an alert or a sink failure counts as recent: an alert this
/// recent makes `pinwatch status` exit 1, a sink failure this recent makes
/// the daemon degraded.
pub const RECENCY: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Why the daemon is degraded, one sentence each; empty when healthy.
    pub reasons: Vec<String>,
}

impl Health {
    /// Judges everything else in `snapshot` (its own `health` is ignored).
    pub fn of(snapshot: &Snapshot) -> Health {
        let mut reasons = missing_detections(&snapshot.programs);
        if let Some((at, error)) = &snapshot.last_sink_failure
            && snapshot.age(*at) < RECENCY
        {
            reasons.push(format!(
                "the alert sink failed {} time(s), last {}s ago: {error}",
                snapshot.counters.alert_write_errors,
                snapshot.age(*at).as_secs()
            ));
        }
        Health { reasons }
    }

    pub fn is_healthy(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Each detection the configuration needs that is not in place (a program
/// not attached or not running, an interface the hook cannot watch, none
/// loaded), in words. The first of [`Health::reasons`], and all that
/// `/healthz` answers on: alerts and the sink's state do not belong here,
/// since a liveness probe must not restart pinwatch during an attack.
pub fn missing_detections(programs: &[ProgramStatus]) -> Vec<String> {
    let mut reasons: Vec<String> = programs.iter().flat_map(|p| p.health_reasons()).collect();
    if programs.is_empty() {
        reasons.push("no eBPF program is loaded".to_owned());
    }
    reasons
}
