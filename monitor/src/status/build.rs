//! Building a [`StatusReport`] from the daemon's shared state.
use std::{
    collections::BTreeMap,
    sync::atomic::Ordering,
    time::{Duration, SystemTime},
};

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    ALERT_RECENCY, AlertReport, AnswerReport, ConfigReport, CountersReport, DatabaseReport, Health,
    HealthStatus, ProgramReport, StatusReport,
};
use crate::{
    alert::Rule,
    daemon::Shared,
    detector::{LastAnswer, Verdict},
};

impl StatusReport {
    /// A snapshot of `shared` as of `now`. Each lock is held only while its
    /// part is copied, so the detector thread waits at most that long.
    pub fn build(shared: &Shared, now: SystemTime) -> StatusReport {
        let config = shared.config();
        let programs: Vec<ProgramReport> = shared
            .programs()
            .iter()
            .map(|p| ProgramReport {
                name: p.name.to_owned(),
                kind: p.kind.to_owned(),
                attached: p.attached,
            })
            .collect();
        let (detector_counters, answers) = {
            let detector = shared.detector();
            let answers: Vec<Vec<(String, Option<LastAnswer>)>> = config
                .databases
                .iter()
                .map(|db| {
                    db.hostnames
                        .iter()
                        .map(|h| (h.clone(), detector.last_answer(h).cloned()))
                        .collect()
                })
                .collect();
            (detector.counters().clone(), answers)
        };
        let databases = config
            .databases
            .iter()
            .zip(answers)
            .map(|(db, answers)| DatabaseReport {
                name: db.name.clone(),
                hostnames: db.hostnames.clone(),
                ports: db.ports.clone(),
                pinned: db.pinned.clone(),
                mode: db.mode.as_str().to_owned(),
                last_answers: answers
                    .into_iter()
                    .map(|(host, answer)| (host, answer.map(|a| answer_report(&a, now))))
                    .collect(),
            })
            .collect();

        let history = shared.alert_history();
        let mut alerts: BTreeMap<String, u64> =
            Rule::ALL.iter().map(|r| (r.id().to_owned(), 0)).collect();
        for (rule, count) in &detector_counters.alerts {
            alerts.insert(rule.id().to_owned(), *count);
        }
        let counters = CountersReport {
            dns_messages: detector_counters.dns_messages,
            dns_responses_checked: detector_counters.dns_responses_checked,
            connects: detector_counters.connects,
            alerts,
            events_lost: detector_counters.events_lost,
            kernel_records: shared.source.records.load(Ordering::Relaxed),
            undecodable_records: shared.source.undecodable.load(Ordering::Relaxed),
            dns_parse_errors: shared.source.dns_parse_errors.load(Ordering::Relaxed),
            alert_write_failures: history.write_failures(),
        };

        let mut reasons = missing_detections(shared);
        if let Some((at, error)) = history.last_failure()
            && age(*at, now) < ALERT_RECENCY
        {
            reasons.push(format!(
                "the alert sink failed {} time(s), last {}s ago: {error}",
                history.write_failures(),
                age(*at, now).as_secs()
            ));
        }
        let health = Health {
            status: if reasons.is_empty() {
                HealthStatus::Healthy
            } else {
                HealthStatus::Degraded
            },
            reasons,
            last_alert_age_s: history.newest().map(|t| age(t, now).as_secs()),
        };
        let recent_alerts = history
            .recent()
            .map(|a| AlertReport {
                time: rfc3339(a.time),
                age_s: age(a.time, now).as_secs(),
                rule: a.rule.id().to_owned(),
                database: a.database.clone(),
                message: a.message.clone(),
            })
            .collect();
        drop(history);

        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_s: age(shared.started_at, now).as_secs(),
            config: ConfigReport {
                path: config.path.as_ref().map(|p| {
                    // The daemon never changes directory: a relative path
                    // it was given resolves the same now.
                    std::path::absolute(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                        .to_string()
                }),
                hash: config.hash.clone(),
            },
            health,
            programs,
            databases,
            counters,
            recent_alerts,
        }
    }
}

/// Each detection the configuration needs that is not in place (a program
/// not attached, none loaded), in words. The first of `health.reasons`, and
/// all that `/healthz` answers on: alerts and the sink's state do not
/// belong here, since a liveness probe must not restart pinwatch during an
/// attack. A new kind of missing detection goes here so both follow it.
pub fn missing_detections(shared: &Shared) -> Vec<String> {
    let programs = shared.programs();
    let mut reasons: Vec<String> = programs
        .iter()
        .filter(|p| !p.attached)
        .map(|p| format!("program {} ({}) is not attached", p.name, p.kind))
        .collect();
    if programs.is_empty() {
        reasons.push("no eBPF program is loaded".to_owned());
    }
    reasons
}

fn answer_report(answer: &LastAnswer, now: SystemTime) -> AnswerReport {
    AnswerReport {
        addresses: answer.addresses.clone(),
        ttl: answer.ttl,
        resolver: answer.resolver,
        seen_at: rfc3339(answer.seen_at),
        age_s: age(answer.seen_at, now).as_secs(),
        verdict: match answer.verdict {
            Verdict::Pinned => "pinned",
            Verdict::Diverged => "diverged",
        }
        .to_owned(),
    }
}

/// Event times come from the kernel's clock and may be a hair ahead of
/// `now`: such ages are zero.
fn age(then: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}

/// RFC 3339, UTC, whole seconds: enough for a person reading status.
fn rfc3339(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}
