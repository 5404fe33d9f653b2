//! Evasions of the answer rules, live: a crafted-answer DNS server in the
//! lab's dns namespace forges answers that do not parse whole (or run past
//! the kernel's copy, or chain CNAMEs past the follow limit), a glibc client
//! (`getent ahostsv4`, getaddrinfo) in the client namespace shows that the
//! C library hands the forged address to the application, and pinwatch
//! must alert on each.
//!
//! Needs root; run serially under the kernel lock:
//! `flock /tmp/pinwatch-kernel.lock cargo test -p pinwatch-integration-tests --test evasions -- --test-threads=1`
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, CLIENT_V4, CraftedServer, DNS_V4, Daemon, DaemonConfig, Database, Evasion, Lab,
    ResolvConf, field, getent_ahostsv4, injected, ip_list_field, lines, poll, question_name,
    response, str_field, udp_socket_in,
};
use serde_json::Value;

const FORGED: [u8; 4] = [203, 0, 113, 66];
const PINNED: &str = "192.0.2.0/24";
/// What the unwatched name of the injection test really resolves to.
const OTHER: [u8; 4] = [198, 51, 100, 80];
const OTHER_NAME: &str = "www.lab.test";
const INJECTED_NAME: &str = "injected.lab.test";

/// The watched hostname each evasion answers for.
fn hostname(evasion: Evasion) -> String {
    let label = match evasion {
        Evasion::Plain => "plain",
        Evasion::ArcountPlusOne => "arcount",
        Evasion::NscountPlusOne => "nscount",
        Evasion::ReservedLabelType => "reserved-label",
        Evasion::ForwardPointer => "forward-pointer",
        Evasion::TwoOpt => "two-opt",
        Evasion::BadSvcbSecondAnswer => "svcb-second",
        Evasion::BadSvcbFirstAnswer => "svcb-first",
        Evasion::AuthorityPastEnd => "authority-past-end",
        Evasion::PaddedAdditional => "padded-additional",
        Evasion::PaddedAnswer => "padded-answer",
        Evasion::LongCnameChain => "long-chain",
    };
    format!("{label}.lab.test")
}

fn all_cases() -> Vec<Evasion> {
    let mut cases = vec![Evasion::Plain];
    cases.extend(Evasion::MALFORMED);
    cases
}

/// Names answered with an overstated ARCOUNT in a way that the rules of
/// the header and the question must catch.
const BURST_NAME: &str = "burst.lab.test";
const CASE_NAME: &str = "case.lab.test";
const CONFLICT_NAME: &str = "conflict.lab.test";
/// The second forged answer of the conflict.
const OTHER_FORGED: [u8; 4] = [203, 0, 113, 77];

/// The crafted server's answers to `query`: the evasion its name stands
/// for, the injection for [`OTHER_NAME`], or a race of malformed answers.
fn answer(query: &[u8]) -> Vec<Vec<u8>> {
    let Some(name) = question_name(query) else {
        return Vec::new();
    };
    let malformed = |address| response(query, Evasion::ArcountPlusOne, address);
    let answers = match name.as_str() {
        OTHER_NAME => vec![injected(query, OTHER, INJECTED_NAME, FORGED)],
        // Ten forgeries with wrong ids before the one that hits.
        BURST_NAME => {
            let mut race: Vec<Option<Vec<u8>>> = (1..=10u16)
                .map(|i| {
                    malformed(FORGED).map(|mut bytes| {
                        let id = u16::from_be_bytes([bytes[0], bytes[1]]) ^ (i << 4);
                        bytes[..2].copy_from_slice(&id.to_be_bytes());
                        bytes
                    })
                })
                .collect();
            race.push(malformed(FORGED));
            race
        }
        // The question spelled in upper case: a forger that did not see it.
        CASE_NAME => vec![malformed(FORGED).map(|mut bytes| {
            let end = 12 + CASE_NAME.len() + 2;
            bytes[12..end].make_ascii_uppercase();
            bytes
        })],
        CONFLICT_NAME => vec![malformed(FORGED), malformed(OTHER_FORGED)],
        _ => {
            let evasion = all_cases().into_iter().find(|&e| hostname(e) == name);
            vec![evasion.and_then(|e| response(query, e, FORGED))]
        }
    };
    answers.into_iter().flatten().collect()
}

struct Rig {
    daemon: Daemon,
    server: CraftedServer,
    _resolv: ResolvConf,
    lab: Lab,
}

fn rig() -> Rig {
    let lab = Lab::new();
    let server = CraftedServer::start(
        &lab.dns,
        SocketAddr::new(DNS_V4.into(), 53),
        Box::new(answer),
    );
    let resolv = ResolvConf::set(&lab.client, DNS_V4);
    let mut hostnames: Vec<String> = all_cases().into_iter().map(hostname).collect();
    hostnames.extend([INJECTED_NAME, BURST_NAME, CASE_NAME, CONFLICT_NAME].map(str::to_owned));
    let hostnames: Vec<&str> = hostnames.iter().map(String::as_str).collect();
    let daemon = Daemon::start(&DaemonConfig {
        databases: vec![Database::new("orders", &hostnames, &[26257], &[PINNED])],
        trusted_resolvers: vec![DNS_V4.into()],
    });
    Rig {
        daemon,
        server,
        _resolv: resolv,
        lab,
    }
}

/// The addresses `getent ahostsv4 name` printed in the client namespace.
fn glibc_resolves(lab: &Lab, name: &str) -> Vec<IpAddr> {
    let out = getent_ahostsv4(&lab.client, name);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "glibc refused the answer for {name} ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ips: Vec<IpAddr> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect();
    ips.dedup();
    ips
}

fn is(alert: &Value, rule: &str, name: &str) -> bool {
    field(alert, "event.action").and_then(Value::as_str) == Some(rule)
        && field(alert, "dns.question.name").and_then(Value::as_str) == Some(name)
}

#[test]
fn glibc_takes_every_forged_answer_and_pinwatch_alerts_on_each() {
    let rig = rig();
    let forged = IpAddr::V4(Ipv4Addr::from(FORGED));
    for evasion in all_cases() {
        assert_eq!(
            glibc_resolves(&rig.lab, &hostname(evasion)),
            [forged],
            "{evasion:?}: glibc hands the application the forged address"
        );
    }
    let log = rig.daemon.alerts();
    let missing = |alerts: &[Value]| -> Vec<Evasion> {
        all_cases()
            .into_iter()
            .filter(|&e| {
                !alerts
                    .iter()
                    .any(|a| is(a, "dns-answer-diverged", &hostname(e)))
            })
            .collect()
    };
    let alerts = poll(ALERT_TIMEOUT, || {
        let alerts = log.read();
        missing(&alerts).is_empty().then_some(alerts)
    })
    .unwrap_or_else(|| {
        let alerts = log.read();
        panic!(
            "no dns-answer-diverged within {ALERT_TIMEOUT:?} for {:?}; alerts:\n{}",
            missing(&alerts),
            lines(&alerts)
        )
    });
    for evasion in all_cases() {
        let name = hostname(evasion);
        let alert = alerts
            .iter()
            .find(|a| is(a, "dns-answer-diverged", &name))
            .expect("waited for");
        assert_eq!(str_field(alert, "pinwatch.database"), "orders");
        let malformed = field(alert, "pinwatch.malformed");
        match evasion {
            Evasion::Plain | Evasion::PaddedAdditional => {
                assert!(malformed.is_none(), "{evasion:?}: {alert}");
                assert_eq!(ip_list_field(alert, "pinwatch.unexpected_ips"), [forged]);
            }
            Evasion::LongCnameChain => {
                let followed = field(alert, "pinwatch.cname_chain_cut")
                    .and_then(Value::as_array)
                    .unwrap_or_else(|| panic!("no pinwatch.cname_chain_cut: {alert}"));
                assert_eq!(followed.len(), 9, "{alert}");
            }
            Evasion::PaddedAnswer => {
                // The kernel's copy ends inside the answer section.
                let malformed = malformed.unwrap_or_else(|| panic!("{alert}"));
                assert_eq!(malformed["cut"], true, "{alert}");
                assert_eq!(malformed["section"], "answer", "{alert}");
            }
            _ => {
                let malformed = malformed.unwrap_or_else(|| panic!("{evasion:?}: {alert}"));
                assert_eq!(malformed["cut"], false, "{alert}");
                assert_eq!(ip_list_field(alert, "pinwatch.unexpected_ips"), [forged]);
            }
        }
    }
    let all = rig.daemon.alerts().read();
    assert!(
        !all.iter()
            .any(|a| str_field(a, "event.action") == "detector-fault"),
        "{}",
        lines(&all)
    );
}

#[test]
fn an_address_injected_for_a_watched_name_is_raised() {
    let rig = rig();
    // The client gets the true answer to its own question…
    assert_eq!(
        glibc_resolves(&rig.lab, OTHER_NAME),
        [IpAddr::V4(Ipv4Addr::from(OTHER))]
    );
    // …and the response carries an address for the watched name besides.
    let alerts = rig.daemon.alerts().wait_for(ALERT_TIMEOUT, |a| {
        is(a, "dns-bailiwick-violation", OTHER_NAME)
    });
    let alert = alerts
        .iter()
        .find(|a| is(a, "dns-bailiwick-violation", OTHER_NAME))
        .expect("waited for");
    assert_eq!(str_field(alert, "pinwatch.database"), "orders");
    assert_eq!(
        ip_list_field(alert, "pinwatch.unexpected_ips"),
        [IpAddr::V4(Ipv4Addr::from(FORGED))]
    );
    assert!(
        str_field(alert, "message").contains(INJECTED_NAME),
        "{alert}"
    );
}

/// An overstated ARCOUNT hides nothing from the rules that need only the
/// header and the question (unsolicited: in the quiet-start test, past the
/// warm-up).
#[test]
fn malformed_forgeries_still_meet_the_header_and_question_rules() {
    let rig = rig();
    let forged = IpAddr::V4(Ipv4Addr::from(FORGED));
    for (name, rule) in [
        (BURST_NAME, "dns-txid-mismatch-burst"),
        (CASE_NAME, "dns-case-mismatch"),
    ] {
        assert_eq!(glibc_resolves(&rig.lab, name), [forged], "{name}");
        let question = |a: &Value| {
            field(a, "dns.question.name")
                .and_then(Value::as_str)
                .is_some_and(|q| q.eq_ignore_ascii_case(name))
        };
        rig.daemon.alerts().wait_for(ALERT_TIMEOUT, |a| {
            field(a, "event.action").and_then(Value::as_str) == Some(rule) && question(a)
        });
    }
    // Two different answers to one query. glibc closes its socket after the
    // first, so the second may reach no socket: a socket that stays open
    // asks instead.
    let asker = udp_socket_in(&rig.lab.client, SocketAddr::new(CLIENT_V4.into(), 0));
    asker
        .send_to(
            &unsent_query(CONFLICT_NAME),
            SocketAddr::new(DNS_V4.into(), 53),
        )
        .expect("send the query");
    rig.daemon.alerts().wait_for(ALERT_TIMEOUT, |a| {
        is(a, "dns-conflicting-responses", CONFLICT_NAME)
    });
    drop(asker);
}

/// On a quiet host the first forged reply is the first DNS message: the
/// warm-up must have run from the daemon's start, not from that reply.
#[test]
fn the_first_dns_message_after_a_quiet_start_is_judged() {
    let rig = rig();
    // Past the 5 s warm-up, with no DNS message seen yet.
    std::thread::sleep(Duration::from_secs(6));
    unsolicited(
        &rig,
        &unsent_query(&hostname(Evasion::Plain)),
        Evasion::Plain,
    );
}

/// The bytes of a query for `name` that nobody sent.
fn unsent_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x44, 0x44, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).expect("a short label"));
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Sends a response to `query` that nobody asked for, to a fresh socket in
/// the client namespace, and waits for `dns-unsolicited-response`.
fn unsolicited(rig: &Rig, query: &[u8], evasion: Evasion) {
    let victim = udp_socket_in(&rig.lab.client, SocketAddr::new(CLIENT_V4.into(), 0));
    let to = victim.local_addr().expect("bound");
    let forged = response(query, evasion, FORGED).expect("a response");
    rig.server.send_to(&forged, to);
    let name = question_name(query).expect("a question");
    rig.daemon.alerts().wait_for(ALERT_TIMEOUT, |a| {
        is(a, "dns-unsolicited-response", &name)
            && field(a, "destination.port").and_then(Value::as_u64) == Some(u64::from(to.port()))
    });
    drop(victim);
}
