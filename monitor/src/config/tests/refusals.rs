//! One test per refusal: the message names the file, the key and the value.

use std::path::Path;

use super::*;

#[test]
fn refuses_no_database() {
    assert_refused(
        "[alerts]\nsink = \"stdout\"\n",
        "database",
        "at least one [[database]]",
    );
}

#[test]
fn refuses_blank_name() {
    assert_refused(
        &db_with(r#"name = "orders""#, r#"name = " ""#),
        "database[0].name",
        r#"" " must not be blank"#,
    );
}

#[test]
fn refuses_duplicate_name() {
    let two = format!("{DB}{}", db_with("cockroach.prod", "other.prod"));
    assert_refused(
        &two,
        "database[1].name",
        r#""orders" is already the name of database[0]"#,
    );
}

#[test]
fn refuses_empty_hostnames() {
    let text = db_with(r#"["cockroach.prod.internal"]"#, "[]");
    assert_refused(&text, "database[0].hostnames", "must not be empty");
}

#[test]
fn refuses_malformed_hostnames() {
    for (bad, why) in [
        ("db*.internal", "'*' is not allowed"),
        ("192.0.2.1", "is an IP address"),
        ("db..internal", "empty label"),
        ("10.0.0.300", "mistyped IP address"),
    ] {
        let text = db_with("cockroach.prod.internal", bad);
        assert_refused(
            &text,
            "database[0].hostnames[0]",
            &format!("{bad:?} is not a valid hostname"),
        );
        assert!(refused(&text).to_string().contains(why), "{bad}");
    }
}

#[test]
fn refuses_hostname_in_two_databases() {
    let second = db_with(r#"name = "orders""#, r#"name = "billing""#)
        .replace("cockroach.prod.internal", "Cockroach.PROD.internal.");
    assert_refused(
        &format!("{DB}{second}"),
        "database[1].hostnames[0]",
        r#""Cockroach.PROD.internal." is already watched by database[0] ("orders")"#,
    );
}

#[test]
fn refuses_empty_ports() {
    assert_refused(
        &format!("{DB}ports = []\n"),
        "database[0].ports",
        "must not be empty",
    );
}

#[test]
fn refuses_port_zero_and_out_of_range() {
    assert_refused(
        &format!("{DB}ports = [26257, 0]\n"),
        "database[0].ports[1]",
        "0 is not a port",
    );
    assert_refused(
        &format!("{DB}ports = [70000]\n"),
        "database[0].ports[0]",
        "70000 is out of range",
    );
}

#[test]
fn refuses_bad_ip_or_cidr() {
    let second = db_with(r#"name = "orders""#, r#"name = "billing""#)
        .replace("cockroach.prod", "billing.prod")
        .replace("192.0.2.0/24", "10.0.0.300/24");
    let err = refused(&format!("{DB}{second}"));
    assert_eq!(
        err.to_string(),
        r#"/etc/x.toml: database[1].pinned[0]: "10.0.0.300/24" is neither an IP address nor a CIDR"#
    );
    for bad in ["192.0.2.0/33", "db.internal", "fe80::1%eth0", ""] {
        let text = db_with(r#"["192.0.2.0/24"]"#, &format!("[{bad:?}]"));
        assert_refused(
            &text,
            "database[0].pinned[0]",
            &format!("{bad:?} is neither"),
        );
    }
}

#[test]
fn refuses_empty_pinned() {
    let text = db_with(r#"["192.0.2.0/24"]"#, "[]");
    assert_refused(&text, "database[0].pinned", "must not be empty");
}

#[test]
fn refuses_cidr_with_host_bits() {
    let text = db_with("192.0.2.0/24", "10.0.0.1/24");
    assert_refused(
        &text,
        "database[0].pinned[0]",
        r#""10.0.0.1/24" has host bits set; did you mean "10.0.0.0/24"?"#,
    );
    let text = db_with("192.0.2.0/24", "2001:db8::1/32");
    assert_refused(
        &text,
        "database[0].pinned[0]",
        r#"did you mean "2001:db8::/32"?"#,
    );
}

#[test]
fn refuses_bad_mode() {
    assert_refused(
        &format!("{DB}mode = \"Block\"\n"),
        "database[0].mode",
        r#""Block" is not one of "monitor" or "block""#,
    );
}

#[test]
fn refuses_bad_on_crash_and_relative_pin_path() {
    assert_refused(
        &format!("{DB}[kernel]\non_crash = \"fail-closed\"\n"),
        "kernel.on_crash",
        r#""fail-closed" is not one of "fail-open" or "keep-enforcing""#,
    );
    assert_refused(
        &format!("{DB}[kernel]\npin_path = \"bpf/pinwatch\"\n"),
        "kernel.pin_path",
        "",
    );
}

#[test]
fn refuses_bad_sink() {
    assert_refused(
        &format!("{DB}[alerts]\nsink = \"syslog\"\n"),
        "alerts.sink",
        r#""syslog" is not one of"#,
    );
}

#[test]
fn refuses_file_sink_without_path() {
    assert_refused(
        &format!("{DB}[alerts]\nsink = \"file\"\n"),
        "alerts.path",
        r#"is required with sink = "file""#,
    );
}

#[test]
fn refuses_path_with_other_sink() {
    let text = format!("{DB}[alerts]\nsink = \"journald\"\npath = \"/var/log/a.ndjson\"\n");
    assert_refused(
        &text,
        "alerts.path",
        r#""/var/log/a.ndjson" is only used with sink = "file", but sink = "journald""#,
    );
    // stdout is the default sink, so a lone path is refused too.
    assert_refused(
        &format!("{DB}[alerts]\npath = \"/var/log/a.ndjson\"\n"),
        "alerts.path",
        r#"sink = "stdout""#,
    );
}

#[test]
fn refuses_relative_alert_path() {
    let text = format!("{DB}[alerts]\nsink = \"file\"\npath = \"alerts.ndjson\"\n");
    assert_refused(
        &text,
        "alerts.path",
        r#""alerts.ndjson" must be an absolute path"#,
    );
}

#[test]
fn refuses_bad_or_zero_dedup_window() {
    let text = format!("{DB}[alerts]\ndedup_window = \"sixty\"\n");
    assert_refused(&text, "alerts.dedup_window", r#""sixty" is not a duration"#);
    let text = format!("{DB}[alerts]\ndedup_window = \"0s\"\n");
    assert_refused(
        &text,
        "alerts.dedup_window",
        r#""0s" must be longer than zero"#,
    );
}

#[test]
fn refuses_bad_metrics_listen() {
    let text = format!("{DB}[metrics]\nlisten = \"localhost:9464\"\n");
    assert_refused(
        &text,
        "metrics.listen",
        r#""localhost:9464" is not an IP:port address"#,
    );
    let text = format!("{DB}[metrics]\nlisten = \"127.0.0.1:0\"\n");
    assert_refused(&text, "metrics.listen", r#""127.0.0.1:0" has port 0"#);
}

#[test]
fn refuses_relative_socket() {
    let text = format!("{DB}[control]\nsocket = \"pinwatch.sock\"\n");
    assert_refused(
        &text,
        "control.socket",
        r#""pinwatch.sock" must be an absolute path"#,
    );
}

#[test]
fn refuses_blank_group() {
    assert_refused(
        &format!("{DB}[control]\ngroup = \"\"\n"),
        "control.group",
        r#""" must not be blank"#,
    );
}

#[test]
fn refuses_bad_trusted_resolver() {
    let text = format!("{DB}[dns]\ntrusted_resolvers = [\"192.0.2.53\", \"ns1.example\"]\n");
    assert_refused(
        &text,
        "dns.trusted_resolvers[1]",
        r#""ns1.example" is not an IP address"#,
    );
    let text = format!("{DB}[dns]\ntrusted_resolvers = []\n");
    assert_refused(&text, "dns.trusted_resolvers", "must not be empty");
}

#[test]
fn syntax_errors_keep_line_and_column() {
    let msg = refused(&format!("{DB}mode = \n")).to_string();
    assert!(
        msg.starts_with("/etc/x.toml: TOML parse error at line 6, column"),
        "{msg}"
    );
}

#[test]
fn unknown_keys_are_refused_with_position() {
    let msg = refused(&format!("{DB}[alerts]\nsinc = \"stdout\"\n")).to_string();
    assert!(
        msg.starts_with("/etc/x.toml: TOML parse error at line 7"),
        "{msg}"
    );
    assert!(msg.contains("unknown field `sinc`"), "{msg}");
    let msg = refused(&format!("{DB}pinnned = []\n")).to_string();
    assert!(msg.contains("unknown field `pinnned`"), "{msg}");
    let msg = refused(&format!("{DB}[metric]\n")).to_string();
    assert!(msg.contains("unknown field `metric`"), "{msg}");
    let msg = refused(&format!("{DB}[config]\nwatched = true\n")).to_string();
    assert!(msg.contains("unknown field `watched`"), "{msg}");
}

#[test]
fn config_watch_must_be_a_boolean() {
    let msg = refused(&format!("{DB}[config]\nwatch = \"yes\"\n")).to_string();
    assert!(msg.starts_with("/etc/x.toml: TOML parse error"), "{msg}");
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn missing_required_key_is_refused() {
    let msg = refused(&db_with("pinned = [\"192.0.2.0/24\"]\n", "")).to_string();
    assert!(msg.starts_with("/etc/x.toml: TOML parse error"), "{msg}");
    assert!(msg.contains("missing field `pinned`"), "{msg}");
}

#[test]
fn unreadable_file_is_named() {
    let err = Config::load(Path::new("/nonexistent/pinwatch.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/pinwatch.toml: cannot read: "),
        "{err}"
    );
}

#[test]
fn refuses_bad_dns_thresholds() {
    for (value, problem) in [
        ("0", "0 is out of range (1-65535)"),
        ("-3", "-3 is out of range (1-65535)"),
        ("70000", "70000 is out of range (1-65535)"),
    ] {
        let text = format!("{DB}[dns]\ntxid_mismatch_threshold = {value}\n");
        assert_refused(&text, "dns.txid_mismatch_threshold", problem);
    }
    let text = format!("{DB}[dns]\nquery_timeout = \"0s\"\n");
    assert_refused(
        &text,
        "dns.query_timeout",
        r#""0s" must be longer than zero"#,
    );
    let text = format!("{DB}[dns]\nquery_timeout = \"soon\"\n");
    assert_refused(&text, "dns.query_timeout", r#""soon" is not a duration"#);
}

#[test]
fn refuses_relative_host_roots() {
    for key in ["proc", "run", "cgroup"] {
        let text = format!("{DB}[host]\n{key} = \"host/{key}\"\n");
        assert_refused(
            &text,
            &format!("host.{key}"),
            &format!(r#""host/{key}" must be an absolute path"#),
        );
    }
    let unknown = refused(&format!("{DB}[host]\nsys = \"/x\"\n")).to_string();
    assert!(unknown.contains("unknown field"), "{unknown}");
}
