//! A [`StatusReport`] rendered from a [`Snapshot`] of the daemon's state.
use std::time::SystemTime;

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    AffectedReport, AlertReport, AnswerReport, ConfigReport, CountersReport, DatabaseReport,
    Health, HealthStatus, ProgramReport, StatusReport,
};
use crate::{
    detector::{LastAnswer, Recipient, Verdict},
    state::Snapshot,
};

impl From<&Snapshot> for StatusReport {
    fn from(snapshot: &Snapshot) -> StatusReport {
        let programs = snapshot
            .programs
            .iter()
            .map(|p| ProgramReport {
                name: p.name.to_owned(),
                kind: p.kind.to_owned(),
                attached: p.attached,
                error: p.error.clone(),
                interfaces: p.interfaces.clone(),
            })
            .collect();
        let databases = snapshot
            .databases
            .iter()
            .map(|db| DatabaseReport {
                name: db.name.clone(),
                hostnames: db.hostnames.clone(),
                ports: db.ports.clone(),
                pinned: db.pinned.clone(),
                mode: db.mode.to_owned(),
                last_answers: db
                    .last_answers
                    .iter()
                    .map(|host| {
                        let answer = host
                            .answer
                            .as_ref()
                            .map(|a| answer_report(a, &host.affected, snapshot));
                        (host.hostname.clone(), answer)
                    })
                    .collect(),
            })
            .collect();
        let c = &snapshot.counters;
        let counters = CountersReport {
            dns_messages: c.dns_messages,
            dns_responses_checked: c.dns_responses_checked,
            connects: c.connects,
            detector_faults: c.detector_faults,
            alerts: c
                .alerts
                .iter()
                .map(|(rule, count)| (rule.id().to_owned(), *count))
                .collect(),
            events_lost: c.events_lost,
            kernel_records: c.kernel_records,
            undecodable_records: c.undecodable_records,
            dns_parse_errors: c.dns_parse_errors,
            alert_write_failures: c.alert_write_errors,
            alerts_without_process: c.alerts_without_process,
        };
        let health = Health {
            status: if snapshot.health.is_healthy() {
                HealthStatus::Healthy
            } else {
                HealthStatus::Degraded
            },
            reasons: snapshot.health.reasons(),
            last_alert_age_s: snapshot.newest_alert.map(|t| snapshot.age(t).as_secs()),
        };
        let recent_alerts = snapshot
            .recent_alerts
            .iter()
            .map(|a| AlertReport {
                time: rfc3339(a.time),
                age_s: snapshot.age(a.time).as_secs(),
                rule: a.rule.id().to_owned(),
                database: a.database.clone(),
                message: a.message.clone(),
            })
            .collect();
        StatusReport {
            version: snapshot.version.clone(),
            pid: snapshot.pid,
            uptime_s: snapshot.uptime().as_secs(),
            config: ConfigReport {
                path: snapshot.config_path.as_ref().map(|p| {
                    // The daemon never changes directory: a relative path
                    // it was given resolves the same now.
                    std::path::absolute(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                        .to_string()
                }),
                hash: snapshot.config_hash.clone(),
            },
            health,
            programs,
            kernel: snapshot.kernel.clone(),
            databases,
            counters,
            recent_alerts,
        }
    }
}

fn answer_report(answer: &LastAnswer, affected: &[Recipient], snapshot: &Snapshot) -> AnswerReport {
    AnswerReport {
        affected: affected.iter().map(affected_report).collect(),
        addresses: answer.addresses.clone(),
        ttl: answer.ttl,
        resolver: answer.resolver,
        seen_at: rfc3339(answer.seen_at),
        age_s: snapshot.age(answer.seen_at).as_secs(),
        verdict: match answer.verdict {
            Verdict::Pinned => "pinned",
            Verdict::Diverged => "diverged",
        }
        .to_owned(),
    }
}

/// RFC 3339, UTC, whole seconds: enough for a person reading status.
fn rfc3339(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn affected_report(recipient: &Recipient) -> AffectedReport {
    let process = &recipient.process;
    AffectedReport {
        workload: match &recipient.workload {
            Some(workload) => workload.label(),
            None => format!("process {} (pid {})", process.name, process.pid),
        },
        container_id: recipient.workload.as_ref().map(|w| w.container_id.clone()),
        connected: recipient.connected,
    }
}
