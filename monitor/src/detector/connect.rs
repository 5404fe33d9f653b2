//! `unexpected-db-peer`: TCP connects to watched ports, checked against the
//! pinned sets of the databases that watch the port.
use ipnet::IpNet;

use super::{Detector, pins::canonical_ip};
use crate::{
    alert::{Alert, Rule},
    event::{ConnectEvent, Transport},
};

pub(super) fn check_connect(detector: &mut Detector, event: &ConnectEvent) -> Vec<Alert> {
    let ip = canonical_ip(event.destination.ip());
    let port = event.destination.port();
    let watching = detector.pins.databases_for_port(port);
    if watching.is_empty()
        || watching
            .iter()
            .any(|&i| detector.pins.database(i).allows(ip))
    {
        return Vec::new();
    }
    let domain = detector
        .recent
        .name_for(ip, event.timestamp)
        .map(str::to_owned);
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
    let message = format!(
        "Process {} (pid {}, uid {}) connected to {ip}:{port}{via}, outside the pinned set of {}; its credentials may be going to an impostor — stop the process or confirm the address",
        event.process.name,
        event.process.pid,
        event.process.uid,
        database.as_deref().map_or_else(
            || format!("the databases on port {port}"),
            |name| format!("database {name}")
        ),
    );
    let mut alert = Alert::new(event.timestamp, Rule::UnexpectedDbPeer, message);
    alert.database = database;
    alert.process = Some(event.process.clone());
    alert.destination = Some((ip, port).into());
    alert.destination_domain = domain;
    alert.transport = Some(Transport::Tcp);
    alert.pinned = pinned;
    alert.unexpected_ips = vec![ip];
    vec![alert]
}
