//! No blind window: the programs, links and maps outlive the daemon in
//! bpffs (`[kernel] pin_path`). While no daemon runs the kernel keeps
//! capturing; the next daemon adopts the pins, judges the backlog with each
//! record's own time and raises `pinwatch-restarted`. A clean stop and
//! `pinwatch unload` leave nothing attached or pinned.
//!
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test restart -- --test-threads=1
use std::{
    net::{IpAddr, Ipv4Addr, TcpStream},
    path::Path,
    process::Command,
    time::Duration,
};

use aya::maps::{Array, Map, MapData, PerCpuArray};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, DNS_V4, Daemon, DaemonConfig, Database, DnsRecords, Fixture,
    assert_all_unloaded, assert_ecs_base, attached_pinwatch_programs, cgroup_root, connect, dig,
    field, ip_field, lines, now_secs, pinwatch_bin, require_root, str_field, timestamp_secs,
};
use serde_json::Value;

const ORDERS: &str = "orders";
const DB_HOST: &str = "db.restart.test";
const DB_PORT: u16 = 26257;
const PINNED_NET: &str = "192.0.2.0/24";
/// What the lab's resolver answers for `DB_HOST`: outside the pinned set.
const FORGED: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 77);
const RESTARTED: &str = "pinwatch-restarted";
const DIVERGED: &str = "dns-answer-diverged";
const PEER: &str = "unexpected-db-peer";

fn orders() -> Database {
    Database::new(ORDERS, &[DB_HOST], &[DB_PORT], &[PINNED_NET])
}

fn lab() -> Fixture {
    require_root();
    let fx = Fixture::start(DnsRecords::new().host(DB_HOST, FORGED), vec![orders()]);
    fx.lab.add_peer_address(IpAddr::V4(FORGED));
    fx
}

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

fn first(alerts: &[Value], what: impl Fn(&Value) -> bool) -> Option<&Value> {
    alerts.iter().find(|a| what(a))
}

/// Waits until `what` matches an alert; every alert so far.
fn wait_for(fx: &Fixture, what: impl Fn(&Value) -> bool) -> Vec<Value> {
    fx.alerts().wait_for(ALERT_TIMEOUT, what)
}

fn attached_on_cgroup_root() -> Vec<(String, u32)> {
    attached_pinwatch_programs(&cgroup_root())
}

/// Nothing of pinwatch's is left: no pin, nothing on the cgroup root, and
/// no program loaded at all (so none is attached to any interface either).
fn assert_nothing_left(pin_path: &Path, context: &str) {
    assert!(
        !pin_path.exists(),
        "{} is still there: {:?}\n{context}",
        pin_path.display(),
        std::fs::read_dir(pin_path).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
    assert_eq!(
        attached_on_cgroup_root(),
        [],
        "pinwatch programs still attached to the cgroup root\n{context}"
    );
    assert_all_unloaded(context);
}

#[test]
fn what_happens_while_no_daemon_runs_is_judged_with_its_own_time_after_a_restart() {
    let mut fx = lab();
    let pin_path = fx.daemon.pin_path();
    assert!(pin_path.join("links").exists(), "pinned under {pin_path:?}");
    let status = fx.daemon.kill().expect("the daemon was running");
    assert_eq!(status.code(), None, "killed by SIGKILL: {status}");

    // While no daemon runs: a forged answer, and a connect to it.
    let before = now_secs();
    let answer = dig(&fx.lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(answer.addresses(), [IpAddr::V4(FORGED)], "{}", answer.raw);
    let client = connect(&fx.lab.client, FORGED, DB_PORT);
    let after = now_secs();
    // The restart comes clearly later than what it judges.
    std::thread::sleep(Duration::from_secs(2));
    fx.daemon.start_again();
    let restarted_at = now_secs();

    let alerts = wait_for(&fx, |a| action(a) == RESTARTED);
    let alerts = {
        let pid = u64::from(client.pid);
        let both = |alerts: &[Value]| {
            first(alerts, |a| action(a) == DIVERGED).is_some()
                && first(alerts, |a| {
                    action(a) == PEER
                        && field(a, "process.pid").and_then(Value::as_u64) == Some(pid)
                })
                .is_some()
        };
        if both(&alerts) {
            alerts
        } else {
            wait_for(&fx, |_| both(&fx.alerts().read()))
        }
    };
    let context = format!("alerts:\n{}\n{}", lines(&alerts), fx.daemon.dump());
    let diverged = first(&alerts, |a| {
        action(a) == DIVERGED && str_field(a, "dns.question.name") == DB_HOST
    })
    .unwrap_or_else(|| panic!("no {DIVERGED} for {DB_HOST}:\n{context}"));
    let peer = first(&alerts, |a| {
        action(a) == PEER
            && field(a, "process.pid").and_then(Value::as_u64) == Some(u64::from(client.pid))
    })
    .unwrap_or_else(|| panic!("no {PEER} for pid {}:\n{context}", client.pid));
    assert_eq!(
        ip_field(peer, "destination.ip"),
        IpAddr::V4(FORGED),
        "{context}"
    );
    // Stamped when they happened, not when the daemon came back. The
    // kernel's coarse clock lags by a tick at most.
    for alert in [diverged, peer] {
        let at = timestamp_secs(alert);
        assert!(
            at >= before - 0.05 && at <= after + 0.05,
            "{} stamped {at}, outside [{before}, {after}] when it happened (restart at {restarted_at}):\n{context}",
            action(alert)
        );
    }

    let gap = first(&alerts, |a| action(a) == RESTARTED).expect("waited for it");
    assert_ecs_base(gap, RESTARTED);
    assert_eq!(
        field(gap, "event.severity"),
        Some(&Value::from(2)),
        "{context}"
    );
    let gap_seconds = field(gap, "pinwatch.restart.gap_seconds")
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no gap length:\n{context}"));
    assert!(
        gap_seconds >= 2.0 && gap_seconds < restarted_at - before + 2.0,
        "gap {gap_seconds} s:\n{context}"
    );
    let backlog = field(gap, "pinwatch.restart.backlog_records").and_then(Value::as_u64);
    assert!(
        backlog.is_some_and(|n| n >= 3),
        "the query, the answer and the connect at least were in the backlog: {backlog:?}\n{context}"
    );
    assert_eq!(
        field(gap, "pinwatch.restart.records_lost").and_then(Value::as_u64),
        Some(0),
        "{context}"
    );
    assert!(
        alerts.iter().filter(|a| action(a) == RESTARTED).count() == 1,
        "one gap alert:\n{context}"
    );
    assert!(
        alerts.iter().all(|a| action(a) != "event-loss"),
        "nothing was lost:\n{context}"
    );
}

#[test]
fn a_clean_stop_leaves_nothing_attached_or_pinned() {
    let mut fx = lab();
    let pin_path = fx.daemon.pin_path();
    assert!(
        pin_path.join("links").join("pw_connect4").exists(),
        "pinned while running"
    );
    let status = fx.daemon.stop().expect("the daemon was running");
    assert_eq!(status.code(), Some(0), "{}", fx.daemon.dump());
    assert_nothing_left(&pin_path, &fx.daemon.dump());
}

#[test]
fn unload_removes_what_a_killed_daemon_left_and_refuses_while_one_runs() {
    require_root();
    let mut daemon = Daemon::start(&DaemonConfig {
        databases: vec![orders()],
        trusted_resolvers: Vec::new(),
    });
    let pin_path = daemon.pin_path();
    let config_path = daemon.config_path().to_owned();
    let unload = || {
        Command::new(pinwatch_bin())
            .arg("unload")
            .arg("-c")
            .arg(&config_path)
            .output()
            .expect("run pinwatch unload")
    };
    let refused = unload();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "unload while the daemon runs: {refused:?}"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("pinwatch is running"),
        "{refused:?}"
    );
    assert!(pin_path.exists(), "a refused unload touches nothing");

    daemon.kill();
    assert!(
        !attached_on_cgroup_root().is_empty(),
        "a killed daemon's programs stay attached"
    );
    let done = unload();
    assert!(done.status.success(), "pinwatch unload: {done:?}");
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("pinwatch unloaded"),
        "{done:?}"
    );
    assert_nothing_left(&pin_path, &daemon.dump());
}

/// A watched port nothing listens on: connects to it are refused at once
/// by loopback, and each leaves one connect record.
const FLOOD_PORT: u16 = 26299;
/// More connect records than the 4 MiB ring buffer holds (88 bytes each,
/// 96 with the ring's header: 43,690 fit).
const FLOOD: u32 = 60_000;
const RING_CAPACITY_CONNECTS: u64 = (4 << 20) / 96;

fn local_db(port: u16, pinned: &str) -> DaemonConfig {
    DaemonConfig {
        databases: vec![Database::new(
            "local",
            &["db.local.test"],
            &[port],
            &[pinned],
        )],
        trusted_resolvers: Vec::new(),
    }
}

/// The pinned map `name` of the daemon pinned at `pin_path`.
fn pinned_map(pin_path: &Path, name: &str) -> MapData {
    let dir = std::fs::read_dir(pin_path)
        .expect("read the pin path")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("maps-"))
        })
        .unwrap_or_else(|| panic!("no maps-KEY directory under {}", pin_path.display()));
    MapData::from_pin(dir.join(name)).unwrap_or_else(|e| panic!("open pinned {name}: {e}"))
}

/// What the kernel lost since the daemon last reported: the sum of
/// `EVENTS_LOST` over CPUs and slots, less what `DAEMON` says was reported.
fn unreported_losses(pin_path: &Path) -> u64 {
    let lost: PerCpuArray<_, u64> =
        PerCpuArray::try_from(Map::PerCpuArray(pinned_map(pin_path, "EVENTS_LOST")))
            .expect("EVENTS_LOST is a per-CPU array");
    let daemon: Array<_, u64> =
        Array::try_from(Map::Array(pinned_map(pin_path, "DAEMON"))).expect("DAEMON is an array");
    (0..4u32)
        .map(|slot| {
            let total: u64 = lost.get(&slot, 0).expect("read EVENTS_LOST").iter().sum();
            total - daemon.get(&(2 + slot), 0).expect("read DAEMON")
        })
        .sum()
}

fn flood(port: u16, count: u32) {
    let to = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    for _ in 0..count {
        let _ = TcpStream::connect_timeout(&to, Duration::from_millis(200));
    }
}

#[test]
fn losses_while_no_daemon_runs_are_counted_exactly_in_the_gap_alert_and_event_loss() {
    require_root();
    // Pinned: the flood raises no alert of its own, only records.
    let mut daemon = Daemon::start(&local_db(FLOOD_PORT, "127.0.0.0/8"));
    let pin_path = daemon.pin_path();
    daemon.kill();
    flood(FLOOD_PORT, FLOOD);
    let lost = unreported_losses(&pin_path);
    assert!(
        lost >= u64::from(FLOOD) - RING_CAPACITY_CONNECTS,
        "the flood of {FLOOD} connects overfilled the ring buffer: {lost} lost"
    );

    daemon.start_again();
    let alerts = daemon
        .alerts()
        .wait_for(Duration::from_secs(60), |a| action(a) == RESTARTED);
    let context = format!("alerts:\n{}\n{}", lines(&alerts), daemon.dump());
    let gap = first(&alerts, |a| action(a) == RESTARTED).expect("waited for it");
    assert_eq!(
        field(gap, "pinwatch.restart.records_lost").and_then(Value::as_u64),
        Some(lost),
        "{context}"
    );
    let backlog = field(gap, "pinwatch.restart.backlog_records")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    assert!(
        backlog + lost >= u64::from(FLOOD),
        "every connect is in the backlog or counted lost: {backlog} + {lost}\n{context}"
    );
    let reported: u64 = alerts
        .iter()
        .filter(|a| action(a) == "event-loss")
        .filter_map(|a| field(a, "pinwatch.events_lost.count").and_then(Value::as_u64))
        .sum();
    assert_eq!(reported, lost, "event-loss counts:\n{context}");
    assert!(
        alerts
            .iter()
            .filter(|a| action(a) == "event-loss")
            .all(|a| str_field(a, "pinwatch.events_lost.origin") == "kernel-connect"),
        "{context}"
    );
}

/// Connects to distinct unpinned loopback addresses (127.1.0.0 + i), one
/// every `pace`, until `stop`; each raises its own `unexpected-db-peer`
/// (the fold key holds the address). Returns the addresses connected to.
fn traffic(port: u16, pace: Duration, stop: &std::sync::atomic::AtomicBool) -> Vec<Ipv4Addr> {
    let mut sent = Vec::new();
    let mut i: u32 = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i);
        let _ = TcpStream::connect_timeout(
            &std::net::SocketAddr::from((ip, port)),
            Duration::from_millis(200),
        );
        sent.push(ip);
        i += 1;
        std::thread::sleep(pace);
    }
    sent
}

#[test]
fn an_upgrade_in_place_loses_no_record_and_never_detaches_a_hook() {
    require_root();
    let mut daemon = Daemon::start(&local_db(FLOOD_PORT, "192.0.2.0/24"));
    let old_pid = daemon.pid().expect("running");
    let pin_path = daemon.pin_path();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (sent, status) = std::thread::scope(|scope| {
        let flowing = scope.spawn(|| traffic(FLOOD_PORT, Duration::from_millis(2), &stop));
        std::thread::sleep(Duration::from_millis(500));
        // The documented way: `pinwatch run --handover` beside the old one.
        let status = daemon.take_over();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (flowing.join().expect("the traffic thread"), status)
    });
    assert_eq!(
        status.code(),
        Some(0),
        "the old daemon handed over: {}",
        daemon.dump()
    );
    assert_ne!(daemon.pid(), Some(old_pid));
    assert!(sent.len() > 100, "traffic flowed: {} connects", sent.len());
    let last = sent.last().copied().expect("some connects");
    let alerts = daemon.alerts().wait_for(Duration::from_secs(30), |a| {
        action(a) == PEER
            && field(a, "destination.ip").and_then(Value::as_str) == Some(&last.to_string())
    });
    let context = daemon.dump();
    let seen: std::collections::BTreeSet<String> = alerts
        .iter()
        .filter(|a| action(a) == PEER)
        .filter_map(|a| field(a, "destination.ip").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let missed: Vec<&Ipv4Addr> = sent
        .iter()
        .filter(|ip| !seen.contains(&ip.to_string()))
        .collect();
    // A connect while a hook was detached would leave no record, and one
    // the ring could not hold would be lost: either shows here.
    assert!(
        missed.is_empty(),
        "{} of {} connects during the handover were not seen: {missed:?}\n{context}",
        missed.len(),
        sent.len()
    );
    assert!(
        alerts.iter().all(|a| action(a) != "event-loss"),
        "no record lost:\n{context}"
    );
    let gap = first(&alerts, |a| action(a) == RESTARTED)
        .unwrap_or_else(|| panic!("the new daemon reports the handover's gap:\n{context}"));
    assert_eq!(
        field(gap, "pinwatch.restart.records_lost").and_then(Value::as_u64),
        Some(0),
        "{context}"
    );
    assert!(pin_path.join("links").join("pw_connect4").exists());
}
