//! The order in which a reload writes the kernel's policy maps, so that a
//! file that fits the maps always reloads.
//!
//! `Probes::set_policy` writes new entries before it removes stale ones:
//! for a moment the maps hold both sets, which refuses no connect that the
//! old or the new policy allows. When both together do not fit a map, a
//! bridge goes first: only what both policies share, with enforcement
//! lifted on every port whose pinned entries change. For that moment those
//! ports are watched but not enforced (fail-open, as pinwatch is wherever it
//! cannot be sure), so the swap still refuses nothing either policy allows.
use std::collections::BTreeSet;

use pinwatch_common::PORT_FLAG_ENFORCE;

use crate::{
    config::limits::{MAX_PINNED_PAIRS, MAX_PORTS},
    kernel::Policy,
};

/// The policies to write, in order, to go from `old` to `new`.
pub(super) fn steps(old: &Policy, new: &Policy) -> Vec<Policy> {
    if together_fit(old, new) {
        return vec![new.clone()];
    }
    vec![bridge(old, new), new.clone()]
}

fn together_fit(old: &Policy, new: &Policy) -> bool {
    let ports: BTreeSet<&u16> = old.ports.keys().chain(new.ports.keys()).collect();
    ports.len() <= MAX_PORTS
        && old.v4.union(&new.v4).count() <= MAX_PINNED_PAIRS
        && old.v6.union(&new.v6).count() <= MAX_PINNED_PAIRS
}

/// What both share; a port stays enforced only where both enforce it with
/// the same pinned entries.
fn bridge(old: &Policy, new: &Policy) -> Policy {
    let unchanged = |port: u16| {
        let bytes = port.to_be_bytes();
        let v4 = |p: &Policy| p.v4.iter().filter(|(_, k)| k.port == bytes).count();
        let v6 = |p: &Policy| p.v6.iter().filter(|(_, k)| k.port == bytes).count();
        let shared_v4 = old
            .v4
            .intersection(&new.v4)
            .filter(|(_, k)| k.port == bytes)
            .count();
        let shared_v6 = old
            .v6
            .intersection(&new.v6)
            .filter(|(_, k)| k.port == bytes)
            .count();
        v4(old) == shared_v4 && v4(new) == shared_v4 && v6(old) == shared_v6 && v6(new) == shared_v6
    };
    let ports = old
        .ports
        .iter()
        .filter_map(|(&port, &old_flags)| {
            let flags = old_flags & new.ports.get(&port)?;
            let keep = flags & PORT_FLAG_ENFORCE == 0 || unchanged(port);
            Some((
                port,
                if keep {
                    flags
                } else {
                    flags & !PORT_FLAG_ENFORCE
                },
            ))
        })
        .collect();
    Policy {
        ports,
        v4: old.v4.intersection(&new.v4).copied().collect(),
        v6: old.v6.intersection(&new.v6).copied().collect(),
    }
}

#[cfg(test)]
#[path = "swap_tests.rs"]
mod tests;
