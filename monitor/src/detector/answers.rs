//! `dns-answer-diverged`: A/AAAA answers for configured hostnames, checked
//! against the pinned sets — and answers pinwatch cannot vouch for: a
//! message that does not parse whole, or a CNAME chain longer than it
//! follows, where a stub resolver reads on and hands the application what
//! pinwatch never judged.
use std::{collections::HashMap, net::IpAddr};

use hickory_proto::{
    op::MessageType,
    rr::{Name, RecordType},
};

use super::{
    Detector, LastAnswer, MAX_CNAME_DEPTH, Verdict,
    answer_alert::answer_alert,
    asked::Asked,
    injected,
    names::{addresses_of, chain_cut, hostname, hostname_in, text_buffer},
};
use crate::{
    alert::{Alert, Rule},
    dnstext,
    event::{Direction, DnsEvent, Hook, Malformed, Section},
};

pub(super) fn check_response(
    detector: &mut Detector,
    event: &DnsEvent,
    asked: &[Asked<'_>],
) -> Vec<Alert> {
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
    let unjudged = unjudged_fault(event);
    for question in asked {
        let query = question.query;
        if !matches!(
            query.query_type(),
            RecordType::A | RecordType::AAAA | RecordType::ANY
        ) {
            continue;
        }
        let chain = &question.chain;
        let doubt = Doubt {
            malformed: unjudged,
            chain_cut: chain_cut(chain, answers),
        };
        let reached = addresses_of(chain, answers);
        if reached.is_none() && !doubt.any() {
            continue;
        }
        let (min_ttl, ips) = reached.unwrap_or_default();
        if !ips.is_empty() {
            detector
                .recent
                .remember_answer(query.name(), &ips, event.timestamp);
        }
        for &(configured, db_index) in &question.watched {
            let ips: Vec<IpAddr> = ips.iter().map(|&(ip, _)| ip).collect();
            let database = detector.pins.database(db_index);
            let unexpected: Vec<IpAddr> = ips
                .iter()
                .copied()
                .filter(|&ip| !database.allows(ip))
                .collect();
            let verdict = if unexpected.is_empty() && !doubt.any() {
                Verdict::Pinned
            } else {
                Verdict::Diverged
            };
            if !ips.is_empty() {
                let answer = LastAnswer {
                    addresses: Vec::new(),
                    ttl: min_ttl,
                    resolver: event.source.ip(),
                    seen_at: event.timestamp,
                    verdict,
                };
                remember_last(&mut detector.last_answers, configured, answer, &ips);
            }
            if verdict == Verdict::Pinned {
                continue;
            }
            // As the message spelled it: the letter case is evidence too.
            let question = dnstext::name(query.name());
            let message = diverged_message(
                &question,
                &database.name,
                event,
                (&ips, &unexpected),
                &doubt,
                chain,
            );
            let mut alert = answer_alert(
                event,
                query,
                Rule::DnsAnswerDiverged,
                message,
                database,
                question,
                ips,
                unexpected,
            );
            alert.malformed = doubt.malformed.cloned();
            if doubt.chain_cut {
                alert.cname_chain_cut = chain.iter().map(|&name| hostname(name)).collect();
            }
            alerts.push(alert);
        }
    }
    alerts.extend(injected::check(detector, event, asked));
    alerts
}

/// Keeps `answer` with `addresses` as the last for `configured`, reusing
/// the entry's name and address list when it has one: a watched name is
/// answered again and again, and the entry then costs no allocation.
fn remember_last(
    last_answers: &mut HashMap<String, LastAnswer>,
    configured: &Name,
    answer: LastAnswer,
    addresses: &[IpAddr],
) {
    let mut buffer = text_buffer();
    let key = hostname_in(configured, &mut buffer);
    match last_answers.get_mut(&*key) {
        Some(entry) => {
            let mut list = std::mem::take(&mut entry.addresses);
            list.clear();
            list.extend_from_slice(addresses);
            *entry = LastAnswer {
                addresses: list,
                ..answer
            };
        }
        None => {
            let answer = LastAnswer {
                addresses: addresses.to_vec(),
                ..answer
            };
            last_answers.insert(key.into_owned(), answer);
        }
    }
}

/// What keeps pinwatch from vouching for an answer whose addresses it read.
struct Doubt<'a> {
    /// The message did not parse whole where the client may have read on.
    malformed: Option<&'a Malformed>,
    /// The CNAME chain runs past the follow limit.
    chain_cut: bool,
}

impl Doubt<'_> {
    fn any(&self) -> bool {
        self.malformed.is_some() || self.chain_cut
    }
}

/// The fault of a message that may hide answers from pinwatch: any fault
/// of the sender's making (a stub resolver reads past what hickory
/// refuses, and a forger hides there), and a capture cut inside the
/// question or the answers. A cut in the later sections hides nothing a
/// stub resolver reads.
fn unjudged_fault(event: &DnsEvent) -> Option<&Malformed> {
    event
        .malformed
        .as_ref()
        .filter(|m| !m.cut || matches!(m.section, Section::Question | Section::Answer))
}

fn diverged_message(
    question: &str,
    database: &str,
    event: &DnsEvent,
    (ips, unexpected): (&[IpAddr], &[IpAddr]),
    doubt: &Doubt<'_>,
    chain: &[&Name],
) -> String {
    let resolver = event.source.ip();
    let mut text = if unexpected.is_empty() {
        format!(
            "DNS answer for {question} (database {database}) from resolver {resolver} cannot be vouched for"
        )
    } else {
        format!(
            "DNS answer for {question} (database {database}) from resolver {resolver} carries {} outside the pinned set",
            join(unexpected)
        )
    };
    if let Some(m) = doubt.malformed {
        let reached = if ips.is_empty() {
            "none".to_owned()
        } else {
            join(ips)
        };
        if m.cut {
            text.push_str(&format!(
                "; the message was longer than the kernel copies, and the copy ends inside its {} section at byte {} (record {}): pinwatch judged the addresses before the cut ({reached}), the client got them all",
                m.section.name(), m.offset, m.record
            ));
        } else {
            text.push_str(&format!(
                "; the message does not parse whole ({} record {} at byte {}: {}): a stub resolver such as glibc's still hands the application what it reads, and pinwatch judged only the records that parse (addresses: {reached})",
                m.section.name(), m.record, m.offset, m.reason
            ));
        }
    }
    if doubt.chain_cut {
        let followed: Vec<String> = chain.iter().map(|&name| hostname(name)).collect();
        let reached = if ips.is_empty() {
            "no address".to_owned()
        } else {
            join(ips)
        };
        text.push_str(&format!(
            "; its CNAME chain runs past the {} links pinwatch follows ({}), reaching {reached} there, and a stub resolver follows it to the end",
            MAX_CNAME_DEPTH,
            followed.join(" -> ")
        ));
    }
    text.push_str(
        "; the resolver or the path to it may be poisoned — keep clients from connecting until it is explained",
    );
    text
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
