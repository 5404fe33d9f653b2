//! The kernel's map capacities, checked when a file is validated, so that
//! `check-config`, the start and a reload refuse a file the kernel would
//! (exit 2, the key and the limit named) instead of failing at attach time.
//!
//! What is counted is what `kernel::Policy::from_config` writes: every
//! distinct watched port into `WATCHED_PORTS`; for each enforced port (one
//! that some `mode = "block"` database watches), the pinned networks of
//! every database on it, one (port, network) entry each, into `PINNED_V4`
//! or `PINNED_V6`.
use std::collections::BTreeSet;

use ipnet::IpNet;
use pinwatch_common::{PIN_MAX_ENTRIES, WATCHED_PORTS_MAX_ENTRIES};

use super::{Database, Mode, error::Problem};

/// Distinct ports over all databases, at most this many.
pub const MAX_PORTS: usize = WATCHED_PORTS_MAX_ENTRIES as usize;
/// (enforced port, pinned network) pairs per address family, at most this many.
pub const MAX_PINNED_PAIRS: usize = PIN_MAX_ENTRIES as usize;

/// The first limit `databases` exceed: the key of the database at which the
/// count passes it, and the problem.
pub(super) fn check(databases: &[Database]) -> Result<(), (String, Problem)> {
    let mut ports = BTreeSet::new();
    for (i, db) in databases.iter().enumerate() {
        ports.extend(db.ports.iter().copied());
        if ports.len() > MAX_PORTS {
            let problem = Problem::TooManyPorts {
                limit: MAX_PORTS,
                count: distinct_ports(databases),
            };
            return Err((format!("database[{i}].ports"), problem));
        }
    }
    let enforced: BTreeSet<u16> = databases
        .iter()
        .filter(|db| db.mode == Mode::Block)
        .flat_map(|db| db.ports.iter().copied())
        .collect();
    for (family, map, v4) in [("IPv4", "PINNED_V4", true), ("IPv6", "PINNED_V6", false)] {
        let mut pairs = BTreeSet::new();
        let mut crossed = None;
        for (i, db) in databases.iter().enumerate() {
            for port in db.ports.iter().filter(|p| enforced.contains(p)) {
                let nets = db
                    .pinned
                    .iter()
                    .filter(|net| matches!(net, IpNet::V4(_)) == v4);
                pairs.extend(nets.map(|net| (*port, net.trunc())));
            }
            if crossed.is_none() && pairs.len() > MAX_PINNED_PAIRS {
                crossed = Some(i);
            }
        }
        if let Some(i) = crossed {
            let problem = Problem::TooManyPinnedPairs {
                family,
                map,
                limit: MAX_PINNED_PAIRS,
                count: pairs.len(),
            };
            return Err((format!("database[{i}].pinned"), problem));
        }
    }
    Ok(())
}

fn distinct_ports(databases: &[Database]) -> usize {
    databases
        .iter()
        .flat_map(|db| db.ports.iter())
        .collect::<BTreeSet<_>>()
        .len()
}
