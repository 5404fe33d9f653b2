//! `cargo xtask demo`: pinwatch catching a forged DNS answer, in one command.
//!
//! Two network namespaces joined by a veth pair: `dns` runs dnsmasq, a
//! resolver whose answer for the database hostname is forged (it points at
//! 203.0.113.66, where an impostor listens), and `app` runs a python3 client
//! that resolves the hostname through the C library, as a database driver
//! does, and connects. pinwatch runs on the host with the hostname pinned
//! to 192.0.2.0/24. The demo prints the alerts and `pinwatch status`, and
//! removes everything it created on every way out (guards), Ctrl-C included.
mod guards;

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{provision, setup, shell};
use guards::{Netns, Process, TempDir};

const BIN: &str = "target/release/pinwatch";
const HOSTNAME: &str = "db.demo.test";
const PORT: u16 = 26257;
const PINNED: &str = "192.0.2.0/24";
const FORGED: &str = "203.0.113.66";
const APP_IP: &str = "198.51.100.10";
const RESOLVER_IP: &str = "198.51.100.53";
const RULES: [&str; 2] = ["dns-answer-diverged", "unexpected-db-peer"];

/// The application: resolves through the C library and the namespace's
/// resolv.conf, then connects and sends what a driver sends first.
const CLIENT: &str = r#"
import os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
address = socket.gethostbyname(host)
print("python3 (pid %d) resolved %s to %s" % (os.getpid(), host, address), flush=True)
with socket.create_connection((address, port), timeout=2) as s:
    s.sendall(b"user=orders_app database=orders password=...\n")
print("python3 connected to %s:%d and sent its login" % (address, port), flush=True)
"#;

/// The impostor at the forged address: prints what the client sent.
const IMPOSTOR: &str = r#"
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
while True:
    conn, peer = server.accept()
    data = conn.recv(4096)
    print("received from %s: %s" % (peer[0], data.decode(errors="replace").strip()), flush=True)
    conn.close()
"#;

pub fn run() -> anyhow::Result<()> {
    if !setup::is_root() {
        bail!("the demo loads eBPF programs and creates network namespaces: run it as root");
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal_hook::flag::register(signal, interrupted.clone())
            .context("installing the Ctrl-C handler")?;
    }
    shell::cargo(&["build", "--release", "--package", "pinwatch"])?;
    guards::reap_stale();
    let demo = Demo { interrupted };
    let result = demo.show();
    if result.is_err() && demo.interrupted.load(Ordering::Relaxed) {
        eprintln!("interrupted; everything the demo created has been removed");
    }
    result
}

struct Demo {
    interrupted: Arc<AtomicBool>,
}

impl Demo {
    fn show(&self) -> anyhow::Result<()> {
        // Declared in the order they are needed; dropped in reverse, so the
        // daemon stops first and the namespaces and files go last.
        let dir = TempDir::create()?;
        heading("1. A lab of two network namespaces");
        let (app, dns) = lab()?;
        println!(
            "   {} is the application host ({APP_IP}); {} is its resolver ({RESOLVER_IP})",
            app.name(),
            dns.name()
        );

        heading("2. The resolver is poisoned");
        let _dnsmasq = self.dnsmasq(&dns, &app)?;
        let impostor_log = dir.path().join("impostor.log");
        let _impostor = self.impostor(&dns, &impostor_log)?;
        println!(
            "   dnsmasq answers {HOSTNAME} with {FORGED}, where an impostor listens on port {PORT}"
        );

        heading("3. pinwatch runs on the host with this configuration");
        let config = config(dir.path());
        fs::write(dir.path().join("pinwatch.toml"), &config)?;
        indent(&config);
        let log = dir.path().join("pinwatch.log");
        let mut pinwatch = self.pinwatch(dir.path(), &log)?;

        heading("4. The application resolves the database hostname and connects");
        let client = output(app.command(provision::python3()).args([
            "-c",
            CLIENT,
            HOSTNAME,
            &PORT.to_string(),
        ]))?;
        indent(&client);
        let received = self.wait("the impostor to receive the login", || {
            Ok(fs::read_to_string(&impostor_log)?
                .lines()
                .find(|l| l.starts_with("received"))
                .map(str::to_owned))
        })?;
        println!("   the impostor {received}");

        heading("5. pinwatch's alerts, one JSON object per line, as a SIEM receives them");
        let alerts_path = dir.path().join("alerts.ndjson");
        let alerts = self.wait("pinwatch's two alerts", || Ok(alerts(&alerts_path)))?;
        for alert in &alerts {
            println!(
                "   [severity {}] {}: {}",
                alert["event"]["severity"],
                alert["event"]["action"].as_str().unwrap_or("?"),
                alert["message"].as_str().unwrap_or("?")
            );
        }
        println!();
        for alert in &alerts {
            println!("{alert}\n");
        }

        heading("6. pinwatch status");
        let socket = dir.path().join("pinwatch.sock");
        let status = Command::new(BIN)
            .args(["status", "--socket"])
            .arg(&socket)
            .output()
            .context("running pinwatch status")?;
        indent(&String::from_utf8_lossy(&status.stdout));
        indent(&String::from_utf8_lossy(&status.stderr));
        println!(
            "   (exit {}: 1 means degraded, or an alert in the last 15 minutes)",
            status.status.code().unwrap_or(-1)
        );

        heading("7. pinwatch's diagnostic log (stderr), after SIGTERM");
        pinwatch.stop();
        indent(&fs::read_to_string(&log).unwrap_or_default());
        println!("Removing the namespaces and files the demo created.");
        Ok(())
    }

    fn dnsmasq(&self, dns: &Netns, app: &Netns) -> anyhow::Result<Process> {
        let mut dnsmasq = Process::spawn(
            "dnsmasq",
            dns.command("dnsmasq")
                .args([
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--pid-file=",
                    "--bind-interfaces",
                    &format!("--listen-address={RESOLVER_IP}"),
                    "--user=root",
                    "--group=root",
                    "--local-ttl=300",
                    &format!("--host-record={HOSTNAME},{FORGED}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        self.wait("dnsmasq to answer", || {
            dnsmasq.check_running()?;
            let answer = app
                .command("dig")
                .args([
                    &format!("@{RESOLVER_IP}"),
                    HOSTNAME,
                    "+short",
                    "+time=1",
                    "+tries=1",
                ])
                .output()?;
            Ok(String::from_utf8_lossy(&answer.stdout)
                .contains(FORGED)
                .then_some(()))
        })?;
        Ok(dnsmasq)
    }

    fn impostor(&self, dns: &Netns, log: &Path) -> anyhow::Result<Process> {
        let file = fs::File::create(log)?;
        let mut impostor = Process::spawn(
            "the impostor",
            dns.command(provision::python3())
                .args(["-c", IMPOSTOR, FORGED, &PORT.to_string()])
                .stdout(file)
                .stderr(Stdio::null()),
        )?;
        self.wait("the impostor to listen", || {
            impostor.check_running()?;
            Ok(fs::read_to_string(log)?.contains("listening").then_some(()))
        })?;
        Ok(impostor)
    }

    fn pinwatch(&self, dir: &Path, log: &Path) -> anyhow::Result<Process> {
        let stderr = fs::File::create(log)?;
        let mut pinwatch = Process::spawn(
            "pinwatch",
            Command::new(BIN)
                .arg("run")
                .arg("-c")
                .arg(dir.join("pinwatch.toml"))
                .stdout(Stdio::null())
                .stderr(stderr),
        )?;
        println!(
            "   started pinwatch (pid {}); waiting until it is ready",
            pinwatch.pid()
        );
        self.wait("pinwatch to attach its programs", || {
            let ready = fs::read_to_string(log)?.contains("pinwatch ready");
            if !ready {
                pinwatch
                    .check_running()
                    .map_err(|e| e.context(fs::read_to_string(log).unwrap_or_default()))?;
            }
            Ok(ready.then_some(()))
        })?;
        Ok(pinwatch)
    }

    /// Polls `check` until it returns a value; an error after 20 s or on
    /// Ctrl-C.
    fn wait<T>(
        &self,
        what: &str,
        mut check: impl FnMut() -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.interrupted.load(Ordering::Relaxed) {
                bail!("interrupted while waiting for {what}");
            }
            if let Some(value) = check()? {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!("gave up waiting for {what} after 20 s");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The application's namespace routes through the resolver's, which also
/// holds the forged address.
fn lab() -> anyhow::Result<(Netns, Netns)> {
    let app = Netns::create("app")?;
    let dns = Netns::create("dns")?;
    app.ip(&[
        "link",
        "add",
        "pw0",
        "type",
        "veth",
        "peer",
        "name",
        "pw1",
        "netns",
        dns.name(),
    ])?;
    app.ip(&["addr", "add", &format!("{APP_IP}/24"), "dev", "pw0"])?;
    dns.ip(&["addr", "add", &format!("{RESOLVER_IP}/24"), "dev", "pw1"])?;
    dns.ip(&["addr", "add", &format!("{FORGED}/32"), "dev", "lo"])?;
    app.ip(&["link", "set", "pw0", "up"])?;
    dns.ip(&["link", "set", "pw1", "up"])?;
    app.ip(&["route", "add", "default", "via", RESOLVER_IP])?;
    app.set_resolver(RESOLVER_IP)?;
    Ok((app, dns))
}

fn config(dir: &Path) -> String {
    format!(
        r#"[[database]]
name = "orders"
hostnames = ["{HOSTNAME}"]
ports = [{PORT}]
pinned = ["{PINNED}"]

[dns]
trusted_resolvers = ["{RESOLVER_IP}"]

[alerts]
sink = "file"
path = "{}"

[control]
socket = "{}"
"#,
        dir.join("alerts.ndjson").display(),
        dir.join("pinwatch.sock").display()
    )
}

/// The alerts once one of each rule the demo triggers is in the file.
fn alerts(path: &Path) -> Option<Vec<Value>> {
    let text = fs::read_to_string(path).ok()?;
    let alerts: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    RULES
        .iter()
        .all(|rule| alerts.iter().any(|a| a["event"]["action"] == *rule))
        .then_some(alerts)
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().context("running the client")?;
    if !out.status.success() {
        bail!(
            "the client failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn heading(text: &str) {
    println!("\n==> {text}");
}

fn indent(text: &str) {
    for line in text.lines() {
        println!("   {line}");
    }
}
