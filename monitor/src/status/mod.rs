//! What `pinwatch status` reports: the [`StatusReport`] the daemon builds
//! from its shared state and sends over the control socket, the readable
//! rendering of it, and the exit code it stands for (SPEC "Commands").
mod build;
mod history;
mod render;
#[cfg(test)]
pub(crate) mod tests;

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use build::missing_detections;
pub use history::{AlertHistory, RECENT_ALERTS, RecentAlert};
pub use render::render;

/// An alert this recent makes `pinwatch status` exit 1.
pub const ALERT_RECENCY: Duration = Duration::from_secs(15 * 60);

/// One JSON object with SPEC's keys ("Status"), plus `health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub pid: u32,
    pub uptime_s: u64,
    pub config: ConfigReport,
    pub health: Health,
    pub programs: Vec<ProgramReport>,
    pub databases: Vec<DatabaseReport>,
    pub counters: CountersReport,
    /// Newest first, at most [`RECENT_ALERTS`].
    pub recent_alerts: Vec<AlertReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigReport {
    /// `None` when the configuration did not come from a file.
    pub path: Option<String>,
    /// SHA-256 of the file, lowercase hex.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    /// Why the daemon is degraded; empty when healthy.
    pub reasons: Vec<String>,
    /// Seconds since the newest alert; `None` when none was raised.
    pub last_alert_age_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every program attached, every alert reached its sink.
    Healthy,
    /// The daemon may be missing attacks or failing to report them.
    Degraded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramReport {
    pub name: String,
    pub kind: String,
    pub attached: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseReport {
    pub name: String,
    pub hostnames: Vec<String>,
    pub ports: Vec<u16>,
    pub pinned: Vec<IpNet>,
    pub mode: String,
    /// Every configured hostname; `None` until an answer for it was seen.
    pub last_answers: BTreeMap<String, Option<AnswerReport>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerReport {
    pub addresses: Vec<IpAddr>,
    pub ttl: u32,
    pub resolver: IpAddr,
    /// RFC 3339, UTC.
    pub seen_at: String,
    pub age_s: u64,
    /// `pinned` or `diverged`.
    pub verdict: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersReport {
    pub dns_messages: u64,
    pub dns_responses_checked: u64,
    pub connects: u64,
    /// By rule id; every rule is listed, zero included.
    pub alerts: BTreeMap<String, u64>,
    pub events_lost: u64,
    /// Records read from the kernel's ring buffer.
    pub kernel_records: u64,
    /// Kernel records that could not be decoded (also counted as lost).
    pub undecodable_records: u64,
    /// Packets on port 53 that were not parsable DNS.
    pub dns_parse_errors: u64,
    /// Alerts the sink failed to write (they went to the diagnostic log).
    pub alert_write_failures: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertReport {
    /// RFC 3339, UTC.
    pub time: String,
    pub age_s: u64,
    pub rule: String,
    pub database: Option<String>,
    pub message: String,
}

impl StatusReport {
    /// SPEC's exit code for `pinwatch status`: 0 healthy, 1 degraded or an
    /// alert in the last 15 minutes (2, unreachable, is the client's).
    pub fn exit_code(&self) -> u8 {
        let alerted = self
            .health
            .last_alert_age_s
            .is_some_and(|age| age < ALERT_RECENCY.as_secs());
        if self.health.status == HealthStatus::Degraded || alerted {
            1
        } else {
            0
        }
    }
}
