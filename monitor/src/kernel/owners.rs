//! Keeps the detector's copy of the socket owners complete.
//!
//! The kernel reports a DNS socket's owner once and keeps the record in its
//! `DNS_OWNERS` LRU map, refreshed by every send, so a busy long-lived socket
//! stays there. The detector's copy forgets in insertion order after
//! [`DETECTOR_CAPACITY`] owner records, whatever the socket's activity. So the
//! source counts the owner records it hands on, and before a DNS packet
//! whose socket was last announced more than half that many records ago (or
//! never, as far as it remembers) it reads the owner back from the kernel's
//! map and announces it again: the detector always has the owner of a
//! socket the kernel still knows.
use std::collections::HashMap;

use aya::maps::{HashMap as BpfHashMap, MapData};
use pinwatch_common::DnsOwnerEvent as RawDnsOwner;

use crate::{
    decode::{self, Clock},
    event::{DnsOwnerEvent, OwnerRole},
};

/// Owners the detector keeps (detector/matching/owners.rs, `MAX_SOCKETS`):
/// the kernel map's size.
pub const DETECTOR_CAPACITY: u64 = pinwatch_common::DNS_OWNER_MAX_ENTRIES as u64;
/// Announcements after which a socket's owner is announced again.
const REANNOUNCE_AFTER: u64 = DETECTOR_CAPACITY / 2;

pub struct OwnerRefresh {
    map: BpfHashMap<MapData, u64, RawDnsOwner>,
    /// Cookie → the announcement count when its owner was last handed on.
    announced: HashMap<u64, u64>,
    count: u64,
}

impl OwnerRefresh {
    pub fn new(map: BpfHashMap<MapData, u64, RawDnsOwner>) -> OwnerRefresh {
        OwnerRefresh {
            map,
            announced: HashMap::new(),
            count: 0,
        }
    }

    /// Notes an owner record on its way to the detector.
    pub fn announced(&mut self, owner: &DnsOwnerEvent) {
        if owner.role != OwnerRole::Dns {
            return;
        }
        self.count += 1;
        self.remember(owner.socket_cookie);
    }

    fn remember(&mut self, cookie: u64) {
        self.announced.insert(cookie, self.count);
        // Bounded: what is older than the detector's memory would be
        // re-announced anyway.
        if self.announced.len() as u64 > 2 * DETECTOR_CAPACITY {
            let horizon = self.count.saturating_sub(REANNOUNCE_AFTER);
            self.announced.retain(|_, at| *at > horizon);
        }
    }

    /// The owner to announce again before a packet of `cookie`'s socket,
    /// when the detector may have forgotten it; from the kernel's map.
    pub fn before_packet(&mut self, cookie: u64, clock: &Clock) -> Option<DnsOwnerEvent> {
        if cookie == 0 {
            return None;
        }
        let fresh = self
            .announced
            .get(&cookie)
            .is_some_and(|at| self.count - at < REANNOUNCE_AFTER);
        if fresh {
            return None;
        }
        let Ok(raw) = self.map.get(&cookie, 0) else {
            // No owner in the kernel (a server's socket, say): ask again only
            // as late as for a known one, not with a syscall per packet. An
            // owner recorded later arrives through the ring buffer anyway.
            self.remember(cookie);
            return None;
        };
        let owner = decode::dns_owner(&raw, clock).ok()?;
        self.announced(&owner);
        Some(owner)
    }
}
