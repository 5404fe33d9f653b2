//! Whether the daemon is doing its job, judged from a [`Snapshot`]: one
//! reason per detection that is not running, per kernel feature pinwatch
//! does without, or per report that is not arriving.
use std::time::Duration;

use super::Snapshot;
use crate::kernel::{ProgramStatus, features::KernelFeatures};

/// How long an alert or a sink failure counts as recent: an alert this
/// recent makes `pinwatch status` exit 1, a sink failure this recent makes
/// the daemon degraded.
pub const RECENCY: Duration = Duration::from_secs(15 * 60);

/// Why the daemon is degraded, by cause: each cause is answered for
/// differently (`/healthz` fails on missing detections only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Detections the configuration needs that are not in place
    /// ([`missing_detections`]).
    pub missing: Vec<String>,
    /// What this kernel lacks and pinwatch does another way
    /// ([`kernel_limits`]): degraded, but no restart can fix it.
    pub kernel_limits: Vec<String>,
    /// The alert sink failing in the last [`RECENCY`].
    pub sink: Vec<String>,
}

impl Health {
    /// Judges everything else in `snapshot` (its own `health` is ignored).
    pub fn of(snapshot: &Snapshot) -> Health {
        let mut sink = Vec::new();
        if let Some((at, error)) = &snapshot.last_sink_failure
            && snapshot.age(*at) < RECENCY
        {
            sink.push(format!(
                "the alert sink failed {} time(s), last {}s ago: {error}",
                snapshot.counters.alert_write_errors,
                snapshot.age(*at).as_secs()
            ));
        }
        Health {
            missing: missing_detections(&snapshot.programs),
            kernel_limits: kernel_limits(snapshot.kernel.as_ref()),
            sink,
        }
    }

    /// Every reason, one sentence each (status's `health.reasons`):
    /// missing detections first, then kernel limits, then the sink.
    pub fn reasons(&self) -> Vec<String> {
        [&self.missing, &self.kernel_limits, &self.sink]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    pub fn is_healthy(&self) -> bool {
        self.missing.is_empty() && self.kernel_limits.is_empty() && self.sink.is_empty()
    }
}

/// Each detection the configuration needs that is not in place (a program
/// not attached or not running, an interface the hook cannot watch, none
/// loaded), in words. What `/healthz` fails on: alerts and the sink's state
/// do not belong there, since a liveness probe must not restart pinwatch
/// during an attack.
pub fn missing_detections(programs: &[ProgramStatus]) -> Vec<String> {
    let mut reasons: Vec<String> = programs.iter().flat_map(|p| p.health_reasons()).collect();
    if programs.is_empty() {
        reasons.push("no eBPF program is loaded".to_owned());
    }
    reasons
}

/// Each feature the start-up probes did not find, with what pinwatch does
/// instead: a downgrade is never silent, but it is the kernel's limit, not a
/// fault a restart could clear.
pub fn kernel_limits(kernel: Option<&KernelFeatures>) -> Vec<String> {
    let Some(kernel) = kernel else {
        return Vec::new();
    };
    kernel
        .features
        .iter()
        .filter(|f| !f.available)
        .map(|f| {
            format!(
                "kernel {} lacks {}: {}",
                kernel.release,
                f.name,
                f.fallback.as_deref().unwrap_or("pinwatch does without it")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::features::Probed;

    fn probed(coarse_clock: bool, tcx: bool) -> KernelFeatures {
        let mut report = Probed { coarse_clock, tcx }.report();
        report.release = "6.1.0-57-amd64".into();
        report
    }

    #[test]
    fn each_missing_kernel_feature_is_a_reason_naming_what_replaces_it() {
        assert_eq!(
            kernel_limits(Some(&probed(true, true))),
            Vec::<String>::new()
        );
        assert_eq!(kernel_limits(None), Vec::<String>::new());
        let limits = kernel_limits(Some(&probed(true, false)));
        assert_eq!(limits.len(), 1, "{limits:?}");
        assert!(
            limits[0].starts_with("kernel 6.1.0-57-amd64 lacks tcx: ")
                && limits[0].contains("legacy tc"),
            "{limits:?}"
        );
        let limits = kernel_limits(Some(&probed(false, false)));
        assert_eq!(limits.len(), 2, "{limits:?}");
        assert!(limits[0].contains("lacks coarse-clock: ") && limits[0].contains("precise clock"));
    }

    #[test]
    fn a_kernel_limit_alone_is_degraded() {
        let health = Health {
            kernel_limits: kernel_limits(Some(&probed(true, false))),
            ..Health::default()
        };
        assert!(!health.is_healthy());
        assert_eq!(health.reasons(), health.kernel_limits);
        assert!(Health::default().is_healthy());
    }
}
