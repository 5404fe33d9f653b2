//! What the connect hooks enforce, computed from the configuration and
//! written to the kernel's maps.
//!
//! The rule, the same the detector applies for `unexpected-db-peer`: a
//! connect to port P is legitimate when its address is in the pinned set of
//! some database that watches P. A port is enforced when at least one
//! database that watches it has `mode = "block"`; on an enforced port the
//! kernel refuses every connect that is not legitimate. So the tries hold,
//! for each enforced port, the pinned sets of every database on that port,
//! whatever their mode: blocking never refuses a connect that monitoring
//! would not have alerted on.
use std::collections::{BTreeMap, BTreeSet};

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, lpm_trie::Key, lpm_trie::LpmTrie},
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use pinwatch_common::{
    PIN_KEY_PORT_BITS, PIN_MAX_ENTRIES, PIN_PRESENT, PORT_FLAG_ENFORCE, PinKeyV4, PinKeyV6,
    PortPolicy,
};

use super::{BpfFailure, KernelError};
use crate::config::{Config, Mode};

const PORTS_MAP: &str = "WATCHED_PORTS";
const V4_MAP: &str = "PINNED_V4";
const V6_MAP: &str = "PINNED_V6";

/// The content of `WATCHED_PORTS`, `PINNED_V4` and `PINNED_V6`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Every watched port and its `PORT_FLAG_*` bits.
    pub ports: BTreeMap<u16, u32>,
    /// Trie entries as (prefix length, key data).
    pub v4: BTreeSet<(u32, PinKeyV4)>,
    pub v6: BTreeSet<(u32, PinKeyV6)>,
}

impl Policy {
    /// Watch `ports`, enforce nothing.
    pub fn monitor(ports: &BTreeSet<u16>) -> Policy {
        Policy {
            ports: ports.iter().map(|&port| (port, 0)).collect(),
            ..Policy::default()
        }
    }

    pub fn from_config(config: &Config) -> Policy {
        let mut policy = Policy::default();
        for database in &config.databases {
            for &port in &database.ports {
                let flags = policy.ports.entry(port).or_default();
                if database.mode == Mode::Block {
                    *flags |= PORT_FLAG_ENFORCE;
                }
            }
        }
        for database in &config.databases {
            for &port in &database.ports {
                if policy.ports[&port] & PORT_FLAG_ENFORCE == 0 {
                    continue;
                }
                for net in &database.pinned {
                    match *net {
                        IpNet::V4(net) => policy.v4.insert(v4_entry(port, net)),
                        IpNet::V6(net) => policy.v6.insert(v6_entry(port, net)),
                    };
                }
            }
        }
        policy
    }

    /// Ports on which connects may be refused.
    pub fn enforced_ports(&self) -> BTreeSet<u16> {
        self.ports
            .iter()
            .filter(|&(_, flags)| flags & PORT_FLAG_ENFORCE != 0)
            .map(|(&port, _)| port)
            .collect()
    }
}

/// The trie entry for `net` on `port`: the port's 16 bits, then the
/// network's prefix, in network byte order.
pub fn v4_entry(port: u16, net: Ipv4Net) -> (u32, PinKeyV4) {
    let net = net.trunc();
    let key = PinKeyV4 {
        port: port.to_be_bytes(),
        addr: net.addr().octets(),
    };
    (PIN_KEY_PORT_BITS + u32::from(net.prefix_len()), key)
}

pub fn v6_entry(port: u16, net: Ipv6Net) -> (u32, PinKeyV6) {
    let net = net.trunc();
    let key = PinKeyV6 {
        port: port.to_be_bytes(),
        addr: net.addr().octets(),
    };
    (PIN_KEY_PORT_BITS + u32::from(net.prefix_len()), key)
}

/// Brings the maps to `policy` without a moment in which a connect that
/// the old or the new policy allows is refused: new trie entries first,
/// then the port flags, then the stale trie entries. In between, the tries
/// hold the union of both pinned sets, which refuses less, never more.
pub(super) fn apply(ebpf: &mut Ebpf, policy: &Policy) -> Result<(), KernelError> {
    let stale_v4 = insert_entries::<PinKeyV4>(ebpf, V4_MAP, &policy.v4)?;
    let stale_v6 = insert_entries::<PinKeyV6>(ebpf, V6_MAP, &policy.v6)?;
    set_ports(ebpf, &policy.ports)?;
    set_port_bits(ebpf, &policy.ports)?;
    remove_entries::<PinKeyV4>(ebpf, V4_MAP, &stale_v4)?;
    remove_entries::<PinKeyV6>(ebpf, V6_MAP, &stale_v6)?;
    Ok(())
}

fn missing(map: &'static str) -> impl Fn() -> KernelError {
    move || KernelError::Map {
        map,
        source: BpfFailure::Missing,
    }
}

fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |error| KernelError::Map {
        map,
        source: BpfFailure::map(error),
    }
}

fn update_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |error| KernelError::MapUpdate {
        map,
        source: BpfFailure::map(error),
    }
}

fn trie<'a, K: aya::Pod>(
    ebpf: &'a mut Ebpf,
    map: &'static str,
) -> Result<LpmTrie<&'a mut MapData, K, u32>, KernelError> {
    let data = ebpf.map_mut(map).ok_or_else(missing(map))?;
    LpmTrie::try_from(data).map_err(map_error(map))
}

/// Inserts `entries`; returns the entries already in the map that are not
/// among them.
fn insert_entries<K: aya::Pod + Ord>(
    ebpf: &mut Ebpf,
    map: &'static str,
    entries: &BTreeSet<(u32, K)>,
) -> Result<Vec<(u32, K)>, KernelError> {
    if entries.len() > PIN_MAX_ENTRIES as usize {
        return Err(KernelError::MapUpdate {
            map,
            source: BpfFailure::TooManyEntries {
                entries: entries.len(),
                limit: PIN_MAX_ENTRIES,
            },
        });
    }
    let mut trie = trie::<K>(ebpf, map)?;
    let stale: Vec<(u32, K)> = trie
        .keys()
        .filter_map(Result::ok)
        .map(|key| (key.prefix_len(), key.data()))
        .filter(|entry| !entries.contains(entry))
        .collect();
    for &(prefix_len, data) in entries {
        trie.insert(&Key::new(prefix_len, data), PIN_PRESENT, 0)
            .map_err(update_error(map))?;
    }
    Ok(stale)
}

fn remove_entries<K: aya::Pod>(
    ebpf: &mut Ebpf,
    map: &'static str,
    stale: &[(u32, K)],
) -> Result<(), KernelError> {
    let mut trie = trie::<K>(ebpf, map)?;
    for &(prefix_len, data) in stale {
        trie.remove(&Key::new(prefix_len, data))
            .map_err(update_error(map))?;
    }
    Ok(())
}

/// Inserts or updates every port, then removes the ports no longer watched.
fn set_ports(ebpf: &mut Ebpf, ports: &BTreeMap<u16, u32>) -> Result<(), KernelError> {
    let data = ebpf.map_mut(PORTS_MAP).ok_or_else(missing(PORTS_MAP))?;
    let mut map: HashMap<&mut MapData, u16, PortPolicy> =
        HashMap::try_from(data).map_err(map_error(PORTS_MAP))?;
    let stale: Vec<u16> = map
        .keys()
        .filter_map(Result::ok)
        .filter(|port| !ports.contains_key(port))
        .collect();
    for (port, &flags) in ports {
        map.insert(port, PortPolicy { flags }, 0)
            .map_err(update_error(PORTS_MAP))?;
    }
    for port in stale {
        map.remove(&port).map_err(update_error(PORTS_MAP))?;
    }
    Ok(())
}

/// The packet hooks' copy of the watched ports: a 65,536-bit bitmap, one
/// `u64` word per 64 ports. Only words whose value changes are written.
fn set_port_bits(ebpf: &mut Ebpf, ports: &BTreeMap<u16, u32>) -> Result<(), KernelError> {
    const BITS_MAP: &str = "WATCHED_PORT_BITS";
    let data = ebpf.map_mut(BITS_MAP).ok_or_else(missing(BITS_MAP))?;
    let mut map: Array<&mut MapData, u64> = Array::try_from(data).map_err(map_error(BITS_MAP))?;
    let words = port_bitmap(ports.keys().copied());
    for (index, &word) in words.iter().enumerate() {
        let index = index as u32;
        if map.get(&index, 0).map_err(update_error(BITS_MAP))? != word {
            map.set(index, word, 0).map_err(update_error(BITS_MAP))?;
        }
    }
    Ok(())
}

/// Bit `port % 64` of word `port / 64` is set for every watched port.
pub fn port_bitmap(ports: impl IntoIterator<Item = u16>) -> Vec<u64> {
    let mut words = vec![0u64; 1024];
    for port in ports {
        words[usize::from(port / 64)] |= 1 << (port % 64);
    }
    words
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
