//! One reading of the shared state: what status, metrics and health render.
use std::{
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use ipnet::IpNet;

use super::{Health, RecentAlert, Shared};
use crate::{
    alert::Rule,
    detector::{LastAnswer, Recipient},
    event::LossOrigin,
    kernel::{ProgramStatus, features::KernelFeatures},
};

/// Everything the daemon reports, read once. Each lock is held only while
/// its part is copied, so the detector thread waits at most that long.
/// Times are wall-clock times, converted from the daemon's time base with
/// one offset, so ages are monotonic time whatever the wall clock did.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub version: String,
    pub pid: u32,
    /// When it was taken.
    pub taken_at: SystemTime,
    pub started_at: SystemTime,
    /// The file the configuration in force came from; `None` when it did
    /// not come from one.
    pub config_path: Option<PathBuf>,
    /// SHA-256 of that configuration, lowercase hex.
    pub config_hash: String,
    pub programs: Vec<ProgramStatus>,
    /// What the kernel offers pinwatch's programs; `None` until the daemon
    /// probed it.
    pub kernel: Option<KernelFeatures>,
    pub databases: Vec<DatabaseState>,
    pub counters: Counters,
    /// Newest first, at most [`super::RECENT_ALERTS`].
    pub recent_alerts: Vec<RecentAlert>,
    /// When the newest alert's event happened.
    pub newest_alert: Option<SystemTime>,
    /// When the sink last failed, and how.
    pub last_sink_failure: Option<(SystemTime, String)>,
    /// Judged from the rest of the snapshot ([`Health::of`]).
    pub health: Health,
}

/// A configured database and the last answer seen for each hostname.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseState {
    pub name: String,
    pub hostnames: Vec<String>,
    pub ports: Vec<u16>,
    pub pinned: Vec<IpNet>,
    /// `monitor` or `block`.
    pub mode: &'static str,
    /// Every configured hostname, in configuration order.
    pub last_answers: Vec<HostnameState>,
}

/// What the detector last saw for one configured hostname.
#[derive(Debug, Clone, PartialEq)]
pub struct HostnameState {
    pub hostname: String,
    /// `None` until an answer for it was seen.
    pub answer: Option<LastAnswer>,
    /// Who received a diverged answer for it within the dedup window.
    pub affected: Vec<Recipient>,
}

/// Every counter the daemon keeps, by where it is counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Detector: messages, responses judged, connects.
    pub dns_messages: u64,
    pub dns_responses_checked: u64,
    pub connects: u64,
    /// Detector: events whose judging faulted (`detector-fault`), skipped.
    pub detector_faults: u64,
    /// Detector: detections by rule, before folding; every rule, zeros
    /// included.
    pub alerts: Vec<(Rule, u64)>,
    /// Detector: events the loss reports it received said were lost.
    pub events_lost: u64,
    /// Source: lost events by origin; every origin, zeros included.
    pub lost_by_origin: Vec<(LossOrigin, u64)>,
    /// Source: records read from the kernel's ring buffer, those that did
    /// not decode, and packets on port 53 that were not DNS.
    pub kernel_records: u64,
    pub undecodable_records: u64,
    pub dns_parse_errors: u64,
    /// Source: DNS-over-TCP flows and fragmented datagrams reassembly gave
    /// up on (memory bounds, bytes the kernel did not copy).
    pub reassembly_given_up: u64,
    /// Alert stream: lines written (fold summaries included), detections
    /// folded into summaries, lines the sink failed to write.
    pub alert_lines: u64,
    pub alerts_folded: u64,
    pub alert_write_errors: u64,
    /// Alert stream: lines of rules about a socket that named no process.
    pub alerts_without_process: u64,
}

impl Snapshot {
    /// Reads `shared` now.
    pub fn now(shared: &Shared) -> Snapshot {
        Snapshot::take(shared, shared.time.now())
    }

    /// Reads `shared` as of `now`, on the daemon's time base.
    pub fn take(shared: &Shared, now: SystemTime) -> Snapshot {
        let wall = |at: SystemTime| shared.time.to_wall(at);
        let config = shared.config();
        let (detector, last_answers) = {
            let detector = shared.detector();
            let answers: Vec<Vec<HostnameState>> = config
                .databases
                .iter()
                .map(|db| {
                    db.hostnames
                        .iter()
                        .map(|h| {
                            let answer = detector.last_answer(h).map(|answer| LastAnswer {
                                seen_at: wall(answer.seen_at),
                                ..answer.clone()
                            });
                            HostnameState {
                                hostname: h.clone(),
                                answer,
                                affected: detector.affected(h),
                            }
                        })
                        .collect()
                })
                .collect();
            (detector.counters().clone(), answers)
        };
        let databases = config
            .databases
            .iter()
            .zip(last_answers)
            .map(|(db, last_answers)| DatabaseState {
                name: db.name.clone(),
                hostnames: db.hostnames.clone(),
                ports: db.ports.clone(),
                pinned: db.pinned.clone(),
                mode: db.mode.as_str(),
                last_answers,
            })
            .collect();
        let source = &shared.source;
        let stream = &shared.alert_stream;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = Counters {
            dns_messages: detector.dns_messages,
            dns_responses_checked: detector.dns_responses_checked,
            connects: detector.connects,
            detector_faults: detector.detector_faults,
            alerts: Rule::ALL
                .iter()
                .map(|rule| (*rule, detector.alerts.get(rule).copied().unwrap_or(0)))
                .collect(),
            events_lost: detector.events_lost,
            lost_by_origin: vec![
                (LossOrigin::KernelDnsPacket, load(&source.lost_dns_packets)),
                (LossOrigin::KernelConnect, load(&source.lost_connects)),
                (LossOrigin::KernelDbSegment, load(&source.lost_db_segments)),
                (LossOrigin::KernelDnsOwner, load(&source.lost_dns_owners)),
                (LossOrigin::Undecodable, load(&source.undecodable)),
            ],
            kernel_records: load(&source.records),
            undecodable_records: load(&source.undecodable),
            dns_parse_errors: load(&source.dns_parse_errors),
            reassembly_given_up: load(&source.reassembly_flows_evicted)
                + load(&source.reassembly_fragments_evicted),
            alert_lines: load(&stream.lines),
            alerts_folded: load(&stream.folded),
            alert_write_errors: load(&stream.write_errors),
            alerts_without_process: load(&stream.without_process),
        };
        let (recent_alerts, newest_alert, last_sink_failure) = {
            let history = shared.alert_history();
            let recent = history.recent().map(|alert| RecentAlert {
                time: wall(alert.time),
                ..alert.clone()
            });
            (
                recent.collect(),
                history.newest().map(wall),
                history
                    .last_failure()
                    .map(|(at, error)| (wall(*at), error.clone())),
            )
        };
        let mut snapshot = Snapshot {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            taken_at: wall(now),
            started_at: wall(shared.started_at),
            config_path: config.path.clone(),
            config_hash: config.hash.clone(),
            programs: shared.programs(),
            kernel: shared.kernel(),
            databases,
            counters,
            recent_alerts,
            newest_alert,
            last_sink_failure,
            health: Health::default(),
        };
        snapshot.health = Health::of(&snapshot);
        snapshot
    }

    /// How long before the snapshot `then` was. Event times come from the
    /// kernel's clock and may be a hair ahead: such ages are zero.
    pub fn age(&self, then: SystemTime) -> Duration {
        self.taken_at.duration_since(then).unwrap_or_default()
    }

    pub fn uptime(&self) -> Duration {
        self.age(self.started_at)
    }
}
