//! Normalization, defaults, and the shipped example file.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::*;

#[test]
fn defaults_apply_to_absent_keys() {
    let c = ok(DB);
    let db = &c.databases[0];
    assert_eq!(db.ports, [26257]);
    assert_eq!(db.mode, Mode::Monitor);
    assert_eq!(
        c.alerts,
        AlertSettings {
            sink: AlertSink::Stdout,
            dedup_window: Duration::from_secs(60)
        }
    );
    assert_eq!(
        c.control,
        ControlSettings {
            socket: "/run/pinwatch/pinwatch.sock".into(),
            group: None
        }
    );
    assert_eq!(c.metrics, None);
    assert_eq!(
        c.host,
        HostPaths::default(),
        "plain /proc, /run, cgroup from mountinfo"
    );
    // resolv.conf nameservers first, then the loopback stubs, no repeats.
    let want: Vec<IpAddr> = ["192.0.2.53", "127.0.0.53", "127.0.0.1", "::1"]
        .map(|s| s.parse().unwrap())
        .into();
    assert_eq!(c.dns.trusted_resolvers, want);
    assert_eq!(c.path.as_deref(), Some(Path::new(FILE)));
}

#[test]
fn no_resolv_conf_leaves_loopback_stubs() {
    let c = Config::from_toml(DB, None, &HostDefaults::default()).unwrap();
    assert_eq!(c.dns.trusted_resolvers, LOOPBACK_STUBS);
    assert_eq!(c.path, None);
}

#[test]
fn hostnames_are_lowercased_without_trailing_dot() {
    let text = db_with(
        r#"["cockroach.prod.internal"]"#,
        r#"["Cockroach.PROD.internal.", "cockroach.prod.internal", "_Pg._tcp.db"]"#,
    );
    assert_eq!(
        ok(&text).databases[0].hostnames,
        ["cockroach.prod.internal", "_pg._tcp.db"]
    );
}

#[test]
fn pinned_addresses_are_canonical() {
    let text = db_with(
        r#"["192.0.2.0/24"]"#,
        r#"["192.0.2.7", "2001:DB8::7", "::ffff:198.51.100.9", "203.0.113.0/24", "192.0.2.7"]"#,
    );
    let got: Vec<String> = ok(&text).databases[0]
        .pinned
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "192.0.2.7/32",
            "2001:db8::7/128",
            "198.51.100.9/32",
            "203.0.113.0/24"
        ]
    );
}

#[test]
fn explicit_values_are_kept() {
    let text = format!(
        "{DB}ports = [5432, 26257, 5432]\nmode = \"block\"\n\
         [dns]\ntrusted_resolvers = [\"::ffff:192.0.2.53\", \"2001:db8::53\"]\n\
         [alerts]\nsink = \"file\"\npath = \"/var/log/pinwatch/alerts.ndjson\"\ndedup_window = \"5m\"\n\
         [control]\nsocket = \"/run/pw.sock\"\ngroup = \"pinwatch\"\n\
         [metrics]\nlisten = \"[::1]:9464\"\n"
    );
    let c = ok(&text);
    assert_eq!(c.databases[0].ports, [5432, 26257]);
    assert_eq!(c.databases[0].mode, Mode::Block);
    let want: Vec<IpAddr> = ["192.0.2.53", "2001:db8::53"]
        .map(|s| s.parse().unwrap())
        .into();
    assert_eq!(
        c.dns.trusted_resolvers, want,
        "explicit list gets no stubs added"
    );
    assert_eq!(
        c.alerts.sink,
        AlertSink::File("/var/log/pinwatch/alerts.ndjson".into())
    );
    assert_eq!(c.alerts.dedup_window, Duration::from_secs(300));
    assert_eq!(c.control.group.as_deref(), Some("pinwatch"));
    assert_eq!(c.metrics, Some("[::1]:9464".parse().unwrap()));
    let journald = ok(&format!("{DB}[alerts]\nsink = \"journald\"\n"));
    assert_eq!(journald.alerts.sink, AlertSink::Journald);
}

#[test]
fn watched_ports_is_the_union() {
    let second = db_with(r#"name = "orders""#, r#"name = "pg""#).replace("cockroach", "pg");
    let c = ok(&format!(
        "{DB}ports = [26257, 26258]\n{second}ports = [5432, 26257]\n"
    ));
    assert_eq!(
        c.watched_ports().into_iter().collect::<Vec<_>>(),
        [5432, 26257, 26258]
    );
}

#[test]
fn hash_is_sha256_of_the_text() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(ok(DB).hash, sha256_hex(DB.as_bytes()));
    assert_ne!(ok(DB).hash, ok(&format!("# comment\n{DB}")).hash);
}

#[test]
fn summary_is_normalized() {
    let s = ok(&db_with("cockroach", "COCKROACH")).summary();
    let want = "config /etc/x.toml (sha256 ";
    assert!(s.starts_with(want), "{s}");
    for line in [
        "database \"orders\": mode monitor\n",
        "  hostnames cockroach.prod.internal\n",
        "  ports 26257\n",
        "  pinned 192.0.2.0/24\n",
        "dns trusted_resolvers 192.0.2.53, 127.0.0.53, 127.0.0.1, ::1\n",
        "alerts sink stdout, dedup_window 1m\n",
        "control socket /run/pinwatch/pinwatch.sock (mode 0600)\n",
        "metrics off\n",
        "config watch off\n",
    ] {
        assert!(s.contains(line), "{s:?} lacks {line:?}");
    }
}

#[test]
fn load_reads_a_real_file() {
    let path =
        std::env::temp_dir().join(format!("pinwatch-config-test-{}.toml", std::process::id()));
    std::fs::write(&path, DB).unwrap();
    let c = Config::load(&path);
    std::fs::remove_file(&path).unwrap();
    let c = c.unwrap();
    assert_eq!(c.path.as_deref(), Some(path.as_path()));
    assert_eq!(c.hash, sha256_hex(DB.as_bytes()));
    assert!(
        LOOPBACK_STUBS
            .iter()
            .all(|a| c.dns.trusted_resolvers.contains(a))
    );
}

#[test]
fn example_file_validates() {
    let text = include_str!("../../../../config/pinwatch.toml");
    let c = Config::from_toml(text, Some(Path::new("config/pinwatch.toml")), &host())
        .unwrap_or_else(|e| panic!("config/pinwatch.toml is invalid: {e}"));
    assert_eq!(c.databases.len(), 1);
    let db = &c.databases[0];
    assert_eq!(db.name, "orders");
    assert_eq!(db.hostnames, ["cockroach.prod.internal"]);
    assert_eq!(db.ports, [26257]);
    assert_eq!(db.mode, Mode::Monitor);
    assert_eq!(c.alerts.sink, AlertSink::Stdout);
    assert_eq!(c.control.socket, Path::new(DEFAULT_CONTROL_SOCKET));
    assert_eq!(c.metrics, None);
    assert!(!c.watch);
}

#[test]
fn example_file_commented_keys_validate_too() {
    // Uncommenting the examples must give a valid file as well, so the
    // commented snippets cannot rot either.
    let text = include_str!("../../../../config/pinwatch.toml");
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if is_toml_line(rest) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
        // A file sink is the only one that takes the commented `path`.
        .replace("sink = \"stdout\"", "sink = \"file\"");
    let c = Config::from_toml(&uncommented, None, &host())
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(c.databases.len(), 2);
    assert_eq!(c.databases[1].mode, Mode::Block);
    assert_eq!(c.metrics, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(c.control.group.as_deref(), Some("pinwatch"));
    assert_eq!(c.dns.trusted_resolvers.len(), 2);
    assert_eq!(c.host.proc, Path::new("/host/proc"));
    assert_eq!(
        c.host.cgroup.as_deref(),
        Some(Path::new("/host/sys/fs/cgroup"))
    );
    assert!(c.watch);
}

/// A commented line that is TOML rather than prose: a table header or `key = value`.
fn is_toml_line(s: &str) -> bool {
    let header = s.starts_with('[') && s.ends_with(']') && !s.contains(' ');
    header
        || s.split_once(" = ")
            .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

#[test]
fn dns_thresholds_default_and_parse() {
    let c = ok(DB);
    assert_eq!(
        c.dns.txid_mismatch_threshold,
        DEFAULT_TXID_MISMATCH_THRESHOLD
    );
    assert_eq!(c.dns.query_timeout, DEFAULT_QUERY_TIMEOUT);
    let c = ok(&format!(
        "{DB}[dns]\ntxid_mismatch_threshold = 25\nquery_timeout = \"30s\"\n"
    ));
    assert_eq!(c.dns.txid_mismatch_threshold, 25);
    assert_eq!(c.dns.query_timeout, Duration::from_secs(30));
}

#[test]
fn config_watch_defaults_off_and_parses() {
    assert!(!ok(DB).watch);
    assert!(!ok(&format!("{DB}[config]\n")).watch);
    let c = ok(&format!("{DB}[config]\nwatch = true\n"));
    assert!(c.watch);
    assert!(c.summary().contains("config watch on\n"));
}
