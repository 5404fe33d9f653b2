//! Kernel integration tests of the control socket and `pinwatch status`:
//! live values in `--json`, the exit codes 0/1/2, who may ask, and garbage
//! on the socket.
//!
//! Run serially, as root, after building the daemon:
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test status -- --test-threads=1
//! Besides the lab's tools they use setpriv (util-linux) and groupadd and
//! groupdel (passwd), all in Debian's base system. One test holds idle
//! connections for a minute: the requirement is about a minute.
use std::{
    fs,
    io::{Read, Write},
    net::IpAddr,
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use pinwatch_integration_tests::{
    DNS_V4, Daemon, DaemonConfig, Database, DnsRecords, Fixture, PINWATCH_PROGRAMS, StatusUser,
    TestGroup, dig, pinwatch_bin, poll, require_root, status,
};
use serde_json::Value;

// Names and port no other test uses: a daemon sees the whole host's
// traffic, and a developer may run other suites at the same time.
const ORDERS: &str = "status-orders";
const DB_HOST: &str = "status-db.lab.test";
const FORGED_HOST: &str = "status-forged.lab.test";
const DB_PORT: u16 = 26311;
const PINNED: &str = "192.0.2.0/24";
const GOOD_IP: &str = "192.0.2.10";
const FORGED_IP: &str = "203.0.113.66";
/// How long a status value may take to reflect what the kernel saw.
const SEEN_TIMEOUT: Duration = Duration::from_secs(10);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn orders() -> Database {
    Database::new(ORDERS, &[DB_HOST, FORGED_HOST], &[DB_PORT], &[PINNED])
}

fn plain_config() -> DaemonConfig {
    DaemonConfig {
        databases: vec![orders()],
        trusted_resolvers: vec![],
    }
}

fn orders_of(report: &Value) -> &Value {
    report["databases"]
        .as_array()
        .and_then(|dbs| dbs.iter().find(|db| db["name"] == ORDERS))
        .unwrap_or_else(|| panic!("no database {ORDERS} in {report}"))
}

fn u64_at(report: &Value, pointer: &str) -> u64 {
    report
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {report}"))
}

/// The sha256 `pinwatch check-config` prints for the file.
fn check_config_hash(path: &Path) -> String {
    let out = Command::new(pinwatch_bin())
        .args(["check-config", "-c"])
        .arg(path)
        .output()
        .expect("run check-config");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("(sha256 ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no sha256 in check-config's output:\n{text}"))
        .to_owned()
}

#[test]
fn status_json_shows_live_state_and_exits_0_healthy_then_1_after_an_alert() {
    require_root();
    let records = DnsRecords::new()
        .host(DB_HOST, ip(GOOD_IP))
        .host(FORGED_HOST, ip(FORGED_IP));
    let fx = Fixture::start(records, vec![orders()]);
    fx.lab.add_peer_address(ip(GOOD_IP));
    let daemon = &fx.daemon;

    let first = daemon.status();
    assert_eq!(first.code, Some(0), "healthy, no alert yet:\n{first}");
    let report = first.json();
    for key in [
        "version",
        "uptime_s",
        "config",
        "programs",
        "databases",
        "counters",
        "recent_alerts",
    ] {
        assert!(report.get(key).is_some(), "no `{key}` in {report}");
    }
    assert_eq!(report["health"]["status"], "healthy", "{report}");
    assert_eq!(
        report["config"]["path"],
        daemon.config_path().display().to_string()
    );
    assert_eq!(
        report["config"]["hash"],
        check_config_hash(daemon.config_path())
    );
    let programs = report["programs"].as_array().expect("programs list");
    for name in PINWATCH_PROGRAMS {
        let program = programs
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no program {name} in {report}"));
        assert_eq!(program["attached"], true, "{program}");
        assert!(program["kind"].as_str().is_some_and(|k| !k.is_empty()));
    }
    let db = orders_of(&report);
    assert_eq!(db["ports"], serde_json::json!([DB_PORT]));
    assert_eq!(db["pinned"], serde_json::json!([PINNED]));
    assert_eq!(db["last_answers"][DB_HOST], Value::Null, "{db}");

    // A pinned answer and a connect to it: live values, no alert.
    let answer = dig(&fx.lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(answer.addresses(), [ip(GOOD_IP)], "{}", answer.raw);
    pinwatch_integration_tests::connect(&fx.lab.client, ip(GOOD_IP), DB_PORT);
    let report = poll(SEEN_TIMEOUT, || {
        let report = daemon.status_json();
        let answered = !orders_of(&report)["last_answers"][DB_HOST].is_null();
        (answered && u64_at(&report, "/counters/connects") > 0).then_some(report)
    })
    .unwrap_or_else(|| {
        panic!(
            "status never showed the answer and the connect:\n{}",
            daemon.dump()
        )
    });
    let last = &orders_of(&report)["last_answers"][DB_HOST];
    assert_eq!(last["addresses"], serde_json::json!([GOOD_IP]), "{last}");
    assert_eq!(last["resolver"], DNS_V4.to_string(), "{last}");
    assert_eq!(last["verdict"], "pinned", "{last}");
    assert_eq!(last["ttl"], u64::from(answer.answers[0].ttl), "{last}");
    assert!(
        last["seen_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{last}"
    );
    assert!(u64_at(&report, "/counters/dns_messages") > 0, "{report}");
    assert_eq!(u64_at(&report, "/counters/events_lost"), 0, "{report}");
    assert_eq!(daemon.status().code, Some(0), "a pinned answer is no alert");

    // A forged answer: an alert, so exit 1, and status says what happened.
    let forged = dig(&fx.lab.client, DNS_V4, FORGED_HOST, "A");
    assert_eq!(forged.addresses(), [ip(FORGED_IP)], "{}", forged.raw);
    let run = poll(SEEN_TIMEOUT, || {
        let run = daemon.status();
        (run.code == Some(1)).then_some(run)
    })
    .unwrap_or_else(|| {
        panic!(
            "status never exited 1 after the forged answer:\n{}",
            daemon.dump()
        )
    });
    let report = run.json();
    assert_eq!(
        report["health"]["status"], "healthy",
        "an alert is not a fault: {report}"
    );
    let last = &orders_of(&report)["last_answers"][FORGED_HOST];
    assert_eq!(last["verdict"], "diverged", "{last}");
    assert_eq!(last["addresses"], serde_json::json!([FORGED_IP]), "{last}");
    assert!(
        u64_at(&report, "/counters/alerts/dns-answer-diverged") >= 1,
        "{report}"
    );
    let alert = &report["recent_alerts"][0];
    assert_eq!(alert["rule"], "dns-answer-diverged", "{report}");
    assert_eq!(alert["database"], ORDERS, "{alert}");
    assert!(
        alert["message"].as_str().unwrap().contains(FORGED_IP),
        "{alert}"
    );

    // The readable form tells the same story, with the same exit code.
    let text = status(daemon.socket_path(), false, StatusUser::Root);
    assert_eq!(text.code, Some(1), "{text}");
    for expected in [
        ORDERS,
        DB_HOST,
        FORGED_HOST,
        FORGED_IP,
        "DIVERGED",
        "dns-answer-diverged",
    ] {
        assert!(
            text.stdout.contains(expected),
            "{expected:?} missing:\n{text}"
        );
    }
}

#[test]
fn status_exits_2_and_says_why_when_the_daemon_is_unreachable() {
    require_root();
    let mut daemon = Daemon::start(&plain_config());
    let socket = daemon.socket_path().to_owned();
    assert_eq!(daemon.status().code, Some(0));
    daemon.stop();
    assert!(
        !socket.exists(),
        "the daemon removes its socket on shutdown"
    );

    let missing = status(&socket, true, StatusUser::Root);
    assert_eq!(missing.code, Some(2), "{missing}");
    assert!(missing.stderr.contains("no control socket at"), "{missing}");
    assert!(missing.stdout.is_empty(), "{missing}");

    // A socket file left behind by a killed daemon.
    let stale = daemon.dir().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let run = status(&stale, true, StatusUser::Root);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("nothing answers"), "{run}");

    // Something that accepts and never answers.
    let mute = daemon.dir().join("mute.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&mute).unwrap();
    let started = Instant::now();
    let run = status(&mute, true, StatusUser::Root);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("did not answer"), "{run}");
    assert!(started.elapsed() < Duration::from_secs(15), "{run}");
}

#[test]
fn only_root_and_members_of_the_control_group_may_read_status() {
    require_root();
    // Without a group: 0600, root only.
    {
        let daemon = Daemon::start(&plain_config());
        let mode = fs::metadata(daemon.socket_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let run = status(daemon.socket_path(), true, StatusUser::Nobody);
        assert_eq!(run.code, Some(2), "{run}");
        assert!(run.stderr.contains("permission denied"), "{run}");
        assert!(run.stdout.is_empty(), "nothing leaks: {run}");
    }

    let group = TestGroup::new();
    let daemon = Daemon::start_with_control_group(&plain_config(), &group.name);
    let meta = fs::metadata(daemon.socket_path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), group.gid);

    let member = status(
        daemon.socket_path(),
        true,
        StatusUser::NobodyInGroup(group.gid),
    );
    assert_eq!(
        member.code,
        Some(0),
        "a member of the group may ask:\n{member}"
    );
    assert_eq!(orders_of(&member.json())["name"], ORDERS);

    let outsider = status(daemon.socket_path(), true, StatusUser::Nobody);
    assert_eq!(outsider.code, Some(2), "{outsider}");
    assert!(outsider.stderr.contains("permission denied"), "{outsider}");

    // With the file mode opened up, the daemon's own credential check
    // still refuses the outsider.
    fs::set_permissions(daemon.socket_path(), fs::Permissions::from_mode(0o666)).unwrap();
    let outsider = status(daemon.socket_path(), true, StatusUser::Nobody);
    assert_eq!(outsider.code, Some(2), "{outsider}");
    assert!(
        outsider
            .stderr
            .contains("refused: permission denied: uid 65534"),
        "{outsider}"
    );
    assert!(outsider.stdout.is_empty(), "nothing leaks: {outsider}");
    let member = status(
        daemon.socket_path(),
        true,
        StatusUser::NobodyInGroup(group.gid),
    );
    assert_eq!(member.code, Some(0), "{member}");
    // The daemon goes first, then the group.
    drop(daemon);
    drop(group);
}

/// Sends `bytes` and returns what the daemon answered, if it could be read
/// (a peer still sending when the daemon gives up gets a reset instead).
fn send_garbage(socket: &Path, bytes: &[u8]) -> Option<String> {
    let mut stream = UnixStream::connect(socket).expect("connect to the control socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok().map(|_| reply)
}

fn assert_serving(daemon: &Daemon, after: &str) {
    let run = daemon.status();
    assert_eq!(
        run.code,
        Some(0),
        "status after {after}:\n{run}\n{}",
        daemon.dump()
    );
    assert_eq!(orders_of(&run.json())["name"], ORDERS);
}

#[test]
fn garbage_on_the_control_socket_leaves_the_daemon_serving() {
    require_root();
    let daemon = Daemon::start(&plain_config());
    let socket = daemon.socket_path().to_owned();

    let mut random = vec![0u8; 64 * 1024];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .expect("read /dev/urandom");
    let reply = send_garbage(&socket, &random);
    if let Some(reply) = reply.filter(|r| !r.is_empty()) {
        assert!(reply.contains("\"error\""), "{reply:?}");
    }
    assert_serving(&daemon, "random bytes");

    let reply = send_garbage(&socket, b"{\"command\":\"status\"}garbage\n");
    assert!(
        reply
            .as_deref()
            .is_some_and(|r| r.contains("\"error\":\"not a request")),
        "{reply:?}"
    );
    assert_serving(&daemon, "a malformed request");

    let long = vec![b'{'; 10 * 1024 * 1024];
    let _ = send_garbage(&socket, &long);
    assert_serving(&daemon, "a 10 MiB line");

    // Connections that never complete a request, held for a minute: more
    // of them than the daemon serves at once, plus one that sent half a
    // request. Other clients are served all along.
    let mut idle: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(&socket).expect("connect"))
        .collect();
    let mut half = UnixStream::connect(&socket).unwrap();
    half.write_all(b"{\"command\":").unwrap();
    let holder = thread::spawn(move || {
        thread::sleep(Duration::from_secs(60));
        // The daemon answered each with an error after its deadline and
        // closed its side: reading returns the reply and then EOF.
        half.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reply = String::new();
        half.read_to_string(&mut reply).unwrap();
        for stream in &mut idle {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            assert!(text.contains("no complete request"), "{text:?}");
        }
        reply
    });
    let started = Instant::now();
    let mut asked = 0;
    while started.elapsed() < Duration::from_secs(60) {
        let begun = Instant::now();
        assert_serving(&daemon, "idle and half-open connections");
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "status took {:?} while idle connections were held",
            begun.elapsed()
        );
        asked += 1;
        thread::sleep(Duration::from_secs(5));
    }
    let reply = holder.join().expect("the holder thread");
    assert!(reply.contains("no complete request within 2s"), "{reply:?}");
    assert!(asked >= 10, "asked {asked} times in the minute");
    assert_serving(&daemon, "the minute");
}
