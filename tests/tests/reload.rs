//! Kernel integration tests of SIGHUP reloads: a good file swaps the pinned
//! sets and the watched ports together; a bad one changes nothing, raises
//! `config-reload-failed` and says why on stderr.
//!
//! Run serially, as root, after building the daemon:
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test reload -- --test-threads=1
use std::net::IpAddr;

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, DNS_V4, Database, DnsRecords, Fixture, assert_ecs_base, connect, dig, field,
    lines, require_root, str_field, without_sentinel,
};
use serde_json::Value;

const ORDERS: &str = "orders";
const BILLING: &str = "billing";
const DB_HOST: &str = "db.lab.test";
const DB_PORT: u16 = 26257;
const BILLING_PORT: u16 = 5432;
const PINNED: &str = "192.0.2.0/24";
/// What the lab's resolver answers for `DB_HOST`: outside `PINNED`.
const FORGED: &str = "203.0.113.66";
const FORGED_NET: &str = "203.0.113.0/24";
const DNS_RULE: &str = "dns-answer-diverged";
const PEER_RULE: &str = "unexpected-db-peer";
const RELOAD_RULE: &str = "config-reload-failed";

fn forged() -> IpAddr {
    FORGED.parse().unwrap()
}

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

fn about<'a>(alerts: &'a [Value], rule: &str, database: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| {
            action(a) == rule
                && field(a, "pinwatch.database").and_then(Value::as_str) == Some(database)
        })
        .collect()
}

/// The lab with `db.lab.test` answered by the forged address, which is
/// reachable from the client; the daemon pins `orders` to `PINNED`.
fn forged_lab() -> Fixture {
    require_root();
    let records = DnsRecords::new().host(DB_HOST, forged());
    let fx = Fixture::start(
        records,
        vec![Database::new(ORDERS, &[DB_HOST], &[DB_PORT], &[PINNED])],
    );
    fx.lab.add_peer_address(forged());
    fx
}

fn database_names(status: &Value) -> Vec<String> {
    status["databases"]
        .as_array()
        .unwrap_or_else(|| panic!("no databases in status: {status}"))
        .iter()
        .filter_map(|db| db["name"].as_str().map(str::to_owned))
        .collect()
}

fn resolve_forged(fx: &Fixture) {
    let answer = dig(&fx.lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(
        answer.addresses(),
        [forged()],
        "dnsmasq's answer:\n{}",
        answer.raw
    );
}

#[test]
fn sighup_with_a_wider_pinned_set_silences_the_same_answer() {
    let mut fx = forged_lab();
    resolve_forged(&fx);
    fx.alerts().wait_for(ALERT_TIMEOUT, |a| {
        action(a) == DNS_RULE
            && field(a, "pinwatch.database").and_then(Value::as_str) == Some(ORDERS)
    });

    let before = fx.daemon.status_json();
    // Wider pins for orders, and a new database on a port nobody watched.
    let reloaded = fx.reload_with(vec![
        Database::new(ORDERS, &[DB_HOST], &[DB_PORT], &[PINNED, FORGED_NET]),
        Database::new(BILLING, &["billing.lab.test"], &[BILLING_PORT], &[PINNED]),
    ]);
    assert!(reloaded.is_ok(), "the reload was refused: {reloaded:?}");
    let after = fx.daemon.status_json();
    assert_ne!(after["config"]["hash"], before["config"]["hash"], "{after}");
    assert_eq!(after["config"]["path"], before["config"]["path"], "{after}");
    assert!(
        database_names(&after).contains(&BILLING.to_owned()),
        "status should show the reloaded databases: {after}"
    );

    resolve_forged(&fx);
    let to_orders = connect(&fx.lab.client, forged(), DB_PORT);
    let to_billing = connect(&fx.lab.client, forged(), BILLING_PORT);
    let all = fx.sentinel();
    let context = format!("alerts:\n{}", lines(&all));

    assert_eq!(
        about(&all, DNS_RULE, ORDERS).len(),
        1,
        "only the answer before the reload diverged; {context}"
    );
    assert!(
        about(&all, PEER_RULE, ORDERS).is_empty(),
        "the connect to {FORGED}:{DB_PORT} (pid {}) is inside the new pinned set; {context}",
        to_orders.pid
    );
    // The kernel now reports connects to the new port: the BPF map changed
    // with the configuration.
    let billing = about(&all, PEER_RULE, BILLING);
    assert_eq!(billing.len(), 1, "{context}");
    assert_eq!(
        field(billing[0], "process.pid").and_then(Value::as_u64),
        Some(u64::from(to_billing.pid)),
        "{context}"
    );
    assert!(
        without_sentinel(&all)
            .iter()
            .all(|a| [DNS_RULE, PEER_RULE].contains(&action(a))),
        "{context}"
    );

    // Stopping writes the summaries of folded repeats: none may stand for
    // a divergence after the reload.
    let status = fx.daemon.stop().expect("the daemon was running");
    assert_eq!(status.code(), Some(0), "{}", fx.daemon.dump());
    let all = fx.alerts().read();
    assert_eq!(
        about(&all, DNS_RULE, ORDERS).len(),
        1,
        "alerts after stop:\n{}",
        lines(&all)
    );
    assert!(about(&all, PEER_RULE, ORDERS).is_empty(), "{}", lines(&all));
}

#[test]
fn sighup_with_a_broken_file_raises_config_reload_failed_and_keeps_the_old_set() {
    let mut fx = forged_lab();
    let before = fx.daemon.status_json();

    // A file that would widen the pinned set, but one value is invalid: it
    // must be refused whole.
    let refused = fx.reload_with(vec![Database::new(
        ORDERS,
        &[DB_HOST],
        &[DB_PORT],
        &[PINNED, FORGED_NET, "10.0.0.300/24"],
    )]);
    let line = refused.expect_err("a file with an invalid CIDR must be refused");
    for part in [
        fx.daemon.config_path().to_str().unwrap(),
        "database[0].pinned[2]",
        "10.0.0.300/24",
    ] {
        assert!(line.contains(part), "stderr should name {part:?}: {line}");
    }

    let after = fx.daemon.status_json();
    assert_eq!(after["config"], before["config"], "{after}");
    let alerts = fx
        .alerts()
        .wait_for(ALERT_TIMEOUT, |a| action(a) == RELOAD_RULE);
    let failed = alerts.iter().find(|a| action(a) == RELOAD_RULE).unwrap();
    assert_ecs_base(failed, RELOAD_RULE);
    let message = str_field(failed, "message");
    for part in [
        fx.daemon.config_path().to_str().unwrap(),
        "10.0.0.300/24",
        "previous configuration",
    ] {
        assert!(
            message.contains(part),
            "message should name {part:?}: {failed}"
        );
    }

    // The old set is in force: the forged answer and the connect still alert.
    resolve_forged(&fx);
    let client = connect(&fx.lab.client, forged(), DB_PORT);
    let all = fx.sentinel();
    let context = format!("alerts:\n{}", lines(&all));
    assert_eq!(about(&all, DNS_RULE, ORDERS).len(), 1, "{context}");
    let peers = about(&all, PEER_RULE, ORDERS);
    assert_eq!(peers.len(), 1, "{context}");
    assert_eq!(
        field(peers[0], "process.pid").and_then(Value::as_u64),
        Some(u64::from(client.pid)),
        "{context}"
    );

    // A file that is not TOML at all is refused too, and a fixed file is
    // then taken.
    fx.daemon
        .write_config_text("[[database]\nname = \"orders\"\n");
    let line = fx
        .daemon
        .reload()
        .expect_err("unparsable TOML must be refused");
    assert!(
        line.contains(fx.daemon.config_path().to_str().unwrap()),
        "{line}"
    );
    let fixed = fx.reload_with(vec![Database::new(
        ORDERS,
        &[DB_HOST],
        &[DB_PORT],
        &[PINNED, FORGED_NET],
    )]);
    assert!(fixed.is_ok(), "the fixed file was refused: {fixed:?}");
}

/// `count` distinct 10.x.y.z/32s starting at 10.0.0.0 + `from`.
fn hosts(from: u32, count: u32) -> Vec<String> {
    (from..from + count)
        .map(|n| std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string())
        .collect()
}

/// `orders` in block mode pinning `PINNED` and `extra`.
fn blocking_orders(extra: &[String]) -> Database {
    let mut pinned: Vec<&str> = vec![PINNED];
    pinned.extend(extra.iter().map(String::as_str));
    Database::new(ORDERS, &[DB_HOST], &[DB_PORT], &pinned).with_mode("block")
}

#[test]
fn sighup_swaps_pinned_sets_that_fit_the_trie_alone_but_not_together() {
    require_root();
    // 12,001 (port, network) pairs each, 6,001 shared: 18,001 together,
    // more than the 16,384 the kernel's PINNED_V4 trie holds.
    let mut fx = Fixture::start(DnsRecords::new(), vec![blocking_orders(&hosts(0, 12_000))]);
    fx.lab.add_peer_address(forged());
    let reloaded = fx.reload_with(vec![blocking_orders(&hosts(6_000, 12_000))]);
    assert!(
        reloaded.is_ok(),
        "a file that fits was refused: {reloaded:?}"
    );

    // Enforcement is in force with the new set: the forged address, in
    // neither, is refused.
    let refused = connect(&fx.lab.client, forged(), DB_PORT);
    assert_eq!(refused.result, "PermissionError/1", "{refused:?}");
    let all = fx.sentinel();
    assert!(
        without_sentinel(&all)
            .iter()
            .all(|a| action(a) != RELOAD_RULE),
        "{}",
        lines(&all)
    );
}
