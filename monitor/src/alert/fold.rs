//! Folding of repeated alerts, so that an attack cannot flood the SIEM.
//!
//! Alerts with the same key (rule, database, address, process; for
//! `event-loss` the origin) inside the dedup window become one line: the
//! first is written at once, the repeats are counted, and when the window
//! closes one summary line carries their count, first and last time. A key
//! whose window closed with repeats stays folded for one more window, so a
//! sustained flood costs one line per key per window, not two.
//!
//! Pure: no clock reads. Time comes in with the alerts and with [`Folder::tick`].
use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    time::{Duration, SystemTime},
};

use super::{Alert, LostEvents, Repeats, Rule};
use crate::event::LossOrigin;

/// How many keys may have an open window at once; past it the oldest window
/// is closed early (its summary written) to make room.
pub const DEFAULT_CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FoldKey {
    rule: Rule,
    database: Option<String>,
    /// What the alert is about: the unexpected addresses where the rule has
    /// them (the forged answer, the peer), else the destination.
    addresses: Vec<IpAddr>,
    pid: Option<u32>,
    loss_origin: Option<LossOrigin>,
    /// For `detector-fault`: the rules being judged (one line per window
    /// per stage, whatever the events).
    fault_rules: Option<&'static str>,
}

impl FoldKey {
    fn of(alert: &Alert) -> FoldKey {
        let mut addresses: Vec<IpAddr> = if alert.unexpected_ips.is_empty() {
            alert.destination.map(|d| d.ip()).into_iter().collect()
        } else {
            alert.unexpected_ips.clone()
        };
        for address in &mut addresses {
            *address = address.to_canonical();
        }
        addresses.sort_unstable();
        addresses.dedup();
        FoldKey {
            rule: alert.rule,
            database: alert.database.clone(),
            addresses,
            pid: alert.process.as_ref().map(|p| p.pid),
            loss_origin: alert.lost.as_ref().map(|l| l.origin),
            fault_rules: alert.fault.as_ref().map(|f| f.rules),
        }
    }
}

/// One open window.
struct Window {
    /// Position in `Folder::order`.
    closes: (SystemTime, u64),
    /// The latest repeat (its details go on the summary line).
    latest: Option<Alert>,
    repeats: u64,
    first: SystemTime,
    last: SystemTime,
    /// For `event-loss`: events lost across the repeats.
    lost: u64,
}

pub struct Folder {
    window: Duration,
    capacity: usize,
    open: HashMap<FoldKey, Window>,
    /// Open windows by closing time; the front closes first.
    order: BTreeMap<(SystemTime, u64), FoldKey>,
    next_seq: u64,
    folded: u64,
}

impl Folder {
    pub fn new(window: Duration, capacity: usize) -> Folder {
        Folder {
            window,
            capacity: capacity.max(1),
            open: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            folded: 0,
        }
    }

    /// Takes one alert; returns what to write now, in order (summaries of
    /// windows that closed before it, then the alert itself unless folded).
    pub fn offer(&mut self, alert: Alert) -> Vec<Alert> {
        let mut out = self.tick(alert.timestamp);
        let key = FoldKey::of(&alert);
        if let Some(window) = self.open.get_mut(&key) {
            // Events from several CPUs may arrive slightly out of order.
            if window.repeats == 0 {
                window.first = alert.timestamp;
                window.last = alert.timestamp;
            }
            window.first = window.first.min(alert.timestamp);
            window.last = window.last.max(alert.timestamp);
            window.repeats += 1;
            window.lost += alert.lost.as_ref().map_or(0, |l| l.count);
            window.latest = Some(alert);
            self.folded += 1;
            return out;
        }
        if self.open.len() >= self.capacity
            && let Some((_, oldest)) = self.order.pop_first()
        {
            out.extend(self.close(oldest, false));
        }
        self.open_window(key, later(alert.timestamp, self.window));
        out.push(alert);
        out
    }

    /// Closes the windows that ended by `now`; returns their summaries.
    pub fn tick(&mut self, now: SystemTime) -> Vec<Alert> {
        let mut out = Vec::new();
        while let Some(entry) = self.order.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            out.extend(self.close(key, true));
        }
        out
    }

    /// Closes every window (shutdown): nothing counted is lost.
    pub fn flush(&mut self) -> Vec<Alert> {
        let mut out = Vec::new();
        while let Some((_, key)) = self.order.pop_first() {
            out.extend(self.close(key, false));
        }
        out
    }

    /// Alerts folded into summaries so far (not written on their own line).
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// Keys with an open window.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    fn open_window(&mut self, key: FoldKey, closes_at: SystemTime) {
        let closes = (closes_at, self.next_seq);
        self.next_seq += 1;
        self.order.insert(closes, key.clone());
        self.open.insert(
            key,
            Window {
                closes,
                latest: None,
                repeats: 0,
                first: closes_at,
                last: closes_at,
                lost: 0,
            },
        );
    }

    /// Removes the window of `key` (already taken out of `order`) and returns
    /// its summary, if it folded anything. With `keep_folding`, a window that
    /// folded repeats is followed by another one.
    fn close(&mut self, key: FoldKey, keep_folding: bool) -> Option<Alert> {
        let window = self.open.remove(&key)?;
        let latest = window.latest?;
        if keep_folding {
            self.open_window(key, later(window.closes.0, self.window));
        }
        let repeats = Repeats {
            count: window.repeats,
            first: window.first,
            last: window.last,
        };
        Some(summary(latest, repeats, window.lost, self.window))
    }
}

/// `at + window`; a window too long for the clock to express (centuries)
/// ends at once rather than panic.
fn later(at: SystemTime, window: Duration) -> SystemTime {
    at.checked_add(window).unwrap_or(at)
}

/// The summary line: the latest repeat's details, its time the last repeat's,
/// with the count and span of the repeats.
fn summary(mut alert: Alert, repeats: Repeats, lost: u64, window: Duration) -> Alert {
    // A length, not two times: the times are on the daemon's monotonic base
    // until the line is written (`event.start` and `event.end` carry them).
    let span = repeats
        .last
        .duration_since(repeats.first)
        .unwrap_or_default();
    let span = format!(
        "over {}",
        humantime::format_duration(Duration::from_secs(span.as_secs()))
    );
    let window = humantime::format_duration(window);
    alert.message = match &alert.lost {
        Some(LostEvents { origin, .. }) => format!(
            "pinwatch lost {lost} more events ({}) in {} reports {span} (folded by the {window} dedup window); detections may have been missed — check the host's load and the ring buffer size",
            origin_name(*origin),
            repeats.count,
        ),
        None => format!(
            "{} more alerts like this one {span} (folded by the {window} dedup window); the latest: {}",
            repeats.count, alert.message
        ),
    };
    if let Some(events_lost) = &mut alert.lost {
        events_lost.count = lost;
    }
    alert.timestamp = repeats.last;
    alert.repeats = Some(repeats);
    alert
}

fn origin_name(origin: LossOrigin) -> String {
    serde_json::to_value(origin)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use serde_json::Value;

    use super::*;
    use crate::{
        alert::{AgentInfo, ecs::format_timestamp},
        event::Process,
    };

    const WINDOW: Duration = Duration::from_secs(60);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
    }

    fn forged(secs: u64, forged_ip: &str) -> Alert {
        let mut alert = Alert::new(at(secs), Rule::DnsAnswerDiverged, format!("forged {secs}"));
        alert.database = Some("orders".into());
        alert.destination = Some("198.51.100.10:40000".parse().unwrap());
        alert.unexpected_ips = vec![forged_ip.parse().unwrap()];
        alert
    }

    fn peer(secs: u64, pid: u32) -> Alert {
        let mut alert = Alert::new(at(secs), Rule::UnexpectedDbPeer, "peer".into());
        alert.database = Some("orders".into());
        alert.destination = Some("203.0.113.66:26257".parse().unwrap());
        alert.unexpected_ips = vec!["203.0.113.66".parse().unwrap()];
        alert.process = Some(Process {
            pid,
            tid: pid,
            uid: 0,
            gid: 0,
            name: "python3".into(),
            cgroup_id: 1,
        });
        alert
    }

    fn loss(secs: u64, origin: LossOrigin, count: u64) -> Alert {
        let mut alert = Alert::new(at(secs), Rule::EventLoss, format!("lost {count}"));
        alert.lost = Some(LostEvents { count, origin });
        alert
    }

    /// How many detections the written lines stand for.
    fn detections(lines: &[Alert]) -> u64 {
        lines
            .iter()
            .map(|a| a.repeats.as_ref().map_or(1, |r| r.count))
            .sum()
    }

    #[test]
    fn first_is_written_at_once_and_repeats_fold_into_one_summary() {
        let mut folder = Folder::new(WINDOW, DEFAULT_CAPACITY);
        let first = folder.offer(forged(0, "203.0.113.66"));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].message, "forged 0");
        assert!(first[0].repeats.is_none());
        for secs in 1..=299 {
            assert!(folder.offer(forged(secs / 10, "203.0.113.66")).is_empty());
        }
        assert_eq!(folder.folded(), 299);
        // The window is still open just before it ends.
        assert!(folder.tick(at(59)).is_empty());

        let summaries = folder.tick(at(60));
        assert_eq!(summaries.len(), 1);
        let summary = &summaries[0];
        let repeats = summary.repeats.as_ref().unwrap();
        assert_eq!(repeats.count, 299);
        assert_eq!((repeats.first, repeats.last), (at(0), at(29)));
        assert_eq!(summary.timestamp, at(29));
        assert_eq!(summary.rule, Rule::DnsAnswerDiverged);
        assert_eq!(summary.database.as_deref(), Some("orders"));
        assert!(summary.message.starts_with("299 more alerts like this one"));
        assert!(summary.message.ends_with("the latest: forged 29"));
        assert_eq!(detections(&[first, summaries].concat()), 300);
    }

    #[test]
    fn a_window_without_repeats_closes_silently_and_the_next_alert_is_written() {
        let mut folder = Folder::new(WINDOW, DEFAULT_CAPACITY);
        assert_eq!(folder.offer(forged(0, "203.0.113.66")).len(), 1);
        assert!(folder.tick(at(61)).is_empty());
        assert_eq!(folder.open_windows(), 0);
        assert_eq!(folder.offer(forged(62, "203.0.113.66")).len(), 1);
    }

    #[test]
    fn an_alert_after_the_window_closes_it_first_without_a_tick() {
        let mut folder = Folder::new(WINDOW, DEFAULT_CAPACITY);
        folder.offer(forged(0, "203.0.113.66"));
        folder.offer(forged(5, "203.0.113.66"));
        // A different key arriving late closes the first window on its way.
        let out = folder.offer(forged(70, "203.0.113.99"));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].repeats.as_ref().unwrap().count, 1);
        assert_eq!(out[1].message, "forged 70");
    }

    #[test]
    fn a_sustained_flood_costs_one_line_per_window() {
        let mut folder = Folder::new(WINDOW, DEFAULT_CAPACITY);
        let mut lines = Vec::new();
        // One forged answer a second for ten minutes, ticks in between.
        for secs in 0..600 {
            lines.extend(folder.tick(at(secs)));
            lines.extend(folder.offer(forged(secs, "203.0.113.66")));
        }
        lines.extend(folder.tick(at(3600)));
        assert_eq!(
            lines.len(),
            11,
            "the first line, then one summary per window"
        );
        assert_eq!(detections(&lines), 600);
        // Once quiet for a whole window, the key is no longer folded.
        assert_eq!(folder.open_windows(), 0);
        assert_eq!(folder.offer(forged(3601, "203.0.113.66")).len(), 1);
    }

    #[test]
    fn keys_differ_by_rule_database_address_and_process() {
        let mut folder = Folder::new(WINDOW, DEFAULT_CAPACITY);
        let mut other_db = forged(0, "203.0.113.66");
        other_db.database = Some("billing".into());
        let written = [
            forged(0, "203.0.113.66"),
            forged(0, "203.0.113.67"),
            other_db,
            peer(0, 100),
            peer(0, 101),
            loss(0, LossOrigin::KernelDnsPacket, 1),
            loss(0, LossOrigin::KernelConnect, 1),
        ]
        .into_iter()
        .map(|alert| folder.offer(alert).len())
        .sum::<usize>();
        assert_eq!(written, 7);
        // Same key again: another source port, an IPv4-mapped address.
        let mut again = forged(1, "::ffff:203.0.113.66");
        again.destination = Some("198.51.100.10:40001".parse().unwrap());
        assert!(folder.offer(again).is_empty());
        assert!(folder.offer(peer(1, 100)).is_empty());
        assert_eq!(folder.folded(), 2);
    }

    #[test]
    fn event_loss_is_rate_limited_per_origin_with_the_accumulated_count() {
        let mut folder = Folder::new(WINDOW, DEFAULT_CAPACITY);
        let mut lines = Vec::new();
        for secs in 0..30 {
            lines.extend(folder.offer(loss(secs, LossOrigin::KernelDnsPacket, 10)));
        }
        lines.extend(folder.tick(at(60)));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].lost.as_ref().unwrap().count, 10);
        let summary = &lines[1];
        assert_eq!(summary.lost.as_ref().unwrap().count, 290);
        assert_eq!(summary.repeats.as_ref().unwrap().count, 29);
        assert!(
            summary
                .message
                .starts_with("pinwatch lost 290 more events (kernel-dns-packet) in 29 reports"),
            "{}",
            summary.message
        );
    }

    #[test]
    fn flush_writes_every_pending_summary() {
        let mut folder = Folder::new(WINDOW, DEFAULT_CAPACITY);
        folder.offer(forged(0, "203.0.113.66"));
        folder.offer(forged(1, "203.0.113.66"));
        folder.offer(peer(2, 100));
        folder.offer(peer(3, 100));
        folder.offer(peer(4, 200));
        let flushed = folder.flush();
        assert_eq!(
            flushed.len(),
            2,
            "keys without repeats have nothing to flush"
        );
        assert_eq!(flushed[0].rule, Rule::DnsAnswerDiverged);
        assert_eq!(flushed[1].process.as_ref().unwrap().pid, 100);
        assert_eq!(folder.open_windows(), 0);
    }

    #[test]
    fn the_table_is_bounded_and_the_oldest_window_closes_first() {
        let mut folder = Folder::new(WINDOW, 2);
        folder.offer(peer(0, 1));
        folder.offer(peer(1, 1));
        folder.offer(peer(2, 2));
        let out = folder.offer(peer(3, 3));
        assert_eq!(folder.open_windows(), 2);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].process.as_ref().unwrap().pid, 1);
        assert_eq!(out[0].repeats.as_ref().unwrap().count, 1);
        assert_eq!(out[1].process.as_ref().unwrap().pid, 3);
        // The evicted key starts afresh: written, not folded (and pid 2's
        // quiet window makes room without a line).
        let out = folder.offer(peer(4, 1));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].process.as_ref().unwrap().pid, 1);
        assert!(out[0].repeats.is_none());
    }

    #[test]
    fn summary_carries_ecs_span_and_count() {
        let mut folder = Folder::new(WINDOW, DEFAULT_CAPACITY);
        folder.offer(forged(0, "203.0.113.66"));
        folder.offer(forged(2, "203.0.113.66"));
        folder.offer(forged(5, "203.0.113.66"));
        let summary = folder.flush().remove(0);
        let agent = AgentInfo {
            host_name: "h".into(),
            version: "0".into(),
        };
        let doc: Value =
            serde_json::from_str(&super::super::encode(&summary, &agent, "id")).unwrap();
        assert_eq!(doc["pinwatch"]["repeats"]["count"], 2);
        assert_eq!(doc["event"]["start"], format_timestamp(at(2)));
        assert_eq!(doc["event"]["end"], format_timestamp(at(5)));
        assert_eq!(doc["event"]["duration"], 3_000_000_000u64);
        assert_eq!(doc["@timestamp"], format_timestamp(at(5)));
        assert_eq!(doc["event"]["action"], "dns-answer-diverged");
        assert!(
            summary
                .message
                .starts_with("2 more alerts like this one over 3s "),
            "{}",
            summary.message
        );
    }
}
