//! pinwatch as a systemd service: the unit in `dist/` passes
//! `systemd-analyze verify` and matches the README; the daemon speaks the
//! notification protocol the unit's `Type=notify` and `WatchdogSec=` rely
//! on; and it gives up the capabilities only attaching needed.
//!
//! The daemon tests need root; run serially after building the daemon:
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test service -- --test-threads=1
use std::{
    ffi::OsStr,
    fs,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use pinwatch_integration_tests::{Daemon, DaemonConfig, Database, pinwatch_bin, require_root};

const UNIT: &str = "dist/pinwatch.service";
const SYSUSERS: &str = "dist/pinwatch.sysusers";
/// Where the unit expects the binary; the verify test points it at the build.
const INSTALLED_BIN: &str = "/usr/local/bin/pinwatch";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    let path = workspace().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("pwt-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(program: &str, args: &[&OsStr]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}); `cargo xtask setup` installs the systemd package")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let unit = read(UNIT);
    let exec_start = format!("ExecStart={INSTALLED_BIN} run ");
    assert!(
        unit.contains(&exec_start),
        "{UNIT} should run {INSTALLED_BIN}"
    );
    // verify checks that ExecStart's binary exists: use the one just built.
    let scratch = Scratch::new("unit");
    let copy = scratch.0.join("pinwatch.service");
    let bin = pinwatch_bin().canonicalize().unwrap();
    fs::write(&copy, unit.replace(INSTALLED_BIN, bin.to_str().unwrap())).unwrap();

    let (ok, output) = run("systemd-analyze", &[OsStr::new("verify"), copy.as_os_str()]);
    // Unknown keys and bad values are only warnings for verify: any output
    // about the unit is a failure here.
    assert!(
        ok && output.trim().is_empty(),
        "systemd-analyze verify {UNIT}:\n{output}"
    );

    let sysusers = workspace().join(SYSUSERS).canonicalize().unwrap();
    // An empty root: on this host the user may exist already (the .deb
    // test leaves it, as Debian policy keeps system users), and then
    // sysusers has nothing to say.
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(root.path().join("etc")).expect("etc in the temp root");
    let root_arg = format!("--root={}", root.path().display());
    let (ok, output) = run(
        "systemd-sysusers",
        &[
            OsStr::new("--dry-run"),
            OsStr::new(&root_arg),
            sysusers.as_os_str(),
        ],
    );
    assert!(
        ok && output.contains("'pinwatch'"),
        "systemd-sysusers --dry-run {SYSUSERS}:\n{output}"
    );
}

#[test]
fn the_readme_quotes_the_units_key_lines() {
    let readme = read("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Running as a service"))
        .expect("README.md has a `## Running as a service` section");
    let unit = read(UNIT);
    let keys = [
        "Type=",
        "ExecStart=",
        "ExecReload=",
        "ExecStartPre=",
        "ExecStop=",
        "ReadWritePaths=",
        "WatchdogSec=",
        "User=",
        "AmbientCapabilities=",
        "CapabilityBoundingSet=",
        "LogsDirectory=",
        "RuntimeDirectory=",
        "ProtectSystem=",
        "RestrictAddressFamilies=",
    ];
    for key in keys {
        let line = unit
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{UNIT} has no {key} line"));
        assert!(
            section.lines().any(|l| l.trim() == line),
            "README's service section should quote `{line}` from {UNIT}"
        );
    }
    for mention in [
        UNIT,
        SYSUSERS,
        "systemctl reload pinwatch",
        "config-reload-failed",
    ] {
        assert!(
            section.contains(mention),
            "README's service section should mention `{mention}`"
        );
    }
}

fn config() -> DaemonConfig {
    DaemonConfig {
        databases: vec![Database::new(
            "orders",
            &["db.lab.test"],
            &[26257],
            &["192.0.2.0/24"],
        )],
        trusted_resolvers: Vec::new(),
    }
}

/// The service manager's end of `NOTIFY_SOCKET`.
struct Notifications {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(path: &Path) -> Notifications {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Notifications {
            socket,
            seen: Vec::new(),
        }
    }

    /// Reads messages until one has every `states` line; returns it.
    fn wait_for(&mut self, states: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(len) = self.socket.recv(&mut buffer) else {
                continue;
            };
            let message = String::from_utf8_lossy(&buffer[..len]).into_owned();
            self.seen.push(message.clone());
            if states.iter().all(|s| message.lines().any(|l| l == *s)) {
                return message;
            }
        }
        panic!(
            "no notification with {states:?} within 10 s; received:\n{}",
            self.seen.join("---\n")
        );
    }
}

fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(rc, 0);
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

#[test]
fn the_daemon_notifies_ready_reloading_watchdog_and_stopping() {
    require_root();
    let scratch = Scratch::new("notify");
    let path = scratch.0.join("notify.sock");
    let mut notes = Notifications::bind(&path);
    let mut daemon = Daemon::start_with_env(
        &pinwatch_bin(),
        &config(),
        &[
            ("NOTIFY_SOCKET", path.as_os_str()),
            // Pings every 150 ms.
            ("WATCHDOG_USEC", OsStr::new("300000")),
        ],
    );

    let ready = notes.wait_for(&["READY=1"]);
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=") && l.contains("sha256")),
        "READY should carry a STATUS naming the configuration: {ready}"
    );
    notes.wait_for(&["WATCHDOG=1"]);
    notes.wait_for(&["WATCHDOG=1"]);

    let before = monotonic_usec();
    assert!(daemon.reload().is_ok(), "{}", daemon.dump());
    let reloading = notes.wait_for(&["RELOADING=1"]);
    let stamp: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {reloading}"));
    assert!(
        before <= stamp && stamp <= monotonic_usec(),
        "MONOTONIC_USEC={stamp} is not CLOCK_MONOTONIC at the reload"
    );
    notes.wait_for(&["READY=1"]);

    let status = daemon.stop().expect("the daemon was running");
    assert_eq!(status.code(), Some(0), "{}", daemon.dump());
    notes.wait_for(&["STOPPING=1"]);
}

/// Capability bits as /proc/<pid>/task/<tid>/status shows them.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

#[test]
fn after_attaching_every_thread_has_given_up_net_admin_and_perfmon() {
    require_root();
    let mut daemon = Daemon::start(&config());
    let pid = daemon.pid().unwrap();
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let mut threads = 0;
    for task in tasks {
        let status = fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let set = |name: &str| {
            let hex = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {status}"));
            u64::from_str_radix(hex.trim(), 16).unwrap()
        };
        for name in ["CapEff:", "CapPrm:", "CapAmb:"] {
            for (cap, label) in [
                (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
                (CAP_PERFMON, "CAP_PERFMON"),
                (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
            ] {
                assert_eq!(
                    set(name) & (1 << cap),
                    0,
                    "{label} still in {name}\n{status}"
                );
            }
        }
        assert_ne!(
            set("CapEff:") & (1 << CAP_BPF),
            0,
            "CAP_BPF is kept\n{status}"
        );
        threads += 1;
    }
    assert!(threads >= 2, "the detector runs on a thread of its own");

    // What it kept is enough to change the watched ports.
    let mut wider = config();
    wider.databases[0].ports.push(5432);
    daemon.rewrite_config(&wider);
    let reloaded = daemon.reload();
    assert!(reloaded.is_ok(), "{reloaded:?}\n{}", daemon.dump());
}
