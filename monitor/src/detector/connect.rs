//! TCP connects to watched ports, checked against the pinned sets of the
//! databases that watch the port: `unexpected-db-peer` for a connect the
//! kernel let through, `db-connect-blocked` for one it refused.
//!
//! The kernel refuses exactly the connects this module would call
//! unexpected on a port where some database has `mode = "block"` (see
//! `kernel::policy`), so a refused connect raises `db-connect-blocked`
//! instead of, never beside, `unexpected-db-peer`.
use ipnet::IpNet;

use super::{Detector, pins::canonical_ip};
use crate::{
    alert::{Alert, HiddenResolution, Resolution, Rule},
    event::{ConnectAction, ConnectEvent, Transport},
};

pub(super) fn check_connect(detector: &mut Detector, event: &ConnectEvent) -> Vec<Alert> {
    let ip = canonical_ip(event.destination.ip());
    let port = event.destination.port();
    let watching = detector.pins.databases_for_port(port);
    let pinned_here = watching
        .iter()
        .any(|&i| detector.pins.database(i).allows(ip));
    // A refusal is a fact about the kernel, reported even when a reload
    // since then changed the pinned sets.
    let rule = match event.action {
        ConnectAction::Blocked => Rule::DbConnectBlocked,
        ConnectAction::Allowed if watching.is_empty() || pinned_here => return Vec::new(),
        ConnectAction::Allowed => Rule::UnexpectedDbPeer,
    };
    let domain = detector.recent.name_for(ip, event.timestamp);
    // Name the database the address was resolved for when a recent answer
    // says so; otherwise the one database on this port, if there is one.
    let database = domain
        .as_deref()
        .and_then(|name| detector.pins.database_for_name(name))
        .filter(|i| watching.contains(i))
        .or_else(|| (watching.len() == 1).then(|| watching[0]))
        .map(|i| detector.pins.database(i).name.clone());
    let pinned: Vec<IpNet> = watching
        .iter()
        .flat_map(|&i| detector.pins.database(i).pinned.clone())
        .collect();

    let via = match &domain {
        Some(name) => format!(" (resolved from {name})"),
        None => String::new(),
    };
    let set = database.as_deref().map_or_else(
        || format!("the databases on port {port}"),
        |name| format!("database {name}"),
    );
    let process = &event.process;
    let message = match rule {
        Rule::DbConnectBlocked => format!(
            "pinwatch refused a connect by process {} (pid {}, uid {}) to {ip}:{port}{via}, outside the pinned set of {set}; the application cannot reach its database — find out why it was sent to this address (a forged DNS answer?) before adding it to the pinned set",
            process.name, process.pid, process.uid,
        ),
        // pid 0 is no process: `pinwatch replay` saw only the TCP SYN.
        _ if process.pid == 0 => format!(
            "A client (process unknown) connected to {ip}:{port}{via}, outside the pinned set of {set}; its credentials may be going to an impostor — find the client or confirm the address",
        ),
        _ => format!(
            "Process {} (pid {}, uid {}) connected to {ip}:{port}{via}, outside the pinned set of {set}; its credentials may be going to an impostor — stop the process or confirm the address",
            process.name, process.pid, process.uid,
        ),
    };
    let resolution =
        detector
            .matching
            .resolution(&event.process, domain.is_some(), event.timestamp);
    let message = match &resolution {
        Resolution::Observed => message,
        Resolution::NotObserved(hidden) => format!("{message}. {}", hidden_sentence(hidden)),
    };
    let mut alert = Alert::new(event.timestamp, rule, message);
    alert.database = database;
    alert.process = Some(event.process.clone());
    alert.destination = Some((ip, port).into());
    alert.destination_domain = domain;
    alert.transport = Some(Transport::Tcp);
    alert.pinned = pinned;
    alert.unexpected_ips = vec![ip];
    alert.resolution = Some(resolution);
    vec![alert]
}

/// Why no answer named the address, said rather than implied away.
fn hidden_sentence(hidden: &HiddenResolution) -> String {
    match hidden {
        HiddenResolution::DnsOverTls(resolver) => format!(
            "Its name resolution was not observable: the process talks DNS over TLS to {resolver}"
        ),
        HiddenResolution::DnsOverHttps(resolver) => format!(
            "Its name resolution was not observable: the process talks DNS over HTTPS to {resolver}"
        ),
        HiddenResolution::Unknown => "No DNS answer pinwatch saw mapped a name to this address: it came from /etc/hosts, a literal address, a cache older than pinwatch's memory, or a resolver pinwatch cannot read".to_owned(),
    }
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
