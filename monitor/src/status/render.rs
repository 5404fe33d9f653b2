//! The readable `pinwatch status`: a header line, then one table per part.
use std::{fmt::Write as _, time::Duration};

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::{ALERT_RECENCY, HealthStatus, StatusReport};

/// The report as an on-call engineer reads it.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let health = match report.health.status {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Degraded => "DEGRADED",
    };
    let _ = writeln!(
        out,
        "pinwatch {} (pid {}), up {}: {health}",
        report.version,
        report.pid,
        ago(report.uptime_s),
    );
    for reason in &report.health.reasons {
        let _ = writeln!(out, "  ! {reason}");
    }
    let _ = match report.health.last_alert_age_s {
        Some(age) if age < ALERT_RECENCY.as_secs() => writeln!(
            out,
            "last alert {} ago: within the last 15 minutes",
            ago(age)
        ),
        Some(age) => writeln!(out, "last alert {} ago", ago(age)),
        None => writeln!(out, "no alerts since start"),
    };
    let _ = writeln!(
        out,
        "config {} (sha256 {})",
        report.config.path.as_deref().unwrap_or("<not from a file>"),
        report.config.hash
    );

    let mut programs = table(&["program", "kind", "attached"]);
    for p in &report.programs {
        programs.add_row(vec![
            p.name.clone(),
            p.kind.clone(),
            match &p.interfaces {
                Some(i) if i.failed.is_empty() => format!("{} interface(s)", i.covered.len()),
                Some(i) => format!(
                    "{} interface(s), NOT on {}",
                    i.covered.len(),
                    i.failed
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None if p.attached => "yes".to_owned(),
                None => "NO".to_owned(),
            },
        ]);
    }
    section(&mut out, "Programs", &programs);
    if let Some(kernel) = &report.kernel {
        let mut features = table(&["kernel feature", "available", "instead"]);
        for f in &kernel.features {
            features.add_row(vec![
                f.name.clone(),
                if f.available { "yes" } else { "no" }.to_owned(),
                f.fallback.clone().unwrap_or_default(),
            ]);
        }
        section(&mut out, &format!("Kernel {}", kernel.release), &features);
    }

    let mut databases = table(&["database", "mode", "ports", "pinned"]);
    let mut answers = table(&[
        "database",
        "hostname",
        "addresses",
        "ttl",
        "resolver",
        "seen",
        "verdict",
    ]);
    for db in &report.databases {
        databases.add_row(vec![
            db.name.clone(),
            db.mode.clone(),
            join(&db.ports),
            join(&db.pinned),
        ]);
        for (host, answer) in &db.last_answers {
            let row = match answer {
                Some(a) => vec![
                    db.name.clone(),
                    host.clone(),
                    join(&a.addresses),
                    format!("{}s", a.ttl),
                    a.resolver.to_string(),
                    format!("{} ago", ago(a.age_s)),
                    if a.verdict == "pinned" {
                        a.verdict.clone()
                    } else {
                        a.verdict.to_uppercase()
                    },
                ],
                None => vec![
                    db.name.clone(),
                    host.clone(),
                    "(no answer seen yet)".to_owned(),
                ],
            };
            answers.add_row(row);
            for who in answer.iter().flat_map(|a| &a.affected) {
                let connected = if who.connected {
                    "CONNECTED to a forged address"
                } else {
                    "did not connect"
                };
                answers.add_row(vec![
                    String::new(),
                    String::new(),
                    format!("received by {}", who.workload),
                    String::new(),
                    String::new(),
                    String::new(),
                    connected.to_owned(),
                ]);
            }
        }
    }
    section(&mut out, "Databases", &databases);
    section(&mut out, "Last answers", &answers);

    let c = &report.counters;
    let mut counters = table(&["counter", "value"]);
    for (name, value) in [
        ("DNS messages", c.dns_messages),
        ("DNS responses checked", c.dns_responses_checked),
        ("database connects", c.connects),
        ("events lost", c.events_lost),
        ("detector faults", c.detector_faults),
        ("kernel records", c.kernel_records),
        ("undecodable records", c.undecodable_records),
        ("unparsable DNS packets", c.dns_parse_errors),
        ("alert write failures", c.alert_write_failures),
    ] {
        counters.add_row(vec![name.to_owned(), value.to_string()]);
    }
    for (rule, count) in &c.alerts {
        counters.add_row(vec![format!("alerts {rule}"), count.to_string()]);
    }
    section(&mut out, "Counters", &counters);

    if report.recent_alerts.is_empty() {
        out.push_str("\nRecent alerts: none\n");
    } else {
        let mut alerts = table(&["time", "age", "rule", "database", "message"]);
        for a in &report.recent_alerts {
            alerts.add_row(vec![
                a.time.clone(),
                ago(a.age_s),
                a.rule.clone(),
                a.database.clone().unwrap_or_default(),
                a.message.clone(),
            ]);
        }
        section(&mut out, "Recent alerts (newest first)", &alerts);
    }
    out
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

fn section(out: &mut String, title: &str, table: &Table) {
    let _ = write!(out, "\n{title}\n{table}\n");
}

fn ago(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
