//! Self-tests of the lab harness; they need root but not pinwatch.
//!
//! Run serially: `cargo test -p pinwatch-integration-tests -- --test-threads=1`
//! (each test builds its own lab of network namespaces).
use std::{
    fs,
    net::IpAddr,
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    sync::Mutex,
    time::Duration,
};

use pinwatch_integration_tests::{
    CLIENT_V4, CLIENT_V6, DNS_V4, DNS_V6, Daemon, DaemonConfig, Database, DnsRecords, Dnsmasq, Lab,
    NS_PREFIX, connect, dig, pwt_namespaces, require_root,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn our_namespaces() -> Vec<String> {
    let ours = format!("{NS_PREFIX}{}-", std::process::id());
    pwt_namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&ours))
        .collect()
}

#[test]
fn dnsmasq_answers_over_ipv4_and_ipv6_and_everything_is_gone_afterwards() {
    require_root();
    let lab = Lab::new();
    let names = [lab.client.name().to_owned(), lab.dns.name().to_owned()];
    assert_eq!(our_namespaces().len(), 2);
    let records = DnsRecords::new()
        .host("db.lab.test", ip("203.0.113.66"))
        .host("db.lab.test", ip("2001:db8:bad::66"))
        .host("pool.lab.test", ip("192.0.2.10"))
        .host("pool.lab.test", ip("192.0.2.11"))
        .cname("alias.lab.test", "real.lab.test")
        .host("real.lab.test", ip("203.0.113.77"))
        .address("wild.lab.test", ip("203.0.113.9"));
    let dnsmasq = Dnsmasq::start(&lab, &records);
    let dnsmasq_pid = dnsmasq.pid();

    let a = dig(&lab.client, DNS_V4, "db.lab.test", "A");
    assert_eq!(a.status, "NOERROR");
    assert_eq!(a.addresses(), [ip("203.0.113.66")], "{}", a.raw);
    assert_eq!(a.answers[0].name, "db.lab.test.");
    assert!(
        a.answers[0].ttl > 0,
        "dnsmasq should give local answers a TTL: {}",
        a.raw
    );

    let aaaa = dig(&lab.client, DNS_V6, "db.lab.test", "AAAA");
    assert_eq!(aaaa.addresses(), [ip("2001:db8:bad::66")], "{}", aaaa.raw);
    assert_eq!(aaaa.answers[0].rtype, "AAAA");

    let mut pool = dig(&lab.client, DNS_V4, "pool.lab.test", "A").addresses();
    pool.sort();
    assert_eq!(pool, [ip("192.0.2.10"), ip("192.0.2.11")]);

    let upper = dig(&lab.client, DNS_V4, "DB.LAB.TEST", "A");
    assert_eq!(upper.addresses(), [ip("203.0.113.66")], "{}", upper.raw);

    let chain = dig(&lab.client, DNS_V4, "alias.lab.test", "A");
    assert_eq!(chain.answers.len(), 2, "{}", chain.raw);
    assert_eq!(
        (
            chain.answers[0].rtype.as_str(),
            chain.answers[0].data.as_str()
        ),
        ("CNAME", "real.lab.test.")
    );
    assert_eq!(chain.addresses(), [ip("203.0.113.77")]);

    let wild = dig(&lab.client, DNS_V4, "x.wild.lab.test", "A");
    assert_eq!(wild.addresses(), [ip("203.0.113.9")], "{}", wild.raw);

    let unknown = dig(&lab.client, DNS_V4, "nothing.lab.test", "A");
    assert!(unknown.answers.is_empty(), "{}", unknown.raw);
    assert!(
        dnsmasq.log().contains("db.lab.test"),
        "dnsmasq logs queries:\n{}",
        dnsmasq.log()
    );

    drop(dnsmasq);
    assert!(
        !Path::new(&format!("/proc/{dnsmasq_pid}")).exists(),
        "dnsmasq still runs"
    );
    drop(lab);
    let left: Vec<String> = pwt_namespaces()
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

#[test]
fn lab_link_carries_both_families_at_once() {
    require_root();
    let lab = Lab::new();
    // Nothing listens: a refusal proves the round trip, right after setup.
    for (ns, peer) in [
        (&lab.client, IpAddr::V4(DNS_V4)),
        (&lab.client, IpAddr::V6(DNS_V6)),
        (&lab.dns, IpAddr::V4(CLIENT_V4)),
        (&lab.dns, IpAddr::V6(CLIENT_V6)),
    ] {
        let c = connect(ns, peer, 9);
        assert!(
            c.result.starts_with("ConnectionRefusedError"),
            "{} -> {peer}: {c:?}",
            ns.name()
        );
    }
}

#[test]
fn connect_reports_the_pid_of_the_connecting_process() {
    require_root();
    let lab = Lab::new();
    lab.add_peer_address(ip("203.0.113.66"));
    lab.add_peer_address(ip("2001:db8:bad::66"));

    let refused = connect(&lab.client, ip("203.0.113.66"), 26257);
    assert!(refused.pid > 1);
    assert!(
        refused.result.starts_with("ConnectionRefusedError"),
        "{refused:?}"
    );
    assert!(
        !Path::new(&format!("/proc/{}", refused.pid)).exists(),
        "python3 is reaped"
    );

    let refused6 = connect(&lab.client, ip("2001:db8:bad::66"), 26257);
    assert!(
        refused6.result.starts_with("ConnectionRefusedError"),
        "{refused6:?}"
    );
    assert_ne!(refused.pid, refused6.pid);

    // Routed to the dns namespace, which does not forward: no answer, the
    // 1 s timeout ends it.
    let unanswered = connect(&lab.client, ip("192.0.2.10"), 26257);
    assert!(
        !unanswered.result.starts_with("connected"),
        "{unanswered:?}"
    );
}

#[test]
fn guards_clean_up_when_a_test_panics() {
    require_root();
    let seen = Mutex::new(None);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new();
        let dnsmasq = Dnsmasq::start(
            &lab,
            &DnsRecords::new().host("db.lab.test", ip("203.0.113.66")),
        );
        // A stray process in a namespace must not keep it alive either.
        let stray = lab.client.command("sleep").arg("600").spawn().unwrap();
        let names = vec![lab.client.name().to_owned(), lab.dns.name().to_owned()];
        *seen.lock().unwrap() = Some((names, dnsmasq.pid(), stray));
        panic!("deliberate failure inside a lab");
    }));
    assert!(result.is_err());
    let (names, dnsmasq_pid, mut stray) = seen.into_inner().unwrap().expect("the lab was built");
    assert!(
        !Path::new(&format!("/proc/{dnsmasq_pid}")).exists(),
        "dnsmasq survived the panic"
    );
    let status = stray.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the stray process was killed: {status}"
    );
    let left: Vec<String> = pwt_namespaces()
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces survived the panic: {left:?}");
}

/// The Daemon guard against a stand-in that behaves like `pinwatch run`:
/// writes the config, waits for `pinwatch ready`, reads alerts, stops with
/// SIGTERM and sees exit 0.
#[test]
fn daemon_guard_with_a_stand_in_daemon() {
    require_root();
    let dir = std::env::temp_dir().join(format!("pwt-{}-fake", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("fake-pinwatch");
    fs::write(
        &fake,
        r#"#!/bin/sh
[ "$1" = run ] && [ "$2" = -c ] || exit 2
path=$(sed -n 's/^path = "\(.*\)"$/\1/p' "$3")
grep -q '^name = "orders"$' "$3" || exit 2
trap 'echo "fake: bye" >&2; exit 0' TERM
echo "fake: loading" >&2
sleep 0.2
echo "INFO fake: pinwatch ready" >&2
printf '{"event":{"action":"dns-answer-diverged","id":"1"}}\n{"event":{"action":"unexpected-db-peer",' >> "$path"
sleep 0.3
printf '"id":"2"}}\n' >> "$path"
while :; do sleep 0.05; done
"#,
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();

    let config = DaemonConfig {
        databases: vec![Database::new(
            "orders",
            &["db.lab.test"],
            &[26257],
            &["192.0.2.0/24", "2001:db8:2::/64"],
        )],
        trusted_resolvers: vec![DNS_V4.into()],
    };
    let mut daemon = Daemon::start_with_bin(&fake, &config);
    let text = fs::read_to_string(daemon.config_path()).unwrap();
    assert!(
        text.contains(r#"pinned = ["192.0.2.0/24", "2001:db8:2::/64"]"#),
        "{text}"
    );
    assert!(text.contains("sink = \"file\""), "{text}");
    let log = daemon.alerts();
    let first = log.wait_for(Duration::from_secs(5), |a| a["event"]["id"] == "1");
    // The half-written second line is not returned until it is complete.
    assert!(first.iter().all(|a| a["event"]["id"] != "2") || first.len() == 2);
    let both = log.wait_for(Duration::from_secs(5), |a| a["event"]["id"] == "2");
    assert_eq!(both.len(), 2);
    let status = daemon.stop().expect("it was running");
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
    assert!(daemon.stderr().contains("fake: bye"));
    let config_dir = daemon.dir().to_owned();
    drop(daemon);
    assert!(!config_dir.exists(), "the daemon's temp dir is removed");
    fs::remove_dir_all(&dir).unwrap();
}
