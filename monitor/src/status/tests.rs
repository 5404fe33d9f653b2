use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::*;
use crate::{
    alert::{Alert, Rule},
    event::{Direction, Event},
    fixtures::{a_response, dns_event},
    state::{
        RECENT_ALERTS, Shared, Snapshot,
        tests::{CONFIG, shared, shared_with},
    },
};

/// A response for `question` carrying `addresses`, delivered to a local
/// socket at `at`.
pub(crate) fn answer(question: &str, addresses: &[&str], at: SystemTime) -> Event {
    Event::Dns(dns_event(
        a_response(question, 7, addresses, 30),
        Direction::Ingress,
        "198.51.100.53:53",
        "198.51.100.10:40000",
        at,
    ))
}

/// Runs `event` through the detector and records its alerts as the
/// detector thread does.
fn observe(shared: &Shared, event: &Event, now: SystemTime) {
    let alerts = shared.detector().observe(event);
    for alert in &alerts {
        shared.note_written(alert, Ok(()), now);
    }
}

fn report_at(shared: &Shared, now: SystemTime) -> StatusReport {
    StatusReport::from(&Snapshot::take(shared, now))
}

#[test]
fn json_carries_specs_keys_with_live_values() {
    let shared = shared();
    let seen = SystemTime::now();
    observe(
        &shared,
        &answer("db.example.test.", &["192.0.2.7"], seen),
        seen,
    );
    let report = report_at(&shared, seen + Duration::from_secs(5));
    let json = serde_json::to_value(&report).unwrap();

    for key in [
        "version",
        "uptime_s",
        "config",
        "programs",
        "databases",
        "counters",
        "recent_alerts",
        "health",
    ] {
        assert!(json.get(key).is_some(), "no `{key}` in {json}");
    }
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["config"]["hash"].as_str().unwrap().len(), 64);
    assert_eq!(json["programs"][0]["name"], "pw_connect4");
    assert_eq!(json["programs"][0]["kind"], "cgroup/connect4");
    assert_eq!(json["programs"][0]["attached"], true);

    let db = &json["databases"][0];
    assert_eq!(db["name"], "orders");
    assert_eq!(db["ports"][0], 26257);
    assert_eq!(db["pinned"][0], "192.0.2.0/24");
    assert_eq!(db["mode"], "monitor");
    let last = &db["last_answers"]["db.example.test"];
    assert_eq!(last["addresses"][0], "192.0.2.7");
    assert_eq!(last["ttl"], 30);
    assert_eq!(last["resolver"], "198.51.100.53");
    assert_eq!(last["verdict"], "pinned");
    assert_eq!(last["age_s"], 5);
    assert!(
        last["seen_at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC: {last}"
    );
    assert_eq!(
        db["last_answers"]["db2.example.test"],
        Value::Null,
        "a hostname not answered yet is listed, as null"
    );

    let counters = &json["counters"];
    assert_eq!(counters["dns_messages"], 1);
    assert_eq!(counters["connects"], 0);
    assert_eq!(counters["events_lost"], 0);
    for rule in Rule::ALL {
        assert_eq!(counters["alerts"][rule.id()], 0, "every rule listed");
    }
    assert_eq!(json["recent_alerts"], Value::Array(vec![]));
    assert_eq!(json["health"]["status"], "healthy");
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn a_diverged_answer_shows_in_last_answers_counters_and_recent_alerts() {
    let shared = shared();
    let seen = SystemTime::now();
    observe(
        &shared,
        &answer("db2.example.test.", &["203.0.113.66"], seen),
        seen,
    );
    let report = report_at(&shared, seen + Duration::from_secs(60));

    let last = report.databases[0].last_answers["db2.example.test"]
        .as_ref()
        .expect("answer recorded");
    assert_eq!(last.verdict, "diverged");
    assert_eq!(report.counters.alerts["dns-answer-diverged"], 1);
    assert_eq!(report.recent_alerts.len(), 1);
    let alert = &report.recent_alerts[0];
    assert_eq!(alert.rule, "dns-answer-diverged");
    assert_eq!(alert.database.as_deref(), Some("orders"));
    assert_eq!(alert.age_s, 60);
    assert!(alert.message.contains("203.0.113.66"), "{}", alert.message);
    assert_eq!(report.health.last_alert_age_s, Some(60));
    assert_eq!(report.health.status, HealthStatus::Healthy);
    assert_eq!(report.exit_code(), 1, "an alert in the last 15 minutes");

    let text = render(&report);
    for expected in ["orders", "db2.example.test", "DIVERGED", "203.0.113.66"] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

#[test]
fn exit_code_is_one_for_alerts_under_fifteen_minutes_old_only() {
    let shared = shared();
    let raised = SystemTime::now();
    let alert = Alert::new(raised, Rule::EventLoss, "lost 3 events".into());
    shared.note_written(&alert, Ok(()), raised);
    let at = |secs| report_at(&shared, raised + Duration::from_secs(secs)).exit_code();
    assert_eq!(at(0), 1);
    assert_eq!(at(ALERT_RECENCY.as_secs() - 1), 1);
    assert_eq!(at(ALERT_RECENCY.as_secs()), 0);
}

#[test]
fn a_detached_program_makes_the_daemon_degraded() {
    let shared = shared_with(CONFIG, &[("pw_connect4", true), ("pw_dns_ingress", false)]);
    let report = report_at(&shared, SystemTime::now());
    assert_eq!(report.health.status, HealthStatus::Degraded);
    assert!(
        report.health.reasons[0].contains("pw_dns_ingress"),
        "{:?}",
        report.health.reasons
    );
    assert_eq!(report.exit_code(), 1);
    assert!(render(&report).contains("DEGRADED"));
}

#[test]
fn a_recent_sink_failure_makes_the_daemon_degraded_until_it_ages_out() {
    let shared = shared();
    let raised = SystemTime::now();
    let alert = Alert::new(raised, Rule::EventLoss, "lost 3 events".into());
    shared.note_written(&alert, Err("disk full".into()), raised);
    let report = report_at(&shared, raised + Duration::from_secs(1));
    assert_eq!(report.health.status, HealthStatus::Degraded);
    assert!(report.health.reasons[0].contains("disk full"));
    assert_eq!(report.counters.alert_write_failures, 1);
    let later = report_at(&shared, raised + ALERT_RECENCY + Duration::from_secs(1));
    assert_eq!(later.health.status, HealthStatus::Healthy);
    assert_eq!(later.exit_code(), 0);
}

#[test]
fn recent_alerts_are_bounded_and_newest_first() {
    let shared = shared();
    let start = SystemTime::now();
    for i in 0..(RECENT_ALERTS as u64 + 5) {
        let at = start + Duration::from_secs(i);
        let alert = Alert::new(at, Rule::EventLoss, format!("alert {i}"));
        shared.note_written(&alert, Ok(()), at);
    }
    let report = report_at(&shared, start + Duration::from_secs(100));
    assert_eq!(report.recent_alerts.len(), RECENT_ALERTS);
    assert_eq!(report.recent_alerts[0].message, "alert 24");
    assert_eq!(report.recent_alerts[RECENT_ALERTS - 1].message, "alert 5");
}

#[test]
fn the_report_survives_the_trip_through_json() {
    let shared = shared();
    let seen = SystemTime::now();
    observe(
        &shared,
        &answer("db.example.test.", &["203.0.113.9"], seen),
        seen,
    );
    let report = report_at(&shared, seen);
    let line = serde_json::to_string(&report).unwrap();
    let back: StatusReport = serde_json::from_str(&line).unwrap();
    assert_eq!(back, report);
}
