//! TCP stream reassembly for DNS over TCP (RFC 1035 §4.2.2, RFC 7766):
//! sequence-ordered bytes per flow, cut into 2-byte-length-prefixed
//! messages.
//!
//! Pure: time arrives with each segment. Handles several messages in one
//! segment, one message over several segments, segments out of order and
//! retransmitted or overlapping (of two copies with the same start, the one
//! that arrived first is kept; bytes already framed are never framed again).
//! A flow starts at its SYN when the SYN is seen (a capture; the kernel
//! copies a SYN only when it carries data, TCP Fast Open), else at the first
//! segment seen. Bounded: a flow buffers at
//! most [`Limits::flow_window`] bytes ahead of what it has framed; all
//! flows together at most [`Limits::total_bytes`], and at most
//! [`Limits::flows`] flows — beyond that the least recently active flow is
//! dropped and counted. Flows end on RST, on FIN once every byte before it
//! was framed, or after [`Limits::idle`] without a segment (the kernel
//! copies only segments with payload, so a bare FIN is never seen). An
//! ended flow is remembered for [`Limits::idle`] (at most [`Limits::flows`]
//! of them), so that a retransmission after its FIN or RST is dropped, not
//! framed again as a new stream.
//!
//! The kernel copies at most the first 1360 bytes of a packet: the rest of
//! a longer segment is a gap the reassembler knows about (`wire_len`). A gap
//! inside a message whose length prefix was read cuts that message only
//! ([`Output::Cut`]); a gap over a message boundary loses the framing, and
//! the flow is given up until it ends.
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::SocketAddr,
    time::{Duration, SystemTime},
};

/// A TCP flow in one direction; the socket cookie keeps apart the two
/// sockets of a connection whose ends are both on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub socket_cookie: u64,
}

/// One captured TCP segment (with payload, or a bare SYN, ACK or FIN).
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Sequence number of the first payload byte: a SYN's own number plus
    /// one, since the SYN takes one.
    pub seq: u32,
    /// The payload bytes captured (a prefix of the segment's payload).
    pub payload: &'a [u8],
    /// The payload's length on the wire; more than `payload.len()` when the
    /// capture cut the segment.
    pub wire_len: usize,
    pub fin: bool,
    pub rst: bool,
    pub timestamp: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// One complete DNS message, without its length prefix.
    Message(Vec<u8>),
    /// A message whose length prefix announced `announced` bytes, part of
    /// which the capture did not hold.
    Cut { announced: usize },
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes a flow may hold beyond the last framed message.
    pub flow_window: usize,
    /// Bytes all flows together may hold.
    pub total_bytes: usize,
    pub flows: usize,
    pub idle: Duration,
}

/// The largest DNS-over-TCP message with its prefix, twice: one message
/// being framed and the next arriving out of order.
pub const MAX_MESSAGE: usize = 65_535 + 2;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            flow_window: 2 * MAX_MESSAGE,
            total_bytes: 16 << 20,
            flows: 4096,
            idle: Duration::from_secs(30),
        }
    }
}

/// What reassembly dropped or gave up on; never silent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStats {
    pub segments: u64,
    pub messages: u64,
    /// Messages the capture cut (the kernel copied part of the segment).
    pub messages_cut: u64,
    /// Flows whose framing was lost to a gap over a message boundary.
    pub flows_desynced: u64,
    /// Flows dropped to stay within the flow count or total bytes.
    pub flows_evicted: u64,
    pub flows_expired: u64,
    pub flows_closed: u64,
    /// Segments of an ended flow that repeated bytes it had framed.
    pub retransmits_after_end: u64,
    /// Payload bytes not kept: beyond a flow's window, on a given-up flow,
    /// or in an evicted flow's buffers.
    pub bytes_dropped: u64,
}

/// A chunk of stream bytes from `start` whose last `lost` bytes the capture
/// did not hold.
#[derive(Debug)]
struct Chunk {
    data: Vec<u8>,
    lost: u64,
}

#[derive(Debug)]
struct Flow {
    /// Stream offset of the next byte to frame, and its sequence number.
    next: u64,
    next_seq: u32,
    /// No message framed and no gap yet: a segment before the bytes taken so
    /// far may be the stream's start arriving late.
    fresh: bool,
    /// Out-of-order chunks by stream offset.
    pending: BTreeMap<u64, Chunk>,
    /// In-order bytes not yet framed into a message.
    framing: Vec<u8>,
    /// Bytes still to throw away: the rest of a cut message.
    skip: u64,
    desynced: bool,
    last_seen: SystemTime,
    /// Activity stamp, for least-recently-active eviction.
    stamp: u64,
    bytes: usize,
    /// Stream offset just past the FIN, once a FIN arrived.
    fin_at: Option<u64>,
}

/// Stream offsets start here so a late segment before the first one seen
/// still has a non-negative offset.
const ORIGIN: u64 = 1 << 32;

#[derive(Debug, Default)]
pub struct TcpReassembler {
    limits: Limits,
    flows: HashMap<FlowKey, Flow>,
    /// Flows in order of activity, with the stamp they had then; an entry
    /// whose stamp is no longer the flow's is stale and skipped.
    activity: VecDeque<(FlowKey, u64)>,
    stamp: u64,
    total_bytes: usize,
    stats: TcpStats,
    /// Ended flows: the sequence number just past what each framed.
    ended: HashMap<FlowKey, Ended>,
    /// Ended flows in the order they ended, with the stamp they ended with.
    ended_order: VecDeque<(FlowKey, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Ended {
    next_seq: u32,
    at: SystemTime,
    stamp: u64,
}

impl TcpReassembler {
    pub fn new(limits: Limits) -> TcpReassembler {
        TcpReassembler {
            limits,
            ..TcpReassembler::default()
        }
    }

    pub fn stats(&self) -> TcpStats {
        self.stats
    }

    /// Bytes buffered over all flows.
    pub fn buffered_bytes(&self) -> usize {
        self.total_bytes
    }

    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Adds a segment; returns the messages it completed, in stream order.
    pub fn push(&mut self, key: FlowKey, segment: Segment<'_>) -> Vec<Output> {
        self.stats.segments += 1;
        self.expire(segment.timestamp);
        self.stamp += 1;
        let stamp = self.stamp;
        if !self.flows.contains_key(&key) && self.repeats_ended(&key, &segment) {
            self.stats.retransmits_after_end += 1;
            return Vec::new();
        }
        let flow = self.flows.entry(key).or_insert_with(|| Flow {
            next: ORIGIN,
            next_seq: segment.seq,
            fresh: true,
            pending: BTreeMap::new(),
            framing: Vec::new(),
            skip: 0,
            desynced: false,
            last_seen: segment.timestamp,
            stamp,
            bytes: 0,
            fin_at: None,
        });
        flow.last_seen = segment.timestamp;
        flow.stamp = stamp;
        self.activity.push_back((key, stamp));
        let before = flow.bytes;
        let mut out = Vec::new();
        let (dropped, end) = flow.add(&segment, self.limits.flow_window, &mut out, &mut self.stats);
        self.stats.bytes_dropped += dropped;
        if segment.fin {
            flow.fin_at = Some(end);
        }
        // Closed once every byte up to the FIN was framed; a RST ends it now.
        // A flow that framed nothing yet may be missing its start (arrived
        // out of order): it waits for it, or for expiry.
        let closed =
            segment.rst || (!flow.fresh && flow.fin_at.is_some_and(|fin| flow.next >= fin));
        let after = flow.bytes;
        self.total_bytes = self.total_bytes + after - before;
        if closed {
            if let Some(flow) = self.flows.get(&key) {
                let next_seq = flow.next_seq;
                self.ended.insert(
                    key,
                    Ended {
                        next_seq,
                        at: segment.timestamp,
                        stamp,
                    },
                );
                self.ended_order.push_back((key, stamp));
                if self.ended_order.len() > 2 * self.ended.len() + 64 {
                    let ended = &self.ended;
                    self.ended_order
                        .retain(|(key, stamp)| ended.get(key).is_some_and(|e| e.stamp == *stamp));
                }
            }
            self.remove(&key);
            self.stats.flows_closed += 1;
        }
        self.enforce_bounds(&key);
        self.compact_activity();
        out
    }

    /// Whether `segment`, on a flow that ended, only repeats bytes (or the
    /// FIN) the flow had framed; anything else starts a new stream (the
    /// 4-tuple reused), and the ended flow is forgotten.
    fn repeats_ended(&mut self, key: &FlowKey, segment: &Segment<'_>) -> bool {
        let Some(ended) = self.ended.get(key) else {
            return false;
        };
        let wire_len = segment.wire_len.max(segment.payload.len());
        let end = segment.seq.wrapping_add(wire_len as u32);
        let behind = i64::from(ended.next_seq.wrapping_sub(end) as i32);
        if (0..=self.limits.flow_window as i64).contains(&behind) {
            return true;
        }
        self.ended.remove(key);
        false
    }

    /// Drops flows idle for longer than [`Limits::idle`] at `now`, and
    /// forgets flows that ended longer ago than that.
    pub fn expire(&mut self, now: SystemTime) {
        while let Some(&(key, stamp)) = self.ended_order.front() {
            let live = self.ended.get(&key).filter(|ended| ended.stamp == stamp);
            if let Some(ended) = live {
                let age = now.duration_since(ended.at).unwrap_or_default();
                if age <= self.limits.idle && self.ended.len() <= self.limits.flows {
                    break;
                }
                self.ended.remove(&key);
            }
            self.ended_order.pop_front();
        }
        while let Some(&(key, stamp)) = self.activity.front() {
            match self.flows.get(&key) {
                Some(flow) if flow.stamp == stamp => {
                    let idle = now.duration_since(flow.last_seen).unwrap_or_default();
                    if idle <= self.limits.idle {
                        break;
                    }
                    self.remove(&key);
                    self.stats.flows_expired += 1;
                }
                _ => {}
            }
            self.activity.pop_front();
        }
    }

    fn remove(&mut self, key: &FlowKey) {
        if let Some(flow) = self.flows.remove(key) {
            self.total_bytes -= flow.bytes;
        }
    }

    /// Evicts least recently active flows (never `current`'s, unless it is
    /// alone over the bound) until both bounds hold.
    fn enforce_bounds(&mut self, current: &FlowKey) {
        while self.flows.len() > self.limits.flows || self.total_bytes > self.limits.total_bytes {
            let Some((key, stamp)) = self.activity.pop_front() else {
                break;
            };
            let live = self.flows.get(&key).is_some_and(|flow| flow.stamp == stamp);
            if !live {
                continue;
            }
            if key == *current && self.flows.len() > 1 {
                self.activity.push_back((key, stamp));
                continue;
            }
            if let Some(flow) = self.flows.get(&key) {
                self.stats.bytes_dropped += flow.bytes as u64;
            }
            self.remove(&key);
            self.stats.flows_evicted += 1;
        }
    }

    /// Keeps the activity queue proportional to the flows it tracks.
    fn compact_activity(&mut self) {
        if self.activity.len() > 4 * self.flows.len() + 64 {
            let flows = &self.flows;
            self.activity
                .retain(|(key, stamp)| flows.get(key).is_some_and(|flow| flow.stamp == *stamp));
        }
    }
}

impl Flow {
    /// Returns the payload bytes it did not keep, and the stream offset
    /// just past the segment.
    fn add(
        &mut self,
        segment: &Segment<'_>,
        window: usize,
        out: &mut Vec<Output>,
        stats: &mut TcpStats,
    ) -> (u64, u64) {
        let wire_len = segment.wire_len.max(segment.payload.len());
        if self.desynced {
            // Nothing more will be framed: a FIN here ends the flow.
            return (wire_len as u64, self.next);
        }
        let delta = i64::from(segment.seq.wrapping_sub(self.next_seq) as i32);
        let framing_start = self.next - self.framing.len() as u64;
        let start = self.next.saturating_add_signed(delta);
        if self.fresh && start < framing_start && framing_start - start <= window as u64 {
            // The stream's start, arriving after a later segment that was
            // taken for it: nothing was framed yet, so frame again from here.
            let taken = std::mem::take(&mut self.framing);
            if !taken.is_empty() {
                self.pending.insert(
                    framing_start,
                    Chunk {
                        data: taken,
                        lost: 0,
                    },
                );
            }
            self.next = start;
            self.next_seq = segment.seq;
        }
        let delta = i64::from(segment.seq.wrapping_sub(self.next_seq) as i32);
        let start = self.next.saturating_add_signed(delta);
        let end = start + wire_len as u64;
        if end <= self.next {
            // A retransmission of bytes already framed.
            return (0, end);
        }
        let limit = self.next + window as u64;
        if start >= limit {
            return (wire_len as u64, end);
        }
        // Keep what fits in the window; what does not is lost, like a cut.
        let kept = (limit - start).min(segment.payload.len() as u64) as usize;
        let mut dropped = (segment.payload.len() - kept) as u64;
        let chunk = Chunk {
            data: segment.payload[..kept].to_vec(),
            lost: end.min(limit) - start - kept as u64,
        };
        match self.pending.get_mut(&start) {
            // First arrival wins; a longer copy only adds its tail.
            Some(existing) => {
                let old_end = existing.data.len() as u64 + existing.lost;
                let new_end = chunk.data.len() as u64 + chunk.lost;
                if chunk.data.len() > existing.data.len() {
                    let tail = &chunk.data[existing.data.len()..];
                    self.bytes += tail.len();
                    existing.data.extend_from_slice(tail);
                }
                existing.lost = old_end.max(new_end) - existing.data.len() as u64;
            }
            None => {
                self.bytes += chunk.data.len();
                self.pending.insert(start, chunk);
            }
        }
        dropped += self.advance(out, stats);
        (dropped, end)
    }

    /// Moves in-order chunks into the framing buffer and frames messages.
    fn advance(&mut self, out: &mut Vec<Output>, stats: &mut TcpStats) -> u64 {
        let from = self.next;
        let mut dropped = 0;
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let chunk = entry.remove();
            self.bytes -= chunk.data.len();
            let data_end = start + chunk.data.len() as u64;
            if data_end > self.next {
                let from = (self.next - start) as usize;
                self.take(&chunk.data[from..], out, stats);
                self.next = data_end;
            }
            let lost_end = data_end + chunk.lost;
            if lost_end > self.next {
                let gap = lost_end - self.next;
                self.next = lost_end;
                self.gap(gap, out, stats);
                if self.desynced {
                    dropped += self.bytes as u64;
                    self.pending.clear();
                    self.framing.clear();
                    self.bytes = 0;
                    break;
                }
            }
        }
        // Sequence numbers wrap; stream offsets do not.
        self.next_seq = self.next_seq.wrapping_add((self.next - from) as u32);
        dropped
    }

    fn take(&mut self, mut bytes: &[u8], out: &mut Vec<Output>, stats: &mut TcpStats) {
        let skipped = self.skip.min(bytes.len() as u64) as usize;
        self.skip -= skipped as u64;
        bytes = &bytes[skipped..];
        self.framing.extend_from_slice(bytes);
        self.bytes += bytes.len();
        let mut at = 0;
        while let Some(prefix) = self.framing[at..].first_chunk::<2>() {
            let len = usize::from(u16::from_be_bytes(*prefix));
            let Some(body) = self.framing.get(at + 2..at + 2 + len) else {
                break;
            };
            out.push(Output::Message(body.to_vec()));
            stats.messages += 1;
            self.fresh = false;
            at += 2 + len;
        }
        self.framing.drain(..at);
        self.bytes -= at;
    }

    /// `gap` stream bytes at the framing position are lost.
    fn gap(&mut self, gap: u64, out: &mut Vec<Output>, stats: &mut TcpStats) {
        self.fresh = false;
        if self.skip > 0 {
            // Still inside a message already reported cut.
            if gap <= self.skip {
                self.skip -= gap;
            } else {
                self.desynced = true;
                stats.flows_desynced += 1;
            }
            return;
        }
        let Some(prefix) = self.framing.first_chunk::<2>() else {
            // The next length prefix is (partly) in the gap: framing is lost.
            self.desynced = true;
            stats.flows_desynced += 1;
            return;
        };
        let announced = usize::from(u16::from_be_bytes(*prefix));
        let remaining = (2 + announced - self.framing.len()) as u64;
        if gap > remaining {
            self.desynced = true;
            stats.flows_desynced += 1;
            return;
        }
        self.skip = remaining - gap;
        self.bytes -= self.framing.len();
        self.framing.clear();
        out.push(Output::Cut { announced });
        stats.messages_cut += 1;
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
