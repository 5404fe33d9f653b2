//! `[config] watch = true`: the configuration updated the way Kubernetes
//! updates a mounted ConfigMap (a new `..<timestamp>` directory, the
//! `..data` symlink renamed over the old one) is reloaded without a signal;
//! a broken one is refused with `config-reload-failed`.
//!
//! Run serially, as root, after building the daemon:
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test watch -- --test-threads=1
use std::{
    fs,
    net::IpAddr,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, DNS_V4, Daemon, DaemonConfig, Database, DnsRecords, Dnsmasq, Lab, dig, field,
    pinwatch_bin, poll, str_field,
};
use serde_json::Value;

const DB_HOST: &str = "db.lab.test";
const FORGED: &str = "203.0.113.66";
const DIVERGED: &str = "dns-answer-diverged";

/// A ConfigMap volume: `pinwatch.toml -> ..data/pinwatch.toml`, with
/// `..data` pointing at the current generation's directory.
struct ConfigMapDir {
    root: PathBuf,
    generation: u32,
}

impl ConfigMapDir {
    fn create(root: PathBuf, text: &str) -> ConfigMapDir {
        fs::create_dir_all(&root).unwrap();
        let mut dir = ConfigMapDir {
            root,
            generation: 0,
        };
        dir.publish(text);
        symlink("..data/pinwatch.toml", dir.file()).unwrap();
        dir
    }

    fn file(&self) -> PathBuf {
        self.root.join("pinwatch.toml")
    }

    /// What the kubelet's atomic writer does: write the new generation,
    /// point `..data_tmp` at it, rename that over `..data`, remove the old.
    fn publish(&mut self, text: &str) {
        let old = (self.generation > 0).then(|| self.generation_dir(self.generation));
        self.generation += 1;
        let name = generation_name(self.generation);
        let new = self.root.join(&name);
        fs::create_dir(&new).unwrap();
        fs::write(new.join("pinwatch.toml"), text).unwrap();
        let tmp = self.root.join("..data_tmp");
        symlink(&name, &tmp).unwrap();
        fs::rename(&tmp, self.root.join("..data")).unwrap();
        if let Some(old) = old {
            fs::remove_dir_all(old).unwrap();
        }
    }

    fn generation_dir(&self, generation: u32) -> PathBuf {
        self.root.join(generation_name(generation))
    }
}

fn generation_name(generation: u32) -> String {
    format!("..2026_12_01_00_00_0{generation}.000000001")
}

fn config_text(pinned: &[&str], alerts: &Path, socket: &Path) -> String {
    let config = DaemonConfig {
        databases: vec![Database::new("orders", &[DB_HOST], &[26257], pinned)],
        trusted_resolvers: vec![DNS_V4.into()],
    };
    format!(
        "{}\n[config]\nwatch = true\n",
        config.to_toml(alerts, socket)
    )
}

fn verdict(daemon: &Daemon) -> Option<String> {
    let status = daemon.status_json();
    status["databases"][0]["last_answers"][DB_HOST]["verdict"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn a_configmap_swap_reloads_and_a_broken_one_is_refused() {
    let lab = Lab::new();
    let forged: IpAddr = FORGED.parse().unwrap();
    let _dnsmasq = Dnsmasq::start(&lab, &DnsRecords::new().host(DB_HOST, forged));
    let mut volume = None;
    let mut paths = None;
    let daemon = Daemon::start_with_file(&pinwatch_bin(), |dir, alerts, socket| {
        let dir = ConfigMapDir::create(
            dir.join("configmap"),
            &config_text(&["192.0.2.0/24"], alerts, socket),
        );
        let file = dir.file();
        volume = Some(dir);
        paths = Some((alerts.to_owned(), socket.to_owned()));
        file
    });
    let mut volume = volume.unwrap();
    let (alerts, socket) = paths.unwrap();
    let first_hash = daemon.status_json()["config"]["hash"].clone();

    let answer = dig(&lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(answer.addresses(), [forged], "{}", answer.raw);
    daemon
        .alerts()
        .wait_for(ALERT_TIMEOUT, |a| str_field(a, "event.action") == DIVERGED);
    assert_eq!(verdict(&daemon).as_deref(), Some("diverged"));

    // The forged address is pinned now: the same answer is in the set.
    let wider = config_text(&["192.0.2.0/24", "203.0.113.0/24"], &alerts, &socket);
    let outcome = daemon.reload_after("the ConfigMap swap", || volume.publish(&wider));
    assert!(
        outcome.is_ok(),
        "the new file was refused: {outcome:?}\n{}",
        daemon.dump()
    );
    let status = daemon.status_json();
    assert_ne!(status["config"]["hash"], first_hash, "{status}");
    assert!(
        status["databases"][0]["pinned"]
            .to_string()
            .contains("203.0.113.0/24"),
        "{status}"
    );
    let answer = dig(&lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(answer.addresses(), [forged], "{}", answer.raw);
    let pinned = poll(ALERT_TIMEOUT, || {
        (verdict(&daemon).as_deref() == Some("pinned")).then_some(())
    });
    assert!(
        pinned.is_some(),
        "the answer after the swap was not judged pinned:\n{}",
        daemon.dump()
    );
    let diverged = daemon
        .alerts()
        .read()
        .iter()
        .filter(|a| str_field(a, "event.action") == DIVERGED)
        .count();
    assert_eq!(
        diverged,
        1,
        "only the answer before the swap diverged:\n{}",
        daemon.dump()
    );

    // A broken generation: refused whole, the previous file stays in force.
    let broken = wider.replace("203.0.113.0/24", "203.0.113.300/24");
    let outcome = daemon.reload_after("the broken ConfigMap swap", || volume.publish(&broken));
    let error = outcome.expect_err("a bad pinned entry must be refused");
    assert!(error.contains("203.0.113.300/24"), "{error}");
    let failed = daemon.alerts().wait_for(ALERT_TIMEOUT, |a| {
        str_field(a, "event.action") == "config-reload-failed"
    });
    let alert = failed
        .iter()
        .find(|a| str_field(a, "event.action") == "config-reload-failed")
        .unwrap();
    assert!(
        str_field(alert, "message").contains("203.0.113.300/24"),
        "{alert}"
    );
    assert_eq!(
        daemon.status_json()["config"]["hash"],
        status["config"]["hash"]
    );
    assert!(
        field(alert, "event.severity").and_then(Value::as_u64) == Some(2),
        "{alert}"
    );
}
