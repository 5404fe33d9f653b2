//! The matching rules, on one response delivered to a socket on this host.
use std::{net::IpAddr, sync::Arc};

use hickory_proto::{
    op::Message,
    rr::{Name, RData, RecordType},
};

use super::{
    Matching, delivered,
    fingerprint::Fingerprint,
    table::{FlowKey, Lookup},
};
use crate::{
    alert::{Alert, DnsFacts, Rule},
    detector::{
        answer_alert::describe,
        asked::Asked,
        pins::{PinIndex, PinnedDatabase},
    },
    dnstext,
    event::{DnsEvent, ResolvConf},
};

pub(super) fn judge_response(
    matching: &mut Matching,
    pins: &PinIndex,
    event: &DnsEvent,
    asked: &[Asked<'_>],
    tracked: bool,
) -> Vec<Alert> {
    let message = &event.message;
    let response = asked.first();
    let question = response.map(|a| a.query);
    let chain: &[&Name] = response.map_or(&[], |a| &a.chain);
    let database = response.and_then(Asked::database).map(|i| pins.database(i));
    // Written only when an alert needs it: most responses raise none.
    let owners = &matching.owners;
    let client = || match owners.process(event.socket_cookie) {
        Some(p) => format!(
            "process {} (pid {}) at {}",
            p.name, p.pid, event.destination
        ),
        None => event.destination.to_string(),
    };
    let mut alerts = Vec::new();
    if tracked && delivered(event) {
        let blind = matching.is_blind(event.timestamp);
        let threshold = matching.settings.threshold;
        let key = FlowKey {
            client: event.destination,
            server: event.source,
        };
        let wanted = question.map(|q| (q.name(), q.query_type(), q.query_class()));
        match matching.table.lookup(&key, message.id(), wanted) {
            Lookup::NoFlow if blind => {}
            Lookup::NoFlow => alerts.push(unsolicited(event, database, &client())),
            Lookup::Mismatch(flow) => {
                flow.mismatches += 1;
                if flow.mismatches >= threshold && !flow.burst_reported {
                    flow.burst_reported = true;
                    let waiting = flow.queries.last().map(|p| p.name.to_name());
                    alerts.push(burst(event, database, &client(), flow.mismatches, waiting));
                }
            }
            Lookup::Matched(index, flow) => {
                let answer = Fingerprint::of(message, database);
                let pending = &mut flow.queries[index];
                pending.answered = pending.answered.saturating_add(1);
                if let Some((name, ..)) = wanted
                    && !pending.name.spelled_as(name)
                    && !pending.case_reported
                {
                    pending.case_reported = true;
                    alerts.push(case_mismatch(
                        event,
                        database,
                        &client(),
                        &pending.name.to_name(),
                        name,
                    ));
                }
                match &pending.first_answer {
                    None => pending.first_answer = Some(answer),
                    // Each transmission may get its answer; one more than
                    // was asked for, saying something else, is a second
                    // voice.
                    Some(first)
                        if pending.answered > pending.sent
                            && first.conflicts(&answer)
                            && !pending.conflict_reported =>
                    {
                        pending.conflict_reported = true;
                        alerts.push(conflicting(event, database, &client()));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    let Some(database) = database else {
        return alerts;
    };
    if !delivered(event) {
        return alerts;
    }
    let resolver = event.source.ip().to_canonical();
    // Trust follows the workload: the nameservers of the asking process's own
    // resolv.conf, where the daemon read it, beside the configured set.
    let own = owners.resolv_conf(event.socket_cookie);
    let trusted = matching.settings.trusted.contains(&resolver)
        || own.is_some_and(|conf| conf.nameservers.contains(&resolver));
    if event.socket_cookie != 0 && delivered(event) && !trusted {
        alerts.push(untrusted(event, database, &client(), resolver, own));
    }
    let outside = out_of_bailiwick(message, chain);
    if !outside.is_empty() {
        alerts.push(bailiwick(event, database, &outside));
    }
    alerts
}

/// A response seen at the interface (tc), delivered or not: a second,
/// different answer to a query answered already is a conflict even when
/// no socket took it.
pub(super) fn judge_at_interface(
    matching: &mut Matching,
    pins: &PinIndex,
    event: &DnsEvent,
    asked: &[Asked<'_>],
) -> Vec<Alert> {
    let message = &event.message;
    let Some(response) = asked.first() else {
        return Vec::new();
    };
    let question = response.query;
    let key = FlowKey {
        client: event.destination,
        server: event.source,
    };
    let wanted = Some((
        question.name(),
        question.query_type(),
        question.query_class(),
    ));
    let Lookup::Matched(index, flow) = matching.table.lookup(&key, message.id(), wanted) else {
        return Vec::new();
    };
    let pending = &mut flow.queries[index];
    pending.arrived = pending.arrived.saturating_add(1);
    let Some(first) = &pending.first_answer else {
        return Vec::new();
    };
    let database = response.database().map(|i| pins.database(i));
    if pending.arrived > pending.sent
        && first.conflicts(&Fingerprint::of(message, database))
        && !pending.conflict_reported
    {
        pending.conflict_reported = true;
        let client = event.destination.to_string();
        return vec![conflicting(event, database, &client)];
    }
    Vec::new()
}

/// Owner names of authority and additional records outside the zones of
/// the question: the parent of each name of the CNAME chain, and any
/// authority NS/SOA owner that is an ancestor of one. Address records for a
/// nameserver named in the authority section are glue and allowed: servers
/// send out-of-zone glue, and caches do not trust it.
fn out_of_bailiwick(message: &Message, chain: &[&Name]) -> Vec<String> {
    if message.name_servers().is_empty() && message.additionals().is_empty() {
        return Vec::new();
    }
    let mut zones: Vec<Name> = chain.iter().map(|name| name.base_name()).collect();
    let mut nameservers: Vec<&Name> = Vec::new();
    for record in message.name_servers() {
        if chain.iter().any(|&name| record.name().zone_of(name)) {
            zones.push(record.name().clone());
        }
        if let RData::NS(ns) = record.data() {
            nameservers.push(&ns.0);
        }
    }
    let mut outside: Vec<String> = Vec::new();
    let authority = message.name_servers().iter().map(|r| (r, false));
    let additional = message.additionals().iter().map(|r| (r, true));
    for (record, is_additional) in authority.chain(additional) {
        let owner = record.name();
        let inside = zones.iter().any(|zone| zone.zone_of(owner));
        let glue = is_additional
            && matches!(record.record_type(), RecordType::A | RecordType::AAAA)
            && nameservers.contains(&owner);
        let text = trim(owner);
        if !inside && !glue && !outside.contains(&text) {
            outside.push(text);
        }
    }
    outside
}

fn trim(name: &Name) -> String {
    dnstext::name(name)
}

/// `name TYPE` of the message's question.
fn question_text(event: &DnsEvent) -> String {
    event.message.queries().first().map_or_else(
        || "(no question)".to_owned(),
        |q| {
            format!(
                "{} {}",
                trim(q.name()),
                dnstext::record_type(q.query_type())
            )
        },
    )
}

fn base(event: &DnsEvent, rule: Rule, message: String, database: Option<&PinnedDatabase>) -> Alert {
    let mut alert = Alert::new(event.timestamp, rule, message);
    alert.database = database.map(|db| db.name.clone());
    alert.source = Some(event.source);
    alert.destination = Some(event.destination);
    alert.transport = Some(event.transport);
    let query = event.message.queries().first();
    alert.dns = Some(DnsFacts {
        id: event.message.id(),
        question_name: query.map(|q| trim(q.name())).unwrap_or_default(),
        question_type: query
            .map(|q| dnstext::record_type(q.query_type()).into_owned())
            .unwrap_or_default(),
        resolved_ips: event
            .message
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect(),
        answers: event.message.answers().iter().map(describe).collect(),
    });
    alert
}

fn unsolicited(event: &DnsEvent, database: Option<&PinnedDatabase>, client: &str) -> Alert {
    let message = format!(
        "A DNS response from {} to {} ({}, id {}) answers no query pinwatch saw that socket send; someone may be spoofing answers or probing for the port (a reply later than [dns] query_timeout looks the same) — look for more of these",
        event.source,
        client,
        question_text(event),
        event.message.id(),
    );
    base(event, Rule::DnsUnsolicitedResponse, message, database)
}

fn burst(
    event: &DnsEvent,
    database: Option<&PinnedDatabase>,
    client: &str,
    count: u32,
    waiting: Option<Name>,
) -> Alert {
    let waiting = waiting.map_or_else(
        || "a query".to_owned(),
        |n| format!("its query for {}", trim(&n)),
    );
    let message = format!(
        "{count} DNS responses with wrong transaction ids reached {} claiming to come from {} while {waiting} waited; someone is racing the genuine answer (Kaminsky / SAD DNS style) — treat answers for that name as suspect and check the path to the resolver",
        client, event.source,
    );
    base(event, Rule::DnsTxidMismatchBurst, message, database)
}

fn conflicting(event: &DnsEvent, database: Option<&PinnedDatabase>, client: &str) -> Alert {
    let message = format!(
        "Two different DNS responses from {} answered one query ({}, id {}) sent by {}; one of them is forged and the client may have taken it — check what it connected to",
        event.source,
        question_text(event),
        event.message.id(),
        client,
    );
    base(event, Rule::DnsConflictingResponses, message, database)
}

fn case_mismatch(
    event: &DnsEvent,
    database: Option<&PinnedDatabase>,
    client: &str,
    sent: &Name,
    got: &Name,
) -> Alert {
    let message = format!(
        "The DNS response from {} to {} spells the question {} where the query said {}; resolvers copy the question exactly, so this reply was likely forged by someone who guessed the id but not the letter case (0x20)",
        event.source,
        client,
        trim(got),
        trim(sent),
    );
    base(event, Rule::DnsCaseMismatch, message, database)
}

fn untrusted(
    event: &DnsEvent,
    database: &PinnedDatabase,
    client: &str,
    resolver: IpAddr,
    own: Option<&Arc<ResolvConf>>,
) -> Alert {
    let own = own.map_or(String::new(), |conf| {
        format!(
            " nor in its resolv.conf ({}: {})",
            conf.path,
            join_ips(&conf.nameservers)
        )
    });
    let message = format!(
        "DNS answer for {} (database {}) came from resolver {resolver}, which is not in [dns] trusted_resolvers{own}; find out why {} resolves through it, or add it to the trusted set",
        question_text(event),
        database.name,
        client,
    );
    base(event, Rule::DnsUntrustedResolver, message, Some(database))
}

fn bailiwick(event: &DnsEvent, database: &PinnedDatabase, outside: &[String]) -> Alert {
    let message = format!(
        "DNS response for {} (database {}) from {} carries records outside the queried zone ({}); a cache that accepts them is poisoned beyond this name — check the resolver",
        question_text(event),
        database.name,
        event.source,
        outside.join(", "),
    );
    base(event, Rule::DnsBailiwickViolation, message, Some(database))
}

fn join_ips(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        return "no nameserver".into();
    }
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
