//! IP fragment reassembly for DNS responses seen at an interface.
//!
//! Pure: time arrives with each fragment. A datagram is complete when its
//! last fragment (more-fragments clear) fixed its length and the pieces
//! cover every byte; it is then handed back whole. One whose pieces do not
//! all arrive — or that the capture cut (the kernel copies at most 1360
//! bytes of a packet, less than a full-MTU fragment) — is handed back as
//! what is known, from its first fragment, when it times out or is evicted:
//! a fragmented response for a watched name is worth an alert even then.
//! Bounded in datagrams and bytes; evictions are counted.
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::IpAddr,
    time::{Duration, SystemTime},
};

/// One datagram: addresses and the IP identification (16 bits in IPv4, 32
/// in IPv6's fragment header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DatagramKey {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub id: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    /// Offset of this fragment's data in the datagram's IP payload, bytes.
    pub offset: usize,
    pub more_fragments: bool,
    /// The fragment's data as captured.
    pub data: &'a [u8],
    /// The fragment's data length on the wire (≥ `data.len()`).
    pub wire_len: usize,
    pub timestamp: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub key: DatagramKey,
    /// The IP payload (UDP header on): whole when `complete`, otherwise the
    /// bytes known from offset 0 on (possibly none).
    pub payload: Vec<u8>,
    pub complete: bool,
    pub fragments: usize,
    /// When its first fragment arrived.
    pub first_seen: SystemTime,
}

#[derive(Debug, Clone, Copy)]
pub struct FragmentLimits {
    pub datagrams: usize,
    pub total_bytes: usize,
    /// How long a datagram waits for its missing fragments.
    pub timeout: Duration,
}

impl Default for FragmentLimits {
    fn default() -> FragmentLimits {
        FragmentLimits {
            datagrams: 1024,
            total_bytes: 4 << 20,
            timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragmentStats {
    pub fragments: u64,
    pub datagrams_complete: u64,
    pub datagrams_incomplete: u64,
    /// Incomplete datagrams dropped early to stay within the bounds.
    pub datagrams_evicted: u64,
}

/// IPv4 and IPv6 datagrams are at most 65535 bytes of payload (no jumbograms).
const MAX_DATAGRAM: usize = 65_535;

#[derive(Debug)]
struct Entry {
    first_seen: SystemTime,
    pieces: BTreeMap<usize, Vec<u8>>,
    /// Known once the last fragment arrived.
    total: Option<usize>,
    fragments: usize,
    bytes: usize,
}

#[derive(Debug, Default)]
pub struct FragmentTable {
    limits: FragmentLimits,
    entries: HashMap<DatagramKey, Entry>,
    /// Datagrams in order of their first fragment.
    order: VecDeque<DatagramKey>,
    total_bytes: usize,
    stats: FragmentStats,
}

impl FragmentTable {
    pub fn new(limits: FragmentLimits) -> FragmentTable {
        FragmentTable {
            limits,
            ..FragmentTable::default()
        }
    }

    pub fn stats(&self) -> FragmentStats {
        self.stats
    }

    pub fn buffered_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Adds a fragment. Returns the datagram when it completed, and any
    /// incomplete ones that timed out or were evicted to make room.
    pub fn push(&mut self, key: DatagramKey, fragment: Fragment<'_>) -> Vec<Datagram> {
        self.stats.fragments += 1;
        let mut out = self.expire(fragment.timestamp);
        if fragment.offset >= MAX_DATAGRAM {
            return out;
        }
        let entry = self.entries.entry(key).or_insert_with(|| {
            self.order.push_back(key);
            Entry {
                first_seen: fragment.timestamp,
                pieces: BTreeMap::new(),
                total: None,
                fragments: 0,
                bytes: 0,
            }
        });
        entry.fragments += 1;
        if !fragment.more_fragments {
            entry.total = Some(fragment.offset + fragment.wire_len);
        }
        let data = &fragment.data[..fragment.data.len().min(MAX_DATAGRAM - fragment.offset)];
        // First arrival wins, as for TCP: a repeat of a piece adds nothing.
        if !entry.pieces.contains_key(&fragment.offset) {
            entry.bytes += data.len();
            self.total_bytes += data.len();
            entry.pieces.insert(fragment.offset, data.to_vec());
        }
        if let Some(payload) = whole(entry) {
            let entry = self.take(&key);
            self.stats.datagrams_complete += 1;
            out.push(Datagram {
                key,
                payload,
                complete: true,
                fragments: entry.fragments,
                first_seen: entry.first_seen,
            });
            return out;
        }
        while self.entries.len() > self.limits.datagrams
            || self.total_bytes > self.limits.total_bytes
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if self.entries.contains_key(&oldest) {
                self.stats.datagrams_evicted += 1;
                out.push(self.incomplete(oldest));
            }
        }
        out
    }

    /// Hands back the datagrams that waited longer than the timeout at `now`.
    pub fn expire(&mut self, now: SystemTime) -> Vec<Datagram> {
        let mut out = Vec::new();
        while let Some(&key) = self.order.front() {
            let Some(entry) = self.entries.get(&key) else {
                self.order.pop_front();
                continue;
            };
            if now.duration_since(entry.first_seen).unwrap_or_default() <= self.limits.timeout {
                break;
            }
            self.order.pop_front();
            out.push(self.incomplete(key));
        }
        out
    }

    fn take(&mut self, key: &DatagramKey) -> Entry {
        let entry = self.entries.remove(key).expect("entry present");
        self.total_bytes -= entry.bytes;
        entry
    }

    fn incomplete(&mut self, key: DatagramKey) -> Datagram {
        let entry = self.take(&key);
        self.stats.datagrams_incomplete += 1;
        Datagram {
            key,
            payload: contiguous(&entry.pieces, usize::MAX),
            complete: false,
            fragments: entry.fragments,
            first_seen: entry.first_seen,
        }
    }
}

/// The datagram's payload when the pieces cover all of it.
fn whole(entry: &Entry) -> Option<Vec<u8>> {
    let total = entry.total?;
    let payload = contiguous(&entry.pieces, total);
    (payload.len() == total).then_some(payload)
}

/// The bytes from offset 0 that the pieces cover without a hole, up to `limit`.
fn contiguous(pieces: &BTreeMap<usize, Vec<u8>>, limit: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    for (&offset, data) in pieces {
        if offset > payload.len() || payload.len() >= limit {
            break;
        }
        let end = (offset + data.len()).min(limit);
        if end > payload.len() {
            payload.extend_from_slice(&data[payload.len() - offset..end - offset]);
        }
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> DatagramKey {
        DatagramKey {
            source: "192.0.2.53".parse().unwrap(),
            destination: "198.51.100.10".parse().unwrap(),
            id,
        }
    }

    fn frag(offset: usize, more: bool, data: &[u8], secs: u64) -> Fragment<'_> {
        Fragment {
            offset,
            more_fragments: more,
            data,
            wire_len: data.len(),
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    #[test]
    fn reassembles_in_any_order_with_repeats() {
        let payload: Vec<u8> = (0..=255).cycle().take(3000).collect();
        let mut t = FragmentTable::default();
        assert!(
            t.push(key(1), frag(2000, false, &payload[2000..], 1))
                .is_empty()
        );
        assert!(
            t.push(key(1), frag(1000, true, &payload[1000..2000], 1))
                .is_empty()
        );
        assert!(
            t.push(key(1), frag(1000, true, &payload[1000..2000], 1))
                .is_empty()
        );
        let out = t.push(key(1), frag(0, true, &payload[..1000], 1));
        assert_eq!(out.len(), 1);
        assert!(out[0].complete);
        assert_eq!(out[0].payload, payload);
        assert_eq!(out[0].fragments, 4);
        assert_eq!(t.buffered_bytes(), 0);
    }

    #[test]
    fn a_missing_fragment_yields_what_is_known_at_timeout() {
        let payload = vec![7u8; 3000];
        let mut t = FragmentTable::default();
        t.push(key(1), frag(0, true, &payload[..1000], 1));
        t.push(key(1), frag(2000, false, &payload[2000..], 1));
        assert!(
            t.expire(SystemTime::UNIX_EPOCH + Duration::from_secs(2))
                .is_empty()
        );
        let out = t.expire(SystemTime::UNIX_EPOCH + Duration::from_secs(10));
        assert_eq!(out.len(), 1);
        assert!(!out[0].complete);
        assert_eq!(out[0].payload.len(), 1000);
    }

    #[test]
    fn a_cut_fragment_never_completes() {
        let payload = vec![7u8; 3000];
        let mut t = FragmentTable::default();
        let mut first = frag(0, true, &payload[..1340], 1);
        first.wire_len = 1480;
        t.push(key(1), first);
        assert!(
            t.push(key(1), frag(1480, false, &payload[1480..], 1))
                .is_empty()
        );
        let out = t.expire(SystemTime::UNIX_EPOCH + Duration::from_secs(10));
        assert_eq!(out[0].payload.len(), 1340);
    }

    #[test]
    fn bounded_under_a_flood() {
        let limits = FragmentLimits {
            datagrams: 10,
            total_bytes: 1 << 20,
            timeout: Duration::from_secs(3),
        };
        let mut t = FragmentTable::new(limits);
        let data = [1u8; 100];
        let mut evicted = 0;
        for id in 0..1000 {
            evicted += t.push(key(id), frag(0, true, &data, 1)).len();
            assert!(t.entries.len() <= 10);
        }
        assert_eq!(evicted, 990);
        assert_eq!(t.stats().datagrams_evicted, 990);
    }
}
