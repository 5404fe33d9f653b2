use std::collections::{BTreeMap, BTreeSet};

use pinwatch_common::{PIN_KEY_PORT_BITS, PinKeyV4};

use super::*;

/// Port `port` enforced or watched, pinning 10.x.y.z/32 for each `n`.
fn policy(ports: &[(u16, bool)], pinned: &[(u16, std::ops::Range<u32>)]) -> Policy {
    let ports: BTreeMap<u16, u32> = ports
        .iter()
        .map(|&(port, enforce)| (port, if enforce { PORT_FLAG_ENFORCE } else { 0 }))
        .collect();
    let v4 = pinned
        .iter()
        .flat_map(|(port, range)| {
            range.clone().map(|n| {
                let key = PinKeyV4 {
                    port: port.to_be_bytes(),
                    addr: (0x0a00_0000 + n).to_be_bytes(),
                };
                (PIN_KEY_PORT_BITS + 32, key)
            })
        })
        .collect();
    Policy {
        ports,
        v4,
        v6: BTreeSet::new(),
    }
}

/// Whether `p` refuses a connect to 10.0.0.0 + `n` on `port`.
fn refuses(p: &Policy, port: u16, n: u32) -> bool {
    let enforced = p
        .ports
        .get(&port)
        .is_some_and(|f| f & PORT_FLAG_ENFORCE != 0);
    let key = PinKeyV4 {
        port: port.to_be_bytes(),
        addr: (0x0a00_0000 + n).to_be_bytes(),
    };
    enforced && !p.v4.contains(&(PIN_KEY_PORT_BITS + 32, key))
}

/// Plays `steps` as `kernel::policy::apply` writes each (new entries, then
/// the ports, then stale entries out), checking every moment: no map over
/// its capacity, and nothing refused that both `old` and `new` allow.
fn play(old: &Policy, new: &Policy, steps: &[Policy], probes: &[(u16, u32)]) {
    let mut state = old.clone();
    for step in steps {
        let inserted = Policy {
            v4: state.v4.union(&step.v4).copied().collect(),
            ..state.clone()
        };
        let mut ports = inserted.ports.clone();
        ports.extend(step.ports.iter().map(|(&p, &f)| (p, f)));
        let widest = Policy {
            ports: ports.clone(),
            ..inserted.clone()
        };
        let flagged = Policy {
            ports: step.ports.clone(),
            ..inserted.clone()
        };
        for moment in [&inserted, &widest, &flagged, step] {
            assert!(
                moment.ports.len() <= MAX_PORTS,
                "{} ports",
                moment.ports.len()
            );
            assert!(
                moment.v4.len() <= MAX_PINNED_PAIRS,
                "{} pairs",
                moment.v4.len()
            );
            for &(port, n) in probes {
                assert!(
                    !refuses(moment, port, n) || refuses(old, port, n) || refuses(new, port, n),
                    "a moment refuses {port}/{n}, which both policies allow"
                );
            }
        }
        state = step.clone();
    }
    assert_eq!(&state, new, "the swap ends at the new policy");
}

#[test]
fn a_swap_that_fits_together_is_one_write() {
    let old = policy(&[(26257, true)], &[(26257, 0..100)]);
    let new = policy(&[(26257, true), (5432, false)], &[(26257, 50..150)]);
    assert_eq!(steps(&old, &new), vec![new]);
}

#[test]
fn pinned_sets_too_big_together_swap_through_a_bridge() {
    // 12,000 pinned networks each, 6,000 shared: 18,000 together.
    let old = policy(
        &[(26257, true), (5432, true)],
        &[(26257, 0..12_000), (5432, 0..10)],
    );
    let new = policy(
        &[(26257, true), (5432, true)],
        &[(26257, 6_000..18_000), (5432, 0..10)],
    );
    let steps = steps(&old, &new);
    assert_eq!(steps.len(), 2);
    let bridge = &steps[0];
    assert_eq!(bridge.v4.len(), 6_000 + 10);
    assert_eq!(
        bridge.ports[&26257] & PORT_FLAG_ENFORCE,
        0,
        "its entries change"
    );
    assert_ne!(
        bridge.ports[&5432] & PORT_FLAG_ENFORCE,
        0,
        "its entries do not"
    );
    let probes: Vec<(u16, u32)> = (0..18_000)
        .step_by(250)
        .map(|n| (26257, n))
        .chain((0..20).map(|n| (5432, n)))
        .collect();
    play(&old, &new, &steps, &probes);
}

#[test]
fn ports_too_many_together_swap_through_a_bridge() {
    let ports = |range: std::ops::Range<u16>| -> Vec<(u16, bool)> {
        range.map(|port| (port, false)).collect()
    };
    let old = policy(&ports(1000..2000), &[]);
    let new = policy(&ports(1500..2500), &[]);
    let steps = steps(&old, &new);
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].ports.len(), 500);
    play(&old, &new, &steps, &[]);
}
