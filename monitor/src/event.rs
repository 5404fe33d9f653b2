//! Typed events: what the sources hand to the detector.
//!
//! The detector sees only these types, never kernel bytes, so the daemon and
//! `pinwatch replay` feed it the same way. Time travels with the event.
use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::SystemTime,
};

use hickory_proto::op::Message;
use serde::Serialize;

#[derive(Debug, Clone)]
pub enum Event {
    Dns(DnsEvent),
    Connect(ConnectEvent),
    Loss(LossEvent),
    /// A configuration reload was refused (from the daemon, not the kernel).
    ReloadFailed(ReloadFailure),
    DbSegment(DbSegmentEvent),
    /// A process handed a DNS socket an address (`detector::matching`).
    DnsOwner(DnsOwnerEvent),
    /// A local server's UDP response left this host's socket: what the stub
    /// path needs of it (the kernel sends no more).
    DnsSent(DnsSentEvent),
    /// The daemon adopted the kernel side an earlier run left, and read
    /// the backlog it captured meanwhile.
    Restarted(RestartEvent),
}

/// The gap between two daemons, as the second saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartEvent {
    /// When this daemon adopted the pinned programs and maps.
    pub timestamp: SystemTime,
    /// How long no daemon ran: since the earlier run's last heartbeat
    /// (one a second); `None` when it left none.
    pub gap: Option<std::time::Duration>,
    /// Records read from the ring buffer before it was first empty.
    pub backlog_records: u64,
    /// Records the kernel could not store while no daemon read them.
    pub lost: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Leaving a socket on this host.
    Egress,
    /// Arriving at a socket on this host.
    Ingress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

/// Where the kernel saw a DNS packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// On a socket of this host (cgroup_skb): sent by it, or delivered to it.
    Socket,
    /// Arriving on a host interface (tc ingress), before IP reassembly and
    /// socket lookup: whether or not any socket received it.
    Interface,
}

/// One DNS message carried by one captured packet.
#[derive(Debug, Clone)]
pub struct DnsEvent {
    pub timestamp: SystemTime,
    pub direction: Direction,
    pub transport: Transport,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// cgroup v2 id of the socket the packet belonged to (0 when unknown).
    pub cgroup_id: u64,
    /// The kernel copied only part of the packet; the message may be cut.
    pub truncated: bool,
    /// Cookie of the socket the packet belonged to: with [`DnsOwnerEvent`],
    /// names the process. 0 when unknown (a capture).
    pub socket_cookie: u64,
    pub message: Message,
    /// Socket-delivered copies are what `dns-answer-diverged` judges; the
    /// same response usually also arrives seen at the interface.
    pub seen_at: Hook,
    /// The message arrived as IP fragments (seen at the interface only: the
    /// kernel reassembles before socket delivery).
    pub fragmented: bool,
    /// The message did not parse whole: `message` holds the header and what
    /// parsed before (and, past skippable records, after) the fault.
    pub malformed: Option<Malformed>,
}

/// Where a DNS message stopped parsing, read as a stub resolver reads it
/// (`decode::read_message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Malformed {
    pub section: Section,
    /// The entry of the section that did not parse, from 0.
    pub record: u16,
    /// Its byte offset in the message.
    pub offset: usize,
    /// The capture ended before the message did: the fault may be the cut.
    pub cut: bool,
    /// What the parser said.
    pub reason: String,
}

/// A section of a DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Question,
    Answer,
    Authority,
    Additional,
}

impl Section {
    pub fn name(self) -> &'static str {
        match self {
            Section::Question => "question",
            Section::Answer => "answer",
            Section::Authority => "authority",
            Section::Additional => "additional",
        }
    }
}

/// A UDP DNS response sent by a socket on this host, summarized by the
/// kernel: it is judged whole where it is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsSentEvent {
    pub timestamp: SystemTime,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// The DNS message id.
    pub id: u16,
}

/// The process behind a socket that talks DNS, reported once per socket by
/// the cgroup sendmsg/connect hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOwnerEvent {
    pub timestamp: SystemTime,
    pub socket_cookie: u64,
    pub process: Process,
    pub role: OwnerRole,
    /// Where the socket was sending or connecting.
    pub destination: SocketAddr,
    /// The process's own resolv.conf, read by the daemon before the
    /// detector sees the event (`None` from the kernel and in captures).
    pub resolv_conf: Option<Arc<ResolvConf>>,
}

/// The resolv.conf a process had (`pinwatch.resolv_conf`), as the daemon
/// read it (`identity::resolv`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ResolvConf {
    /// Where the file came from, as the host names it: the source of the
    /// bind mount over the process's `/etc/resolv.conf`
    /// (`/etc/netns/NAME/resolv.conf`, a runtime's copy), else
    /// `/etc/resolv.conf`.
    pub path: String,
    pub nameservers: Vec<IpAddr>,
}

/// What the socket was seen doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnerRole {
    /// Plain DNS: UDP or TCP to port 53, which pinwatch reads.
    Dns,
    /// A TCP connect to port 853: DNS over TLS, which pinwatch cannot read.
    DnsOverTls,
    /// A TCP connect to port 443 of a well-known DNS over HTTPS resolver.
    DnsOverHttps,
}

/// A TCP connect(2) to a watched port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectEvent {
    pub timestamp: SystemTime,
    pub process: Process,
    pub destination: SocketAddr,
    /// What the kernel answered the connect.
    pub action: ConnectAction,
    /// The connecting socket's cookie: ties the connection's first bytes
    /// ([`DbSegmentEvent`]) to this process. 0 when unknown.
    pub socket_cookie: u64,
}

/// One of the first TCP segments with payload of a connection to a watched
/// database port, seen on the client's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSegmentEvent {
    pub timestamp: SystemTime,
    /// Egress: client → server. Ingress: server → client.
    pub direction: Direction,
    /// The client's endpoint.
    pub client: SocketAddr,
    /// The database's endpoint.
    pub server: SocketAddr,
    pub socket_cookie: u64,
    /// The first bytes of the segment's payload (the kernel copies the first
    /// 256 bytes of the packet, headers included).
    pub payload: Vec<u8>,
    /// The payload continued past what was copied.
    pub cut_short: bool,
}

/// The kernel's verdict on a connect: refused only on a port some
/// `mode = "block"` database watches, to an address no database on the port
/// pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectAction {
    Allowed,
    /// connect(2) failed with EPERM.
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    /// Thread-group id: the pid users see.
    pub pid: u32,
    /// Id of the thread that called connect.
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The thread's command name (`comm`), at most 15 bytes.
    pub name: String,
    pub cgroup_id: u64,
}

/// A configuration reload that changed nothing: the file was bad, or asked
/// for what only a restart can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadFailure {
    pub timestamp: SystemTime,
    /// The file that was read.
    pub file: PathBuf,
    /// Why it was refused, naming the key and value where there is one.
    pub reason: String,
    /// SHA-256 of the configuration still in force.
    pub hash_in_force: String,
}

/// Events the kernel or the daemon could not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossEvent {
    pub timestamp: SystemTime,
    pub origin: LossOrigin,
    /// Events lost since the previous report.
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossOrigin {
    /// The ring buffer was full when a DNS packet was to be recorded.
    KernelDnsPacket,
    /// The ring buffer was full when a connect was to be recorded.
    KernelConnect,
    /// The ring buffer was full when a database connection's opening bytes
    /// were to be recorded.
    KernelDbSegment,
    /// The ring buffer was full when a DNS socket's owner was to be
    /// recorded (DNS alerts may then lack the process).
    KernelDnsOwner,
    /// A record arrived from the kernel that could not be decoded.
    Undecodable,
}

#[cfg(test)]
impl Process {
    /// A process for unit tests: root, named `psql`.
    pub(crate) fn sample(pid: u32, cgroup_id: u64) -> Process {
        Process {
            pid,
            tid: pid,
            uid: 0,
            gid: 0,
            name: "psql".into(),
            cgroup_id,
        }
    }
}
