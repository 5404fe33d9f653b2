//! Reading the daemon's NDJSON alert file and checking ECS fields.
use std::{
    collections::HashSet,
    fs,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use crate::poll;

/// The daemon's alert file, read afresh on every call.
#[derive(Debug, Clone)]
pub struct AlertLog {
    path: PathBuf,
}

impl AlertLog {
    pub fn new(path: &Path) -> AlertLog {
        AlertLog {
            path: path.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every complete line, parsed. A missing file is no alert yet; a line
    /// that is not a JSON object fails the test (the sink must write NDJSON).
    pub fn read(&self) -> Vec<Value> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", self.path.display()),
        };
        // A last line without its newline may be half written: leave it for
        // the next poll.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        complete
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("alert line is not JSON ({e}): {line}"));
                assert!(value.is_object(), "alert line is not a JSON object: {line}");
                value
            })
            .collect()
    }

    /// Polls until some alert matches `predicate`; returns all alerts read
    /// at that moment. Panics (showing the file) after `timeout`.
    pub fn wait_for(&self, timeout: Duration, predicate: impl Fn(&Value) -> bool) -> Vec<Value> {
        // Emulated kernels (`cargo xtask vmtest`) are slower at everything.
        let timeout = timeout * crate::daemon::slowdown();
        poll(timeout, || {
            let alerts = self.read();
            alerts.iter().any(&predicate).then_some(alerts)
        })
        .unwrap_or_else(|| {
            panic!(
                "no matching alert within {timeout:?}; {} has:\n{}",
                self.path.display(),
                fs::read_to_string(&self.path).unwrap_or_else(|e| format!("(unreadable: {e})"))
            )
        })
    }
}

/// The value at a dotted ECS path of nested objects (`dns.question.name`).
/// `@timestamp` and other top-level keys work too.
pub fn field<'a>(alert: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = alert.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(alert, |v, key| v.get(key))
}

/// The string at `path`; panics (showing the alert) when absent or not a string.
pub fn str_field<'a>(alert: &'a Value, path: &str) -> &'a str {
    field(alert, path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("alert has no string `{path}`: {alert}"))
}

/// The IP address string at `path`, parsed.
pub fn ip_field(alert: &Value, path: &str) -> IpAddr {
    let text = str_field(alert, path);
    text.parse()
        .unwrap_or_else(|e| panic!("`{path}` = {text:?} is not an IP address ({e}): {alert}"))
}

/// The list of IP address strings at `path`, parsed.
pub fn ip_list_field(alert: &Value, path: &str) -> Vec<IpAddr> {
    field(alert, path)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("alert has no list `{path}`: {alert}"))
        .iter()
        .map(|v| {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("`{path}` holds {v}, not an IP address string: {alert}"))
        })
        .collect()
}

/// Asserts the fields every alert carries (SPEC "Alerts"), with their types,
/// and that the rule id is `rule`.
pub fn assert_ecs_base(alert: &Value, rule: &str) {
    let timestamp = str_field(alert, "@timestamp");
    assert!(
        is_rfc3339_utc_micros(timestamp),
        "`@timestamp` {timestamp:?} is not RFC 3339 UTC with microseconds: {alert}"
    );
    assert!(
        str_field(alert, "ecs.version").starts_with("8."),
        "`ecs.version` should be ECS 8.x: {alert}"
    );
    assert_eq!(str_field(alert, "event.kind"), "alert", "{alert}");
    assert_eq!(str_field(alert, "event.action"), rule, "{alert}");
    assert_eq!(str_field(alert, "rule.id"), rule, "{alert}");
    assert!(
        !str_field(alert, "rule.name").is_empty(),
        "empty `rule.name`: {alert}"
    );
    let severity = field(alert, "event.severity").and_then(Value::as_u64);
    assert!(
        matches!(severity, Some(1..=4)),
        "`event.severity` should be a number 1..=4: {alert}"
    );
    assert!(
        !str_field(alert, "event.id").is_empty(),
        "empty `event.id`: {alert}"
    );
    assert!(
        !str_field(alert, "message").trim().is_empty(),
        "empty `message`: {alert}"
    );
    assert!(
        !str_field(alert, "host.name").is_empty(),
        "empty `host.name`: {alert}"
    );
    assert_eq!(str_field(alert, "agent.name"), "pinwatch", "{alert}");
    assert!(
        !str_field(alert, "agent.version").is_empty(),
        "empty `agent.version`: {alert}"
    );
}

/// Asserts that no two alerts share an `event.id`.
pub fn assert_unique_event_ids(alerts: &[Value]) {
    let mut seen = HashSet::new();
    for alert in alerts {
        let id = str_field(alert, "event.id");
        assert!(
            seen.insert(id.to_owned()),
            "`event.id` {id} appears twice:\n{}",
            lines(alerts)
        );
    }
}

/// Alerts one per line, for messages.
pub fn lines(alerts: &[Value]) -> String {
    alerts
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: RFC 3339, UTC, exactly six fraction digits.
fn is_rfc3339_utc_micros(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let num = |range: std::ops::Range<usize>| {
        s.get(range)
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(99)
    };
    b.len() == 27
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..26)
        && b[26] == b'Z'
        && (1..=12).contains(&num(5..7))
        && (1..=31).contains(&num(8..10))
        && num(11..13) < 24
        && num(14..16) < 60
        && num(17..19) < 61
}

/// An alert's `@timestamp` as seconds since the Unix epoch (the daemon
/// writes `YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC).
pub fn timestamp_secs(alert: &Value) -> f64 {
    let text = str_field(alert, "@timestamp");
    let parse = |range: std::ops::Range<usize>| -> i64 {
        text.get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an RFC 3339 UTC time: {text}"))
    };
    let (year, month, day) = (parse(0..4), parse(5..7), parse(8..10));
    let seconds = parse(11..13) * 3600 + parse(14..16) * 60 + parse(17..19);
    let micros = parse(20..26);
    // Days from 1970-01-01 to the date (the proleptic Gregorian calendar).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + seconds) as f64 + micros as f64 / 1e6
}

/// Now, as seconds since the Unix epoch.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert!(is_rfc3339_utc_micros("2026-11-27T02:46:36.123456Z"));
        assert!(!is_rfc3339_utc_micros("2026-11-27T02:46:36.123Z"));
        assert!(!is_rfc3339_utc_micros("2026-11-27T02:46:36.123456+00:00"));
        assert!(!is_rfc3339_utc_micros("2026-13-27T02:46:36.123456Z"));
    }

    #[test]
    fn dotted_fields() {
        let v: Value =
            serde_json::json!({"@timestamp": "t", "dns": {"question": {"name": "db.lab.test"}}});
        assert_eq!(
            field(&v, "dns.question.name").and_then(Value::as_str),
            Some("db.lab.test")
        );
        assert_eq!(field(&v, "@timestamp").and_then(Value::as_str), Some("t"));
        assert!(field(&v, "dns.id").is_none());
    }
}
