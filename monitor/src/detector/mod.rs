//! The detector: a pure, synchronous function of (state, event) → alerts.
//!
//! No I/O and no clock reads of its own: time arrives with each event. The
//! daemon and `pinwatch replay` drive it the same way, and unit tests drive
//! it without a kernel.
mod affected;
mod answer_alert;
mod answers;
mod asked;
mod compact;
mod connect;
mod fault;
mod fragmented;
mod injected;
mod matching;
mod names;
mod pins;
mod plaintext;
mod recent;
mod reconfigure;

use std::{collections::HashMap, net::IpAddr, time::SystemTime};

use serde::Serialize;

// `pinwatch learn` follows answers exactly as the detector does.
pub use affected::{MAX_RECIPIENTS, Recipient};
pub(crate) use fault::panic_text;
pub use names::MAX_CNAME_DEPTH;
pub(crate) use names::{addresses_of, cname_chain, hostname};
pub use pins::{PinIndex, canonical_ip};
pub use recent::RecentAnswers;

use crate::{
    alert::{Alert, LostEvents, RestartFacts, Rule},
    config::Config,
    event::{DnsEvent, Event, LossEvent, RestartEvent},
};

/// What the last answer for a configured hostname said; `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastAnswer {
    pub addresses: Vec<IpAddr>,
    pub ttl: u32,
    pub resolver: IpAddr,
    pub seen_at: SystemTime,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every address was inside the pinned set.
    Pinned,
    /// At least one address was outside it.
    Diverged,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub dns_messages: u64,
    pub dns_responses_checked: u64,
    pub connects: u64,
    pub events_lost: u64,
    /// Events whose judging faulted (`detector-fault`): caught, skipped.
    pub detector_faults: u64,
    pub alerts: HashMap<Rule, u64>,
}

pub struct Detector {
    pins: PinIndex,
    recent: RecentAnswers,
    /// Keyed by normalized hostname.
    last_answers: HashMap<String, LastAnswer>,
    counters: Counters,
    plaintext: plaintext::PlaintextTracker,
    matching: matching::Matching,
    /// The stage `observe` is in, for a fault's alert.
    judging: fault::Stage,
    /// Tests make judging fault on the events this picks.
    #[cfg(test)]
    fault_on: Option<fn(&Event) -> bool>,
    affected: affected::Affected,
}

impl Detector {
    /// A detector for a capture: warm-up windows count from its first event.
    pub fn new(config: &Config) -> Detector {
        Detector::build(config, None)
    }

    /// A detector for the daemon, which started looking at `started`:
    /// warm-up windows count from then, so on a quiet host the first forged
    /// reply (the first DNS message) is judged like any other.
    pub fn started_at(config: &Config, started: SystemTime) -> Detector {
        Detector::build(config, Some(started))
    }

    fn build(config: &Config, started: Option<SystemTime>) -> Detector {
        Detector {
            pins: PinIndex::new(&config.databases),
            recent: RecentAnswers::default(),
            last_answers: HashMap::new(),
            counters: Counters::default(),
            plaintext: plaintext::PlaintextTracker::default(),
            matching: matching::Matching::new(config, started),
            judging: fault::Stage::default(),
            #[cfg(test)]
            fault_on: None,
            affected: affected::Affected::new(config.alerts.dedup_window),
        }
    }

    /// Feeds one event; returns the alerts it raises, in order. A bug
    /// reached by the event unwinds out of here; [`Detector::judge`]
    /// catches it.
    pub fn observe(&mut self, event: &Event) -> Vec<Alert> {
        use fault::Stage;
        let alerts = match event {
            Event::Dns(dns) => {
                self.counters.dns_messages += 1;
                self.judging = Stage::Matching;
                let asked = asked::questions(&self.pins, &dns.message);
                let (spoofing, context) = self.matching.observe(&self.pins, dns, &asked);
                self.judging = Stage::Answers;
                #[cfg(test)]
                if self.fault_on.is_some_and(|pick| pick(event)) {
                    panic!("injected fault");
                }
                let mut alerts = answers::check_response(self, dns, &asked);
                // The answer's process and stub path go on its alerts too.
                self.matching.apply(context, dns, &mut alerts);
                self.matching.delivered(context, dns);
                self.affected.answered(&mut alerts);
                alerts.extend(spoofing);
                self.judging = Stage::Fragmented;
                alerts.extend(fragmented::check(self, dns, &asked));
                alerts
            }
            Event::Connect(connect) => {
                self.counters.connects += 1;
                self.judging = Stage::Connect;
                self.plaintext.connected(connect);
                self.affected.connected(connect);
                connect::check_connect(self, connect)
            }
            Event::Loss(loss) => {
                self.judging = Stage::Loss;
                self.loss(loss)
            }
            Event::ReloadFailed(failure) => {
                self.judging = Stage::ReloadFailed;
                self.reload_failed(failure)
            }
            Event::DbSegment(segment) => {
                self.judging = Stage::DbSegment;
                plaintext::check_segment(self, segment)
            }
            Event::DnsOwner(owner) => {
                self.judging = Stage::Owner;
                self.matching.owner(owner);
                Vec::new()
            }
            Event::DnsSent(sent) => {
                self.counters.dns_messages += 1;
                self.judging = Stage::Matching;
                self.matching.sent(sent);
                Vec::new()
            }
            Event::Restarted(restart) => {
                self.judging = Stage::Restarted;
                vec![restarted(restart)]
            }
        };
        self.judging = Stage::Dispatch;
        for alert in &alerts {
            *self.counters.alerts.entry(alert.rule).or_default() += 1;
        }
        alerts
    }

    /// Query/response matching alone — the spoofing rules, the matching
    /// table and the stub path, without the answer and fragment checks —
    /// for the matching benchmark. The daemon calls [`Detector::observe`].
    #[doc(hidden)]
    pub fn observe_matching_only(&mut self, event: &DnsEvent) -> Vec<Alert> {
        let asked = asked::questions(&self.pins, &event.message);
        let (alerts, context) = self.matching.observe(&self.pins, event, &asked);
        self.matching.delivered(context, event);
        alerts
    }

    /// Outstanding queries the matching table holds (at most 65,536); for
    /// the memory benchmark.
    pub fn outstanding_queries(&self) -> usize {
        self.matching.outstanding()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts an alert the daemon raised itself, outside any event (stale
    /// programs found at start), as if `observe` had returned it.
    pub fn count_raised(&mut self, alert: &Alert) {
        *self.counters.alerts.entry(alert.rule).or_default() += 1;
    }

    pub fn last_answer(&self, hostname: &str) -> Option<&LastAnswer> {
        self.last_answers.get(hostname)
    }

    /// Who received a diverged answer for `hostname` within the dedup
    /// window, and whether each connected to a forged address.
    pub fn affected(&self, hostname: &str) -> Vec<Recipient> {
        self.affected.recipients(hostname)
    }

    /// Names the recipients' workloads from alerts the daemon enriched, for
    /// status.
    pub fn label_workloads(&mut self, alerts: &[Alert]) {
        let named = alerts.iter().flat_map(|a| {
            let own = a.process.as_ref().zip(a.workload.as_ref());
            let affected = a
                .affected
                .iter()
                .filter_map(|e| Some((&e.process, e.workload.as_ref()?)));
            own.into_iter().chain(affected)
        });
        for (process, workload) in named {
            self.affected.label(process.cgroup_id, workload);
        }
    }

    fn loss(&mut self, loss: &LossEvent) -> Vec<Alert> {
        if loss.count == 0 {
            return Vec::new();
        }
        self.counters.events_lost += loss.count;
        self.matching.lost(loss.timestamp);
        let message = format!(
            "pinwatch lost {} events ({}); detections may have been missed in that window — check the host's load and the ring buffer size",
            loss.count,
            serde_json::to_value(loss.origin)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        );
        let mut alert = Alert::new(loss.timestamp, Rule::EventLoss, message);
        alert.lost = Some(LostEvents {
            count: loss.count,
            origin: loss.origin,
        });
        vec![alert]
    }
}

/// `pinwatch-restarted`: how long no daemon ran, and what the kernel kept
/// and lost meanwhile.
fn restarted(restart: &RestartEvent) -> Alert {
    let gap = match restart.gap {
        Some(gap) => format!("for {:.1} s", gap.as_secs_f64()),
        None => "for an unknown time".to_owned(),
    };
    let message = format!(
        "pinwatch was not running {gap}; its programs stayed attached and captured {} records meanwhile, judged now with the time each happened, and {} records did not fit in the ring buffer and were lost",
        restart.backlog_records, restart.lost
    );
    let mut alert = Alert::new(restart.timestamp, Rule::PinwatchRestarted, message);
    alert.restart = Some(RestartFacts {
        gap: restart.gap,
        backlog_records: restart.backlog_records,
        records_lost: restart.lost,
    });
    alert
}

#[cfg(test)]
mod evasion_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
