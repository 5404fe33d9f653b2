//! `pinwatch learn` against the real kernel: a resolver in a lab answers two
//! addresses for a database hostname while learn watches; the TOML it
//! prints pins exactly those, says which resolver gave them, passes
//! `pinwatch check-config`, and no file was changed.
//!
//! Run serially, as root, after `cargo build -p pinwatch`, under the shared
//! kernel-test lock:
//!     flock /tmp/pinwatch-kernel.lock cargo test -p pinwatch-integration-tests --test learn -- --test-threads=1
use std::{
    collections::BTreeMap,
    fs,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use pinwatch_integration_tests::{
    DNS_V4, DnsRecords, Dnsmasq, Lab, check_config, dig, learn, require_root,
};

const DB_HOST: &str = "db.lab.test";
const GENUINE: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 11)];

const CONFIG: &str = r#"[[database]]
name = "orders"
hostnames = ["db.lab.test"]
ports = [26257, 5432]
pinned = ["192.0.2.0/24"]

[[database]]
name = "billing"
hostnames = ["billing.lab.test"]
pinned = ["198.51.100.20"]
"#;

/// Every file under `dir` with its bytes and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).expect("read the temp dir") {
        let path = entry.expect("dir entry").path();
        let meta = fs::metadata(&path).expect("stat");
        files.insert(
            path.clone(),
            (
                fs::read(&path).expect("read"),
                meta.modified().expect("mtime"),
            ),
        );
    }
    files
}

#[test]
fn learn_pins_exactly_the_answered_addresses_and_changes_no_file() {
    require_root();
    let lab = Lab::new();
    let records = GENUINE
        .iter()
        .fold(DnsRecords::new(), |records, &ip| records.host(DB_HOST, ip));
    let _dnsmasq = Dnsmasq::start(&lab, &records);
    let config_dir = tempfile::tempdir().expect("temp dir");
    let config = config_dir.path().join("pinwatch.toml");
    fs::write(&config, CONFIG).expect("write the config");
    let before = snapshot(config_dir.path());

    let config_arg = config.to_str().expect("UTF-8 temp path");
    let run = learn(
        &["learn", "--for", "3s", "-c", config_arg],
        Duration::from_secs(20),
        || {
            // Case and trailing dot differ from the configuration on purpose.
            let answer = dig(&lab.client, DNS_V4, "DB.Lab.Test.", "A");
            let mut got = answer.addresses();
            got.sort();
            assert_eq!(
                got,
                GENUINE.map(IpAddr::V4),
                "dnsmasq's answer:\n{}",
                answer.raw
            );
        },
    );
    let context = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    eprintln!("{context}");
    assert_eq!(run.status.code(), Some(0), "{context}");
    assert_eq!(
        snapshot(config_dir.path()),
        before,
        "learn must change no file"
    );

    // The resolver, the answer count and the TTL are in the `# seen` line.
    let seen = run
        .stdout
        .lines()
        .find(|line| line.starts_with(&format!("# seen {DB_HOST}:")))
        .unwrap_or_else(|| panic!("no `# seen {DB_HOST}` line; {context}"));
    for part in [&DNS_V4.to_string(), "1 answer ", "TTL 300 s"] {
        assert!(seen.contains(part), "{part:?} missing from {seen:?}");
    }
    // The database nobody asked for is left out, and stderr says so.
    let omitted = "database \"billing\" omitted: no answers seen for billing.lab.test";
    assert!(run.stdout.contains(&format!("# {omitted}")), "{context}");
    assert!(run.stderr.contains(omitted), "{context}");

    // What pinwatch itself reads from the printed text, as a file.
    let out_dir = tempfile::tempdir().expect("temp dir");
    let learned = out_dir.path().join("learned.toml");
    fs::write(&learned, &run.stdout).expect("write the learned TOML");
    let (status, summary) = check_config(&learned);
    assert_eq!(
        status.code(),
        Some(0),
        "check-config refused it:\n{summary}"
    );
    let expected = [
        "database \"orders\": mode monitor",
        "  hostnames db.lab.test",
        "  ports 26257, 5432",
        "  pinned 192.0.2.10/32, 192.0.2.11/32",
    ];
    for line in expected {
        assert!(
            summary.lines().any(|l| l == line),
            "check-config summary lacks {line:?}:\n{summary}"
        );
    }
    assert_eq!(
        summary
            .lines()
            .filter(|l| l.starts_with("database "))
            .count(),
        1,
        "only the answered database is pinned:\n{summary}"
    );
}
