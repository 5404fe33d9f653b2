//! `dns-answer-diverged`: A/AAAA answers for configured hostnames, checked
//! against the pinned sets.
use std::net::IpAddr;

use hickory_proto::{
    op::{MessageType, Query},
    rr::{RData, Record, RecordType},
};

use super::{
    Detector, LastAnswer, Verdict,
    pins::{PinnedDatabase, normalize_name},
};
use crate::{
    alert::{Alert, DnsAnswer, DnsFacts, Rule},
    event::{Direction, DnsEvent, Hook},
};

/// CNAME links followed from the question name before giving up: deeper
/// chains are not produced by real zones, and a loop must end.
pub const MAX_CNAME_DEPTH: usize = 8;

pub(super) fn check_response(detector: &mut Detector, event: &DnsEvent) -> Vec<Alert> {
    // A response matters where it is delivered to a socket on this host; the
    // same message leaving a local server is seen again on its way in, and
    // arriving at an interface (tc) before a socket takes it.
    if event.message.message_type() != MessageType::Response
        || event.direction != Direction::Ingress
        || event.seen_at != Hook::Socket
    {
        return Vec::new();
    }
    detector.counters.dns_responses_checked += 1;
    let mut alerts = Vec::new();
    for query in event.message.queries() {
        if !matches!(
            query.query_type(),
            RecordType::A | RecordType::AAAA | RecordType::ANY
        ) {
            continue;
        }
        let question = query.name().to_string();
        let chain = cname_chain(&question, event.message.answers());
        let addresses = addresses_of(&chain, event.message.answers());
        let Some((min_ttl, ips)) = addresses else {
            continue;
        };
        let asked = normalize_name(&question);
        for &(ip, ttl) in &ips {
            detector.recent.remember(ip, &asked, ttl, event.timestamp);
        }
        let ips: Vec<IpAddr> = ips.into_iter().map(|(ip, _)| ip).collect();
        for configured in &chain {
            let Some(db_index) = detector.pins.database_for_name(configured) else {
                continue;
            };
            let database = detector.pins.database(db_index);
            let unexpected: Vec<IpAddr> = ips
                .iter()
                .copied()
                .filter(|&ip| !database.allows(ip))
                .collect();
            let verdict = if unexpected.is_empty() {
                Verdict::Pinned
            } else {
                Verdict::Diverged
            };
            detector.last_answers.insert(
                configured.clone(),
                LastAnswer {
                    addresses: ips.clone(),
                    ttl: min_ttl,
                    resolver: event.source.ip(),
                    seen_at: event.timestamp,
                    verdict,
                },
            );
            if verdict == Verdict::Pinned {
                continue;
            }
            let trimmed_question = question.strip_suffix('.').unwrap_or(&question).to_owned();
            let message = format!(
                "DNS answer for {trimmed_question} (database {}) from resolver {} carries {} outside the pinned set; the resolver or the path to it may be poisoned — keep clients from connecting until it is explained",
                database.name,
                event.source.ip(),
                join(&unexpected),
            );
            alerts.push(answer_alert(
                event,
                query,
                Rule::DnsAnswerDiverged,
                message,
                database,
                trimmed_question,
                ips.clone(),
                unexpected,
            ));
        }
    }
    alerts
}

/// The question name followed through CNAME records, normalized, starting
/// with the question itself.
pub(crate) fn cname_chain(question: &str, answers: &[Record]) -> Vec<String> {
    let mut chain = vec![normalize_name(question)];
    for _ in 0..MAX_CNAME_DEPTH {
        let current = chain.last().expect("chain starts non-empty");
        let next = answers.iter().find_map(|record| match record.data() {
            RData::CNAME(target) if normalize_name(&record.name().to_string()) == *current => {
                Some(normalize_name(&target.0.to_string()))
            }
            _ => None,
        });
        match next {
            Some(target) if !chain.contains(&target) => chain.push(target),
            _ => break,
        }
    }
    chain
}

/// A/AAAA addresses owned by any name of the chain, with their TTLs, and the
/// smallest TTL; `None` when the answer has no address for the chain.
pub(crate) fn addresses_of(
    chain: &[String],
    answers: &[Record],
) -> Option<(u32, Vec<(IpAddr, u32)>)> {
    let ips: Vec<(IpAddr, u32)> = answers
        .iter()
        .filter(|record| chain.contains(&normalize_name(&record.name().to_string())))
        .filter_map(|record| match record.data() {
            RData::A(a) => Some((IpAddr::V4(a.0), record.ttl())),
            RData::AAAA(aaaa) => Some((IpAddr::V6(aaaa.0), record.ttl())),
            _ => None,
        })
        .collect();
    let min_ttl = ips.iter().map(|&(_, ttl)| ttl).min()?;
    Some((min_ttl, ips))
}

/// An alert about a DNS answer for a configured database: the resolver, the
/// client, the pinned set, the addresses outside it and the answer itself.
#[allow(clippy::too_many_arguments)]
pub(super) fn answer_alert(
    event: &DnsEvent,
    query: &Query,
    rule: Rule,
    message: String,
    database: &PinnedDatabase,
    question_name: String,
    resolved_ips: Vec<IpAddr>,
    unexpected_ips: Vec<IpAddr>,
) -> Alert {
    let mut alert = Alert::new(event.timestamp, rule, message);
    alert.database = Some(database.name.clone());
    alert.source = Some(event.source);
    alert.destination = Some(event.destination);
    alert.transport = Some(event.transport);
    alert.pinned = database.pinned.clone();
    alert.unexpected_ips = unexpected_ips;
    alert.dns = Some(DnsFacts {
        id: event.message.id(),
        question_name,
        question_type: query.query_type().to_string(),
        resolved_ips,
        answers: event.message.answers().iter().map(describe).collect(),
    });
    alert
}

pub(super) fn describe(record: &Record) -> DnsAnswer {
    let name = record.name().to_string();
    DnsAnswer {
        name: name.strip_suffix('.').unwrap_or(&name).to_owned(),
        record_type: record.record_type().to_string(),
        data: record.data().to_string(),
        ttl: record.ttl(),
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
