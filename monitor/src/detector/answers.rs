//! `dns-answer-diverged`: A/AAAA answers for configured hostnames, checked
//! against the pinned sets.
use std::{net::IpAddr, sync::Arc};

use hickory_proto::{
    op::{MessageType, Query},
    rr::{Record, RecordType},
};

use super::{
    Detector, LastAnswer, Verdict,
    names::{addresses_of, cname_chain, hostname},
    pins::PinnedDatabase,
};
use crate::{
    alert::{Alert, DnsAnswer, DnsFacts, Rule},
    dnstext,
    event::{Direction, DnsEvent, Hook},
};

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
    let answers = event.message.answers();
    for query in event.message.queries() {
        if !matches!(
            query.query_type(),
            RecordType::A | RecordType::AAAA | RecordType::ANY
        ) {
            continue;
        }
        let chain = cname_chain(query.name(), answers);
        let Some((min_ttl, ips)) = addresses_of(&chain, answers) else {
            continue;
        };
        // One copy of the name, shared by every address it mapped.
        let asked: Arc<str> = hostname(query.name()).into();
        for &(ip, ttl) in &ips {
            detector.recent.remember(ip, &asked, ttl, event.timestamp);
        }
        for configured in &chain {
            let Some(db_index) = detector.pins.database_for_dns_name(configured) else {
                continue;
            };
            let ips: Vec<IpAddr> = ips.iter().map(|&(ip, _)| ip).collect();
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
                hostname(configured),
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
            // As the message spelled it: the letter case is evidence too.
            let question = query.name().to_string();
            let question = question.strip_suffix('.').unwrap_or(&question).to_owned();
            let message = format!(
                "DNS answer for {question} (database {}) from resolver {} carries {} outside the pinned set; the resolver or the path to it may be poisoned — keep clients from connecting until it is explained",
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
                question,
                ips,
                unexpected,
            ));
        }
    }
    alerts
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
        question_type: dnstext::record_type(query.query_type()).into_owned(),
        resolved_ips,
        answers: event.message.answers().iter().map(describe).collect(),
    });
    alert
}

/// One answer record for an alert, written field by field: hickory's own
/// text of some records (OPT, odd CAA) fails, and `to_string` panics on it.
pub(super) fn describe(record: &Record) -> DnsAnswer {
    DnsAnswer {
        name: dnstext::name(record.name()),
        record_type: dnstext::record_type(record.record_type()).into_owned(),
        data: dnstext::rdata(record.data()),
        ttl: record.ttl(),
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
