//! The snapshot status, metrics and health render from, and the test state
//! the surfaces' tests build on.
use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime},
};

use super::{Shared, Snapshot};
use crate::{
    alert::{Alert, Rule},
    clock::{TimeBase, fake::FakeClocks},
    detector::Detector,
    event::{Event, LossEvent, LossOrigin},
    kernel::{ProgramStatus, source::SourceStats},
    metrics, status,
};

pub(crate) const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["db.example.test", "db2.example.test"]
ports = [26257]
pinned = ["192.0.2.0/24"]

[control]
socket = "/run/pinwatch-test/pinwatch.sock"
"#;

/// A daemon's shared state without a kernel: the given program states and
/// a detector built from `text`.
pub(crate) fn shared_with(text: &str, programs: &[(&'static str, bool)]) -> Shared {
    shared_on(text, programs, Arc::new(TimeBase::host()))
}

/// As [`shared_with`], on the time base `time`.
pub(crate) fn shared_on(
    text: &str,
    programs: &[(&'static str, bool)],
    time: Arc<TimeBase>,
) -> Shared {
    let config = crate::fixtures::config(text);
    let detector = Detector::new(&config);
    let programs = programs
        .iter()
        .map(|&(name, attached)| ProgramStatus {
            attached,
            ..ProgramStatus::attached(name, "cgroup/connect4")
        })
        .collect();
    Shared::new(
        config,
        detector,
        programs,
        Arc::new(SourceStats::default()),
        time,
    )
}

pub(crate) fn shared() -> Shared {
    shared_with(CONFIG, &[("pw_connect4", true)])
}

/// One value per counter, all different, so a surface that reads the wrong
/// one shows.
fn busy_shared(now: SystemTime) -> Shared {
    let shared = shared_with(CONFIG, &[("pw_connect4", true), ("pw_dns_ingress", false)]);
    let loss = Event::Loss(LossEvent {
        timestamp: now,
        origin: LossOrigin::KernelDnsPacket,
        count: 7,
    });
    let alerts = shared.detector().observe(&loss);
    for alert in &alerts {
        shared.note_written(alert, Err("disk full".into()), now);
    }
    shared.source.records.store(20, Ordering::Relaxed);
    shared.source.undecodable.store(2, Ordering::Relaxed);
    shared.source.dns_parse_errors.store(3, Ordering::Relaxed);
    shared.source.lost_dns_packets.store(7, Ordering::Relaxed);
    shared
        .source
        .reassembly_flows_evicted
        .store(4, Ordering::Relaxed);
    shared
        .source
        .reassembly_fragments_evicted
        .store(1, Ordering::Relaxed);
    shared.alert_stream.folded.store(9, Ordering::Relaxed);
    shared
}

#[test]
fn status_metrics_and_health_render_one_snapshot() {
    let now = SystemTime::now();
    let shared = busy_shared(now);
    let snapshot = Snapshot::take(&shared, now + Duration::from_secs(2));
    let c = &snapshot.counters;
    assert_eq!(c.events_lost, 7);
    assert_eq!((c.alert_lines, c.alert_write_errors), (1, 1));
    assert_eq!(c.reassembly_given_up, 5);

    let report = status::StatusReport::from(&snapshot);
    let text = metrics::render_snapshot(&snapshot);
    let metric = |line: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no `{line}` in:\n{text}"))
    };
    let r = &report.counters;
    assert_eq!(r.kernel_records, metric("pinwatch_kernel_records_total"));
    assert_eq!(
        r.dns_parse_errors,
        metric("pinwatch_dns_parse_errors_total")
    );
    assert_eq!(r.dns_messages, metric("pinwatch_dns_messages_total"));
    assert_eq!(
        r.alert_write_failures,
        metric("pinwatch_alert_write_errors_total"),
        "one count of sink failures, not one per surface"
    );
    assert_eq!(
        r.alerts["event-loss"],
        metric("pinwatch_alerts_total{rule=\"event-loss\"}")
    );
    assert_eq!(
        r.undecodable_records,
        metric("pinwatch_events_lost_total{origin=\"undecodable\"}")
    );
    assert_eq!(metric("pinwatch_alerts_folded_total"), 9);
    assert_eq!(metric("pinwatch_dns_reassembly_given_up_total"), 5);
    assert_eq!(metric("pinwatch_programs_attached"), 1);

    // Health is judged once, in the snapshot; status says what it says.
    assert!(!snapshot.health.is_healthy());
    assert_eq!(report.health.reasons, snapshot.health.reasons());
    assert_eq!(report.health.status, status::HealthStatus::Degraded);
    let reasons = snapshot.health.reasons().join("\n");
    assert!(reasons.contains("pw_dns_ingress"), "{reasons}");
    assert!(
        reasons.contains("failed 1 time(s), last 2s ago: disk full"),
        "{reasons}"
    );
    assert_eq!(report.uptime_s, snapshot.uptime().as_secs());
}

#[test]
fn a_snapshot_lists_every_rule_and_loss_origin() {
    let snapshot = Snapshot::take(&shared(), SystemTime::now());
    assert_eq!(snapshot.counters.alerts.len(), Rule::ALL.len());
    assert_eq!(snapshot.counters.lost_by_origin.len(), 5);
    assert!(snapshot.health.is_healthy(), "{:?}", snapshot.health);
    assert_eq!(snapshot.databases[0].last_answers.len(), 2);
}

#[test]
fn written_lines_are_counted_once_and_kept_for_status() {
    let shared = shared();
    let at = SystemTime::now();
    shared.note_written(&Alert::new(at, Rule::EventLoss, "a".into()), Ok(()), at);
    let snapshot = Snapshot::take(&shared, at);
    assert_eq!(snapshot.counters.alert_lines, 1);
    assert_eq!(snapshot.counters.alert_write_errors, 0);
    assert_eq!(snapshot.recent_alerts.len(), 1);
    assert_eq!(snapshot.newest_alert, Some(at));
    assert_eq!(snapshot.last_sink_failure, None);
}

#[test]
fn ages_follow_monotonic_time_and_times_the_wall_clock_after_a_step() {
    const HOUR: Duration = Duration::from_secs(3600);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clocks = Arc::new(FakeClocks::new(Duration::from_secs(100), start));
    let time = Arc::new(TimeBase::new(clocks.clone()));
    let shared = shared_on(CONFIG, &[("pw_connect4", true)], time.clone());
    let raised = time.now();
    shared.note_written(
        &Alert::new(raised, Rule::EventLoss, "a".into()),
        Ok(()),
        raised,
    );

    // Thirty seconds on, NTP steps the wall clock back an hour.
    clocks.advance(Duration::from_secs(30));
    clocks.step_wall(start + Duration::from_secs(30) - HOUR);
    time.refresh();
    let snapshot = Snapshot::now(&shared);
    assert_eq!(snapshot.taken_at, start + Duration::from_secs(30) - HOUR);
    assert_eq!(snapshot.uptime(), Duration::from_secs(30));
    let alert = snapshot.newest_alert.expect("an alert");
    assert_eq!(alert, start - HOUR, "shown on the wall clock as it is now");
    assert_eq!(snapshot.age(alert), Duration::from_secs(30));
    let report = status::StatusReport::from(&snapshot);
    assert_eq!(report.recent_alerts[0].age_s, 30);
    assert_eq!(report.health.last_alert_age_s, Some(30));
}
