//! A ready lab: namespaces, dnsmasq, and the daemon watching the test's
//! databases plus a sentinel database.
//!
//! The sentinel makes negative assertions deterministic: the kernel hands
//! events to the daemon in order, so once the alerts for a sentinel DNS
//! answer and a sentinel connect (made after the test's own actions) are in
//! the file, everything the earlier actions would have raised is there too.
use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use serde_json::Value;

use crate::{
    alerts::{AlertLog, field, lines},
    connect::connect,
    daemon::{Daemon, DaemonConfig, Database},
    dig::dig,
    dnsmasq::{DnsRecords, Dnsmasq},
    lab::{DNS_V4, DNS_V6, Lab},
    poll,
    siem::Settings,
};

/// The sentinel database: its hostname resolves, and its port connects, to
/// an address outside its pinned set, so both raise an alert.
pub const SENTINEL_DB: &str = "sentinel";
pub const SENTINEL_HOST: &str = "sentinel.lab.test";
pub const SENTINEL_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 250);
pub const SENTINEL_PORT: u16 = 26999;
const SENTINEL_PINNED: &str = "192.0.2.250/32";

/// How long an alert may take from the kernel to the file.
pub const ALERT_TIMEOUT: Duration = Duration::from_secs(10);

/// Fields drop in order: the daemon stops first, then dnsmasq, then the
/// namespaces go.
pub struct Fixture {
    pub daemon: Daemon,
    pub dnsmasq: Dnsmasq,
    pub lab: Lab,
}

impl Fixture {
    /// Lab, dnsmasq serving `records` (plus the sentinel's), and the daemon
    /// watching `databases` (plus the sentinel's), with the lab's resolver
    /// trusted.
    pub fn start(records: DnsRecords, databases: Vec<Database>) -> Fixture {
        Fixture::start_with_settings(records, databases, &Settings::default())
    }

    /// [`Fixture::start`] with `[alerts] dedup_window` and `[metrics] listen`.
    pub fn start_with_settings(
        records: DnsRecords,
        databases: Vec<Database>,
        settings: &Settings,
    ) -> Fixture {
        let lab = Lab::new();
        lab.add_peer_address(IpAddr::V4(SENTINEL_IP));
        let dnsmasq = Dnsmasq::start(&lab, &records.host(SENTINEL_HOST, SENTINEL_IP));
        let daemon = Daemon::start_with_settings(&lab_config(databases), settings);
        Fixture {
            daemon,
            dnsmasq,
            lab,
        }
    }

    pub fn alerts(&self) -> AlertLog {
        self.daemon.alerts()
    }

    /// Rewrites the daemon's configuration to watch `databases` (plus the
    /// sentinel's, with the lab's resolver trusted, as at start) and reloads
    /// it: see [`Daemon::reload`].
    pub fn reload_with(&mut self, databases: Vec<Database>) -> Result<String, String> {
        self.daemon.rewrite_config(&lab_config(databases));
        self.daemon.reload()
    }

    /// Asks for the sentinel's name and connects to its port from the client
    /// namespace, waits until both alerts are in the file, and returns every
    /// alert in it.
    pub fn sentinel(&self) -> Vec<Value> {
        let answer = dig(&self.lab.client, DNS_V4, SENTINEL_HOST, "A");
        assert_eq!(
            answer.addresses(),
            [IpAddr::V4(SENTINEL_IP)],
            "dnsmasq's sentinel answer:\n{}",
            answer.raw
        );
        let probe = connect(&self.lab.client, SENTINEL_IP, SENTINEL_PORT);
        let log = self.alerts();
        poll(ALERT_TIMEOUT * crate::daemon::slowdown(), || {
            let alerts = log.read();
            let dns_seen = alerts.iter().any(|a| {
                is_sentinel(a) && field(a, "event.action").and_then(Value::as_str) == Some("dns-answer-diverged")
            });
            let connect_seen = alerts.iter().any(|a| {
                is_sentinel(a)
                    && field(a, "event.action").and_then(Value::as_str) == Some("unexpected-db-peer")
                    && field(a, "process.pid").and_then(Value::as_u64) == Some(u64::from(probe.pid))
            });
            (dns_seen && connect_seen).then_some(alerts)
        })
        .unwrap_or_else(|| {
            panic!(
                "the sentinel's alerts (dns-answer-diverged for {SENTINEL_HOST} and unexpected-db-peer \
                 from pid {} to {SENTINEL_IP}:{SENTINEL_PORT}) did not arrive within {ALERT_TIMEOUT:?}; \
                 alerts so far:\n{}",
                probe.pid,
                lines(&log.read())
            )
        })
    }
}

/// `databases` plus the sentinel's, with the lab's resolver trusted.
fn lab_config(databases: Vec<Database>) -> DaemonConfig {
    let mut config = DaemonConfig {
        databases,
        trusted_resolvers: vec![DNS_V4.into(), DNS_V6.into()],
    };
    assert!(
        config
            .databases
            .iter()
            .all(|db| db.name != SENTINEL_DB && !db.ports.contains(&SENTINEL_PORT)),
        "the sentinel's name and port are the harness's"
    );
    config.databases.push(Database::new(
        SENTINEL_DB,
        &[SENTINEL_HOST],
        &[SENTINEL_PORT],
        &[SENTINEL_PINNED],
    ));
    config
}

/// Whether the alert is about the sentinel database.
pub fn is_sentinel(alert: &Value) -> bool {
    field(alert, "pinwatch.database").and_then(Value::as_str) == Some(SENTINEL_DB)
}

/// The alerts that are not the sentinel's.
pub fn without_sentinel(alerts: &[Value]) -> Vec<Value> {
    alerts.iter().filter(|a| !is_sentinel(a)).cloned().collect()
}
