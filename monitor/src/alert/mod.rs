//! Alerts: what the detector raises, and their ECS encoding.
//!
//! Alerts are data, not log lines: they have their own writer ([`sink`]) and
//! never pass through `tracing`.
pub(crate) mod ecs;
pub mod fold;
pub mod journald;
mod rule;
pub mod sink;
mod workload;

pub use workload::{AffectedWorkload, enrich};

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::SystemTime,
};

use ipnet::IpNet;

pub use ecs::{AgentInfo, ECS_VERSION, encode};
pub use rule::Rule;

use crate::{
    event::{Process, ResolvConf, Transport},
    identity::Workload,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// When the event that raised it happened (not when it was written).
    pub timestamp: SystemTime,
    pub rule: Rule,
    /// One sentence a person can act on.
    pub message: String,
    pub database: Option<String>,
    pub process: Option<Process>,
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
    /// The name a recent DNS answer on this host mapped `destination` to.
    pub destination_domain: Option<String>,
    pub transport: Option<Transport>,
    pub dns: Option<DnsFacts>,
    pub pinned: Vec<IpNet>,
    pub unexpected_ips: Vec<IpAddr>,
    /// For `event-loss`: how many events were lost, and where.
    pub lost: Option<LostEvents>,
    /// Set on a summary line of the alert stream: the repeats folded into it.
    pub repeats: Option<Repeats>,
    /// For `stale-programs-removed`: the programs detached at start.
    pub stale_programs: Vec<StaleProgramRef>,
    /// For `plaintext-db-connection`: what the client sent in the clear.
    pub db_session: Option<DbSession>,
    /// For DNS alerts on an answer relayed by a stub on this host: the stub
    /// and the upstream it came from (`pinwatch.path`).
    pub path: Option<DnsPath>,
    /// For `unexpected-db-peer`: whether pinwatch saw the name resolution
    /// that led to the connect (`pinwatch.resolution`).
    pub resolution: Option<Resolution>,
    /// For `detector-fault`: what could not be judged (`pinwatch.fault`).
    pub fault: Option<FaultFacts>,
    /// For DNS alerts on a message that did not parse whole: where it
    /// stopped (`pinwatch.malformed`).
    pub malformed: Option<crate::event::Malformed>,
    /// For `dns-answer-diverged` on a CNAME chain longer than pinwatch
    /// follows: the names followed (`pinwatch.cname_chain_cut`).
    pub cname_chain_cut: Vec<String>,
    /// The container and pod of `process` (`container.*`, `orchestrator.*`),
    /// set by the daemon after detection; `None` for host processes.
    pub workload: Option<Arc<Workload>>,
    /// For DNS alerts: the resolv.conf the asking process had
    /// (`pinwatch.resolv_conf`), where the daemon read it.
    pub resolv_conf: Option<Arc<ResolvConf>>,
    /// For `dns-answer-diverged`: the workloads that received a diverged
    /// answer for the name within the dedup window (`pinwatch.affected`).
    pub affected: Vec<AffectedWorkload>,
    /// For `pinwatch-restarted`: the gap (`pinwatch.restart`).
    pub restart: Option<RestartFacts>,
}

/// A fault caught while judging one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultFacts {
    /// The rule ids being judged when it happened.
    pub rules: &'static str,
    /// One line about the event.
    pub event: String,
    /// The panic's text and place in the code.
    pub detail: String,
}

/// The resolvers an answer passed through on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsPath {
    /// Where the application got its answer: the local stub.
    pub stub: SocketAddr,
    /// Where the stub got it.
    pub upstream: SocketAddr,
}

/// Whether the resolution behind a connect was visible to pinwatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A DNS answer seen on this host mapped a name to the address.
    Observed,
    /// No DNS answer seen here mapped a name to the address.
    NotObserved(HiddenResolution),
}

/// Why a resolution may have been invisible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiddenResolution {
    /// The process connected to this DNS over TLS resolver (port 853).
    DnsOverTls(SocketAddr),
    /// The process connected to this well-known DNS over HTTPS resolver.
    DnsOverHttps(SocketAddr),
    /// Nothing known: /etc/hosts, a literal address, a cache older than
    /// pinwatch's memory, or an encrypted transport it did not recognize.
    Unknown,
}

/// The names a PostgreSQL-wire StartupMessage carried in the clear (never a
/// password: the StartupMessage has none, and nothing after it is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSession {
    pub user: Option<String>,
    pub database: Option<String>,
    pub application: Option<String>,
    /// The client asked for TLS, the server refused, and the client went on.
    pub tls_refused_by_server: bool,
}

impl Alert {
    /// An alert with only the fields every rule has.
    pub fn new(timestamp: SystemTime, rule: Rule, message: String) -> Alert {
        Alert {
            timestamp,
            rule,
            message,
            database: None,
            process: None,
            source: None,
            destination: None,
            destination_domain: None,
            transport: None,
            dns: None,
            pinned: Vec::new(),
            unexpected_ips: Vec::new(),
            lost: None,
            repeats: None,
            stale_programs: Vec::new(),
            db_session: None,
            path: None,
            resolution: None,
            fault: None,
            malformed: None,
            cname_chain_cut: Vec::new(),
            workload: None,
            resolv_conf: None,
            affected: Vec::new(),
            restart: None,
        }
    }
}

/// How long no daemon ran, and what the kernel captured and lost meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartFacts {
    /// `None` when the earlier run left no heartbeat.
    pub gap: Option<std::time::Duration>,
    pub backlog_records: u64,
    pub records_lost: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsFacts {
    pub id: u16,
    /// The question name as it was on the wire (letter case kept).
    pub question_name: String,
    pub question_type: String,
    pub resolved_ips: Vec<IpAddr>,
    pub answers: Vec<DnsAnswer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsAnswer {
    pub name: String,
    pub record_type: String,
    pub data: String,
    pub ttl: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostEvents {
    pub count: u64,
    pub origin: crate::event::LossOrigin,
}

/// A pinwatch program found attached at start with no process behind it
/// (`pinwatch.stale_programs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleProgramRef {
    pub name: String,
    pub id: u32,
    /// The hook: `cgroup/connect4`, `cgroup_skb/ingress`…
    pub kind: String,
    /// The link it was attached by; absent when attached without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_id: Option<u32>,
}

/// Detections of one alert key that the dedup window folded into one line
/// instead of writing each (`alert::fold`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeats {
    pub count: u64,
    /// When the first and the last of them happened.
    pub first: SystemTime,
    pub last: SystemTime,
}

/// `pinwatch.resolution`: `{"status": "observed"}`, or `"not-observed"` with
/// a `reason` and, for an encrypted transport, the `resolver`.
fn resolution_json(resolution: &Resolution) -> serde_json::Value {
    use serde_json::json;
    match resolution {
        Resolution::Observed => json!({ "status": "observed" }),
        Resolution::NotObserved(HiddenResolution::DnsOverTls(resolver)) => json!({
            "status": "not-observed", "reason": "dns-over-tls", "resolver": resolver.to_string(),
        }),
        Resolution::NotObserved(HiddenResolution::DnsOverHttps(resolver)) => json!({
            "status": "not-observed", "reason": "dns-over-https", "resolver": resolver.to_string(),
        }),
        Resolution::NotObserved(HiddenResolution::Unknown) => json!({
            "status": "not-observed", "reason": "no-dns-answer-seen",
        }),
    }
}
