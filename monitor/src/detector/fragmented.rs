//! `dns-fragmented-response`: a response for a configured hostname that
//! arrived as IP fragments.
//!
//! DNS responses that fragment are rare (EDNS sizes stay under the MTU
//! since DNS Flag Day 2020), and fragments are how an off-path attacker
//! replaces the tail of a genuine answer without guessing its id or port.
//! The event is the datagram put back together at the interface — or, when
//! a fragment never came, what its first fragment held. The kernel
//! reassembles before socket delivery, so the socket's copy is judged by
//! `dns-answer-diverged` as any other; this alert carries the addresses and
//! which of them fall outside the pinned set, so it stands on its own when
//! no socket took the datagram.
use std::net::IpAddr;

use hickory_proto::op::MessageType;

use super::{Detector, addresses_of, answer_alert::answer_alert, asked::Asked};
use crate::{
    alert::{Alert, Rule},
    dnstext,
    event::DnsEvent,
};

pub(super) fn check(detector: &Detector, event: &DnsEvent, asked: &[Asked<'_>]) -> Vec<Alert> {
    if !event.fragmented || event.message.message_type() != MessageType::Response {
        return Vec::new();
    }
    let mut alerts = Vec::new();
    for question in asked {
        let query = question.query;
        let Some(db_index) = question.database() else {
            continue;
        };
        let trimmed = dnstext::name(query.name());
        let database = detector.pins.database(db_index);
        let ips: Vec<IpAddr> = addresses_of(&question.chain, event.message.answers())
            .map(|(_, ips)| ips.into_iter().map(|(ip, _)| ip).collect())
            .unwrap_or_default();
        let unexpected: Vec<IpAddr> = ips
            .iter()
            .copied()
            .filter(|&ip| !database.allows(ip))
            .collect();
        let completeness = if event.truncated {
            "not all of its fragments arrived"
        } else {
            "all fragments arrived and were reassembled"
        };
        let verdict = if unexpected.is_empty() {
            String::new()
        } else {
            format!(
                "; it carries {} outside the pinned set",
                unexpected
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let message = format!(
            "DNS response for {trimmed} (database {}) from {} arrived as IP fragments ({completeness}){verdict}; fragments let an off-path attacker splice forged records into a genuine answer — check the resolver's EDNS buffer size and the path to it",
            database.name,
            event.source.ip(),
        );
        alerts.push(answer_alert(
            event,
            query,
            Rule::DnsFragmentedResponse,
            message,
            database,
            trimmed,
            ips,
            unexpected,
        ));
    }
    alerts
}

#[cfg(test)]
mod tests {
    use crate::{
        alert::Rule,
        detector::Detector,
        event::{Direction, DnsEvent, Event, Hook},
        fixtures::{a_response, at, config, dns_event},
    };

    const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["db.prod.internal"]
pinned = ["192.0.2.0/24"]
"#;

    fn detector() -> Detector {
        Detector::new(&config(CONFIG))
    }

    fn response(question: &str, ip: &str, seen_at: Hook, fragmented: bool) -> Event {
        let message = a_response(question, 7, &[ip], 60);
        let delivered = dns_event(
            message,
            Direction::Ingress,
            "198.51.100.53:53",
            "198.51.100.10:40000",
            at(0),
        );
        Event::Dns(DnsEvent {
            seen_at,
            fragmented,
            ..delivered
        })
    }

    fn rules(detector: &mut Detector, event: &Event) -> Vec<Rule> {
        detector.observe(event).iter().map(|a| a.rule).collect()
    }

    #[test]
    fn fragmented_response_for_a_watched_name_alerts_once_per_hook() {
        let mut d = detector();
        // At the interface: fragments, reassembled. The diverged answer is
        // on the fragmented alert, not a second rule.
        let at_interface = response("db.prod.internal.", "203.0.113.9", Hook::Interface, true);
        let alerts = d.observe(&at_interface);
        let fragmented: Vec<_> = alerts
            .iter()
            .filter(|a| a.rule == Rule::DnsFragmentedResponse)
            .collect();
        assert_eq!(fragmented.len(), 1, "{alerts:?}");
        assert_eq!(
            fragmented[0].unexpected_ips,
            ["203.0.113.9".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(!alerts.iter().any(|a| a.rule == Rule::DnsAnswerDiverged));
        // The same datagram delivered to the socket, reassembled by the
        // kernel: judged by dns-answer-diverged only.
        let at_socket = response("db.prod.internal.", "203.0.113.9", Hook::Socket, false);
        let rules = rules(&mut d, &at_socket);
        assert!(rules.contains(&Rule::DnsAnswerDiverged), "{rules:?}");
        assert!(!rules.contains(&Rule::DnsFragmentedResponse), "{rules:?}");
    }

    #[test]
    fn fragments_for_other_names_or_unfragmented_responses_raise_nothing() {
        let mut d = detector();
        let other = response("www.example.com.", "203.0.113.9", Hook::Interface, true);
        assert!(!rules(&mut d, &other).contains(&Rule::DnsFragmentedResponse));
        let whole = response("db.prod.internal.", "192.0.2.1", Hook::Interface, false);
        assert!(rules(&mut d, &whole).is_empty());
    }
}
