//! Faults while judging one event are survivable: the panic is caught at
//! the event boundary, counted, and raised as a `detector-fault` alert
//! naming the rule being judged and the event; the detector keeps its
//! state and judges the next event. One hostile packet that reaches a bug
//! must not switch pinwatch off.
//!
//! The panic hook is replaced once, process-wide, by one that stays quiet
//! for a panic inside [`Detector::judge`] (its text goes on the alert, and
//! the daemon logs one line) and hands every other panic to the hook that
//! was there before.
use std::{
    any::Any,
    cell::{Cell, RefCell},
    panic::{self, AssertUnwindSafe},
    sync::Once,
};

use super::Detector;
use crate::{
    alert::{Alert, FaultFacts, Rule},
    dnstext,
    event::{Direction, Event, Hook},
};

/// What the detector was doing when it faulted: the rule, or the rules,
/// being judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Stage {
    #[default]
    Dispatch,
    Matching,
    Answers,
    Fragmented,
    Connect,
    DbSegment,
    Owner,
    Loss,
    ReloadFailed,
    Restarted,
}

impl Stage {
    /// The rule ids the stage judges, for the alert.
    pub fn rules(self) -> &'static str {
        match self {
            Stage::Dispatch => "(none: the event was being dispatched)",
            Stage::Matching => {
                "dns-unsolicited-response, dns-txid-mismatch-burst, dns-conflicting-responses, dns-case-mismatch, dns-untrusted-resolver, dns-bailiwick-violation"
            }
            Stage::Answers => "dns-answer-diverged",
            Stage::Fragmented => "dns-fragmented-response",
            Stage::Connect => "unexpected-db-peer, db-connect-blocked",
            Stage::DbSegment => "plaintext-db-connection",
            Stage::Owner => "(DNS socket owners)",
            Stage::Loss => "event-loss",
            Stage::ReloadFailed => "config-reload-failed",
            Stage::Restarted => "pinwatch-restarted",
        }
    }
}

thread_local! {
    /// Set while this thread judges an event under [`Detector::judge`].
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// The caught panic's text and place, left by the hook.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.get() {
                let place = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let text = format!("{}{place}", panic_text(info.payload()));
                CAUGHT.with_borrow_mut(|caught| *caught = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

/// A panic payload's text.
pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "(a panic without a message)"
    }
}

impl Detector {
    /// [`Detector::observe`], with a fault while judging the event caught:
    /// the event then raises one `detector-fault` alert (counted in
    /// `detector_faults`) instead of unwinding into the caller. The daemon
    /// and `pinwatch replay` call this.
    pub fn judge(&mut self, event: &Event) -> Vec<Alert> {
        install_hook();
        self.judging = Stage::Dispatch;
        GUARDED.set(true);
        // The state may be half-updated by the faulting rule; every piece of
        // it is bounded and valid on its own, so judging goes on with it.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| self.observe(event)));
        GUARDED.set(false);
        match outcome {
            Ok(alerts) => alerts,
            Err(payload) => {
                let detail = CAUGHT
                    .with_borrow_mut(Option::take)
                    .unwrap_or_else(|| panic_text(payload.as_ref()).to_owned());
                vec![self.fault(event, detail)]
            }
        }
    }

    fn fault(&mut self, event: &Event, detail: String) -> Alert {
        self.counters.detector_faults += 1;
        let rules = self.judging.rules();
        let summary = summary(event);
        let message = format!(
            "pinwatch could not judge an event ({summary}) while checking {rules}: {detail}; the event was skipped and the detector goes on — report this with the event, an attacker may be probing for it"
        );
        let mut alert = Alert::new(timestamp(event), Rule::DetectorFault, message);
        alert.fault = Some(FaultFacts {
            rules,
            event: summary,
            detail,
        });
        *self.counters.alerts.entry(alert.rule).or_default() += 1;
        alert
    }
}

/// When the event happened: the fault alert's time.
fn timestamp(event: &Event) -> std::time::SystemTime {
    match event {
        Event::Dns(e) => e.timestamp,
        Event::Connect(e) => e.timestamp,
        Event::Loss(e) => e.timestamp,
        Event::ReloadFailed(e) => e.timestamp,
        Event::DbSegment(e) => e.timestamp,
        Event::DnsOwner(e) => e.timestamp,
        Event::DnsSent(e) => e.timestamp,
        Event::Restarted(e) => e.timestamp,
    }
}

/// One line about the event, written without hickory's `Display`.
pub(super) fn summary(event: &Event) -> String {
    match event {
        Event::Dns(dns) => {
            let message = &dns.message;
            let question = message.queries().first().map_or_else(
                || "no question".to_owned(),
                |q| {
                    format!(
                        "{} {}",
                        dnstext::name(q.name()),
                        dnstext::record_type(q.query_type())
                    )
                },
            );
            format!(
                "DNS {:?} {} → {} over {:?}, {}, id {}, {question}, {} answers, {} authority, {} additional",
                message.message_type(),
                dns.source,
                dns.destination,
                dns.transport,
                match (dns.seen_at, dns.direction) {
                    (Hook::Interface, _) => "at an interface",
                    (Hook::Socket, Direction::Ingress) => "delivered to a socket",
                    (Hook::Socket, Direction::Egress) => "sent by a socket",
                },
                message.id(),
                message.answers().len(),
                message.name_servers().len(),
                message.additionals().len(),
            )
        }
        Event::Connect(c) => format!(
            "connect by {} (pid {}) to {}",
            c.process.name, c.process.pid, c.destination
        ),
        Event::DbSegment(s) => format!(
            "{} bytes of a database connection {} ↔ {}",
            s.payload.len(),
            s.client,
            s.server
        ),
        Event::DnsOwner(o) => format!(
            "DNS socket owner {} (pid {}) to {}",
            o.process.name, o.process.pid, o.destination
        ),
        Event::DnsSent(s) => format!(
            "DNS response {} → {}, id {}, sent by a socket",
            s.source, s.destination, s.id
        ),
        Event::Loss(l) => format!("loss of {} events ({:?})", l.count, l.origin),
        Event::ReloadFailed(r) => format!("refused reload of {}", r.file.display()),
        Event::Restarted(r) => format!(
            "restart after a gap: {} backlog records, {} lost",
            r.backlog_records, r.lost
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hickory_proto::op::MessageType;

    use crate::{
        alert::{Rule, fold::Folder},
        detector::hostile_tests::{detector, diverged, query_at},
        event::Event,
    };

    fn faulty(event: &Event) -> bool {
        matches!(event, Event::Dns(dns) if dns.message.id() == 666
            && dns.message.message_type() == MessageType::Response)
    }

    #[test]
    fn a_fault_is_counted_raised_once_per_window_and_judging_goes_on() {
        let mut d = detector();
        d.fault_on = Some(faulty);
        let mut folder = Folder::new(Duration::from_secs(60), 16);
        let mut lines = Vec::new();
        let events = [
            query_at("db.lab.test", 666, 0),
            diverged(666, 1),
            query_at("db.lab.test", 667, 2),
            diverged(666, 3),
            diverged(667, 4),
        ];
        for event in &events {
            for alert in d.judge(event) {
                lines.extend(folder.offer(alert));
            }
        }
        assert_eq!(d.counters().detector_faults, 2);
        assert_eq!(d.counters().alerts[&Rule::DetectorFault], 2);
        let faults: Vec<_> = lines
            .iter()
            .filter(|a| a.rule == Rule::DetectorFault)
            .collect();
        assert_eq!(faults.len(), 1, "one line per window: {lines:#?}");
        let fault = faults[0].fault.as_ref().unwrap();
        assert_eq!(fault.rules, "dns-answer-diverged");
        assert!(fault.event.contains("id 666"), "{}", fault.event);
        assert!(fault.event.contains("db.lab.test A"), "{}", fault.event);
        assert!(
            fault.detail.starts_with("injected fault at "),
            "{}",
            fault.detail
        );
        assert!(fault.detail.contains("detector/mod.rs"), "{}", fault.detail);
        assert!(faults[0].message.contains("dns-answer-diverged"));
        // The next event is judged, and the query sent before the faults is
        // still known: its answer is diverged, not unsolicited.
        let after: Vec<Rule> = lines.iter().map(|a| a.rule).collect();
        assert!(after.contains(&Rule::DnsAnswerDiverged), "{after:?}");
        assert!(!after.contains(&Rule::DnsUnsolicitedResponse), "{after:?}");
        // The window's summary carries the repeat.
        let summary = folder.flush();
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].repeats.as_ref().unwrap().count, 1);
        let line = crate::alert::encode(
            &summary[0],
            &crate::alert::AgentInfo {
                host_name: "h".into(),
                version: "0".into(),
            },
            "id",
        );
        assert!(line.contains(r#""fault":{"#), "{line}");
    }

    #[test]
    fn panics_outside_judge_still_unwind() {
        let mut d = detector();
        d.fault_on = Some(faulty);
        d.judge(&query_at("db.lab.test", 666, 0));
        let unguarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            d.observe(&diverged(666, 1))
        }));
        assert!(unguarded.is_err());
    }
}
