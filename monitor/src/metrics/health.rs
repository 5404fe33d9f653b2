//! `/healthz` and `/readyz`, beside `/metrics`: probes for an orchestrator.
//!
//! - `/healthz` (liveness): 200 while the daemon runs and every detection
//!   its configuration needs is in place ([`missing_detections`], the same
//!   reasons `pinwatch status` reports); 503 naming what is missing. A
//!   restart is what fixes a program the kernel dropped. What the kernel
//!   lacks ([`kernel_limits`]) degrades status but answers 200, each limit
//!   named in the body: no restart can give a kernel tcx.
//! - `/readyz` (readiness): 200 once the source has drained the kernel's
//!   ring buffer once, i.e. events flow; 503 before.
//!
//! Alerts never change either answer: a liveness probe that failed on
//! alerts would restart the agent during the attack it reports, losing its
//! state (`pinwatch status` exits 1 on a recent alert, so it is no probe).
use std::sync::atomic::Ordering;

use crate::state::{Shared, kernel_limits, missing_detections};

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
    let mut answer = ProbeAnswer::from_reasons(
        format!("{attached} programs attached"),
        "unhealthy",
        missing_detections(&programs),
    );
    for limit in kernel_limits(shared.kernel().as_ref()) {
        answer.body.push_str("degraded: ");
        answer.body.push_str(&limit);
        answer.body.push('\n');
    }
    answer
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
        kernel::features::Probed,
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
    fn a_kernel_limit_answers_200_naming_it() {
        let shared = shared_with(CONFIG, &[("pw_connect4", true)]);
        let mut kernel = Probed {
            coarse_clock: true,
            tcx: false,
        }
        .report();
        kernel.release = "6.1.0-57-amd64".into();
        shared.set_kernel(kernel);
        let answer = liveness(&shared);
        assert!(answer.ok, "{}", answer.body);
        let mut lines = answer.body.lines();
        assert_eq!(lines.next(), Some("ok: 1 programs attached"));
        let limit = lines.next().unwrap_or_default();
        assert!(
            limit.starts_with("degraded: kernel 6.1.0-57-amd64 lacks tcx: ")
                && limit.contains("legacy tc"),
            "{}",
            answer.body
        );
        assert_eq!(lines.next(), None);

        // A missing detection still fails, the limit named beside it.
        let shared = shared_with(CONFIG, &[("pw_connect4", false)]);
        shared.set_kernel(
            Probed {
                coarse_clock: false,
                tcx: true,
            }
            .report(),
        );
        let answer = liveness(&shared);
        assert!(!answer.ok);
        assert!(
            answer.body.starts_with("unhealthy: program pw_connect4"),
            "{}",
            answer.body
        );
        assert!(
            answer.body.contains("\ndegraded: kernel "),
            "{}",
            answer.body
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
