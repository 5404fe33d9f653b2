//! Events as the kernel hands them over, for the unit tests of every layer
//! that judges them: the one place that spells out every field, so a new
//! field is added once.
use std::{
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{Name, RData, Record, RecordType, rdata},
};

use crate::{
    config::{Config, HostDefaults},
    event::{ConnectAction, ConnectEvent, Direction, DnsEvent, Event, Hook, Process, Transport},
};

/// A configuration from TOML text, on a host whose resolv.conf names no
/// nameserver; panics with the error and the text when it is refused.
pub(crate) fn config(text: &str) -> Config {
    Config::from_toml(text, None, &HostDefaults::default())
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A fixed instant `secs` past a fixed epoch: tests never read the clock.
pub(crate) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
}

/// A UDP message seen at a socket, parsed whole, not cut, not fragmented.
pub(crate) fn dns_event(
    message: Message,
    direction: Direction,
    source: &str,
    destination: &str,
    timestamp: SystemTime,
) -> DnsEvent {
    DnsEvent {
        timestamp,
        direction,
        transport: Transport::Udp,
        source: socket_addr(source),
        destination: socket_addr(destination),
        cgroup_id: 0,
        truncated: false,
        socket_cookie: 0,
        seen_at: Hook::Socket,
        fragmented: false,
        malformed: None,
        message,
    }
}

/// A response to `question` (type A) answering it with `ips`, TTL `ttl`.
pub(crate) fn a_response(question: &str, id: u16, ips: &[&str], ttl: u32) -> Message {
    let name = Name::from_ascii(question).unwrap_or_else(|e| panic!("{question:?}: {e}"));
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Response)
        .add_query(Query::query(name.clone(), RecordType::A));
    for ip in ips {
        let ip = ip.parse().unwrap_or_else(|_| panic!("{ip:?} is not IPv4"));
        message.add_answer(Record::from_rdata(
            name.clone(),
            ttl,
            RData::A(rdata::A(ip)),
        ));
    }
    message
}

/// The application process the connect tests run as.
pub(crate) fn app_process(name: &str) -> Process {
    Process {
        pid: 4321,
        tid: 4322,
        uid: 1000,
        gid: 1000,
        name: name.into(),
        cgroup_id: 7,
    }
}

/// A connect by [`app_process`] `python3`.
pub(crate) fn connect_event(
    destination: &str,
    action: ConnectAction,
    timestamp: SystemTime,
) -> Event {
    Event::Connect(ConnectEvent {
        timestamp,
        process: app_process("python3"),
        destination: socket_addr(destination),
        action,
        socket_cookie: 0,
    })
}

fn socket_addr(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|_| panic!("{text:?} is not an address:port"))
}
