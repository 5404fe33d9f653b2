//! Kernel integration tests of the operator surface a SIEM sees: repeats
//! folded into summary lines (with every detection still counted), and the
//! OpenMetrics endpoint.
//!
//! Run serially, as root, after building the daemon:
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test siem -- --test-threads=1
use std::{fs, net::IpAddr};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, DNS_V4, Database, DnsRecords, Fixture, Scrape, Settings, assert_ecs_base,
    assert_unique_event_ids, connect, dig, field, free_loopback_addr, http, ip_list_field, lines,
    poll, require_root, scrape, str_field, without_sentinel,
};
use serde_json::Value;

const ORDERS: &str = "orders";
const DB_HOST: &str = "db.lab.test";
const DB_PORT: u16 = 26257;
const FORGED: &str = "203.0.113.66";
const DNS_RULE: &str = "dns-answer-diverged";
const PEER_RULE: &str = "unexpected-db-peer";

fn forged() -> IpAddr {
    FORGED.parse().unwrap()
}

/// dnsmasq forges `db.lab.test` (pinned to 192.0.2.0/24) as 203.0.113.66.
fn forging_lab(settings: &Settings) -> Fixture {
    require_root();
    let records = DnsRecords::new().host(DB_HOST, forged());
    let orders = Database::new(ORDERS, &[DB_HOST], &[DB_PORT], &["192.0.2.0/24"]);
    let fx = Fixture::start_with_settings(records, vec![orders], settings);
    fx.lab.add_peer_address(forged());
    fx
}

/// Asks for `db.lab.test` `count` times from the client namespace with one
/// dig process (`dig -f`), and returns how many forged answers came back.
fn burst(fx: &Fixture, count: usize) -> u64 {
    let batch = fx.daemon.dir().join("burst.dig");
    let line = format!("@{DNS_V4} {DB_HOST} A\n");
    fs::write(&batch, line.repeat(count)).expect("write dig's batch file");
    let mut cmd = fx.lab.client.command("dig");
    cmd.args(["+noall", "+answer", "+time=2", "+tries=1", "-f"])
        .arg(&batch);
    let out = cmd.output().expect("run dig -f");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answers = stdout.lines().filter(|l| l.contains(FORGED)).count() as u64;
    assert!(
        answers > 0,
        "dig -f got no forged answer ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    answers
}

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

/// The detections one alert line stands for: 1, or the count of a summary.
fn detections(alert: &Value) -> u64 {
    field(alert, "pinwatch.repeats.count")
        .map(|count| count.as_u64().expect("a count is a number"))
        .unwrap_or(1)
}

/// Our dns-answer-diverged lines.
fn dns_lines(alerts: &[Value]) -> Vec<Value> {
    without_sentinel(alerts)
        .into_iter()
        .filter(|a| action(a) == DNS_RULE)
        .collect()
}

fn metric(scrape: &Scrape, series: &str) -> f64 {
    scrape
        .value(series)
        .unwrap_or_else(|| panic!("no sample `{series}` in /metrics:\n{}", scrape.body))
}

#[test]
fn a_burst_of_identical_forged_answers_folds_into_a_few_lines_and_all_are_counted() {
    let metrics = free_loopback_addr();
    let fx = forging_lab(&Settings {
        dedup_window: Some("2s".into()),
        metrics_listen: Some(metrics),
    });

    let answers = burst(&fx, 300);
    // The window closes on the daemon's own tick: no further alert comes.
    let log = fx.alerts();
    let all = poll(ALERT_TIMEOUT, || {
        let alerts = log.read();
        let seen: u64 = dns_lines(&alerts).iter().map(detections).sum();
        (seen >= answers).then_some(alerts)
    })
    .unwrap_or_else(|| {
        panic!(
            "the alert lines do not account for the {answers} forged answers within {ALERT_TIMEOUT:?}:\n{}",
            lines(&log.read())
        )
    });
    let ours = dns_lines(&all);
    let context = format!("{answers} forged answers; alerts:\n{}", lines(&all));
    eprintln!("{context}");

    assert!(ours.len() <= 5, "at most a handful of lines; {context}");
    assert_eq!(
        ours.iter().map(detections).sum::<u64>(),
        answers,
        "the lines account for every detection, no more; {context}"
    );
    assert_unique_event_ids(&all);
    assert!(
        field(&ours[0], "pinwatch.repeats").is_none(),
        "the first alert is written as it is: {}",
        ours[0]
    );
    let summaries: Vec<&Value> = ours
        .iter()
        .filter(|a| field(a, "pinwatch.repeats").is_some())
        .collect();
    assert!(!summaries.is_empty(), "no summary line; {context}");
    for alert in &ours {
        assert_ecs_base(alert, DNS_RULE);
        assert_eq!(str_field(alert, "pinwatch.database"), ORDERS, "{alert}");
        assert_eq!(
            ip_list_field(alert, "pinwatch.unexpected_ips"),
            [forged()],
            "{alert}"
        );
    }
    for summary in &summaries {
        let start = str_field(summary, "event.start");
        let end = str_field(summary, "event.end");
        // Same fixed-width RFC 3339 UTC format: text order is time order.
        assert!(start <= end, "{summary}");
        assert_eq!(str_field(summary, "@timestamp"), end, "{summary}");
        assert!(
            str_field(summary, "message").contains("more alerts like this one"),
            "{summary}"
        );
    }

    // Every detection is counted, folded or not: in status and in metrics.
    let status = fx.daemon.status_json();
    assert_eq!(
        status["counters"]["alerts"][DNS_RULE].as_u64(),
        Some(answers),
        "status counters: {}",
        status["counters"]
    );
    let scraped = scrape(metrics);
    let series = format!("pinwatch_alerts_total{{rule=\"{DNS_RULE}\"}}");
    assert_eq!(metric(&scraped, &series), answers as f64);
    let folded: u64 = summaries.iter().map(|s| detections(s)).sum();
    assert_eq!(
        metric(&scraped, "pinwatch_alerts_folded_total"),
        folded as f64
    );
}

#[test]
fn pending_summaries_are_written_on_shutdown() {
    let metrics = free_loopback_addr();
    let mut fx = forging_lab(&Settings {
        dedup_window: Some("1h".into()),
        metrics_listen: Some(metrics),
    });
    let answers = burst(&fx, 20);
    // Wait until the detector has seen them all; the window stays open.
    let series = format!("pinwatch_alerts_total{{rule=\"{DNS_RULE}\"}}");
    let counted = poll(ALERT_TIMEOUT, || {
        (scrape(metrics).value(&series) == Some(answers as f64)).then_some(())
    });
    assert!(counted.is_some(), "{}", scrape(metrics).body);
    assert_eq!(
        dns_lines(&fx.alerts().read()).len(),
        1,
        "only the first, so far"
    );

    let status = fx.daemon.stop().expect("the daemon was running");
    assert_eq!(status.code(), Some(0), "{}", fx.daemon.dump());
    let ours = dns_lines(&fx.alerts().read());
    assert_eq!(
        ours.len(),
        2,
        "the first and the flushed summary:\n{}",
        lines(&ours)
    );
    assert_eq!(detections(&ours[1]), answers - 1, "{}", ours[1]);
}

#[test]
fn metrics_are_served_on_loopback_with_every_family() {
    let metrics = free_loopback_addr();
    let fx = forging_lab(&Settings {
        dedup_window: None,
        metrics_listen: Some(metrics),
    });
    let answer = dig(&fx.lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(answer.addresses(), [forged()], "{}", answer.raw);
    connect(&fx.lab.client, forged(), DB_PORT);
    // Not DNS, on port 53: a parse error.
    let mut garbage = fx.lab.client.command(pinwatch_integration_tests::python3());
    garbage.args([
        "-c",
        &format!(
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'\\x00not dns', ('{DNS_V4}', 53))"
        ),
    ]);
    assert!(garbage.status().expect("run python3").success());
    // Everything above reached the detector once the sentinel's alerts are in.
    let all = fx.sentinel();
    assert!(
        without_sentinel(&all)
            .iter()
            .any(|a| action(a) == PEER_RULE),
        "{}",
        lines(&all)
    );

    let scraped = scrape(metrics);
    eprintln!("{}", scraped.body);
    assert_eq!(
        scraped.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(scraped.body.ends_with("# EOF\n"), "{}", scraped.body);
    // Ours and the sentinel's, at least.
    for (series, at_least) in [
        ("pinwatch_dns_messages_total", 4.0),
        ("pinwatch_connects_total", 2.0),
        ("pinwatch_alerts_total{rule=\"dns-answer-diverged\"}", 2.0),
        ("pinwatch_alerts_total{rule=\"unexpected-db-peer\"}", 2.0),
        ("pinwatch_alert_lines_total", 4.0),
        ("pinwatch_kernel_records_total", 4.0),
        ("pinwatch_dns_parse_errors_total", 1.0),
        ("pinwatch_programs_attached", 4.0),
    ] {
        let value = metric(&scraped, series);
        assert!(
            value >= at_least,
            "{series} is {value}, expected ≥ {at_least}"
        );
    }
    assert_eq!(
        metric(&scraped, "pinwatch_alerts_total{rule=\"event-loss\"}"),
        0.0
    );
    for origin in ["kernel-dns-packet", "kernel-connect", "undecodable"] {
        let series = format!("pinwatch_events_lost_total{{origin=\"{origin}\"}}");
        assert_eq!(metric(&scraped, &series), 0.0, "nothing was lost here");
    }
    assert_eq!(metric(&scraped, "pinwatch_alert_write_errors_total"), 0.0);
    for program in [
        "pw_dns_egress",
        "pw_dns_ingress",
        "pw_connect4",
        "pw_connect6",
    ] {
        let prefix = format!("pinwatch_program_attached{{program=\"{program}\",");
        assert!(
            scraped
                .body
                .lines()
                .any(|l| l.starts_with(&prefix) && l.ends_with("} 1")),
            "{program} is not reported attached:\n{}",
            scraped.body
        );
    }

    // Only GET /metrics is served.
    assert_eq!(http(metrics, "GET", "/").status, 404);
    assert_eq!(http(metrics, "GET", "/metrics/x").status, 404);
    let post = http(metrics, "POST", "/metrics");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[test]
fn a_taken_metrics_port_fails_the_start_with_exit_2() {
    require_root();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = taken.local_addr().unwrap();
    let dir = std::env::temp_dir().join(format!("pwt-{}-metrics-taken", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("pinwatch.toml");
    fs::write(
        &config,
        format!(
            "[[database]]\nname = \"orders\"\nhostnames = [\"db.lab.test\"]\npinned = [\"192.0.2.0/24\"]\n\n\
             [alerts]\nsink = \"file\"\npath = \"{}\"\n\n[control]\nsocket = \"{}\"\n\n\
             [metrics]\nlisten = \"{addr}\"\n",
            dir.join("alerts.ndjson").display(),
            dir.join("pinwatch.sock").display(),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(pinwatch_integration_tests::pinwatch_bin())
        .arg("run")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("run pinwatch");
    let _ = fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("metrics.listen") && stderr.contains(&addr.to_string()),
        "the error names the key and the address: {stderr}"
    );
    drop(taken);
}
