//! Whether the daemon is doing its job, judged from a [`Snapshot`]: one
//! reason per detection that is not running or report that is not arriving.
use std::time::Duration;

use super::Snapshot;

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
        let mut reasons: Vec<String> = snapshot
            .programs
            .iter()
            .filter(|p| !p.attached)
            .map(|p| format!("program {} ({}) is not attached", p.name, p.kind))
            .collect();
        if snapshot.programs.is_empty() {
            reasons.push("no eBPF program is loaded".to_owned());
        }
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
