use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    time::{Duration, SystemTime},
};

use hickory_proto::rr::Name;

use super::compact::CompactName;

/// Applications keep addresses longer than the TTL says (connection pools,
/// JVM caches), so a mapping is remembered for at least this long.
const MIN_RETENTION: Duration = Duration::from_secs(15 * 60);
/// Bound on remembered addresses: a flood of answers cannot grow memory.
const CAPACITY: usize = 65_536;

/// Which name a recent DNS answer on this host mapped an address to; gives
/// `unexpected-db-peer` its `destination.domain`.
#[derive(Debug)]
pub struct RecentAnswers {
    names: HashMap<IpAddr, Remembered>,
    /// Insertion order, for evicting the oldest when full.
    order: VecDeque<(IpAddr, u64)>,
    next_generation: u64,
    capacity: usize,
}

#[derive(Debug)]
struct Remembered {
    /// Shared by the addresses of one answer; its text is built only when
    /// an alert names the address.
    name: CompactName,
    expires: SystemTime,
    generation: u64,
}

impl Default for RecentAnswers {
    fn default() -> Self {
        RecentAnswers::with_capacity(CAPACITY)
    }
}

impl RecentAnswers {
    pub fn with_capacity(capacity: usize) -> RecentAnswers {
        RecentAnswers {
            names: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
            capacity,
        }
    }

    pub fn remember(&mut self, ip: IpAddr, name: &Name, ttl: u32, now: SystemTime) {
        self.remember_answer(name, &[(ip, ttl)], now);
    }

    /// Remembers every address of one answer for `name`, each with its TTL.
    /// The name is copied once for all of them, and not at all for an
    /// address it is remembered under already (the same answer again, the
    /// common case); no text is built for it here, on every answer.
    pub fn remember_answer(&mut self, name: &Name, addresses: &[(IpAddr, u32)], now: SystemTime) {
        let mut shared: Option<CompactName> = None;
        for &(ip, ttl) in addresses {
            let retention = Duration::from_secs(u64::from(ttl)).max(MIN_RETENTION);
            let generation = self.next_generation;
            self.next_generation += 1;
            let held = self
                .names
                .get(&ip)
                .filter(|r| r.name.matches(name))
                .map(|r| r.name.clone());
            let name = held
                .unwrap_or_else(|| shared.get_or_insert_with(|| CompactName::new(name)).clone());
            self.names.insert(
                ip,
                Remembered {
                    name,
                    expires: now + retention,
                    generation,
                },
            );
            self.order.push_back((ip, generation));
            self.evict_past_capacity();
        }
    }

    fn evict_past_capacity(&mut self) {
        while self.names.len() > self.capacity || self.order.len() > 2 * self.capacity {
            let Some((old_ip, old_generation)) = self.order.pop_front() else {
                break;
            };
            // Skip stale order entries of addresses remembered again since.
            if self
                .names
                .get(&old_ip)
                .is_some_and(|r| r.generation == old_generation)
            {
                self.names.remove(&old_ip);
            }
        }
    }

    /// The hostname text a recent answer mapped `ip` to.
    pub fn name_for(&self, ip: IpAddr, now: SystemTime) -> Option<String> {
        self.names
            .get(&ip)
            .filter(|r| r.expires >= now)
            .map(|r| r.name.hostname())
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}
