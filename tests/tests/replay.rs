//! `pinwatch replay` on captures taken here: tcpdump records a forged
//! answer and the connect that follows in the lab, and replay must find
//! them, with the packets' own times; benign captures are silent; cut and
//! corrupted captures are refused with the byte offset, never a panic.
//! `captures` holds the forms other tools and networks write (TCP with its
//! handshake, DLT_NULL, tunnels); `bounded` the inputs that never end.
//!
//! No eBPF is loaded, but the lab's traffic is seen by any daemon running on
//! the host, so run with the others, serially and under the kernel lock:
//!     cargo build -p pinwatch
//!     flock /tmp/pinwatch-kernel.lock cargo test -p pinwatch-integration-tests --test replay -- --test-threads=1
use std::{
    fs,
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

#[path = "replay/bounded.rs"]
mod bounded;
#[path = "replay/captures.rs"]
mod captures;

use pinwatch_integration_tests::{
    CLIENT_V4, CLIENT_V6, DNS_V4, DNS_V6, DnsRecords, Dnsmasq, Lab, assert_ecs_base, connect, dig,
    field, ip_field, ip_list_field, lines, pinwatch_bin, require_root, str_field,
};
use serde_json::Value;

const DB_HOST: &str = "db.lab.test";
const DB_PORT: u16 = 26257;
const FORGED_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);
const FORGED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x66, 0, 0, 0, 0, 0x66);
const PINNED_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["db.lab.test"]
ports = [26257]
pinned = ["192.0.2.0/24", "2001:db8:2::/64"]

[dns]
trusted_resolvers = ["198.51.100.53", "2001:db8:51::53"]
"#;

/// A directory for the capture and the configuration, removed on drop.
struct Workdir(PathBuf);

impl Workdir {
    fn new(name: &str) -> Workdir {
        let path = std::env::temp_dir().join(format!("pwt-{}-replay-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        fs::write(path.join("pinwatch.toml"), CONFIG).unwrap();
        Workdir(path)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// tcpdump in the lab's dns namespace, writing `file`; drop stops it.
struct Tcpdump {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Tcpdump {
    /// Starts `tcpdump -U -Z root -w file ARGS…` and waits (10 s at most)
    /// until it listens.
    fn start(lab: &Lab, file: &Path, args: &[&str]) -> Tcpdump {
        let mut cmd = lab.dns.command("tcpdump");
        // -U and --immediate-mode: each packet written as it comes, none
        // left in a kernel buffer block at SIGINT; -Z root: open the file as
        // root (tcpdump drops to its own user before opening it otherwise).
        cmd.args(["-U", "--immediate-mode", "-Z", "root", "-w"])
            .arg(file)
            .args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tcpdump: {e}"));
        let (tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = String::new();
        loop {
            match stderr.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains("listening on") => break,
                Ok(line) => seen.push_str(&line),
                Err(_) => panic!("tcpdump {args:?} did not start listening within 10 s: {seen}"),
            }
        }
        Tcpdump { child, stderr }
    }

    /// Stops tcpdump (SIGINT, so it flushes the file) and waits for it.
    fn stop(mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        let said: Vec<String> = self.stderr.try_iter().collect();
        assert!(status.success(), "tcpdump exited {status}: {said:?}");
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pinwatch replay FILE -c CONFIG`.
struct Replay {
    code: i32,
    alerts: Vec<Value>,
    stdout: String,
    stderr: String,
}

fn replay(capture: &Path, config: &Path) -> Replay {
    let output: Output = Command::new(pinwatch_bin())
        .arg("replay")
        .arg(capture)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "replay panicked: {stderr}");
    let alerts = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    Replay {
        code: output.status.code().expect("replay exited, not killed"),
        alerts,
        stdout,
        stderr,
    }
}

/// The attack in the lab, captured with tcpdump `args` in the dns namespace:
/// the client asks for the database's A and AAAA records and gets forged
/// addresses, then connects to the forged IPv4 address.
fn capture_attack(dir: &Workdir, file: &str, args: &[&str]) -> PathBuf {
    require_root();
    let lab = Lab::new();
    lab.add_peer_address(IpAddr::V4(FORGED_V4));
    let records = DnsRecords::new()
        .host(DB_HOST, FORGED_V4)
        .host(DB_HOST, FORGED_V6);
    let _dnsmasq = Dnsmasq::start(&lab, &records);
    let capture = dir.path(file);
    let tcpdump = Tcpdump::start(&lab, &capture, args);
    let a = dig(&lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(a.addresses(), [IpAddr::V4(FORGED_V4)], "{}", a.raw);
    let aaaa = dig(&lab.client, DNS_V6, DB_HOST, "AAAA");
    assert_eq!(aaaa.addresses(), [IpAddr::V6(FORGED_V6)], "{}", aaaa.raw);
    connect(&lab.client, FORGED_V4, DB_PORT);
    tcpdump.stop();
    capture
}

fn action(alert: &Value) -> &str {
    str_field(alert, "event.action")
}

/// Both rules, with the fields a SIEM needs, and the packets' own times.
fn assert_attack_found(run: &Replay) {
    let context = format!(
        "exit {}; stderr: {}\nalerts:\n{}",
        run.code,
        run.stderr,
        lines(&run.alerts)
    );
    assert_eq!(run.code, 1, "alerts raised exit 1; {context}");
    for alert in &run.alerts {
        assert_ecs_base(alert, action(alert));
        // The packet's time, not the time replay wrote the line.
        assert!(
            str_field(alert, "@timestamp") < str_field(alert, "event.created"),
            "{alert}"
        );
    }
    let dns: Vec<&Value> = run
        .alerts
        .iter()
        .filter(|a| action(a) == "dns-answer-diverged")
        .collect();
    let peers: Vec<&Value> = run
        .alerts
        .iter()
        .filter(|a| action(a) == "unexpected-db-peer")
        .collect();
    assert_eq!(dns.len(), 2, "A and AAAA answers; {context}");
    assert_eq!(peers.len(), 1, "{context}");
    assert_eq!(run.alerts.len(), 3, "{context}");
    for (alert, forged, client, resolver, qtype) in [
        (
            dns[0],
            IpAddr::V4(FORGED_V4),
            IpAddr::V4(CLIENT_V4),
            IpAddr::V4(DNS_V4),
            "A",
        ),
        (
            dns[1],
            IpAddr::V6(FORGED_V6),
            IpAddr::V6(CLIENT_V6),
            IpAddr::V6(DNS_V6),
            "AAAA",
        ),
    ] {
        assert_eq!(str_field(alert, "pinwatch.database"), "orders", "{alert}");
        assert_eq!(str_field(alert, "dns.question.name"), DB_HOST, "{alert}");
        assert_eq!(str_field(alert, "dns.question.type"), qtype, "{alert}");
        assert_eq!(ip_list_field(alert, "dns.resolved_ip"), [forged], "{alert}");
        assert_eq!(
            ip_list_field(alert, "pinwatch.unexpected_ips"),
            [forged],
            "{alert}"
        );
        assert_eq!(ip_field(alert, "source.ip"), resolver, "{alert}");
        assert_eq!(ip_field(alert, "destination.ip"), client, "{alert}");
        assert_eq!(str_field(alert, "network.transport"), "udp", "{alert}");
    }
    let peer = peers[0];
    assert_eq!(str_field(peer, "pinwatch.database"), "orders", "{peer}");
    assert_eq!(
        ip_field(peer, "destination.ip"),
        IpAddr::V4(FORGED_V4),
        "{peer}"
    );
    assert_eq!(
        field(peer, "destination.port").and_then(Value::as_u64),
        Some(u64::from(DB_PORT)),
        "{peer}"
    );
    assert_eq!(str_field(peer, "destination.domain"), DB_HOST, "{peer}");
    assert_eq!(str_field(peer, "network.transport"), "tcp", "{peer}");
    // A capture does not know the process: no made-up pid.
    assert!(
        field(peer, "process").is_none() && field(peer, "user").is_none(),
        "{peer}"
    );
    assert!(
        str_field(dns[0], "@timestamp") <= str_field(peer, "@timestamp"),
        "the answer came before the connect; {context}"
    );
    let summary = run.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.contains("3 DNS messages") || summary.contains("4 DNS messages"),
        "queries and responses counted: {summary}"
    );
    assert!(summary.contains(" 3 alerts"), "{summary}");
    assert!(summary.contains(" 0 malformed"), "{summary}");
}

#[test]
fn replay_finds_the_attack_in_a_pcap_taken_on_the_resolver_link() {
    let dir = Workdir::new("pcap");
    let capture = capture_attack(&dir, "attack.pcap", &["-i", "pw1"]);
    assert_eq!(fs::read(&capture).unwrap()[..4], [0xd4, 0xc3, 0xb2, 0xa1]);
    assert_attack_found(&replay(&capture, &dir.path("pinwatch.toml")));
}

#[test]
fn replay_finds_the_attack_in_a_pcapng_capture() {
    let dir = Workdir::new("pcapng");
    // Nanosecond pcap, then the same packets as pcapng (Debian 12's tcpdump
    // 4.99 has no --pcapng): both timestamp resolutions, both formats.
    let nano = capture_attack(
        &dir,
        "attack-nano.pcap",
        &["-i", "pw1", "-s0", "--time-stamp-precision=nano"],
    );
    assert_eq!(fs::read(&nano).unwrap()[..4], [0x4d, 0x3c, 0xb2, 0xa1]);
    assert_attack_found(&replay(&nano, &dir.path("pinwatch.toml")));
    let pcapng = dir.path("attack.pcapng");
    to_pcapng(&nano, &pcapng);
    assert_eq!(fs::read(&pcapng).unwrap()[..4], [0x0a, 0x0d, 0x0d, 0x0a]);
    assert_attack_found(&replay(&pcapng, &dir.path("pinwatch.toml")));
}

/// The packets of a pcap as pcapng: one interface with nanosecond
/// timestamps (`if_tsresol` 9), one enhanced packet block each.
fn to_pcapng(pcap: &Path, pcapng: &Path) {
    use pcap_file::{
        pcap::PcapReader,
        pcapng::{
            PcapNgWriter,
            blocks::{
                enhanced_packet::EnhancedPacketBlock,
                interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            },
        },
    };
    let mut reader = PcapReader::new(fs::File::open(pcap).unwrap()).unwrap();
    let header = reader.header();
    let mut writer = PcapNgWriter::new(fs::File::create(pcapng).unwrap()).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: header.datalink,
            snaplen: header.snaplen,
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        })
        .unwrap();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: packet.timestamp,
                original_len: packet.orig_len,
                data: packet.data,
                options: vec![],
            })
            .unwrap();
    }
}

#[test]
fn replay_finds_the_attack_in_linux_cooked_captures_of_any_interface() {
    let dir = Workdir::new("any");
    for (link, file, link_type) in [
        ("LINUX_SLL", "attack-sll.pcap", 113u32),
        ("LINUX_SLL2", "attack-sll2.pcap", 276),
    ] {
        let capture = capture_attack(&dir, file, &["-i", "any", "-y", link]);
        let bytes = fs::read(&capture).unwrap();
        assert_eq!(
            u32::from_le_bytes(bytes[20..24].try_into().unwrap()),
            link_type,
            "{link}"
        );
        assert_attack_found(&replay(&capture, &dir.path("pinwatch.toml")));
    }
}

#[test]
fn a_benign_capture_exits_0_with_nothing_on_stdout() {
    require_root();
    let dir = Workdir::new("benign");
    let lab = Lab::new();
    lab.add_peer_address(IpAddr::V4(PINNED_V4));
    let _dnsmasq = Dnsmasq::start(&lab, &DnsRecords::new().host(DB_HOST, PINNED_V4));
    let capture = dir.path("benign.pcap");
    let tcpdump = Tcpdump::start(&lab, &capture, &["-i", "pw1"]);
    let answer = dig(&lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(
        answer.addresses(),
        [IpAddr::V4(PINNED_V4)],
        "{}",
        answer.raw
    );
    connect(&lab.client, PINNED_V4, DB_PORT);
    tcpdump.stop();

    let run = replay(&capture, &dir.path("pinwatch.toml"));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "", "no alert lines");
    let summary = run.stderr.trim();
    assert_eq!(summary.lines().count(), 1, "one summary line: {summary}");
    assert!(summary.contains(" 0 alerts"), "{summary}");
    assert!(
        summary.contains("1 connects"),
        "the SYN was checked: {summary}"
    );
}

#[test]
fn cut_and_corrupt_captures_exit_2_naming_the_offset() {
    let dir = Workdir::new("corrupt");
    let config = dir.path("pinwatch.toml");
    let pcap = fs::read(capture_attack(&dir, "good.pcap", &["-i", "pw1"])).unwrap();
    to_pcapng(&dir.path("good.pcap"), &dir.path("good.pcapng"));
    let pcapng = fs::read(dir.path("good.pcapng")).unwrap();
    let first_record_len = u32::from_le_bytes(pcap[32..36].try_into().unwrap()) as usize;
    let second_record = 24 + 16 + first_record_len;

    let mut huge = pcap.clone();
    huge[24 + 8..24 + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let mut huge_later = pcap.clone();
    huge_later[second_record + 8..second_record + 12]
        .copy_from_slice(&0x4000_0000u32.to_le_bytes());
    let mut wrong_magic = pcap.clone();
    wrong_magic[..4].copy_from_slice(b"PCAP");
    let mut garbage_header = pcap.clone();
    garbage_header[..24].copy_from_slice(&[0x5a; 24]);
    let mut bad_block = pcapng.clone();
    // The section header's trailing length no longer matches its leading one.
    let section_len = u32::from_le_bytes(pcapng[4..8].try_into().unwrap()) as usize;
    bad_block[section_len - 4] ^= 0xff;

    // (name, bytes, offset the error must name; None where it is the
    // start of the last record, wherever tcpdump put it)
    let cases: Vec<(&str, Vec<u8>, Option<usize>)> = vec![
        ("empty", Vec::new(), Some(0)),
        ("cut in the file header", pcap[..10].to_vec(), Some(0)),
        (
            "cut in the first record header",
            pcap[..30].to_vec(),
            Some(24),
        ),
        ("cut in the first record", pcap[..60].to_vec(), Some(24)),
        (
            "cut in a later record",
            pcap[..second_record + 20].to_vec(),
            Some(second_record),
        ),
        ("last byte missing", pcap[..pcap.len() - 1].to_vec(), None),
        ("wrong magic", wrong_magic, Some(0)),
        ("garbage header", garbage_header, Some(0)),
        ("huge record length", huge, Some(24)),
        ("huge later record length", huge_later, Some(second_record)),
        (
            "pcapng cut in a block",
            pcapng[..pcapng.len() - 7].to_vec(),
            None,
        ),
        ("pcapng bad block trailer", bad_block, Some(0)),
    ];
    for (name, bytes, offset) in cases {
        let file = dir.path("case.pcap");
        fs::write(&file, &bytes).unwrap();
        let run = replay(&file, &config);
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        let error = run.stderr.lines().last().unwrap_or_default();
        let wanted = match offset {
            Some(offset) => format!("offset {offset}"),
            None => "offset ".to_owned(),
        };
        assert!(
            error.contains(&wanted),
            "{name}: wanted {wanted:?} in {error:?}"
        );
        assert!(
            error.contains("case.pcap"),
            "{name}: names the file: {error}"
        );
    }

    // Neither a missing file nor a bad configuration is a capture to read.
    let run = replay(&dir.path("missing.pcap"), &config);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("missing.pcap"), "{}", run.stderr);
    fs::write(dir.path("bad.toml"), "[[database]]\nname = 1\n").unwrap();
    fs::write(dir.path("good.pcap"), &pcap).unwrap();
    let run = replay(&dir.path("good.pcap"), &dir.path("bad.toml"));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("bad.toml"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}
