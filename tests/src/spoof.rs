//! An attacker and its victims for the spoofing tests: forged DNS replies
//! sent with scapy, a UDP DNS client that keeps its socket open while they
//! arrive, an application resolving through the C library, and a dnsmasq
//! stub in the client's namespace.
use std::{
    io::{BufRead, BufReader, Lines, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::Duration,
};

use crate::{
    cmd::{Captured, describe, output, spawn_logged, spawn_piped},
    dig::try_dig,
    netns::NetNs,
    poll,
    provision::python3,
};

/// Sends forged DNS responses: `{src, sport, dst, dport, name, answer, ids}`
/// each, one packet per id, from a raw socket (scapy's `send`).
const SPOOFER: &str = r#"
import json, sys
# The layers used, not scapy.all: importing every layer costs half a minute
# under the VMs' emulation (BENCHMARKS.md, kernel matrix).
from scapy.config import conf
from scapy.layers.inet import IP, UDP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.sendrecv import send
from scapy.supersocket import L3RawSocket
# The kernel's raw IP socket: it routes like any sender, loopback included.
conf.L3socket = L3RawSocket
packets = []
for r in json.loads(sys.argv[1]):
    if ":" in r["src"]:
        from scapy.layers.inet6 import IPv6 as ip
    else:
        ip = IP
    for qid in r["ids"]:
        packets.append(
            ip(src=r["src"], dst=r["dst"]) / UDP(sport=r["sport"], dport=r["dport"])
            / DNS(id=qid, qr=1, aa=1, rd=1, ra=1, qd=DNSQR(qname=r["name"], qtype="A"),
                  an=DNSRR(rrname=r["name"], type="A", ttl=60, rdata=r["answer"])))
send(packets, verbose=False)
print("sent=%d" % len(packets), flush=True)
"#;

/// Forged responses with one source, destination, question and answer.
#[derive(Debug, Clone)]
pub struct Forged {
    /// The resolver the replies pretend to come from.
    pub from: SocketAddr,
    /// The victim's socket.
    pub to: SocketAddr,
    pub name: String,
    pub answer: Ipv4Addr,
    /// One reply per transaction id.
    pub ids: Vec<u16>,
}

/// The setup's python3 (with scapy) in `ns`, or in the host's own
/// namespace for `None`.
fn python(ns: Option<&NetNs>) -> Command {
    match ns {
        Some(ns) => ns.command(python3()),
        None => Command::new(python3()),
    }
}

/// Sends `replies` from `ns` (the host's namespace for `None`; raw IP: the
/// source is whatever they say) and waits until scapy has sent them all.
pub fn spoof(ns: Option<&NetNs>, replies: &[Forged]) {
    let spec: Vec<serde_json::Value> = replies
        .iter()
        .map(|r| {
            serde_json::json!({
                "src": r.from.ip().to_string(), "sport": r.from.port(),
                "dst": r.to.ip().to_string(), "dport": r.to.port(),
                "name": r.name, "answer": r.answer.to_string(), "ids": r.ids,
            })
        })
        .collect();
    let mut cmd = python(ns);
    cmd.args(["-c", SPOOFER, &serde_json::Value::from(spec).to_string()]);
    let out = output(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("sent="),
        "the scapy spoofer failed ({}): {}\n{stdout}{}",
        out.status,
        describe(&cmd),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A UDP socket that sends DNS queries on request and reads (and drops)
/// whatever arrives, kept open until the client is dropped.
const CLIENT: &str = r#"
import os, socket, struct, sys, threading
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
def drain():
    while True:
        try:
            s.recvfrom(4096)
        except OSError:
            return
threading.Thread(target=drain, daemon=True).start()
print("pid=%d port=%d" % (os.getpid(), s.getsockname()[1]), flush=True)
for line in sys.stdin:
    server, name, qid = line.split()
    q = struct.pack(">HHHHHH", int(qid), 0x0100, 1, 0, 0, 0)
    for label in name.strip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 1, 1)
    s.sendto(q, (server, 53))
    print("sent", flush=True)
"#;

/// A python3 process holding one UDP socket in a namespace.
pub struct UdpDnsClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    pub pid: u32,
    /// The socket's address.
    pub addr: SocketAddr,
}

impl UdpDnsClient {
    /// In `ns`, or in the host's own namespace for `None`.
    pub fn start(ns: Option<&NetNs>, bind: IpAddr) -> UdpDnsClient {
        let mut cmd = python(ns);
        cmd.args(["-c", CLIENT, &bind.to_string()]);
        let (mut child, line) = spawn_piped(&mut cmd, Stdio::piped(), Stdio::null());
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let hello = stdout
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("`{line}` printed nothing"));
        let (pid, port) = hello
            .strip_prefix("pid=")
            .and_then(|rest| rest.split_once(" port="))
            .and_then(|(pid, port)| Some((pid.parse().ok()?, port.parse().ok()?)))
            .unwrap_or_else(|| panic!("`{line}` printed {hello:?}"));
        assert_eq!(pid, child.id(), "ip netns exec execs python3 itself");
        UdpDnsClient {
            child,
            stdin,
            stdout,
            pid,
            addr: SocketAddr::new(bind, port),
        }
    }

    /// Sends an A query for `name` with transaction id `id` to `server`:53.
    pub fn query(&mut self, server: IpAddr, name: &str, id: u16) {
        let stdin = self.stdin.as_mut().expect("open until drop");
        writeln!(stdin, "{server} {name} {id}").expect("the client reads its stdin");
        stdin.flush().expect("flush");
        let reply = self.stdout.next().and_then(Result::ok);
        assert_eq!(reply.as_deref(), Some("sent"), "the client sent the query");
    }
}

impl Drop for UdpDnsClient {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resolves `name` through the C library (getaddrinfo, IPv4), as a database
/// driver does, and reports its pid and the addresses.
const RESOLVE: &str = r#"
import os, socket, sys
try:
    infos = socket.getaddrinfo(sys.argv[1], 26257, socket.AF_INET, socket.SOCK_STREAM)
    result = ",".join(sorted({i[4][0] for i in infos}))
except OSError as e:
    result = "error:%s" % e
print("pid=%d result=%s" % (os.getpid(), result), flush=True)
"#;

/// What one [`resolve_with_libc`] did.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub pid: u32,
    /// Comma-separated addresses, or `error:…`.
    pub result: String,
}

/// Runs a python3 getaddrinfo for `name` inside `ns` and waits for it.
pub fn resolve_with_libc(ns: &NetNs, name: &str) -> Resolved {
    let mut cmd = ns.command(python3());
    cmd.args(["-c", RESOLVE, name]);
    let (child, line) = spawn_piped(&mut cmd, Stdio::null(), Stdio::piped());
    let spawned = child.id();
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("`{line}`: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (pid, result) = stdout
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|rest| rest.split_once(" result="))
        .unwrap_or_else(|| panic!("`{line}` printed no report:\n{stdout}"));
    let pid: u32 = pid.parse().expect("a pid");
    assert_eq!(pid, spawned, "ip netns exec execs python3 itself");
    Resolved {
        pid,
        result: result.to_owned(),
    }
}

/// A caching-off dnsmasq on 127.0.0.1:53 in `ns` forwarding everything to
/// `upstream`: the local stub of the stub-path tests. Killed on drop.
pub struct Stub {
    child: Child,
    log: Captured,
}

impl Stub {
    /// Starts it and waits (10 s at most) until it answers `probe` through
    /// the upstream.
    pub fn start(ns: &NetNs, upstream: IpAddr, probe: &str) -> Stub {
        let mut cmd = ns.command("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            "--group=root",
            "--log-facility=-",
            "--log-queries",
            // Every question goes upstream: the path is what is tested.
            "--cache-size=0",
            &format!("--server={upstream}"),
        ]);
        let line = describe(&cmd);
        let (child, log) = spawn_logged(&mut cmd);
        let mut stub = Stub { child, log };
        let ready = poll(Duration::from_secs(10), || {
            if let Ok(Some(status)) = stub.child.try_wait() {
                panic!("the stub exited ({status}): `{line}`\n{}", stub.log.text());
            }
            try_dig(ns, IpAddr::from([127, 0, 0, 1]), probe, "A")
                .ok()
                .filter(|r| !r.addresses().is_empty())
        });
        assert!(
            ready.is_some(),
            "the stub did not answer {probe} within 10 s: `{line}`\n{}",
            stub.log.text()
        );
        stub
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A namespace joined to the host's own namespace by a veth pair: the
/// host end (`host_addr`/30) is an interface of the daemon's namespace, so
/// its tc hook sees what arrives on it, the peer (`peer_addr`) is where an
/// attacker or a resolver sits. Dropping it deletes the namespace and with
/// it both ends.
pub struct HostLink {
    pub ns: NetNs,
    pub host_if: String,
    pub host_addr: Ipv4Addr,
    pub peer_addr: Ipv4Addr,
}

impl HostLink {
    /// `host_addr` and `peer_addr` share a /30 of a documentation range.
    pub fn new(short: &str, host_addr: Ipv4Addr, peer_addr: Ipv4Addr) -> HostLink {
        let ns = NetNs::new(short);
        let host_if = format!("pwh{}", std::process::id() % 100_000);
        let run = |args: &[&str]| {
            let out = output(&mut crate::cmd::command("ip", args));
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "link",
            "add",
            &host_if,
            "type",
            "veth",
            "peer",
            "name",
            "pwp0",
            "netns",
            ns.name(),
        ]);
        let link = HostLink {
            ns,
            host_if,
            host_addr,
            peer_addr,
        };
        run(&[
            "addr",
            "add",
            &format!("{host_addr}/30"),
            "dev",
            &link.host_if,
        ]);
        run(&["link", "set", &link.host_if, "up"]);
        link.ns
            .ip(&["addr", "add", &format!("{peer_addr}/30"), "dev", "pwp0"]);
        link.ns.ip(&["link", "set", "pwp0", "up"]);
        let up = poll(Duration::from_secs(10), || {
            let state =
                std::fs::read_to_string(format!("/sys/class/net/{}/operstate", link.host_if));
            (state.ok()?.trim() == "up").then_some(())
        });
        assert!(up.is_some(), "{} did not come up", link.host_if);
        link
    }
}
