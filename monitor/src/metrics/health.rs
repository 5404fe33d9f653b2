//! `/healthz` and `/readyz`, beside `/metrics`: probes for an orchestrator.
//!
//! - `/healthz` (liveness): 200 while the daemon runs and every detection
//!   its configuration needs is in place ([`missing_detections`], the same
//!   reasons `pinwatch status` reports); 503 naming what is missing. A
//!   restart is what fixes a program the kernel dropped.
//! - `/readyz` (readiness): 200 once the source has drained the kernel's
//!   ring buffer once, i.e. events flow; 503 before.
//!
//! Alerts never change either answer: a liveness probe that failed on
//! alerts would restart the agent during the attack it reports, losing its
//! state (`pinwatch status` exits 1 on a recent alert, so it is no probe).
use std::sync::atomic::Ordering;

use crate::state::{Shared, missing_detections};

/// A probe's verdict and the text that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    pub ok: bool,
    /// One line per reason, newline-terminated.
    pub body: String,
}

impl ProbeAnswer {
    fn from_reasons(ok_line: String, failing: &str, reasons: Vec<String>) -> ProbeAnswer {
        if reasons.is_empty() {
            return ProbeAnswer {
                ok: true,
                body: format!("ok: {ok_line}\n"),
            };
        }
        let body = reasons.iter().fold(String::new(), |mut body, reason| {
            body.push_str(failing);
            body.push_str(": ");
            body.push_str(reason);
            body.push('\n');
            body
        });
        ProbeAnswer { ok: false, body }
    }
}

/// `/healthz`.
pub fn liveness(shared: &Shared) -> ProbeAnswer {
    let programs = shared.programs();
    let attached = programs.iter().filter(|p| p.attached).count();
    ProbeAnswer::from_reasons(
        format!("{attached} programs attached"),
        "unhealthy",
        missing_detections(&programs),
    )
}

/// `/readyz`.
pub fn readiness(shared: &Shared) -> ProbeAnswer {
    let drains = shared.source.drains.load(Ordering::Relaxed);
    let reasons = if drains == 0 {
        vec!["the kernel's ring buffer has not been drained yet".to_owned()]
    } else {
        Vec::new()
    };
    ProbeAnswer::from_reasons(
        "events flow from the kernel".to_owned(),
        "not ready",
        reasons,
    )
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::{
        alert::{Alert, Rule},
        state::tests::shared_with,
    };

    const CONFIG: &str = "[[database]]\nname = \"orders\"\nhostnames = [\"db.lab.test\"]\npinned = [\"192.0.2.0/24\"]\n";

    #[test]
    fn healthz_names_each_program_not_attached() {
        let shared = shared_with(CONFIG, &[("pw_connect4", true), ("pw_connect6", false)]);
        let answer = liveness(&shared);
        assert!(!answer.ok);
        assert_eq!(
            answer.body,
            "unhealthy: program pw_connect6 (cgroup/connect4) is not attached\n"
        );
        let answer = liveness(&shared_with(CONFIG, &[]));
        assert_eq!(
            (answer.ok, answer.body.as_str()),
            (false, "unhealthy: no eBPF program is loaded\n")
        );
    }

    #[test]
    fn alerts_and_sink_failures_leave_healthz_alone() {
        let shared = shared_with(CONFIG, &[("pw_connect4", true)]);
        let now = SystemTime::now();
        let alert = Alert::new(now, Rule::DnsAnswerDiverged, "forged".into());
        shared.alert_history().record(&alert, Ok(()), now);
        shared
            .alert_history()
            .record(&alert, Err("disk full".into()), now);
        let answer = liveness(&shared);
        assert_eq!(
            (answer.ok, answer.body.as_str()),
            (true, "ok: 1 programs attached\n")
        );
    }

    #[test]
    fn readyz_waits_for_the_first_drain() {
        let shared = shared_with(CONFIG, &[("pw_connect4", true)]);
        let answer = readiness(&shared);
        assert!(!answer.ok);
        assert!(answer.body.starts_with("not ready: "), "{}", answer.body);
        shared.source.drains.fetch_add(1, Ordering::Relaxed);
        assert!(readiness(&shared).ok);
    }
}
