//! Kernel integration tests of what pinwatch says about the kernel it runs
//! on: every program attached or reported with why not, the features the
//! start-up probes found, and the interface hook's coverage. `cargo xtask
//! vmtest` runs these on Debian's 5.10, 6.1 and 6.12 kernels too.
//!
//! Run serially, as root, after building the daemon:
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test kernels -- --test-threads=1
use std::{process::Command, time::Duration};

use pinwatch_integration_tests::{
    Daemon, DaemonConfig, Database, PINWATCH_PROGRAMS, Settings, free_loopback_addr, http, poll,
    require_root, scrape,
};
use serde_json::Value;

const INTERFACE_HOOK: &str = "pw_dns_iface";

fn config() -> DaemonConfig {
    DaemonConfig {
        databases: vec![Database::new(
            "kernels-orders",
            &["kernels-db.lab.test"],
            &[26313],
            &["192.0.2.0/24"],
        )],
        trusted_resolvers: vec![],
    }
}

fn program<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["programs"]
        .as_array()
        .and_then(|programs| programs.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no program {name} in {status}"))
}

fn reasons(status: &Value) -> Vec<String> {
    status["health"]["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no health.reasons in {status}"))
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// (major, minor) of the running kernel.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The features the start-up probes look for, and the release that
/// brought each.
const FEATURES: [(&str, (u32, u32)); 2] = [("coarse-clock", (5, 11)), ("tcx", (6, 6))];

#[test]
fn every_program_is_attached_or_degraded_with_a_reason() {
    require_root();
    let metrics = free_loopback_addr();
    let daemon = Daemon::start_with_settings(
        &config(),
        &Settings {
            metrics_listen: Some(metrics),
            ..Settings::default()
        },
    );
    let status = daemon.status_json();
    let reasons = reasons(&status);
    for name in PINWATCH_PROGRAMS {
        let p = program(&status, name);
        if let Some(error) = p.get("error") {
            assert!(
                reasons.iter().any(|r| r.contains(name)),
                "{name} is not running ({error}) but no health reason names it: {reasons:?}"
            );
        } else if name != INTERFACE_HOOK {
            assert_eq!(
                p["attached"], true,
                "{name} neither attached nor reported: {p}"
            );
        }
    }
    let iface = program(&status, INTERFACE_HOOK);
    assert!(
        iface["interfaces"]["covered"].is_array() && iface["interfaces"]["failed"].is_array(),
        "the interface hook reports its interfaces, covered and failed: {iface}"
    );

    // The probes' answers match what this kernel's version has, and each
    // feature it lacks degrades health with a reason naming what replaces it.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let release = release.trim();
    assert_eq!(status["kernel"]["release"], release, "{status}");
    let feature = |name: &str| {
        status["kernel"]["features"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["name"] == name))
            .unwrap_or_else(|| panic!("feature {name} not reported: {status}"))
            .clone()
    };
    let version = kernel_version();
    let mut lacking = Vec::new();
    for (name, since) in FEATURES {
        let f = feature(name);
        let expected = version >= since;
        assert_eq!(f["available"], expected, "{name} on {version:?}: {f}");
        assert_eq!(
            f.get("fallback").is_some(),
            !expected,
            "a missing feature says what replaces it: {f}"
        );
        let limit = format!("kernel {release} lacks {name}: ");
        let reason = reasons.iter().find(|r| r.starts_with(&limit));
        assert_eq!(
            reason.is_some(),
            !expected,
            "a health reason names {name} exactly when the kernel lacks it: {reasons:?}"
        );
        if let Some(reason) = reason {
            lacking.push(reason.clone());
        }
    }
    let kind = iface["kind"].as_str().unwrap_or_default();
    if version >= (6, 6) {
        assert_eq!(kind, "tcx/ingress");
    } else {
        assert_eq!(kind, "tc/ingress (clsact)");
        assert!(
            lacking.iter().any(|r| r.contains("legacy tc")),
            "the reason says the interface hook is attached with legacy tc: {lacking:?}"
        );
    }
    let health = status["health"]["status"].as_str();
    if reasons.is_empty() {
        assert_eq!(health, Some("healthy"), "{status}");
    } else {
        assert_eq!(health, Some("degraded"), "degraded by {reasons:?}");
    }
    assert_eq!(
        daemon.status().code,
        Some(if reasons.is_empty() { 0 } else { 1 }),
        "status exits 1 while degraded: {reasons:?}"
    );

    // A kernel limit is no reason to restart: /healthz answers 200 and
    // names it; the metrics count it.
    let healthz = http(metrics, "GET", "/healthz");
    let missing_detection = reasons.len() > lacking.len();
    assert_eq!(
        healthz.status,
        if missing_detection { 503 } else { 200 },
        "{}",
        healthz.body
    );
    for limit in &lacking {
        assert!(
            healthz
                .body
                .lines()
                .any(|l| l == format!("degraded: {limit}")),
            "/healthz names {limit:?}:\n{}",
            healthz.body
        );
    }
    let scrape = scrape(metrics);
    assert_eq!(
        scrape.value("pinwatch_health_reasons{cause=\"kernel-limit\"}"),
        Some(lacking.len() as f64),
        "{}",
        scrape.body
    );
    for (name, since) in FEATURES {
        assert_eq!(
            scrape.value(&format!("pinwatch_kernel_feature{{feature=\"{name}\"}}")),
            Some(if version >= since { 1.0 } else { 0.0 }),
            "{}",
            scrape.body
        );
    }
}

/// An interface made for the test, deleted on drop.
struct Interface(String);

impl Interface {
    fn create(args: &[&str], name: String) -> Interface {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let interface = Interface(name);
        let up = Command::new("ip")
            .args(["link", "set", &interface.0, "up"])
            .output()
            .unwrap();
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        interface
    }
}

impl Drop for Interface {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

#[test]
fn an_interface_the_hook_refuses_is_reported_and_degrades_health() {
    require_root();
    let pid = std::process::id();
    // A tun device has no Ethernet header: the hook cannot read it, and
    // responses arriving on it are not seen at the interface.
    let tun_name = format!("pwt{pid}t");
    let tun = Interface::create(
        &["tuntap", "add", "dev", &tun_name, "mode", "tun"],
        tun_name.clone(),
    );
    let veth_name = format!("pwt{pid}v");
    let _veth = Interface::create(
        &[
            "link",
            "add",
            &veth_name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("pwt{pid}w"),
        ],
        veth_name.clone(),
    );
    let daemon = Daemon::start(&config());
    let status = daemon.status_json();
    let iface = program(&status, INTERFACE_HOOK);
    let covered = iface["interfaces"]["covered"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        covered.iter().any(|n| n == veth_name.as_str()),
        "the veth is covered: {iface}"
    );
    let failed = iface["interfaces"]["failed"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tun_failure = failed
        .iter()
        .find(|f| f["name"] == tun_name.as_str())
        .unwrap_or_else(|| panic!("{tun_name} is not listed as failed: {iface}"));
    assert!(
        tun_failure["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not an Ethernet interface"),
        "{tun_failure}"
    );
    assert_eq!(status["health"]["status"], "degraded", "{status}");
    let degraded_by = reasons(&status);
    assert!(
        degraded_by
            .iter()
            .any(|r| r.contains(INTERFACE_HOOK) && r.contains(&tun_name)),
        "a reason names the hook and the interface: {degraded_by:?}"
    );
    let exit = daemon.status().code;
    assert_eq!(exit, Some(1), "status exits 1 while degraded");

    // Gone, and the reason with it.
    drop(tun);
    let healed = poll(Duration::from_secs(10), || {
        let status = daemon.status_json();
        (!reasons(&status).iter().any(|r| r.contains(&tun_name))).then_some(status)
    });
    assert!(
        healed.is_some(),
        "the reason outlived the interface: {}",
        daemon.status_json()
    );
}
