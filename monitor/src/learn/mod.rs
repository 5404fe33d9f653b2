//! `pinwatch learn`: watches the DNS answers for some hostnames for a while
//! and proposes the `[[database]]` tables that would pin what was seen.
//!
//! Split by role: [`Plan`] (which databases and hostnames), [`Learner`]
//! (pure: events in, what was seen per hostname), [`render`] (the TOML and
//! its comments) and [`watch`] (the kernel source, as the daemon uses it).
//! Nothing here writes a file: the operator reviews the output first.
mod render;
mod watch;

#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::SystemTime,
};

use hickory_proto::{op::MessageType, rr::RecordType};
use ipnet::IpNet;

pub use render::{RenderOptions, Rendered, render};
pub use watch::watch;

use crate::{
    config::{Config, ConfigError, DEFAULT_DB_PORT, Mode, Problem, normalize_hostname},
    detector::{addresses_of, cname_chain, hostname},
    event::{Direction, Event},
    kernel::{KernelError, source::SourceError},
};

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error(
        "nothing to learn: give --hostname NAME (repeatable), or -c FILE to learn for its databases"
    )]
    NoHostnames,
    #[error("--hostname {0}")]
    Hostname(Problem),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot start the async runtime or the signal handlers: {0}")]
    Runtime(#[source] std::io::Error),
}

impl LearnError {
    /// SPEC's exit codes: 2 for bad input, 3 when the kernel or privileges
    /// are not enough, 1 for failures while watching.
    pub fn exit_code(&self) -> u8 {
        match self {
            LearnError::NoHostnames | LearnError::Hostname(_) | LearnError::Config(_) => 2,
            LearnError::Kernel(_) => 3,
            LearnError::Source(_) | LearnError::Runtime(_) => 1,
        }
    }
}

/// The databases to learn for, in output order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub databases: Vec<PlannedDatabase>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDatabase {
    pub name: String,
    /// Normalized: lowercase, no trailing dot.
    pub hostnames: Vec<String>,
    pub ports: Vec<u16>,
    pub mode: Mode,
    /// What the configuration pins now; empty for `--hostname` names.
    pub pinned_now: Vec<IpNet>,
}

impl Plan {
    /// The configuration's databases (name, ports and mode kept), then one
    /// database per `--hostname` that no configured database already has,
    /// named after the hostname.
    pub fn new(config: Option<&Config>, hostnames: &[String]) -> Result<Plan, LearnError> {
        let mut databases: Vec<PlannedDatabase> = config
            .map(|config| {
                config
                    .databases
                    .iter()
                    .map(|db| PlannedDatabase {
                        name: db.name.clone(),
                        hostnames: db.hostnames.clone(),
                        ports: db.ports.clone(),
                        mode: db.mode,
                        pinned_now: db.pinned.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        for raw in hostnames {
            let hostname = normalize_hostname(raw).map_err(LearnError::Hostname)?;
            if databases.iter().any(|db| db.hostnames.contains(&hostname)) {
                continue;
            }
            let mut name = hostname.clone();
            while databases.iter().any(|db| db.name == name) {
                name.insert_str(0, "learned-");
            }
            databases.push(PlannedDatabase {
                name,
                hostnames: vec![hostname],
                ports: vec![DEFAULT_DB_PORT],
                mode: Mode::Monitor,
                pinned_now: Vec::new(),
            });
        }
        if databases.is_empty() {
            return Err(LearnError::NoHostnames);
        }
        Ok(Plan { databases })
    }

    pub fn hostnames(&self) -> impl Iterator<Item = &str> {
        self.databases
            .iter()
            .flat_map(|db| db.hostnames.iter().map(String::as_str))
    }
}

/// What the answers for one hostname said while watching.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostSeen {
    /// Responses that gave the hostname at least one address.
    pub answers: u64,
    /// Canonical addresses (IPv4-mapped IPv6 as IPv4), with how many
    /// responses carried each.
    pub addresses: BTreeMap<IpAddr, u64>,
    pub resolvers: BTreeSet<IpAddr>,
    /// Smallest and largest TTL of the address records.
    pub ttl: Option<(u32, u32)>,
    pub first_seen: Option<SystemTime>,
    pub last_seen: Option<SystemTime>,
}

/// Collects answers for the plan's hostnames. Pure, like the detector: time
/// comes with the events.
#[derive(Debug, Clone)]
pub struct Learner {
    seen: BTreeMap<String, HostSeen>,
    /// Events the kernel or the decoder lost while watching.
    pub lost: u64,
}

impl Learner {
    pub fn new(plan: &Plan) -> Learner {
        Learner {
            seen: plan
                .hostnames()
                .map(|h| (h.to_owned(), HostSeen::default()))
                .collect(),
            lost: 0,
        }
    }

    /// Takes what the detector would check for `dns-answer-diverged`:
    /// responses delivered to a socket on this host (ingress), A/AAAA/ANY
    /// questions, addresses of the question's CNAME chain, credited to
    /// every watched name of the chain.
    pub fn observe(&mut self, event: &Event) {
        let dns = match event {
            Event::Dns(dns) => dns,
            Event::Loss(loss) => {
                self.lost += loss.count;
                return;
            }
            // Connects and the rest say nothing about what names resolve to.
            _ => return,
        };
        if dns.message.message_type() != MessageType::Response
            || dns.direction != Direction::Ingress
        {
            return;
        }
        for query in dns.message.queries() {
            if !matches!(
                query.query_type(),
                RecordType::A | RecordType::AAAA | RecordType::ANY
            ) {
                continue;
            }
            let chain = cname_chain(query.name(), dns.message.answers());
            let Some((_, ips)) = addresses_of(&chain, dns.message.answers()) else {
                continue;
            };
            for name in &chain {
                let Some(seen) = self.seen.get_mut(&hostname(name)) else {
                    continue;
                };
                seen.answers += 1;
                seen.resolvers.insert(dns.source.ip().to_canonical());
                for &(ip, ttl) in &ips {
                    *seen.addresses.entry(ip.to_canonical()).or_default() += 1;
                    seen.ttl = Some(match seen.ttl {
                        Some((low, high)) => (low.min(ttl), high.max(ttl)),
                        None => (ttl, ttl),
                    });
                }
                seen.first_seen.get_or_insert(dns.timestamp);
                seen.last_seen = Some(dns.timestamp);
            }
        }
    }

    /// What was seen for `hostname` (normalized); `None` for a name that is
    /// not in the plan.
    pub fn seen(&self, hostname: &str) -> Option<&HostSeen> {
        self.seen.get(hostname)
    }
}
