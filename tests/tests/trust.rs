//! Trust follows the workload: with `[dns] trusted_resolvers` left at its
//! default (the host's resolv.conf, which does not name the lab resolver),
//! a process whose own resolv.conf names the resolver it asks is trusted,
//! and one that asks another is not.
//!
//! Run as root, under the kernel lock, after building the daemon:
//!     cargo build -p pinwatch
//!     flock /tmp/pinwatch-kernel.lock cargo test -p pinwatch-integration-tests --test trust -- --test-threads=1
use std::net::{IpAddr, Ipv4Addr};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, ContainerSpec, DNS_V4, Daemon, DaemonConfig, Database, DnsRecords, Dnsmasq, Lab,
    LingeringDig, Podman, ResolvConf, assert_ecs_base, assert_ecs_fields, field, ip_list_field,
    lines, str_field,
};
use serde_json::Value;

const DB_HOST: &str = "db.lab.test";
const GENUINE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// A resolver nobody runs: named by a resolv.conf the client then ignores.
const ELSEWHERE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);
const UNTRUSTED: &str = "dns-untrusted-resolver";

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

#[test]
fn a_process_asking_the_resolver_its_resolv_conf_names_is_trusted() {
    let lab = Lab::new();
    let records = DnsRecords::new().host(DB_HOST, GENUINE);
    let _dnsmasq = Dnsmasq::start(&lab, &records);
    let host_nameservers = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert!(
        !host_nameservers.contains(&DNS_V4.to_string()),
        "the host's resolv.conf must not name the lab resolver for this test"
    );
    // No trusted_resolvers: the default set is the host's resolv.conf.
    let daemon = Daemon::start(&DaemonConfig {
        databases: vec![Database::new(
            "orders",
            &[DB_HOST],
            &[26257],
            &["192.0.2.0/24"],
        )],
        trusted_resolvers: Vec::new(),
    });
    let podman = Podman::with_busybox();

    // `ip netns exec` mounts /etc/netns/NAME/resolv.conf: it names the lab resolver.
    // The clients stay alive until their alerts are judged: trust is read
    // from the asking process's own resolv.conf while it runs.
    let resolv = ResolvConf::set(&lab.client, DNS_V4);
    let trusting = LingeringDig::ask(&lab.client, DNS_V4, DB_HOST, "A");
    let answer = trusting.answer();
    assert_eq!(answer.addresses(), [IpAddr::V4(GENUINE)], "{}", answer.raw);
    // A container whose resolv.conf names it (`--dns`).
    let container = podman.run(
        "pwt-trusting",
        &ContainerSpec {
            netns: Some(&lab.client),
            dns: Some(DNS_V4.into()),
            ..ContainerSpec::default()
        },
    );
    let lookup = podman.exec(&container, &["nslookup", DB_HOST, &DNS_V4.to_string()]);
    assert!(String::from_utf8_lossy(&lookup.stdout).contains(&GENUINE.to_string()));
    // Then a client told to ask elsewhere asks the lab resolver anyway.
    drop(resolv);
    let _resolv = ResolvConf::set(&lab.client, ELSEWHERE);
    let _ignoring = LingeringDig::ask(&lab.client, DNS_V4, DB_HOST, "A");

    // Events are judged in order: once the last client's alert is in, the
    // first two would be too.
    let log = daemon.alerts();
    let all = log.wait_for(ALERT_TIMEOUT, |a| action(a) == UNTRUSTED);
    let untrusted: Vec<&Value> = all.iter().filter(|a| action(a) == UNTRUSTED).collect();
    assert_eq!(
        untrusted.len(),
        1,
        "only the client that ignored its resolv.conf:\n{}",
        lines(&all)
    );
    let alert = untrusted[0];
    assert_ecs_base(alert, UNTRUSTED);
    assert_ecs_fields(alert);
    assert_eq!(str_field(alert, "process.name"), "dig", "{alert}");
    assert!(field(alert, "container").is_none(), "{alert}");
    let path = str_field(alert, "pinwatch.resolv_conf.path");
    assert!(
        path.ends_with(&format!("/netns/{}/resolv.conf", lab.client.name())),
        "{alert}"
    );
    assert_eq!(
        ip_list_field(alert, "pinwatch.resolv_conf.nameservers"),
        [IpAddr::V4(ELSEWHERE)],
        "{alert}"
    );
    assert!(
        all.iter().all(|a| field(a, "container").is_none()),
        "the container got no alert:\n{}",
        lines(&all)
    );
}
