//! The README's reference tables against the code, so they cannot drift:
//! the rule table ("## What it checks") against [`Rule::ALL`], the metrics
//! table ("## Metrics") against what `/metrics` serves.
use std::{collections::BTreeMap, sync::Arc, time::UNIX_EPOCH};

use serde_json::Value;

use crate::{
    alert::{AgentInfo, Alert, Rule, encode},
    event::Process,
    kernel::{features::Probed, interfaces},
    metrics::{SharedCollector, render},
    state::{
        Shared,
        tests::{CONFIG, shared_with},
    },
};

const README: &str = include_str!("../../README.md");

/// A daemon's state with every family a host serves populated: the kernel
/// probed and the interface hook loaded.
fn shared() -> Shared {
    let shared = shared_with(
        CONFIG,
        &[("pw_connect4", true), (interfaces::PROGRAM, true)],
    );
    shared.set_kernel(
        Probed {
            coarse_clock: true,
            tcx: true,
        }
        .report(),
    );
    shared.set_interface_coverage(interfaces::CoverageHandle::default());
    shared
}

/// The cells of the first table under the `## {heading}` section, header
/// and separator rows left out.
fn table(heading: &str) -> Vec<Vec<String>> {
    let start = format!("## {heading}\n");
    let section = README
        .split_once(&start)
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("README.md has no `## {heading}` section"));
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// `` `name` `` → `name`.
fn code(cell: &str) -> &str {
    cell.trim().trim_matches('`')
}

/// Lines saying what one side has and the other lacks, for a failure
/// message that names each difference and where to fix it.
fn differences(
    readme: &BTreeMap<String, String>,
    code: &BTreeMap<String, String>,
    what: &str,
    table: &str,
    source: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in code {
        match readme.get(name) {
            None => out.push(format!(
                "README.md's {table} table lacks {what} `{name}` ({value}), which {source} has: add a row"
            )),
            Some(documented) if documented != value => out.push(format!(
                "README.md's {table} table says {what} `{name}` is {documented}, {source} says {value}"
            )),
            Some(_) => {}
        }
    }
    for (name, documented) in readme {
        if !code.contains_key(name) {
            out.push(format!(
                "README.md's {table} table lists {what} `{name}` ({documented}), which {source} does not have: remove the row or rename it"
            ));
        }
    }
    out
}

#[test]
fn readme_rule_table_lists_every_rule_with_its_severity() {
    let readme: BTreeMap<String, String> = table("What it checks")
        .iter()
        .filter_map(|row| {
            let severity = row.last()?.split(' ').next()?.to_owned();
            Some((
                code(row.first()?).to_owned(),
                format!("severity {severity}"),
            ))
        })
        .collect();
    let code: BTreeMap<String, String> = Rule::ALL
        .iter()
        .map(|rule| {
            (
                rule.id().to_owned(),
                format!("severity {}", rule.severity()),
            )
        })
        .collect();
    let wrong = differences(
        &readme,
        &code,
        "rule",
        "rule (## What it checks)",
        "monitor/src/alert/rule.rs (Rule::ALL)",
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `family type labels` as the README writes them: `pinwatch_x_total{a,b}`
/// and `counter` become `pinwatch_x_total` → `counter {a,b}`.
fn documented_metrics() -> BTreeMap<String, String> {
    table("Metrics")
        .iter()
        .filter_map(|row| {
            let cell = code(row.first()?);
            let (name, labels) = cell.split_once('{').unwrap_or((cell, "}"));
            let labels = labels.trim_end_matches('}');
            Some((name.to_owned(), format!("{} {{{labels}}}", row.get(1)?)))
        })
        .collect()
}

/// The same from an OpenMetrics exposition: each sample's name (with the
/// `_total`/`_info` suffix its type adds), its family's type, and its label
/// names.
fn served_metrics(text: &str) -> BTreeMap<String, String> {
    let mut types = BTreeMap::new();
    let mut served = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((family, kind)) = rest.split_once(' ') {
                types.insert(family.to_owned(), kind.to_owned());
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let labels: Vec<&str> = line[name_end..]
            .strip_prefix('{')
            .and_then(|rest| rest.split_once('}'))
            .map(|(labels, _)| {
                labels
                    .split(',')
                    .filter_map(|pair| pair.split_once('=').map(|(key, _)| key))
                    .collect()
            })
            .unwrap_or_default();
        let family = ["_total", "_info"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| types.contains_key(*f)))
            .unwrap_or(name);
        let kind = types.get(family).cloned().unwrap_or_default();
        served.insert(name.to_owned(), format!("{kind} {{{}}}", labels.join(",")));
    }
    served
}

#[test]
fn readme_metrics_table_lists_every_family_the_endpoint_serves() {
    // What `/metrics` renders on a scrape: the same collector, the same
    // encoder (metrics::serve).
    let text = render(SharedCollector(Arc::new(shared())));
    let served = served_metrics(&text);
    assert!(served.len() > 5, "too few families parsed from:\n{text}");
    let wrong = differences(
        &documented_metrics(),
        &served,
        "family",
        "metrics (## Metrics)",
        "/metrics (monitor/src/metrics)",
    );
    assert!(wrong.is_empty(), "{}\nserved:\n{text}", wrong.join("\n"));
}

#[test]
fn served_metrics_are_read_by_name_type_and_labels() {
    let text = "# HELP pinwatch_alerts Detections.\n# TYPE pinwatch_alerts counter\n\
        pinwatch_alerts_total{rule=\"a\"} 1\n# TYPE pinwatch_build info\n\
        pinwatch_build_info{version=\"1\"} 1\n# TYPE pinwatch_programs_attached gauge\n\
        pinwatch_programs_attached 9\n# EOF\n";
    let served = served_metrics(text);
    assert_eq!(served["pinwatch_alerts_total"], "counter {rule}");
    assert_eq!(served["pinwatch_build_info"], "info {version}");
    assert_eq!(served["pinwatch_programs_attached"], "gauge {}");
    assert_eq!(served.len(), 3);
}

/// The labels of `family`'s samples in an exposition: `label="value"` → value.
fn label_values(text: &str, family: &str, label: &str) -> Vec<String> {
    let prefix = format!("{family}{{{label}=\"");
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix)?.split_once('"'))
        .map(|(value, _)| value.to_owned())
        .collect()
}

#[test]
fn readme_names_every_loss_origin_the_endpoint_serves() {
    let text = render(SharedCollector(Arc::new(shared())));
    let origins = label_values(&text, "pinwatch_events_lost_total", "origin");
    assert!(origins.len() >= 3, "no origins parsed from:\n{text}");
    let rows = [
        (
            "metrics (## Metrics)",
            "| `pinwatch_events_lost_total{origin}`",
        ),
        ("alert fields", "| `pinwatch.events_lost.count`"),
    ];
    let mut wrong = Vec::new();
    for (table, start) in rows {
        let Some(row) = README.lines().find(|line| line.starts_with(start)) else {
            wrong.push(format!(
                "README.md's {table} table has no row starting {start}"
            ));
            continue;
        };
        for origin in &origins {
            if !row.contains(&format!("`{origin}`")) {
                wrong.push(format!(
                    "README.md's {table} table row {start}… lacks origin `{origin}`, which /metrics serves (monitor/src/metrics, LossOrigin)"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The README's words for what a DNS alert carries of the socket's owner,
/// and the ECS field each stands for.
const OWNER_WORDS: [(&str, &str); 5] = [
    ("pid", "process.pid"),
    ("name", "process.name"),
    ("thread", "process.thread.id"),
    ("uid", "user.id"),
    ("gid", "group.id"),
];

#[test]
fn readme_says_dns_alerts_carry_only_owner_fields_an_alert_has() {
    const CGROUP_ID: u64 = 987_654_321_123;
    let mut alert = Alert::new(UNIX_EPOCH, Rule::DnsAnswerDiverged, "forged".into());
    alert.process = Some(Process {
        pid: 4321,
        tid: 4322,
        uid: 1000,
        gid: 1001,
        name: "app".into(),
        cgroup_id: CGROUP_ID,
    });
    let agent = AgentInfo {
        host_name: "h".into(),
        version: "0".into(),
    };
    let line = encode(&alert, &agent, "id");
    let json: Value = serde_json::from_str(&line).expect("an alert is JSON");
    assert!(
        !line.contains(&CGROUP_ID.to_string()),
        "alerts now carry the cgroup id: say so in README.md (\"DNS alerts … carry the process\") and add its word to OWNER_WORDS here:\n{line}"
    );

    let claim = "carry the process that owns\nthe receiving socket — ";
    let (_, rest) = README
        .split_once(claim)
        .unwrap_or_else(|| panic!("README.md no longer says {claim:?}: update this test"));
    let (list, _) = rest.split_once(" —").expect("the list ends with a dash");
    let mut wrong = Vec::new();
    for word in list
        .split([',', ' '])
        .filter(|w| !w.is_empty() && *w != "and")
    {
        match OWNER_WORDS.iter().find(|(w, _)| *w == word) {
            None => wrong.push(format!(
                "README.md says DNS alerts carry the owner's `{word}`, which no alert field carries (monitor/src/alert/ecs.rs)"
            )),
            Some((_, path)) => {
                let value = path.split('.').fold(&json, |v, key| &v[key]);
                if value.is_null() {
                    wrong.push(format!("README.md says DNS alerts carry `{word}`, but `{path}` is not in {line}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
