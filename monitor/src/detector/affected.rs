//! The blast radius of a forged answer: which workloads on this host
//! received an answer outside the pinned set for a hostname within the
//! dedup window, and whether each then connected to a forged address.
//!
//! Recipients are told apart by cgroup and pid. "Connected" is judged per
//! container, since the program that resolves is often not the one that
//! connects (`nslookup`, then the client), and per process on the host. The
//! daemon names each cgroup's container after enriching the alert
//! ([`Affected::label`]).
use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    alert::{AffectedWorkload, Alert, Rule},
    event::{ConnectEvent, Process},
    identity::Workload,
};

/// Recipients kept per hostname, and put on an alert.
pub const MAX_RECIPIENTS: usize = 32;

/// One process that received a diverged answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub process: Process,
    pub last_seen: SystemTime,
    pub unexpected: Vec<IpAddr>,
    /// A process of its cgroup connected to one of `unexpected` since.
    pub connected: bool,
    /// Named by the daemon after the alert was enriched.
    pub workload: Option<Arc<Workload>>,
}

#[derive(Debug)]
pub(super) struct Affected {
    window: Duration,
    by_name: HashMap<String, VecDeque<Recipient>>,
}

impl Affected {
    pub fn new(window: Duration) -> Affected {
        Affected {
            window,
            by_name: HashMap::new(),
        }
    }

    /// Records the recipient of each `dns-answer-diverged` alert and puts
    /// the hostname's recipients of the window on it.
    pub fn answered(&mut self, alerts: &mut [Alert]) {
        for alert in alerts
            .iter_mut()
            .filter(|a| a.rule == Rule::DnsAnswerDiverged)
        {
            let Some(name) = alert.dns.as_ref().map(|d| key(&d.question_name)) else {
                continue;
            };
            let now = alert.timestamp;
            let window = self.window;
            let list = self.by_name.entry(name).or_default();
            list.retain(|r| now.duration_since(r.last_seen).unwrap_or_default() <= window);
            if let Some(process) = &alert.process {
                let same = |r: &Recipient| {
                    r.process.pid == process.pid && r.process.cgroup_id == process.cgroup_id
                };
                match list.iter_mut().find(|r| same(r)) {
                    Some(known) => {
                        known.last_seen = now;
                        for ip in &alert.unexpected_ips {
                            if !known.unexpected.contains(ip) {
                                known.unexpected.push(*ip);
                            }
                        }
                    }
                    None => {
                        if list.len() >= MAX_RECIPIENTS {
                            list.pop_front();
                        }
                        list.push_back(Recipient {
                            process: process.clone(),
                            last_seen: now,
                            unexpected: alert.unexpected_ips.clone(),
                            connected: false,
                            workload: None,
                        });
                    }
                }
            }
            alert.affected = list
                .iter()
                .map(|r| AffectedWorkload {
                    process: r.process.clone(),
                    workload: None,
                    connected: r.connected,
                })
                .collect();
        }
    }

    /// Marks the recipients that connected to a forged address: a container
    /// by any of its processes; a host process by itself (host cgroups hold
    /// unrelated processes, a local stub among them).
    pub fn connected(&mut self, connect: &ConnectEvent) {
        let ip = connect.destination.ip().to_canonical();
        let cgroup = connect.process.cgroup_id;
        for recipient in self.by_name.values_mut().flatten() {
            let same = match recipient.workload {
                Some(_) => cgroup != 0 && recipient.process.cgroup_id == cgroup,
                None => recipient.process.pid == connect.process.pid,
            };
            if same && recipient.unexpected.contains(&ip) {
                recipient.connected = true;
            }
        }
    }

    /// The daemon's name for a cgroup's workload.
    pub fn label(&mut self, cgroup_id: u64, workload: &Arc<Workload>) {
        for recipient in self.by_name.values_mut().flatten() {
            if recipient.process.cgroup_id == cgroup_id && recipient.workload.is_none() {
                recipient.workload = Some(workload.clone());
            }
        }
    }

    /// Who received a diverged answer for `hostname` lately, oldest first.
    pub fn recipients(&self, hostname: &str) -> Vec<Recipient> {
        self.by_name
            .get(&key(hostname))
            .map(|list| list.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::{
        alert::DnsFacts,
        event::{ConnectAction, ConnectEvent},
    };

    const FORGED: &str = "203.0.113.66";

    fn process(pid: u32, cgroup_id: u64) -> Process {
        Process::sample(pid, cgroup_id)
    }

    fn diverged(process: Process, secs: u64) -> Alert {
        let at = UNIX_EPOCH + Duration::from_secs(secs);
        let mut alert = Alert::new(at, Rule::DnsAnswerDiverged, "forged".into());
        alert.process = Some(process);
        alert.unexpected_ips = vec![FORGED.parse().unwrap()];
        alert.dns = Some(DnsFacts {
            id: 1,
            question_name: "DB.lab.test.".into(),
            question_type: "A".into(),
            resolved_ips: Vec::new(),
            answers: Vec::new(),
        });
        alert
    }

    fn connect(process: Process, ip: &str) -> ConnectEvent {
        ConnectEvent {
            timestamp: UNIX_EPOCH,
            process,
            destination: format!("{ip}:26257").parse().unwrap(),
            action: ConnectAction::Allowed,
            socket_cookie: 0,
        }
    }

    #[test]
    fn each_diverged_answer_names_every_recipient_of_the_window() {
        let mut affected = Affected::new(Duration::from_secs(60));
        let mut first = [diverged(process(10, 100), 1)];
        affected.answered(&mut first);
        assert_eq!(first[0].affected.len(), 1);
        let mut second = [diverged(process(20, 200), 2)];
        affected.answered(&mut second);
        let pids: Vec<u32> = second[0].affected.iter().map(|a| a.process.pid).collect();
        assert_eq!(pids, [10, 20]);
        // Outside the window the first is forgotten.
        let mut late = [diverged(process(30, 300), 62)];
        affected.answered(&mut late);
        let pids: Vec<u32> = late[0].affected.iter().map(|a| a.process.pid).collect();
        assert_eq!(pids, [20, 30]);
        assert_eq!(affected.recipients("db.lab.test").len(), 2);
    }

    #[test]
    fn a_connect_from_the_recipients_cgroup_to_a_forged_address_marks_it() {
        let mut affected = Affected::new(Duration::from_secs(60));
        affected.answered(&mut [
            diverged(process(10, 100), 1),
            diverged(process(20, 200), 1),
            diverged(process(30, 1), 1),
            diverged(process(40, 1), 1),
        ]);
        let container = Arc::new(Workload {
            container_id: "ab".repeat(32),
            runtime: None,
            name: None,
            pod: None,
        });
        affected.label(100, &container);
        affected.label(200, &container);
        // Another process of container 100 (the client after nslookup).
        affected.connected(&connect(process(11, 100), FORGED));
        // Container 200 connects to a pinned address: not the forged one.
        affected.connected(&connect(process(21, 200), "192.0.2.10"));
        // On the host (cgroup 1), only the process itself counts.
        affected.connected(&connect(process(40, 1), FORGED));
        let connected: Vec<(u32, bool)> = affected
            .recipients("db.lab.test")
            .iter()
            .map(|r| (r.process.pid, r.connected))
            .collect();
        assert_eq!(
            connected,
            [(10, true), (20, false), (30, false), (40, true)]
        );
    }

    #[test]
    fn recipients_are_bounded() {
        let mut affected = Affected::new(Duration::from_secs(60));
        for pid in 0..(MAX_RECIPIENTS as u32 + 5) {
            affected.answered(&mut [diverged(process(pid, u64::from(pid) + 1), 1)]);
        }
        assert_eq!(affected.recipients("db.lab.test").len(), MAX_RECIPIENTS);
    }
}
