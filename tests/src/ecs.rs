//! The alert fields checked against the ECS field reference: every field an
//! alert writes outside `pinwatch.*` must be an ECS field, with the type
//! ECS gives it.
use serde_json::Value;

/// The subset of the ECS 8.11 field reference
/// (https://www.elastic.co/guide/en/ecs/8.11/ecs-field-reference.html)
/// that pinwatch's alerts use: field name and ECS type.
const ECS_8_11: &[(&str, &str)] = &[
    ("@timestamp", "date"),
    ("message", "match_only_text"),
    ("ecs.version", "keyword"),
    ("event.kind", "keyword"),
    ("event.category", "keyword"),
    ("event.type", "keyword"),
    ("event.action", "keyword"),
    ("event.severity", "long"),
    ("event.id", "keyword"),
    ("event.created", "date"),
    ("event.start", "date"),
    ("event.end", "date"),
    ("event.duration", "long"),
    ("rule.id", "keyword"),
    ("rule.name", "keyword"),
    ("host.name", "keyword"),
    ("agent.name", "keyword"),
    ("agent.type", "keyword"),
    ("agent.version", "keyword"),
    ("process.pid", "long"),
    ("process.name", "keyword"),
    ("process.thread.id", "long"),
    ("user.id", "keyword"),
    ("group.id", "keyword"),
    ("source.ip", "ip"),
    ("source.port", "long"),
    ("destination.ip", "ip"),
    ("destination.port", "long"),
    ("destination.domain", "keyword"),
    ("network.transport", "keyword"),
    ("network.type", "keyword"),
    ("dns.id", "keyword"),
    ("dns.type", "keyword"),
    ("dns.question.name", "keyword"),
    ("dns.question.type", "keyword"),
    ("dns.resolved_ip", "ip"),
    ("dns.answers", "object"),
    ("dns.answers.name", "keyword"),
    ("dns.answers.type", "keyword"),
    ("dns.answers.data", "keyword"),
    ("dns.answers.ttl", "long"),
    ("container.id", "keyword"),
    ("container.name", "keyword"),
    ("container.runtime", "keyword"),
    ("orchestrator.type", "keyword"),
    ("orchestrator.namespace", "keyword"),
    ("orchestrator.resource.type", "keyword"),
    ("orchestrator.resource.name", "keyword"),
];

/// Asserts that every field of `alert` outside `pinwatch.*` is in the ECS
/// reference with a value of its type (arrays hold values of the type).
pub fn assert_ecs_fields(alert: &Value) {
    check(alert, "", alert);
}

fn check(value: &Value, path: &str, alert: &Value) {
    if path == "pinwatch" {
        return;
    }
    let ecs_type = ECS_8_11
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, t)| *t);
    match (value, ecs_type) {
        (Value::Array(items), _) => {
            for item in items {
                check(item, path, alert);
            }
        }
        (Value::Object(map), None | Some("object")) => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                check(child, &child_path, alert);
            }
        }
        (_, None) => panic!("`{path}` is not an ECS 8.11 field: {alert}"),
        (value, Some(ecs_type)) => assert!(
            has_type(value, ecs_type),
            "`{path}` is {value}, not an ECS {ecs_type}: {alert}"
        ),
    }
}

fn has_type(value: &Value, ecs_type: &str) -> bool {
    match ecs_type {
        "keyword" | "match_only_text" => value.as_str().is_some_and(|s| !s.is_empty()),
        "long" => value.is_i64() || value.is_u64(),
        "ip" => value
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "date" => value
            .as_str()
            .is_some_and(|s| s.ends_with('Z') && s.contains('T')),
        _ => false,
    }
}
