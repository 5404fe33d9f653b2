//! `dns-bailiwick-violation`, injected addresses: A/AAAA records owned by a
//! configured hostname in a response to a question whose CNAME chain does
//! not lead there, in any section.
//!
//! The client that asked takes nothing from them, but a cache on the path
//! (a local stub, the resolver itself) may: answering a question nobody
//! watches with an extra record for the database's name is how cache
//! poisoning plants an address for it. The answer for the watched name,
//! when a client asks later, comes from that cache.
use std::net::IpAddr;

use hickory_proto::rr::{RData, Record};

use super::{
    Detector,
    answer_alert::answer_alert,
    asked::Asked,
    names::{hostname, same_name},
};
use crate::{
    alert::{Alert, Rule},
    dnstext,
    event::{DnsEvent, Section},
};

/// One injected address: its owner, the section it sat in.
struct Injected {
    owner: String,
    section: Section,
    ip: IpAddr,
}

/// The caller checked the message is a response delivered to a socket.
pub(super) fn check(detector: &Detector, event: &DnsEvent, asked: &[Asked<'_>]) -> Vec<Alert> {
    let message = &event.message;
    let Some(query) = asked.first().map(|a| a.query) else {
        return Vec::new();
    };
    let on_chain = |record: &Record| {
        asked
            .iter()
            .flat_map(|a| &a.chain)
            .any(|&name| same_name(name, record.name()))
    };
    let sections = [
        (Section::Answer, message.answers()),
        (Section::Authority, message.name_servers()),
        (Section::Additional, message.additionals()),
    ];
    // Per database, in the order first seen.
    let mut found: Vec<(usize, Vec<Injected>)> = Vec::new();
    for (section, records) in sections {
        for record in records {
            let ip = match record.data() {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                _ => continue,
            };
            // The chain's own records are the answer, judged as such; and
            // comparing names costs less than building hostname text.
            if on_chain(record) {
                continue;
            }
            let Some(db) = detector.pins.database_for_dns_name(record.name()) else {
                continue;
            };
            let injected = Injected {
                owner: hostname(record.name()),
                section,
                ip,
            };
            match found.iter_mut().find(|(index, _)| *index == db) {
                Some((_, list)) => list.push(injected),
                None => found.push((db, vec![injected])),
            }
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let question = dnstext::name(query.name());
    found
        .into_iter()
        .map(|(db, injected)| {
            let database = detector.pins.database(db);
            let ips: Vec<IpAddr> = injected.iter().map(|i| i.ip).collect();
            let unexpected: Vec<IpAddr> =
                ips.iter().copied().filter(|&ip| !database.allows(ip)).collect();
            let records: Vec<String> = injected
                .iter()
                .map(|i| format!("{} {} in the {} section", i.owner, i.ip, i.section.name()))
                .collect();
            let pinned = if unexpected.is_empty() {
                "inside the pinned set for now"
            } else {
                "outside the pinned set"
            };
            let message = format!(
                "DNS response to a question for {question} from {} carries address records for database {}'s hostname that the question's CNAME chain does not lead to ({}; {pinned}); this is how cache poisoning plants an address for a name nobody asked — check what the resolver and any cache on this host now answer for it",
                event.source.ip(),
                database.name,
                records.join(", "),
            );
            answer_alert(
                event,
                query,
                Rule::DnsBailiwickViolation,
                message,
                database,
                question.clone(),
                ips,
                unexpected,
            )
        })
        .collect()
}
