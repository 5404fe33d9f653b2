//! Sequences of events through one `Detector`, the fold stage and the ECS
//! encoder, so that the matching state (queries waiting on legs, first
//! answers, socket owners, stub paths, recent answers, fold windows) is
//! reached: queries, structure-aware hostile responses (`wire`), raw
//! responses, TCP segments and IP fragments through the daemon's
//! reassembly, connects, owner records, database segments, losses and
//! clock ticks. Responses pick a waiting query's leg and id most of the
//! time, so they match. `observe` is called, not `judge`: a fault must
//! crash here, not be caught.
#![no_main]

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use libfuzzer_sys::fuzz_target;
use pinwatch::{
    alert::{Alert, encode, fold::Folder},
    decode::{PacketMeta, Parsed, udp_message},
    detector::Detector,
    event::{
        ConnectAction, ConnectEvent, DbSegmentEvent, Direction, DnsEvent, DnsOwnerEvent,
        DnsSentEvent, Event, Hook, LossEvent, LossOrigin, OwnerRole, Process, Transport,
    },
    reassembly::Assembler,
};
use pinwatch_fuzz::{
    script::Script,
    wire::{self, NAMES},
};

const CLIENTS: [&str; 4] = [
    "198.51.100.10:40000",
    "198.51.100.10:40001",
    "[2001:db8::10]:40002",
    "127.0.0.1:40003",
];
const SERVERS: [&str; 3] = ["198.51.100.53:53", "203.0.113.53:53", "127.0.0.53:53"];
const COOKIES: [u64; 3] = [0, 0xa11, 0xb22];
const PEERS: [&str; 4] = [
    "192.0.2.1:26257",
    "203.0.113.66:26257",
    "198.51.100.20:5432",
    "[2001:db8::bad]:26257",
];

/// A question some socket asked: what a matching response copies.
#[derive(Clone, Copy)]
struct Asked {
    leg: (usize, usize),
    id: u16,
    name: usize,
    cookie: u64,
}

struct State {
    detector: Detector,
    folder: Folder,
    assembler: Assembler,
    now: SystemTime,
    asked: Vec<Asked>,
}

fuzz_target!(|data: &[u8]| {
    let config = pinwatch_fuzz::config();
    let mut state = State {
        detector: Detector::new(config),
        folder: Folder::new(config.alerts.dedup_window, 8),
        assembler: Assembler::default(),
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
        asked: Vec::new(),
    };
    let agent = pinwatch_fuzz::agent();
    let mut script = Script::new(data);
    let mut lines = Vec::new();
    while !script.is_done() {
        for event in state.step(&mut script) {
            for alert in state.detector.observe(&event) {
                lines.extend(state.folder.offer(alert));
            }
        }
        lines.extend(state.folder.tick(state.now));
        check(&state);
        for alert in lines.drain(..) {
            let _ = encode(&alert, &agent, "fuzz");
        }
    }
    lines.extend(state.folder.flush());
    lines.iter().for_each(|alert: &Alert| {
        let _ = encode(alert, &agent, "fuzz");
    });
});

/// The detector's and the fold stage's bounds hold after every step.
fn check(state: &State) {
    assert!(state.detector.outstanding_queries() <= 65_536);
    assert!(state.folder.open_windows() <= 8);
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

impl State {
    fn step(&mut self, script: &mut Script<'_>) -> Vec<Event> {
        match script.byte() % 10 {
            0 | 1 => self.query(script),
            2..=4 => self.response(script),
            5 => self.raw(script),
            6 => self.tcp(script),
            7 => self.fragments(script),
            8 => self.other(script),
            _ => {
                // Milliseconds to minutes: grace, query timeout, fold windows.
                let step = u64::from(script.byte());
                self.now += Duration::from_millis(step * step * 10);
                self.assembler
                    .expire(self.now)
                    .into_iter()
                    .map(Event::Dns)
                    .collect()
            }
        }
    }

    fn dns(&self, leg: (usize, usize), egress: bool, parsed: Parsed) -> DnsEvent {
        let (client, server) = (addr(CLIENTS[leg.0]), addr(SERVERS[leg.1]));
        DnsEvent {
            timestamp: self.now,
            direction: if egress {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            transport: Transport::Udp,
            source: if egress { client } else { server },
            destination: if egress { server } else { client },
            cgroup_id: 0,
            truncated: false,
            socket_cookie: 0,
            message: parsed.message,
            seen_at: Hook::Socket,
            fragmented: false,
            malformed: parsed.malformed,
        }
    }

    fn query(&mut self, script: &mut Script<'_>) -> Vec<Event> {
        let choice = script.byte();
        let asked = Asked {
            leg: (
                usize::from(choice & 3),
                usize::from(choice >> 2) % SERVERS.len(),
            ),
            id: script.u16(),
            name: usize::from(script.byte()) % NAMES.len(),
            cookie: COOKIES[usize::from(choice >> 6) % COOKIES.len()],
        };
        let case = if choice & 0x20 != 0 { script.byte() } else { 0 };
        let mut bytes = asked.id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        wire::name(&mut bytes, NAMES[asked.name], case);
        let qtype: u16 = [1, 28, 255, 5][usize::from(script.byte() % 4)];
        bytes.extend_from_slice(&qtype.to_be_bytes());
        bytes.extend_from_slice(&[0, 1]);
        let Ok(message) = udp_message(&bytes, false) else {
            return Vec::new();
        };
        if self.asked.len() >= 16 {
            self.asked.remove(0);
        }
        self.asked.push(asked);
        let mut event = self.dns(asked.leg, true, message);
        event.socket_cookie = asked.cookie;
        vec![Event::Dns(event)]
    }

    /// A waiting query to answer (most of the time), or a made-up one.
    fn target(&self, script: &mut Script<'_>) -> Asked {
        let choice = script.byte();
        match self.asked.get(usize::from(choice) % 32) {
            Some(asked) if choice < 0xc0 => *asked,
            _ => Asked {
                leg: (
                    usize::from(choice & 3),
                    usize::from(choice >> 2) % SERVERS.len(),
                ),
                id: script.u16(),
                name: usize::from(script.byte()) % NAMES.len(),
                cookie: COOKIES[usize::from(choice >> 4) % COOKIES.len()],
            },
        }
    }

    fn response(&mut self, script: &mut Script<'_>) -> Vec<Event> {
        let asked = self.target(script);
        let how = script.byte();
        let case = if how & 1 != 0 { script.byte() } else { 0 };
        let built = wire::response(script, asked.id, NAMES[asked.name], case);
        self.deliver(asked, how, &built.bytes, built.cut)
    }

    /// Bytes straight from the script, as the answer to a waiting query.
    fn raw(&mut self, script: &mut Script<'_>) -> Vec<Event> {
        let asked = self.target(script);
        let how = script.byte();
        let len = usize::from(script.u16() % 1500);
        let bytes = script.bytes(len).to_vec();
        self.deliver(asked, how, &bytes, how & 0x40 != 0)
    }

    /// A parsed response as the kernel would hand it: to a socket or at an
    /// interface, over UDP or TCP, whole or cut, reassembled or not.
    fn deliver(&mut self, asked: Asked, how: u8, bytes: &[u8], cut: bool) -> Vec<Event> {
        let Ok(message) = udp_message(bytes, cut) else {
            return Vec::new();
        };
        let mut event = self.dns(asked.leg, false, message);
        event.socket_cookie = asked.cookie;
        event.truncated = cut;
        event.transport = if how & 2 != 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        if how & 4 != 0 {
            event.seen_at = Hook::Interface;
            event.fragmented = how & 8 != 0;
        }
        let mut events = vec![Event::Dns(event.clone())];
        if how & 0x10 != 0 {
            // The same response seen at the other hook too, as in the kernel.
            event.seen_at = match event.seen_at {
                Hook::Socket => Hook::Interface,
                Hook::Interface => Hook::Socket,
            };
            events.push(Event::Dns(event));
        }
        events
    }

    fn meta(&self) -> PacketMeta {
        PacketMeta {
            timestamp: self.now,
            direction: Direction::Ingress,
            cgroup_id: 0,
            truncated: false,
        }
    }

    /// A TCP segment with DNS framing: a length prefix of 0, 1, 65535 or
    /// the true length, then a hostile response, through reassembly.
    fn tcp(&mut self, script: &mut Script<'_>) -> Vec<Event> {
        let asked = self.target(script);
        let built = wire::response(script, asked.id, NAMES[asked.name], 0);
        let prefix: u16 = match script.byte() % 4 {
            0 => 0,
            1 => 1,
            2 => u16::MAX,
            _ => built.bytes.len() as u16,
        };
        let mut payload = prefix.to_be_bytes().to_vec();
        payload.extend_from_slice(&built.bytes);
        let sequence = u32::from(script.u16());
        let (server, client) = v4_ends(asked);
        let builder = etherparse::PacketBuilder::ipv4(server.0, client.0, 64)
            .tcp(53, client.1, sequence, 65535)
            .psh()
            .ack(1);
        let mut packet = Vec::new();
        if builder.write(&mut packet, &payload).is_err() {
            return Vec::new();
        }
        self.push(&packet, asked.cookie)
    }

    /// A UDP response split into two IPv4 fragments whose offsets the
    /// script picks (overlapping, out of order, or leaving a hole).
    fn fragments(&mut self, script: &mut Script<'_>) -> Vec<Event> {
        let asked = self.target(script);
        let built = wire::response(script, asked.id, NAMES[asked.name], 0);
        let (server, client) = v4_ends(asked);
        let mut udp = Vec::new();
        let builder = etherparse::PacketBuilder::ipv4(server.0, client.0, 64).udp(53, client.1);
        if builder.write(&mut udp, &built.bytes).is_err() {
            return Vec::new();
        }
        let datagram = &udp[20..];
        let split = (usize::from(script.byte()) * datagram.len() / 256) & !7;
        let second_at = (split + usize::from(script.byte() % 3) * 8).saturating_sub(8);
        let id = script.u16();
        let first = wire::fragment(
            (server.0, client.0),
            id,
            0,
            true,
            &datagram[..split.max(8).min(datagram.len())],
        );
        let second = wire::fragment(
            (server.0, client.0),
            id,
            second_at,
            false,
            &datagram[second_at.min(datagram.len())..],
        );
        let mut events = Vec::new();
        let order = script.byte() & 1;
        for packet in if order == 0 {
            [&first, &second]
        } else {
            [&second, &first]
        } {
            events.extend(self.push_at(packet, 0, Hook::Interface));
        }
        events
    }

    fn push(&mut self, packet: &[u8], cookie: u64) -> Vec<Event> {
        self.push_at(packet, cookie, Hook::Socket)
    }

    fn push_at(&mut self, packet: &[u8], cookie: u64, hook: Hook) -> Vec<Event> {
        let meta = self.meta();
        match self.assembler.push(packet, meta, cookie, hook) {
            Ok(events) => events.into_iter().map(Event::Dns).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Connects, socket owners, database segments, losses.
    fn other(&mut self, script: &mut Script<'_>) -> Vec<Event> {
        let choice = script.byte();
        let process = Process {
            pid: u32::from(choice),
            tid: u32::from(choice),
            uid: 0,
            gid: 0,
            name: "fuzz".into(),
            cgroup_id: 1,
        };
        let cookie = COOKIES[usize::from(choice) % COOKIES.len()];
        let event = match script.byte() % 5 {
            0 => Event::Connect(ConnectEvent {
                timestamp: self.now,
                process,
                destination: addr(PEERS[usize::from(choice >> 2) % PEERS.len()]),
                action: if choice & 1 == 0 {
                    ConnectAction::Allowed
                } else {
                    ConnectAction::Blocked
                },
                socket_cookie: cookie,
            }),
            1 => Event::DnsOwner(DnsOwnerEvent {
                timestamp: self.now,
                socket_cookie: cookie,
                process,
                role: [
                    OwnerRole::Dns,
                    OwnerRole::DnsOverTls,
                    OwnerRole::DnsOverHttps,
                ][usize::from(choice >> 2) % 3],
                destination: addr(SERVERS[usize::from(choice >> 4) % SERVERS.len()]),
                // As in captures: the daemon reads it, the detector is given it.
                resolv_conf: None,
            }),
            2 => {
                let len = usize::from(script.byte());
                Event::DbSegment(DbSegmentEvent {
                    timestamp: self.now,
                    direction: if choice & 1 == 0 {
                        Direction::Egress
                    } else {
                        Direction::Ingress
                    },
                    client: addr(CLIENTS[0]),
                    server: addr(PEERS[usize::from(choice >> 2) % PEERS.len()]),
                    socket_cookie: cookie,
                    payload: script.bytes(len).to_vec(),
                    cut_short: choice & 2 != 0,
                })
            }
            3 => Event::DnsSent(DnsSentEvent {
                timestamp: self.now,
                source: addr(SERVERS[usize::from(choice >> 2) % SERVERS.len()]),
                destination: addr(CLIENTS[usize::from(choice >> 5) % CLIENTS.len()]),
                id: u16::from(choice),
            }),
            _ => Event::Loss(LossEvent {
                timestamp: self.now,
                origin: LossOrigin::KernelDnsPacket,
                count: u64::from(choice),
            }),
        };
        vec![event]
    }
}

/// The leg's IPv4 endpoints (IPv6 legs are sent from the first client).
fn v4_ends(asked: Asked) -> (([u8; 4], u16), ([u8; 4], u16)) {
    let v4 = |text: &str| match addr(text) {
        SocketAddr::V4(a) => (a.ip().octets(), a.port()),
        SocketAddr::V6(_) => ([198, 51, 100, 10], 40002),
    };
    (v4(SERVERS[asked.leg.1]), v4(CLIENTS[asked.leg.0]))
}
