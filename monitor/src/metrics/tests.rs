use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::{
    alert::Rule,
    kernel::ProgramStatus,
    state::{self, Counters, Health},
};

fn snapshot() -> Snapshot {
    let mut snapshot = Snapshot::take(&state::tests::shared(), UNIX_EPOCH);
    snapshot.version = "9.9.9".into();
    snapshot.started_at = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    snapshot.counters = Counters {
        dns_messages: 12,
        dns_responses_checked: 5,
        connects: 3,
        detector_faults: 2,
        alerts: vec![
            (Rule::DnsAnswerDiverged, 300),
            (Rule::UnexpectedDbPeer, 1),
            (Rule::EventLoss, 0),
        ],
        alert_lines: 4,
        alerts_folded: 297,
        alert_write_errors: 0,
        lost_by_origin: vec![
            (LossOrigin::KernelDnsPacket, 7),
            (LossOrigin::KernelConnect, 0),
            (LossOrigin::Undecodable, 2),
        ],
        kernel_records: 20,
        dns_parse_errors: 1,
        ..Counters::default()
    };
    snapshot.programs = vec![
        ProgramStatus::attached("pw_dns_egress", "cgroup_skb/egress"),
        ProgramStatus {
            attached: false,
            ..ProgramStatus::attached("pw_connect4", "cgroup/connect4")
        },
    ];
    snapshot.health = Health {
        missing: vec!["program pw_connect4 (cgroup/connect4) is not attached".into()],
        kernel_limits: vec![
            "kernel 5.10 lacks coarse-clock: …".into(),
            "kernel 5.10 lacks tcx: …".into(),
        ],
        sink: Vec::new(),
    };
    snapshot
}

#[test]
fn renders_every_family_as_openmetrics_text() {
    let text = render_snapshot(&snapshot());
    for line in [
        "# TYPE pinwatch_dns_messages counter",
        "pinwatch_dns_messages_total 12",
        "pinwatch_dns_responses_checked_total 5",
        "pinwatch_connects_total 3",
        "pinwatch_detector_faults_total 2",
        "pinwatch_alerts_total{rule=\"dns-answer-diverged\"} 300",
        "pinwatch_alerts_total{rule=\"unexpected-db-peer\"} 1",
        "pinwatch_alerts_total{rule=\"event-loss\"} 0",
        "pinwatch_alert_lines_total 4",
        "pinwatch_alerts_folded_total 297",
        "pinwatch_alert_write_errors_total 0",
        "pinwatch_events_lost_total{origin=\"kernel-dns-packet\"} 7",
        "pinwatch_events_lost_total{origin=\"kernel-connect\"} 0",
        "pinwatch_events_lost_total{origin=\"undecodable\"} 2",
        "pinwatch_kernel_records_total 20",
        "pinwatch_dns_parse_errors_total 1",
        "# TYPE pinwatch_programs_attached gauge",
        "pinwatch_programs_attached 1",
        "pinwatch_program_attached{program=\"pw_dns_egress\",kind=\"cgroup_skb/egress\"} 1",
        "pinwatch_program_attached{program=\"pw_connect4\",kind=\"cgroup/connect4\"} 0",
        "# TYPE pinwatch_health_reasons gauge",
        "pinwatch_health_reasons{cause=\"missing-detection\"} 1",
        "pinwatch_health_reasons{cause=\"kernel-limit\"} 2",
        "pinwatch_health_reasons{cause=\"alert-sink\"} 0",
        "pinwatch_start_time_seconds 1790000000.0",
        "pinwatch_build_info{version=\"9.9.9\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn every_family_has_help_and_type_once() {
    let text = render_snapshot(&snapshot());
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(types.len(), helps);
    let mut names: Vec<&str> = types.iter().map(|l| l.split(' ').nth(2).unwrap()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "a family is declared twice:\n{text}");
}

#[test]
fn loss_origins_are_named_as_in_alerts() {
    for origin in [
        LossOrigin::KernelDnsPacket,
        LossOrigin::KernelConnect,
        LossOrigin::Undecodable,
    ] {
        assert_eq!(
            serde_json::to_value(origin).unwrap(),
            serde_json::Value::from(origin_name(origin))
        );
    }
}
