use std::{
    net::{IpAddr, SocketAddr},
    time::UNIX_EPOCH,
};

use super::*;
use crate::{
    alert::Rule,
    detector::Detector,
    event::{ConnectAction, ConnectEvent, Event, Process},
    fixtures::config,
};

/// orders (monitor) and billing (block) share 5432; billing also has 6432,
/// orders also 26257.
fn shared_port_config() -> Config {
    config(
        r#"
[[database]]
name = "orders"
hostnames = ["orders.lab.test"]
ports = [26257, 5432]
pinned = ["10.20.0.0/16", "2001:db8:10::/48"]

[[database]]
name = "billing"
hostnames = ["billing.lab.test"]
ports = [5432, 6432]
pinned = ["192.0.2.7", "::ffff:198.51.100.0/120"]
mode = "block"
"#,
    )
}

/// What the kernel's longest-prefix match answers: does some entry's first
/// `prefix_len` bits equal those of (port, address)?
fn trie_matches<const N: usize>(entries: &[(u32, [u8; N])], lookup: [u8; N]) -> bool {
    entries.iter().any(|&(prefix_len, data)| {
        (0..prefix_len as usize).all(|bit| {
            let mask = 0x80 >> (bit % 8);
            data[bit / 8] & mask == lookup[bit / 8] & mask
        })
    })
}

fn v4_bytes(key: &PinKeyV4) -> [u8; 6] {
    let mut bytes = [0; 6];
    bytes[..2].copy_from_slice(&key.port);
    bytes[2..].copy_from_slice(&key.addr);
    bytes
}

fn v6_bytes(key: &PinKeyV6) -> [u8; 18] {
    let mut bytes = [0; 18];
    bytes[..2].copy_from_slice(&key.port);
    bytes[2..].copy_from_slice(&key.addr);
    bytes
}

/// The connect hooks' verdict, as monitor-ebpf/src/programs/connect.rs computes it
/// from the maps: refused on an enforced port when no entry matches, an
/// IPv4-mapped destination looked up in the IPv4 trie.
fn kernel_refuses(policy: &Policy, destination: SocketAddr) -> bool {
    let port = destination.port();
    let Some(flags) = policy.ports.get(&port) else {
        return false;
    };
    if flags & PORT_FLAG_ENFORCE == 0 {
        return false;
    }
    let pinned = match destination.ip().to_canonical() {
        IpAddr::V4(ip) => {
            let entries: Vec<_> = policy.v4.iter().map(|(p, k)| (*p, v4_bytes(k))).collect();
            let (_, key) = v4_entry(port, Ipv4Net::from(ip));
            trie_matches(&entries, v4_bytes(&key))
        }
        IpAddr::V6(ip) => {
            let entries: Vec<_> = policy.v6.iter().map(|(p, k)| (*p, v6_bytes(k))).collect();
            let (_, key) = v6_entry(port, Ipv6Net::from(ip));
            trie_matches(&entries, v6_bytes(&key))
        }
    };
    !pinned
}

#[test]
fn monitor_only_watches_ports_and_enforces_nothing() {
    let config = config(
        "[[database]]\nname = \"orders\"\nhostnames = [\"db.lab.test\"]\nports = [26257, 5432]\npinned = [\"192.0.2.0/24\"]\n",
    );
    let policy = Policy::from_config(&config);
    assert_eq!(policy.ports, BTreeMap::from([(5432, 0), (26257, 0)]));
    assert!(policy.v4.is_empty() && policy.v6.is_empty());
    assert!(policy.enforced_ports().is_empty());
    assert_eq!(policy, Policy::monitor(&config.watched_ports()));
}

#[test]
fn trie_keys_are_port_then_address_in_network_order() {
    let (prefix_len, key) = v4_entry(26257, "192.0.2.0/24".parse().unwrap());
    // 26257 = 0x6691; the prefix counts the port's 16 bits.
    assert_eq!(prefix_len, 16 + 24);
    assert_eq!(key.port, [0x66, 0x91]);
    assert_eq!(key.addr, [192, 0, 2, 0]);
    let (prefix_len, key) = v6_entry(5432, "2001:db8::7/128".parse().unwrap());
    assert_eq!(prefix_len, 16 + 128);
    assert_eq!(key.port, [0x15, 0x38]);
    assert_eq!(key.addr[..4], [0x20, 0x01, 0x0d, 0xb8]);
    assert_eq!(key.addr[15], 7);
    // A single address and a whole family.
    assert_eq!(v4_entry(1, "0.0.0.0/0".parse().unwrap()).0, 16);
    assert_eq!(v4_entry(1, "203.0.113.9/32".parse().unwrap()).0, 48);
}

#[test]
fn a_shared_port_is_enforced_with_the_pins_of_every_database_on_it() {
    let policy = Policy::from_config(&shared_port_config());
    assert_eq!(
        policy.ports,
        BTreeMap::from([
            (5432, PORT_FLAG_ENFORCE),
            (6432, PORT_FLAG_ENFORCE),
            (26257, 0)
        ])
    );
    assert_eq!(policy.enforced_ports(), BTreeSet::from([5432, 6432]));
    let v4: BTreeSet<_> = [
        v4_entry(5432, "10.20.0.0/16".parse().unwrap()),
        v4_entry(5432, "192.0.2.7/32".parse().unwrap()),
        // The IPv4-mapped pin is an IPv4 pin.
        v4_entry(5432, "198.51.100.0/24".parse().unwrap()),
        v4_entry(6432, "192.0.2.7/32".parse().unwrap()),
        v4_entry(6432, "198.51.100.0/24".parse().unwrap()),
    ]
    .into();
    assert_eq!(policy.v4, v4);
    // orders' IPv6 pin counts on 5432, where billing blocks, not on 6432.
    let v6: BTreeSet<_> = [v6_entry(5432, "2001:db8:10::/48".parse().unwrap())].into();
    assert_eq!(policy.v6, v6);
}

#[test]
fn the_kernel_refuses_exactly_what_the_detector_calls_unexpected_on_enforced_ports() {
    let config = shared_port_config();
    let policy = Policy::from_config(&config);
    let mut detector = Detector::new(&config);
    let cases = [
        // (destination, refused)
        ("192.0.2.7:5432", false),
        ("192.0.2.8:5432", true),
        ("10.20.3.4:5432", false),
        ("10.21.0.1:5432", true),
        ("[::ffff:198.51.100.9]:5432", false),
        ("[::ffff:203.0.113.66]:5432", true),
        ("[2001:db8:10::5]:5432", false),
        ("[2001:db8:11::5]:5432", true),
        ("10.20.3.4:6432", true),
        ("192.0.2.7:6432", false),
        ("[2001:db8:10::5]:6432", true),
        // Monitored only, or not watched at all: never refused.
        ("203.0.113.66:26257", false),
        ("203.0.113.66:80", false),
    ];
    for (destination, refused) in cases {
        let destination: SocketAddr = destination.parse().unwrap();
        assert_eq!(
            kernel_refuses(&policy, destination),
            refused,
            "{destination}"
        );
        if !policy.enforced_ports().contains(&destination.port()) {
            continue;
        }
        let alerts = detector.observe(&Event::Connect(ConnectEvent {
            timestamp: UNIX_EPOCH,
            process: Process {
                pid: 1,
                tid: 1,
                uid: 0,
                gid: 0,
                name: "psql".into(),
                cgroup_id: 0,
            },
            destination,
            action: ConnectAction::Allowed,
            socket_cookie: 0,
        }));
        let unexpected = alerts.iter().any(|a| a.rule == Rule::UnexpectedDbPeer);
        assert_eq!(unexpected, refused, "detector on {destination}");
    }
}

#[test]
fn port_bitmap_sets_one_bit_per_watched_port() {
    let words = super::port_bitmap([0, 63, 64, 5432, 26257, 65535]);
    assert_eq!(words.len(), 1024);
    assert_eq!(words[0], 1 | 1 << 63);
    assert_eq!(words[1], 1);
    assert_eq!(words[5432 / 64], 1 << (5432 % 64));
    assert_eq!(words[26257 / 64], 1 << (26257 % 64));
    assert_eq!(words[1023], 1 << 63);
    assert_eq!(words.iter().map(|w| w.count_ones()).sum::<u32>(), 6);
}
