//! Encoding of alerts as Elastic Common Schema 8.x documents, nested objects,
//! one per line.
use std::{net::SocketAddr, time::SystemTime};

use serde_json::{Map, Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{Alert, Rule};
use crate::event::Transport;

pub const ECS_VERSION: &str = "8.11.0";

/// Who wrote the alert: `host.name`, `agent.version`.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    pub host_name: String,
    pub version: String,
}

impl AgentInfo {
    pub fn from_host() -> AgentInfo {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into buf.
        let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let host_name = if ok {
            String::from_utf8_lossy(&buf[..end]).into_owned()
        } else {
            String::new()
        };
        AgentInfo {
            host_name,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// RFC 3339, UTC, microseconds: `2026-11-27T02:46:36.123456Z`.
pub fn format_timestamp(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    let micros = at
        .replace_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .unwrap_or(at);
    let text = micros.format(&Rfc3339).unwrap_or_default();
    // time drops trailing zeros of the fraction; SIEM parsers like a fixed width.
    match text.find('.') {
        Some(dot) => format!("{}.{:06}Z", &text[..dot], micros.microsecond()),
        None => format!(
            "{}.{:06}Z",
            text.trim_end_matches('Z'),
            micros.microsecond()
        ),
    }
}

/// The alert as one ECS JSON object (no trailing newline).
pub fn encode(alert: &Alert, agent: &AgentInfo, event_id: &str) -> String {
    let mut doc = Map::new();
    doc.insert(
        "@timestamp".into(),
        json!(format_timestamp(alert.timestamp)),
    );
    doc.insert("ecs".into(), json!({ "version": ECS_VERSION }));
    doc.insert(
        "event".into(),
        json!({
            "kind": "alert",
            "category": ["network"],
            // ECS's network event types: a refused connect is `denied`.
            "type": [if alert.rule == Rule::DbConnectBlocked { "denied" } else { "info" }],
            "action": alert.rule.id(),
            "severity": alert.rule.severity(),
            "id": event_id,
            "created": format_timestamp(SystemTime::now()),
        }),
    );
    if let Some(repeats) = &alert.repeats {
        // ECS's own span fields: the first and last of the folded repeats.
        let span = repeats
            .last
            .duration_since(repeats.first)
            .unwrap_or_default();
        doc["event"]["start"] = json!(format_timestamp(repeats.first));
        doc["event"]["end"] = json!(format_timestamp(repeats.last));
        doc["event"]["duration"] = json!(u64::try_from(span.as_nanos()).unwrap_or(u64::MAX));
    }
    doc.insert(
        "rule".into(),
        json!({ "id": alert.rule.id(), "name": alert.rule.name() }),
    );
    doc.insert("message".into(), json!(alert.message));
    doc.insert("host".into(), json!({ "name": agent.host_name }));
    doc.insert(
        "agent".into(),
        json!({ "name": "pinwatch", "type": "pinwatch", "version": agent.version }),
    );

    // pid 0 stands for an unknown process (a connect seen in a capture).
    if let Some(process) = alert.process.as_ref().filter(|p| p.pid != 0) {
        doc.insert(
            "process".into(),
            json!({ "pid": process.pid, "name": process.name, "thread": { "id": process.tid } }),
        );
        doc.insert("user".into(), json!({ "id": process.uid.to_string() }));
        doc.insert("group".into(), json!({ "id": process.gid.to_string() }));
    }
    if let Some(source) = alert.source {
        doc.insert("source".into(), endpoint(source, None));
    }
    if let Some(destination) = alert.destination {
        doc.insert(
            "destination".into(),
            endpoint(destination, alert.destination_domain.as_deref()),
        );
    }
    let network_type = alert.destination.or(alert.source).map(|addr| {
        if addr.ip().to_canonical().is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        }
    });
    if alert.transport.is_some() || network_type.is_some() {
        let mut network = Map::new();
        if let Some(transport) = alert.transport {
            network.insert(
                "transport".into(),
                json!(match transport {
                    Transport::Udp => "udp",
                    Transport::Tcp => "tcp",
                }),
            );
        }
        if let Some(kind) = network_type {
            network.insert("type".into(), json!(kind));
        }
        doc.insert("network".into(), Value::Object(network));
    }
    if let Some(dns) = &alert.dns {
        let answers: Vec<Value> = dns
            .answers
            .iter()
            .map(|a| json!({ "name": a.name, "type": a.record_type, "data": a.data, "ttl": a.ttl }))
            .collect();
        doc.insert(
            "dns".into(),
            json!({
                "id": dns.id.to_string(),
                "type": "answer",
                "question": { "name": dns.question_name, "type": dns.question_type },
                "resolved_ip": dns.resolved_ips,
                "answers": answers,
            }),
        );
    }
    let mut pinwatch = Map::new();
    if let Some(database) = &alert.database {
        pinwatch.insert("database".into(), json!(database));
    }
    if !alert.pinned.is_empty() {
        pinwatch.insert(
            "pinned".into(),
            json!(
                alert
                    .pinned
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        );
    }
    if !alert.unexpected_ips.is_empty() {
        pinwatch.insert("unexpected_ips".into(), json!(alert.unexpected_ips));
    }
    if let Some(lost) = &alert.lost {
        pinwatch.insert(
            "events_lost".into(),
            json!({ "count": lost.count, "origin": lost.origin }),
        );
    }
    if let Some(restart) = &alert.restart {
        pinwatch.insert(
            "restart".into(),
            json!({
                "gap_seconds": restart.gap.map(|gap| gap.as_secs_f64()),
                "backlog_records": restart.backlog_records,
                "records_lost": restart.records_lost,
            }),
        );
    }
    if let Some(repeats) = &alert.repeats {
        pinwatch.insert("repeats".into(), json!({ "count": repeats.count }));
    }
    if !alert.stale_programs.is_empty() {
        pinwatch.insert("stale_programs".into(), json!(alert.stale_programs));
    }
    if let Some(session) = &alert.db_session {
        // `user.*` is the OS user of the process; the database login is
        // pinwatch's own field.
        pinwatch.insert(
            "db".into(),
            json!({
                "user": session.user,
                "name": session.database,
                "application": session.application,
                "tls_refused_by_server": session.tls_refused_by_server,
            }),
        );
    }
    if let Some(path) = &alert.path {
        pinwatch.insert(
            "path".into(),
            json!({ "stub": path.stub.to_string(), "upstream": path.upstream.to_string() }),
        );
    }
    if let Some(resolution) = &alert.resolution {
        pinwatch.insert("resolution".into(), super::resolution_json(resolution));
    }
    if let Some(fault) = &alert.fault {
        pinwatch.insert(
            "fault".into(),
            json!({ "rule": fault.rules, "event": fault.event, "detail": fault.detail }),
        );
    }
    if let Some(malformed) = &alert.malformed {
        pinwatch.insert("malformed".into(), json!(malformed));
    }
    if !alert.cname_chain_cut.is_empty() {
        pinwatch.insert("cname_chain_cut".into(), json!(alert.cname_chain_cut));
    }
    if let Some(workload) = &alert.workload {
        super::workload::insert(&mut doc, &mut pinwatch, workload);
    }
    if !alert.affected.is_empty() {
        pinwatch.insert(
            "affected".into(),
            super::workload::affected(&alert.affected),
        );
    }
    if let Some(conf) = &alert.resolv_conf {
        pinwatch.insert("resolv_conf".into(), json!(conf.as_ref()));
    }
    if !pinwatch.is_empty() {
        doc.insert("pinwatch".into(), Value::Object(pinwatch));
    }
    Value::Object(doc).to_string()
}

fn endpoint(addr: SocketAddr, domain: Option<&str>) -> Value {
    let mut value = json!({ "ip": addr.ip().to_canonical(), "port": addr.port() });
    if let Some(domain) = domain {
        value["domain"] = json!(domain);
    }
    value
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::alert::{DnsAnswer, DnsFacts, Rule};

    fn agent() -> AgentInfo {
        AgentInfo {
            host_name: "db-client-1".into(),
            version: "9.9.9".into(),
        }
    }

    #[test]
    fn timestamp_is_utc_with_six_fraction_digits() {
        let at = UNIX_EPOCH + Duration::from_nanos(1_790_000_000_120_000_999);
        assert_eq!(format_timestamp(at), "2026-09-21T14:13:20.120000Z");
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn encodes_base_fields_as_nested_objects() {
        let alert = Alert::new(UNIX_EPOCH, Rule::EventLoss, "lost 3 events".into());
        let doc: Value = serde_json::from_str(&encode(&alert, &agent(), "id-1")).unwrap();
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(doc["event"]["action"], "event-loss");
        assert_eq!(doc["event"]["severity"], 2);
        assert_eq!(doc["event"]["id"], "id-1");
        assert_eq!(doc["rule"]["id"], "event-loss");
        assert_eq!(doc["ecs"]["version"], ECS_VERSION);
        assert_eq!(doc["agent"]["name"], "pinwatch");
        assert_eq!(doc["agent"]["version"], "9.9.9");
        assert_eq!(doc["host"]["name"], "db-client-1");
        assert_eq!(doc["message"], "lost 3 events");
        assert!(doc.get("dns").is_none() && doc.get("process").is_none());
    }

    #[test]
    fn encodes_dns_and_pinwatch_fields() {
        let mut alert = Alert::new(UNIX_EPOCH, Rule::DnsAnswerDiverged, "forged".into());
        alert.database = Some("orders".into());
        alert.source = Some("198.51.100.53:53".parse().unwrap());
        alert.destination = Some("[::ffff:198.51.100.10]:40000".parse().unwrap());
        alert.pinned = vec!["192.0.2.0/24".parse().unwrap()];
        alert.unexpected_ips = vec!["203.0.113.66".parse().unwrap()];
        alert.dns = Some(DnsFacts {
            id: 4242,
            question_name: "DB.lab.test".into(),
            question_type: "A".into(),
            resolved_ips: vec!["203.0.113.66".parse().unwrap()],
            answers: vec![DnsAnswer {
                name: "DB.lab.test".into(),
                record_type: "A".into(),
                data: "203.0.113.66".into(),
                ttl: 30,
            }],
        });
        let doc: Value = serde_json::from_str(&encode(&alert, &agent(), "x")).unwrap();
        assert_eq!(doc["dns"]["question"]["name"], "DB.lab.test");
        assert_eq!(doc["dns"]["id"], "4242");
        assert_eq!(doc["dns"]["resolved_ip"][0], "203.0.113.66");
        assert_eq!(doc["dns"]["answers"][0]["ttl"], 30);
        assert_eq!(doc["pinwatch"]["database"], "orders");
        assert_eq!(doc["pinwatch"]["pinned"][0], "192.0.2.0/24");
        assert_eq!(doc["pinwatch"]["unexpected_ips"][0], "203.0.113.66");
        assert_eq!(doc["source"]["ip"], "198.51.100.53");
        // Mapped IPv6 is shown as the IPv4 address it stands for.
        assert_eq!(doc["destination"]["ip"], "198.51.100.10");
        assert_eq!(doc["network"]["type"], "ipv4");
        assert!(doc["pinwatch"].get("malformed").is_none());
    }

    #[test]
    fn encodes_where_a_message_stopped_parsing() {
        use crate::event::{Malformed, Section};
        let mut alert = Alert::new(UNIX_EPOCH, Rule::DnsAnswerDiverged, "x".into());
        alert.malformed = Some(Malformed {
            section: Section::Additional,
            record: 0,
            offset: 44,
            cut: false,
            reason: "unexpected end of input reached".into(),
        });
        alert.cname_chain_cut = vec!["a.test".into(), "b.test".into()];
        let doc: Value = serde_json::from_str(&encode(&alert, &agent(), "x")).unwrap();
        let malformed = &doc["pinwatch"]["malformed"];
        assert_eq!(malformed["section"], "additional");
        assert_eq!(malformed["record"], 0);
        assert_eq!(malformed["offset"], 44);
        assert_eq!(malformed["cut"], false);
        assert_eq!(doc["pinwatch"]["cname_chain_cut"][1], "b.test");
    }
}
