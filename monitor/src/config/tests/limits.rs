//! The kernel's map capacities, refused at validation with the key named.
use super::*;
use crate::kernel::Policy;

/// A database `name` on `ports` pinning `pinned`, in `mode`.
fn db(name: &str, ports: impl IntoIterator<Item = u32>, pinned: &[String], mode: &str) -> String {
    let ports: Vec<String> = ports.into_iter().map(|p| p.to_string()).collect();
    let pinned: Vec<String> = pinned.iter().map(|p| format!("{p:?}")).collect();
    format!(
        "[[database]]\nname = {name:?}\nhostnames = [\"{name}.db.internal\"]\nports = [{}]\npinned = [{}]\nmode = {mode:?}\n",
        ports.join(", "),
        pinned.join(", ")
    )
}

/// `count` distinct IPv4 /32s.
fn v4_hosts(count: u32) -> Vec<String> {
    (0..count)
        .map(|n| std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string())
        .collect()
}

fn refusal(text: &str) -> (String, String) {
    let error = parse(text).expect_err("over a kernel limit");
    (
        error.key().unwrap_or_default().to_owned(),
        error.to_string(),
    )
}

#[test]
fn refuses_more_ports_than_the_kernel_port_map_holds() {
    let one = ["192.0.2.1".to_owned()];
    let (key, message) = refusal(&db("a", 1..=1025, &one, "monitor"));
    assert_eq!(key, "database[0].ports");
    assert!(message.contains("1025 distinct ports"), "{message}");
    assert!(message.contains("1024"), "{message}");
    assert!(message.contains("WATCHED_PORTS"), "{message}");

    // Counted over all databases, named where the count passes the limit.
    let text = db("a", 1..=600, &one, "monitor") + &db("b", 601..=1100, &one, "monitor");
    let (key, message) = refusal(&text);
    assert_eq!(key, "database[1].ports");
    assert!(message.contains("1100 distinct ports"), "{message}");
}

#[test]
fn accepts_exactly_as_many_ports_as_the_map_holds() {
    let one = ["192.0.2.1".to_owned()];
    let shared = db("a", 1..=1024, &one, "block") + &db("b", 1..=1024, &one, "monitor");
    let config = parse(&shared).expect("1024 distinct ports fit");
    assert_eq!(config.watched_ports().len(), 1024);
}

#[test]
fn refuses_more_pinned_pairs_than_a_trie_holds() {
    // 8,193 networks on two enforced ports: 16,386 (port, network) pairs.
    let (key, message) = refusal(&db("a", [5432, 26257], &v4_hosts(8193), "block"));
    assert_eq!(key, "database[0].pinned");
    assert!(
        message.contains("16386 (port, IPv4 network) pairs"),
        "{message}"
    );
    assert!(message.contains("16384"), "{message}");

    // A monitor-mode database on an enforced port fills the trie too.
    let text =
        db("a", [26257], &v4_hosts(10), "block") + &db("b", [26257], &v4_hosts(16_385), "monitor");
    let (key, message) = refusal(&text);
    assert_eq!(key, "database[1].pinned");
    assert!(
        message.contains("16385 (port, IPv4 network) pairs"),
        "{message}"
    );
    // Exactly full fits.
    let full =
        db("a", [26257], &v4_hosts(10), "block") + &db("b", [26257], &v4_hosts(16_384), "monitor");
    parse(&full).expect("16,384 pairs fit");
}

#[test]
fn monitor_mode_fills_no_trie() {
    let config = parse(&db("a", [5432, 26257], &v4_hosts(9000), "monitor")).expect("no tries");
    let policy = Policy::from_config(&config);
    assert!(policy.v4.is_empty() && policy.v6.is_empty());
}

#[test]
fn pairs_counted_as_the_kernel_policy_writes_them() {
    let v6: Vec<String> = (0..5000).map(|n| format!("2001:db8::{n:x}")).collect();
    let text = db("a", [26257, 5432], &v4_hosts(6000), "block")
        + &db("b", [26257, 3306], &v4_hosts(8000), "monitor")
        + &db("c", [5432], &v6, "monitor");
    let config = parse(&text).expect("fits");
    let policy = Policy::from_config(&config);
    // 26257: 8000 distinct (a's 6000 are among b's); 5432: a's 6000.
    assert_eq!(policy.v4.len(), 14_000);
    assert_eq!(policy.v6.len(), 5000);
    // 2,385 more networks on 26257 pass the limit: 14,000 + 2,385 = 16,385.
    let extra: Vec<String> = v4_hosts(10_385).split_off(8000);
    let more = text + &db("d", [26257], &extra, "monitor");
    let (key, message) = refusal(&more);
    assert_eq!(key, "database[3].pinned");
    assert!(
        message.contains("16385 (port, IPv4 network) pairs"),
        "{message}"
    );
}
