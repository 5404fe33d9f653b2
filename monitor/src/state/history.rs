//! The alerts `status` shows, and whether they reached the sink.
use std::{collections::VecDeque, time::SystemTime};

use crate::alert::{Alert, Rule};

/// How many recent alerts are kept for `status`: enough to see what is
/// going on; the SIEM has the rest.
pub const RECENT_ALERTS: usize = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct RecentAlert {
    /// When the event that raised it happened.
    pub time: SystemTime,
    pub rule: Rule,
    pub database: Option<String>,
    pub message: String,
}

/// Bounded record of raised alerts and the last sink failure, kept in
/// [`super::Shared`]; failures are counted in its stream counters.
#[derive(Debug, Default)]
pub struct AlertHistory {
    /// Oldest first.
    recent: VecDeque<RecentAlert>,
    newest: Option<SystemTime>,
    last_failure: Option<(SystemTime, String)>,
}

impl AlertHistory {
    /// Notes an alert the detector raised; `written` is the sink's verdict
    /// (`Err` carries its message).
    pub fn record(&mut self, alert: &Alert, written: Result<(), String>, now: SystemTime) {
        if self.recent.len() == RECENT_ALERTS {
            self.recent.pop_front();
        }
        self.recent.push_back(RecentAlert {
            time: alert.timestamp,
            rule: alert.rule,
            database: alert.database.clone(),
            // Status names the container and pod the alert's process ran in.
            message: match &alert.workload {
                Some(workload) => format!("{} [{}]", alert.message, workload.label()),
                None => alert.message.clone(),
            },
        });
        self.newest = Some(
            self.newest
                .map_or(alert.timestamp, |t| t.max(alert.timestamp)),
        );
        if let Err(error) = written {
            self.last_failure = Some((now, error));
        }
    }

    /// Newest first.
    pub fn recent(&self) -> impl Iterator<Item = &RecentAlert> {
        self.recent.iter().rev()
    }

    /// When the newest alert's event happened.
    pub fn newest(&self) -> Option<SystemTime> {
        self.newest
    }

    /// When the sink last failed, and how.
    pub fn last_failure(&self) -> Option<&(SystemTime, String)> {
        self.last_failure.as_ref()
    }
}
