//! The real stack, end to end: a Flask application using psycopg2 reads a
//! row from PostgreSQL on 26257 by hostname; the resolver answers honestly,
//! or is poisoned to point at a PostgreSQL an attacker runs. pinwatch,
//! watching the host, must stay quiet for the first and name the
//! application's process for the second, whether or not TLS stops it.
//!
//! Run serially, as root, after `cargo build -p pinwatch`, under the shared
//! kernel-test lock:
//!     flock /tmp/pinwatch-kernel.lock cargo test -p pinwatch-integration-tests --test stack -- --test-threads=1
use std::net::IpAddr;

use pinwatch_integration_tests::{
    ATTACKER_DB, ATTACKER_ROW, DbAnswer, GENUINE_DB, GENUINE_ROW, PG_DATABASE, PG_PASSWORD,
    PG_PORT, PG_USER, STACK_DB, STACK_HOST, Stack, assert_ecs_base, ip_field, ip_list_field, lines,
    require_root, str_field, without_sentinel,
};
use serde_json::Value;

const DNS_RULE: &str = "dns-answer-diverged";
const PEER_RULE: &str = "unexpected-db-peer";
const PLAINTEXT_RULE: &str = "plaintext-db-connection";
const BLOCKED_RULE: &str = "db-connect-blocked";

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

#[test]
fn genuine_answer_reads_the_row_and_raises_no_alert() {
    require_root();
    let stack = Stack::start(DbAnswer::Genuine, "verify-full");
    let response = stack.app.get(&stack.fx.lab.client, "/item");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["name"], GENUINE_ROW, "{}", response.body);

    let all = stack.fx.sentinel();
    let ours = without_sentinel(&all);
    assert!(
        ours.is_empty(),
        "a genuine answer and a connect to the pinned address raise nothing:\n{}",
        lines(&all)
    );
}

#[test]
fn poisoned_answer_with_verify_full_fails_the_handshake_and_is_reported() {
    require_root();
    let stack = Stack::start(DbAnswer::Poisoned, "verify-full");
    let response = stack.app.get(&stack.fx.lab.client, "/item");
    assert_eq!(
        response.status, 500,
        "verify-full with the genuine CA must refuse the attacker: {}",
        response.body
    );
    let error = response.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("certificate verify failed"),
        "the failure should be the certificate check: {error}"
    );
    assert_attack_reported(&stack, &[DNS_RULE, PEER_RULE]);
}

#[test]
fn poisoned_answer_without_tls_reads_the_attackers_row_and_is_reported() {
    require_root();
    let stack = Stack::start(DbAnswer::Poisoned, "disable");
    let response = stack.app.get(&stack.fx.lab.client, "/item");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json()["name"],
        ATTACKER_ROW,
        "without TLS the application talks to the attacker: {}",
        response.body
    );
    let ours = assert_attack_reported(&stack, &[DNS_RULE, PEER_RULE, PLAINTEXT_RULE]);
    let app_pid = u64::from(stack.app.pid());
    let plaintext = ours
        .iter()
        .find(|a| action(a) == PLAINTEXT_RULE && a["process"]["pid"].as_u64() == Some(app_pid))
        .unwrap_or_else(|| panic!("no {PLAINTEXT_RULE} naming the app (pid {app_pid})"));
    assert_eq!(
        str_field(plaintext, "pinwatch.db.user"),
        PG_USER,
        "{plaintext}"
    );
    assert_eq!(
        str_field(plaintext, "pinwatch.db.name"),
        PG_DATABASE,
        "{plaintext}"
    );
    assert_eq!(
        ip_field(plaintext, "destination.ip"),
        IpAddr::V4(ATTACKER_DB),
        "{plaintext}"
    );
    assert!(
        !plaintext.to_string().contains(PG_PASSWORD),
        "the password never reaches the alert: {plaintext}"
    );
}

#[test]
fn poisoned_answer_in_block_mode_refuses_the_connect() {
    require_root();
    let stack = Stack::start_with_mode(DbAnswer::Poisoned, "disable", "block");
    let response = stack.app.get(&stack.fx.lab.client, "/item");
    assert_eq!(
        response.status, 500,
        "the connect is refused: {}",
        response.body
    );
    let error = response.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("Operation not permitted") || error.contains("Permission denied"),
        "psycopg2 reports the refused connect: {error}"
    );
    let ours = assert_attack_reported_with(&stack, &[DNS_RULE, BLOCKED_RULE], BLOCKED_RULE);
    assert!(
        !ours
            .iter()
            .any(|a| action(a) == PEER_RULE || action(a) == PLAINTEXT_RULE),
        "a refused connect sends nothing: {ours:?}"
    );
}

/// `dns-answer-diverged` for the forged answer and `unexpected-db-peer`
/// naming the Flask process's pid, both for database `orders`; no rule
/// outside `allowed`. Returns the test's own alerts.
fn assert_attack_reported(stack: &Stack, allowed: &[&str]) -> Vec<Value> {
    assert_attack_reported_with(stack, allowed, PEER_RULE)
}

/// As [`assert_attack_reported`], with `peer_rule` as the rule of the
/// connect (`unexpected-db-peer`, or `db-connect-blocked` in block mode).
fn assert_attack_reported_with(stack: &Stack, allowed: &[&str], peer_rule: &str) -> Vec<Value> {
    let all = stack.fx.sentinel();
    let ours = without_sentinel(&all);
    let context = format!("alerts:\n{}", lines(&all));
    eprintln!("{context}");
    for alert in &ours {
        assert!(
            allowed.contains(&action(alert)),
            "unexpected rule; {context}"
        );
        assert_ecs_base(alert, action(alert));
        assert_eq!(str_field(alert, "pinwatch.database"), STACK_DB, "{alert}");
    }
    let attacker = IpAddr::V4(ATTACKER_DB);

    let dns = ours
        .iter()
        .find(|a| action(a) == DNS_RULE)
        .unwrap_or_else(|| panic!("no {DNS_RULE}; {context}"));
    assert_eq!(str_field(dns, "dns.question.name"), STACK_HOST, "{dns}");
    assert_eq!(
        ip_list_field(dns, "pinwatch.unexpected_ips"),
        [attacker],
        "{dns}"
    );
    assert_eq!(
        dns["pinwatch"]["pinned"],
        serde_json::json!([format!("{GENUINE_DB}/32")]),
        "{dns}"
    );

    let app_pid = u64::from(stack.app.pid());
    let peer = ours
        .iter()
        .find(|a| action(a) == peer_rule)
        .unwrap_or_else(|| panic!("no {peer_rule}; {context}"));
    assert_eq!(
        peer["process"]["pid"].as_u64(),
        Some(app_pid),
        "the connect is the Flask app's (python3, pid {app_pid}): {peer}"
    );
    assert_eq!(str_field(peer, "process.name"), "python3", "{peer}");
    assert_eq!(ip_field(peer, "destination.ip"), attacker, "{peer}");
    assert_eq!(
        peer["destination"]["port"].as_u64(),
        Some(u64::from(PG_PORT)),
        "{peer}"
    );
    assert_eq!(
        str_field(peer, "destination.domain"),
        STACK_HOST,
        "the connect is tied to the forged answer: {peer}"
    );
    ours
}
