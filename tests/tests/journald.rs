//! `[alerts] sink = "journald"` with the real daemon: alerts arrive as
//! journal entries with their fields, at a fake journal the test binds
//! (no journald runs on the test machines; the sink's test hook
//! `PINWATCH_JOURNAL_SOCKET` points the daemon at it).
//!
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test journald -- --test-threads=1
use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use pinwatch_integration_tests::{
    DNS_V4, DNS_V6, Daemon, DaemonConfig, Database, DnsRecords, Dnsmasq, FakeJournal, JournalEntry,
    Lab, connect, dig, pinwatch_bin, require_root,
};
use serde_json::Value;

const DB_HOST: &str = "db.journal.test";
const DB_PORT: u16 = 26257;
const FORGED: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66));
const TIMEOUT: Duration = Duration::from_secs(10);

fn action(entry: &JournalEntry) -> &str {
    entry.get("EVENT_ACTION")
}

#[test]
fn alerts_reach_the_journal_with_their_fields() {
    require_root();
    let journal = FakeJournal::bind();
    let lab = Lab::new();
    lab.add_peer_address(FORGED);
    let _dnsmasq = Dnsmasq::start(&lab, &DnsRecords::new().host(DB_HOST, FORGED));
    let mut daemon = Daemon::start_with_journal(
        &DaemonConfig {
            databases: vec![Database::new(
                "orders",
                &[DB_HOST],
                &[DB_PORT],
                &["192.0.2.0/24"],
            )],
            trusted_resolvers: vec![DNS_V4.into(), DNS_V6.into()],
        },
        journal.path(),
    );

    let answer = dig(&lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(
        answer.addresses(),
        [FORGED],
        "dnsmasq's answer:\n{}",
        answer.raw
    );
    let client = connect(&lab.client, FORGED, DB_PORT);
    let entries = journal.wait_for(TIMEOUT, |e| {
        action(e) == "unexpected-db-peer" && e.get("PROCESS_PID") == client.pid.to_string()
    });
    let context = format!("{entries:#?}\n{}", daemon.dump());

    let dns = entries
        .iter()
        .find(|e| action(e) == "dns-answer-diverged")
        .unwrap_or_else(|| panic!("no dns-answer-diverged entry:\n{context}"));
    let peer = entries
        .iter()
        .find(|e| action(e) == "unexpected-db-peer")
        .expect("waited for it");
    for entry in [dns, peer] {
        assert_eq!(entry.get("SYSLOG_IDENTIFIER"), "pinwatch", "{context}");
        assert_eq!(entry.get("EVENT_KIND"), "alert", "{context}");
        assert_eq!(entry.get("PINWATCH_DATABASE"), "orders", "{context}");
        // Nothing is lost: the whole ECS line rides along, and agrees with
        // the flattened fields.
        let ecs: Value = serde_json::from_str(entry.get("PINWATCH_ALERT"))
            .unwrap_or_else(|e| panic!("PINWATCH_ALERT is not JSON ({e}):\n{context}"));
        assert_eq!(entry.get("MESSAGE"), ecs["message"], "{context}");
        assert_eq!(entry.get("EVENT_ID"), ecs["event"]["id"], "{context}");
        assert_eq!(
            entry.get("EVENT_ACTION"),
            ecs["event"]["action"],
            "{context}"
        );
        assert_eq!(entry.get("TIMESTAMP"), ecs["@timestamp"], "{context}");
    }
    assert_eq!(
        dns.get("PRIORITY"),
        "3",
        "severity 3 high is err: {context}"
    );
    assert_eq!(dns.get("EVENT_SEVERITY"), "3");
    assert_eq!(dns.get("DNS_QUESTION_NAME"), DB_HOST);
    assert_eq!(dns.values("DNS_RESOLVED_IP"), [FORGED.to_string()]);
    assert_eq!(
        peer.get("PRIORITY"),
        "2",
        "severity 4 critical is crit: {context}"
    );
    assert_eq!(peer.get("DESTINATION_IP"), FORGED.to_string());
    assert_eq!(peer.get("DESTINATION_PORT"), DB_PORT.to_string());
    assert_eq!(peer.get("DESTINATION_DOMAIN"), DB_HOST);

    assert!(
        daemon.alerts().read().is_empty(),
        "with sink = \"journald\" nothing goes to the alert file:\n{context}"
    );
    let status = daemon.stop().expect("the daemon was running");
    assert_eq!(status.code(), Some(0), "{context}");
}

#[test]
fn a_missing_journal_refuses_the_start() {
    require_root();
    let journal = FakeJournal::bind();
    let dir = journal.path().parent().unwrap().to_owned();
    let gone = dir.join("no-journal-here");
    let config = dir.join("pinwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[database]]\nname = \"orders\"\nhostnames = [\"{DB_HOST}\"]\npinned = [\"192.0.2.0/24\"]\n\n\
             [alerts]\nsink = \"journald\"\n\n[control]\nsocket = {:?}\n",
            dir.join("control.sock").display().to_string()
        ),
    )
    .expect("write the configuration");
    let output = std::process::Command::new(pinwatch_bin())
        .arg("run")
        .arg("-c")
        .arg(&config)
        .env("PINWATCH_JOURNAL_SOCKET", &gone)
        .output()
        .expect("run pinwatch");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit 2 for a sink it cannot open:\n{stderr}"
    );
    assert!(
        stderr.contains(&*gone.to_string_lossy()),
        "names the socket:\n{stderr}"
    );
}
