//! The alert about a DNS answer, shared by every rule that judges answers:
//! who asked whom, the pinned set, the addresses outside it, and the answer
//! records written field by field.
use std::net::IpAddr;

use hickory_proto::{op::Query, rr::Record};

use super::pins::PinnedDatabase;
use crate::{
    alert::{Alert, DnsAnswer, DnsFacts, Rule},
    dnstext,
    event::DnsEvent,
};

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
