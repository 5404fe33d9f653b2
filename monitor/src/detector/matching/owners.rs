//! Who owns the DNS sockets: socket cookie → process, from the kernel's
//! owner records; and which processes talk to resolvers pinwatch cannot
//! read (DNS over TLS, DNS over HTTPS). Both bounded, oldest forgotten.
use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::event::{DnsOwnerEvent, OwnerRole, Process, ResolvConf};

/// Sockets remembered (the kernel's LRU map holds as many).
const MAX_SOCKETS: usize = 16_384;
/// Processes remembered as using an encrypted resolver.
const MAX_ENCRYPTED: usize = 4_096;
/// How long an encrypted-resolver connection explains a connect without a
/// visible answer: DoH clients keep one connection for many lookups.
const ENCRYPTED_MEMORY: Duration = Duration::from_secs(60 * 60);

/// A DNS socket's process, and the resolv.conf it had.
#[derive(Debug)]
struct Owner {
    process: Process,
    resolv_conf: Option<Arc<ResolvConf>>,
}

#[derive(Debug, Default)]
pub(super) struct Owners {
    sockets: Bounded<u64, Owner>,
    encrypted: Bounded<u32, (OwnerRole, SocketAddr, SystemTime)>,
}

impl Owners {
    pub fn record(&mut self, event: &DnsOwnerEvent) {
        match event.role {
            OwnerRole::Dns => {
                let owner = Owner {
                    process: event.process.clone(),
                    resolv_conf: event.resolv_conf.clone(),
                };
                self.sockets.insert(event.socket_cookie, owner, MAX_SOCKETS);
            }
            role => self.encrypted.insert(
                event.process.pid,
                (role, event.destination, event.timestamp),
                MAX_ENCRYPTED,
            ),
        }
    }

    /// The process that owns the socket; `None` for cookie 0 (unknown).
    pub fn process(&self, cookie: u64) -> Option<&Process> {
        if cookie == 0 {
            return None;
        }
        self.sockets.get(&cookie).map(|owner| &owner.process)
    }

    /// The resolv.conf of the socket's process, where the daemon read it.
    pub fn resolv_conf(&self, cookie: u64) -> Option<&Arc<ResolvConf>> {
        self.sockets.get(&cookie)?.resolv_conf.as_ref()
    }

    /// The encrypted resolver `pid` connected to lately, if any.
    pub fn encrypted_resolver(&self, pid: u32, now: SystemTime) -> Option<(OwnerRole, SocketAddr)> {
        let &(role, resolver, at) = self.encrypted.get(&pid)?;
        let recent = now.duration_since(at).unwrap_or_default() <= ENCRYPTED_MEMORY;
        recent.then_some((role, resolver))
    }
}

/// A map that forgets its oldest insertions past a capacity.
#[derive(Debug)]
struct Bounded<K, V> {
    map: HashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    generation: u64,
}

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
        }
    }
}

impl<K: Hash + Eq + Copy, V> Bounded<K, V> {
    fn insert(&mut self, key: K, value: V, capacity: usize) {
        self.generation += 1;
        self.map.insert(key, (value, self.generation));
        self.order.push_back((key, self.generation));
        while self.map.len() > capacity || self.order.len() > 2 * capacity {
            let Some((old, generation)) = self.order.pop_front() else {
                break;
            };
            // Entries inserted again since are younger than this one.
            if self.map.get(&old).is_some_and(|(_, g)| *g == generation) {
                self.map.remove(&old);
            }
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(v, _)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_forgets_the_oldest() {
        let mut b: Bounded<u64, u32> = Bounded::default();
        for i in 0..10 {
            b.insert(i, i as u32, 4);
        }
        assert_eq!(b.map.len(), 4);
        assert!(b.get(&5).is_none());
        assert_eq!(b.get(&9), Some(&9));
        // Re-inserting keeps a key young.
        b.insert(6, 60, 4);
        b.insert(10, 10, 4);
        assert_eq!(b.get(&6), Some(&60));
        assert!(b.order.len() <= 8);
    }
}
