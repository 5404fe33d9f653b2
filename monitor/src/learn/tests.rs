use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, Record, rdata};

use super::{render::covering_networks, *};
use crate::{
    config::HostDefaults,
    event::{LossEvent, LossOrigin},
    fixtures::{a_response, at, dns_event},
};

const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["db.lab.test", "db-ro.lab.test"]
ports = [26257, 5432]
pinned = ["192.0.2.0/24"]
mode = "block"

[[database]]
name = "billing"
hostnames = ["billing.lab.test"]
pinned = ["198.51.100.20"]
"#;

fn config(text: &str) -> Config {
    let host = HostDefaults {
        resolv_conf_nameservers: vec!["198.51.100.53".parse().unwrap()],
    };
    Config::from_toml(text, None, &host).expect("valid config")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn record(owner: &str, ttl: u32, data: &str) -> Record {
    let name = Name::from_ascii(owner).unwrap();
    let rdata = match data.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => RData::A(rdata::A(v4)),
        Ok(IpAddr::V6(v6)) => RData::AAAA(rdata::AAAA(v6)),
        Err(_) => RData::CNAME(rdata::CNAME(Name::from_ascii(data).unwrap())),
    };
    Record::from_rdata(name, ttl, rdata)
}

/// A response to `question` (A) from `resolver`, delivered in `direction`.
fn response(
    question: &str,
    answers: Vec<Record>,
    resolver: &str,
    direction: Direction,
    secs: u64,
) -> Event {
    let mut message = a_response(question, 7, &[], 0);
    message.add_answers(answers);
    Event::Dns(dns_event(
        message,
        direction,
        &format!("{resolver}:53"),
        "198.51.100.10:40000",
        at(secs),
    ))
}

fn answer(question: &str, data: &[(&str, u32)], resolver: &str, secs: u64) -> Event {
    let records = data
        .iter()
        .map(|&(ip, ttl)| record(question, ttl, ip))
        .collect();
    response(question, records, resolver, Direction::Ingress, secs)
}

fn options(aggregate: bool) -> RenderOptions {
    RenderOptions {
        aggregate,
        started: at(0),
        ended: at(30),
    }
}

fn hostnames(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn collects_addresses_resolvers_ttls_and_times_like_the_detector() {
    let plan = Plan::new(None, &hostnames(&["DB.Lab.Test."])).unwrap();
    let mut learner = Learner::new(&plan);
    let events = [
        answer(
            "db.lab.test",
            &[("192.0.2.10", 300), ("192.0.2.11", 60)],
            "198.51.100.53",
            1,
        ),
        // Case and trailing dot do not matter.
        answer("DB.LAB.TEST.", &[("192.0.2.10", 120)], "198.51.100.54", 5),
        // Through a CNAME chain, with an IPv4-mapped address.
        response(
            "alias.lab.test",
            vec![
                record("alias.lab.test", 30, "db.lab.test"),
                record("db.lab.test", 90, "::ffff:192.0.2.12"),
            ],
            "198.51.100.53",
            Direction::Ingress,
            9,
        ),
        // Leaving a local server: judged where it is delivered, not here.
        response(
            "db.lab.test",
            vec![record("db.lab.test", 300, "203.0.113.66")],
            "198.51.100.53",
            Direction::Egress,
            10,
        ),
        // Another name.
        answer(
            "other.lab.test",
            &[("203.0.113.1", 300)],
            "198.51.100.53",
            11,
        ),
        Event::Loss(LossEvent {
            timestamp: at(12),
            origin: LossOrigin::KernelDnsPacket,
            count: 3,
        }),
    ];
    for event in &events {
        learner.observe(event);
    }
    let seen = learner.seen("db.lab.test").unwrap();
    assert_eq!(seen.answers, 3);
    assert_eq!(
        seen.addresses.iter().collect::<Vec<_>>(),
        [
            (&ip("192.0.2.10"), &2),
            (&ip("192.0.2.11"), &1),
            (&ip("192.0.2.12"), &1)
        ]
    );
    assert_eq!(
        seen.resolvers.iter().copied().collect::<Vec<_>>(),
        [ip("198.51.100.53"), ip("198.51.100.54")]
    );
    assert_eq!(seen.ttl, Some((60, 300)));
    assert_eq!(seen.first_seen, Some(at(1)));
    assert_eq!(seen.last_seen, Some(at(9)));
    assert!(learner.seen("other.lab.test").is_none());
    assert_eq!(learner.lost, 3);
}

#[test]
fn plan_keeps_configured_databases_and_adds_one_per_new_hostname() {
    let config = config(CONFIG);
    let plan = Plan::new(
        Some(&config),
        &hostnames(&["DB.lab.test", "new.lab.test", "new.lab.test."]),
    )
    .unwrap();
    let names: Vec<&str> = plan.databases.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["orders", "billing", "new.lab.test"]);
    assert_eq!(plan.databases[0].ports, [26257, 5432]);
    assert_eq!(plan.databases[0].mode, Mode::Block);
    assert_eq!(plan.databases[2].ports, [DEFAULT_DB_PORT]);

    let clash = config_with_name("new.lab.test");
    let plan = Plan::new(Some(&clash), &hostnames(&["new.lab.test"])).unwrap();
    assert_eq!(plan.databases[1].name, "learned-new.lab.test");
}

fn config_with_name(name: &str) -> Config {
    config(&format!(
        "[[database]]\nname = \"{name}\"\nhostnames = [\"x.lab.test\"]\npinned = [\"192.0.2.1\"]\n"
    ))
}

#[test]
fn plan_refuses_no_hostnames_and_bad_ones() {
    assert!(matches!(Plan::new(None, &[]), Err(LearnError::NoHostnames)));
    let error = Plan::new(None, &hostnames(&["192.0.2.1"])).unwrap_err();
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("192.0.2.1"), "{error}");
}

#[test]
fn renders_exact_addresses_that_check_config_accepts_and_omits_silent_databases() {
    let config = config(CONFIG);
    let plan = Plan::new(Some(&config), &hostnames(&["quiet.lab.test"])).unwrap();
    let mut learner = Learner::new(&plan);
    learner.observe(&answer(
        "db.lab.test",
        &[("192.0.2.10", 300), ("203.0.113.66", 300)],
        "198.51.100.53",
        1,
    ));
    learner.observe(&answer(
        "db.lab.test",
        &[("2001:db8::7", 60)],
        "198.51.100.53",
        2,
    ));
    let rendered = render(&plan, &learner, &options(false));
    let text = &rendered.toml;

    let parsed = config_from(text);
    assert_eq!(parsed.databases.len(), 1, "{text}");
    let orders = &parsed.databases[0];
    assert_eq!(orders.name, "orders");
    assert_eq!(orders.hostnames, ["db.lab.test", "db-ro.lab.test"]);
    assert_eq!(orders.ports, [26257, 5432]);
    assert_eq!(orders.mode, Mode::Block);
    let pinned: Vec<String> = orders.pinned.iter().map(ToString::to_string).collect();
    assert_eq!(
        pinned,
        ["192.0.2.10/32", "203.0.113.66/32", "2001:db8::7/128"]
    );

    for part in [
        "# seen db.lab.test: 2 answers from resolver 198.51.100.53, TTL 60-300 s",
        "first 2026-",
        "# seen db-ro.lab.test: no answers",
        "seen outside it: 203.0.113.66, 2001:db8::7",
        "# database \"billing\" omitted: no answers seen for billing.lab.test",
        "# database \"quiet.lab.test\" omitted: no answers seen for quiet.lab.test",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    assert!(!text.contains("pinned = []"), "{text}");
    assert_eq!(
        rendered.notes,
        [
            "no answers seen for db-ro.lab.test (database \"orders\")",
            "database \"billing\" omitted: no answers seen for billing.lab.test",
            "database \"quiet.lab.test\" omitted: no answers seen for quiet.lab.test",
        ]
    );
}

/// `check-config`'s parse of the printed text as a file.
fn config_from(text: &str) -> Config {
    let host = HostDefaults {
        resolv_conf_nameservers: vec![],
    };
    Config::from_toml(text, None, &host).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn aggregate_pins_one_covering_network_per_family_and_says_how_wide() {
    let plan = Plan::new(None, &hostnames(&["db.lab.test"])).unwrap();
    let mut learner = Learner::new(&plan);
    learner.observe(&answer(
        "db.lab.test",
        &[
            ("192.0.2.10", 300),
            ("192.0.2.13", 300),
            ("2001:db8::7", 300),
        ],
        "198.51.100.53",
        1,
    ));
    let rendered = render(&plan, &learner, &options(true));
    let parsed = config_from(&rendered.toml);
    let pinned: Vec<String> = parsed.databases[0]
        .pinned
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(pinned, ["192.0.2.8/29", "2001:db8::7/128"]);
    assert!(
        rendered
            .toml
            .contains("# --aggregate: 192.0.2.8/29 covers 8 addresses, 2 of them seen"),
        "{}",
        rendered.toml
    );
}

#[test]
fn covering_networks_are_the_smallest_per_family() {
    let ips = |list: &[&str]| list.iter().map(|s| ip(s)).collect::<Vec<_>>();
    let nets = |list: &[&str]| {
        covering_networks(&ips(list))
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(nets(&["192.0.2.10"]), ["192.0.2.10/32"]);
    assert_eq!(nets(&["192.0.2.10", "192.0.2.11"]), ["192.0.2.10/31"]);
    assert_eq!(nets(&["10.0.0.1", "10.200.0.1"]), ["10.0.0.0/8"]);
    assert_eq!(nets(&["2001:db8::1", "2001:db8::ff"]), ["2001:db8::/120"]);
    assert_eq!(nets(&["0.0.0.0", "255.255.255.255"]), ["0.0.0.0/0"]);
    assert!(nets(&[]).is_empty());
}
