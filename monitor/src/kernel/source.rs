//! The kernel event source: drains the ring buffer, decodes records into
//! typed events, and hands them on in batches over a bounded channel.
//!
//! The kernel wakes this reader only for the first record after the reader
//! caught up; after each drain the reader sleeps a short batching interval
//! while records queue without wakeups. A busy host costs at most one wakeup
//! per interval, and an idle one none.
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use pinwatch_common::{
    DAEMON_HEARTBEAT_NS, DAEMON_LOSS_REPORTED, LOSS_CONNECT, LOSS_DB_SEGMENT, LOSS_DNS_OWNER,
    LOSS_DNS_PACKET, LOSS_SLOTS,
};
use tokio::{io::unix::AsyncFd, sync::mpsc};

use super::{liveness::monotonic_ns, owners::OwnerRefresh, probes::EventMaps};
use crate::{
    clock::TimeBase,
    decode::{self, Clock, Record},
    event::{Event, LossEvent, LossOrigin, RestartEvent},
    reassembly::Assembler,
};

/// How long the reader lets events accumulate after a drain.
const BATCH_INTERVAL: Duration = Duration::from_millis(1);
/// Records per batch: with the detector's queue depth, this bounds the
/// memory events take in userspace when the detector falls behind (the
/// ring buffer is the place for bursts to wait).
const MAX_BATCH_RECORDS: usize = 1024;
/// Full batches drained at shutdown: more than a full ring buffer holds.
const SHUTDOWN_BATCHES: usize = 64;
/// How often the kernel's loss counters are read.
const LOSS_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Loss polls between returns of freed heap memory to the kernel: after a
/// flood, the batches and messages it allocated are free but would stay
/// resident.
const TRIM_EVERY_POLLS: u32 = 30;

/// Counters the source keeps; shared with status and metrics.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Drains of the ring buffer done; `/readyz` waits for the first.
    pub drains: AtomicU64,
    pub records: AtomicU64,
    pub undecodable: AtomicU64,
    pub dns_parse_errors: AtomicU64,
    /// The kernel's loss counters as last read (once a second).
    pub lost_dns_packets: AtomicU64,
    pub lost_connects: AtomicU64,
    pub lost_db_segments: AtomicU64,
    pub lost_dns_owners: AtomicU64,
    /// DNS-over-TCP flows and IP-fragmented datagrams reassembly gave up on
    /// to stay within its memory bounds, and TCP bytes it did not keep.
    pub reassembly_flows_evicted: AtomicU64,
    pub reassembly_bytes_dropped: AtomicU64,
    pub reassembly_fragments_evicted: AtomicU64,
    /// Bytes reassembly holds now (TCP streams and IP fragments).
    pub reassembly_buffered_bytes: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot watch the ring buffer: {0}")]
    Poll(#[source] std::io::Error),
    #[error("cannot read the loss counters: {0}")]
    LossCounters(#[source] aya::maps::MapError),
    #[error("cannot write the heartbeat to the kernel's DAEMON map: {0}")]
    Heartbeat(#[source] aya::maps::MapError),
}

/// What a daemon found when it adopted the maps an earlier run pinned.
#[derive(Debug, Clone, Copy)]
pub struct Adoption {
    /// When this daemon took over.
    pub at: std::time::SystemTime,
    /// The earlier run's last heartbeat: when the gap began.
    pub last_heartbeat: Option<std::time::SystemTime>,
    /// The loss sums the earlier run had reported, per `LOSS_*` slot.
    pub reported: [u64; LOSS_SLOTS as usize],
}

/// An adoption whose backlog is being read.
struct Catching {
    adoption: Adoption,
    records: u64,
}

#[derive(PartialEq, Eq)]
enum Wake {
    Shutdown,
    Events,
    LossPoll,
}

pub struct KernelSource {
    ring: AsyncFd<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
    /// Heartbeat and reported losses, for the hooks and the next daemon.
    daemon: Array<MapData, u64>,
    /// Set until the backlog an adoption found is read.
    catching: Option<Catching>,
    lost_seen: [u64; pinwatch_common::LOSS_SLOTS as usize],
    /// The daemon's time base: the kernel's stamps and this side's ticks
    /// (loss reports, reassembly expiry) on one clock.
    time: Arc<TimeBase>,
    clock: Clock,
    stats: Arc<SourceStats>,
    undecodable_reported: u64,
    /// TCP streams and IP fragments, put back together before decoding.
    assembler: Assembler,
    /// Re-announces socket owners the detector may have forgotten; `None`
    /// without the kernel's owner map (`pinwatch learn`).
    owners: Option<OwnerRefresh>,
}

impl KernelSource {
    pub fn new(
        maps: EventMaps,
        time: Arc<TimeBase>,
        stats: Arc<SourceStats>,
    ) -> Result<KernelSource, SourceError> {
        let EventMaps { ring, lost, daemon } = maps;
        // SAFETY: the ring buffer owns its map fd for as long as it lives, and
        // the AsyncFd owns the ring buffer: the fd stays open and the same.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|error| SourceError::Poll(error.into_parts().1))?;
        Ok(KernelSource {
            ring,
            lost,
            daemon,
            catching: None,
            lost_seen: [0; pinwatch_common::LOSS_SLOTS as usize],
            clock: time.kernel_clock(),
            time,
            stats,
            undecodable_reported: 0,
            assembler: Assembler::default(),
            owners: None,
        })
    }

    /// Reads socket owners back from the kernel's map when the detector's
    /// copy may have forgotten them (see `kernel::owners`).
    pub fn with_owner_map(
        mut self,
        map: aya::maps::HashMap<MapData, u64, pinwatch_common::DnsOwnerEvent>,
    ) -> KernelSource {
        self.owners = Some(OwnerRefresh::new(map));
        self
    }

    /// Reads the backlog an earlier run left first, and once it is read
    /// reports the gap (`Event::Restarted`) and what the kernel lost in it.
    pub fn adopting(mut self, adoption: Adoption) -> KernelSource {
        self.lost_seen = adoption.reported;
        self.catching = Some(Catching {
            adoption,
            records: 0,
        });
        self
    }

    /// Runs until `shutdown` resolves, then drains what is left and returns.
    /// Ends early (Ok) when the receiving side is gone.
    pub async fn run(
        mut self,
        events: mpsc::Sender<Vec<Event>>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SourceError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut loss_tick = tokio::time::interval(LOSS_POLL_INTERVAL);
        let mut polls = 0u32;
        // Records left in the ring by a full batch: the kernel wakes only a
        // reader that had caught up, so they are fetched without waiting.
        let mut backlog = false;
        loop {
            let wake = if backlog {
                tokio::select! {
                    biased;
                    () = &mut shutdown => Wake::Shutdown,
                    _ = loss_tick.tick() => Wake::LossPoll,
                    () = std::future::ready(()) => Wake::Events,
                }
            } else {
                tokio::select! {
                    () = &mut shutdown => Wake::Shutdown,
                    ready = self.ring.readable_mut() => {
                        ready.map_err(SourceError::Poll)?.clear_ready();
                        Wake::Events
                    }
                    _ = loss_tick.tick() => Wake::LossPoll,
                }
            };
            let (mut batch, more) = self.drain();
            backlog = more;
            if !more && let Some(catching) = self.catching.take() {
                batch.extend(self.caught_up(&catching)?);
            }
            if wake != Wake::Events {
                self.beat()?;
                batch.extend(self.losses()?);
                batch.extend(self.reassembly_tick());
            }
            // The loss poll sends its batch even when empty: once a second,
            // it is the detector thread's tick (alert fold windows close on
            // it when no event arrives).
            let tick = wake == Wake::LossPoll;
            if tick {
                polls += 1;
                if polls.is_multiple_of(TRIM_EVERY_POLLS) {
                    crate::heap::release_freed_memory();
                }
            }
            if (tick || !batch.is_empty()) && events.send(batch).await.is_err() {
                return Ok(());
            }
            if wake == Wake::Shutdown {
                // What the ring holds at shutdown, at most its size again
                // if a flood goes on.
                for _ in 0..SHUTDOWN_BATCHES {
                    if !backlog {
                        break;
                    }
                    let (batch, more) = self.drain();
                    backlog = more;
                    if events.send(batch).await.is_err() {
                        break;
                    }
                }
                return Ok(());
            }
            if !backlog {
                tokio::time::sleep(BATCH_INTERVAL).await;
            }
        }
    }

    /// Decodes up to [`MAX_BATCH_RECORDS`] records; says whether it stopped
    /// at that bound (more may wait).
    fn drain(&mut self) -> (Vec<Event>, bool) {
        let mut batch = Vec::new();
        // Disjoint fields: the ring's records are read in place while the
        // rest of the source decodes them.
        let mut sink = Sink {
            clock: &self.clock,
            stats: &self.stats,
            assembler: &mut self.assembler,
            owners: &mut self.owners,
        };
        let ring = self.ring.get_mut();
        let mut records = 0;
        while records < MAX_BATCH_RECORDS
            && let Some(item) = ring.next()
        {
            records += 1;
            sink.stats.records.fetch_add(1, Ordering::Relaxed);
            if let Some(catching) = &mut self.catching {
                catching.records += 1;
            }
            sink.record(&item, &mut batch);
        }
        self.stats.drains.fetch_add(1, Ordering::Relaxed);
        (batch, records == MAX_BATCH_RECORDS)
    }

    /// The gap report, once the backlog is read: with the loss events of
    /// the gap, from the same reading of the counters.
    fn caught_up(&mut self, catching: &Catching) -> Result<Vec<Event>, SourceError> {
        let losses = self.losses()?;
        let lost = self
            .lost_seen
            .iter()
            .zip(catching.adoption.reported)
            .map(|(seen, before)| seen.saturating_sub(before))
            .sum();
        let adoption = catching.adoption;
        let mut events = vec![Event::Restarted(RestartEvent {
            timestamp: adoption.at,
            gap: adoption
                .last_heartbeat
                .and_then(|beat| adoption.at.duration_since(beat).ok()),
            backlog_records: catching.records,
            lost,
        })];
        events.extend(losses);
        Ok(events)
    }

    /// Tells the connect hooks (and the next daemon) this one is alive.
    fn beat(&mut self) -> Result<(), SourceError> {
        self.daemon
            .set(DAEMON_HEARTBEAT_NS, monotonic_ns(), 0)
            .map_err(SourceError::Heartbeat)
    }

    /// Reports fragmented datagrams that will not complete, and publishes
    /// what reassembly dropped.
    fn reassembly_tick(&mut self) -> Vec<Event> {
        let expired = self.assembler.expire(self.time.now());
        let stats = self.assembler.stats();
        let evicted = stats.tcp.flows_evicted + stats.tcp.flows_desynced;
        let before = self
            .stats
            .reassembly_flows_evicted
            .swap(evicted, Ordering::Relaxed);
        if evicted > before {
            tracing::warn!(
                flows = evicted - before,
                "DNS-over-TCP reassembly gave up on flows (memory bound reached, or bytes the kernel did not copy)"
            );
        }
        self.stats
            .reassembly_bytes_dropped
            .store(stats.tcp.bytes_dropped, Ordering::Relaxed);
        self.stats
            .reassembly_fragments_evicted
            .store(stats.fragments.datagrams_evicted, Ordering::Relaxed);
        self.stats
            .reassembly_buffered_bytes
            .store(stats.buffered_bytes as u64, Ordering::Relaxed);
        expired.into_iter().map(Event::Dns).collect()
    }

    /// Turns growth of the kernel's per-CPU loss counters, and of records
    /// this side could not decode, into loss events.
    fn losses(&mut self) -> Result<Vec<Event>, SourceError> {
        let now = self.time.now();
        let mut events = Vec::new();
        for (slot, origin, reported) in [
            (
                LOSS_DNS_PACKET,
                LossOrigin::KernelDnsPacket,
                &self.stats.lost_dns_packets,
            ),
            (
                LOSS_CONNECT,
                LossOrigin::KernelConnect,
                &self.stats.lost_connects,
            ),
            (
                LOSS_DB_SEGMENT,
                LossOrigin::KernelDbSegment,
                &self.stats.lost_db_segments,
            ),
            (
                LOSS_DNS_OWNER,
                LossOrigin::KernelDnsOwner,
                &self.stats.lost_dns_owners,
            ),
        ] {
            let total: u64 = self
                .lost
                .get(&slot, 0)
                .map_err(SourceError::LossCounters)?
                .iter()
                .sum();
            reported.store(total, Ordering::Relaxed);
            let Some(seen) = self.lost_seen.get_mut(slot as usize) else {
                continue;
            };
            if total > *seen {
                events.push(Event::Loss(LossEvent {
                    timestamp: now,
                    origin,
                    count: total - *seen,
                }));
                *seen = total;
                // Kept in the kernel, so that a daemon adopting these maps
                // reports only what was lost after this.
                self.daemon
                    .set(DAEMON_LOSS_REPORTED + slot, total, 0)
                    .map_err(SourceError::Heartbeat)?;
            }
        }
        let undecodable = self.stats.undecodable.load(Ordering::Relaxed);
        if undecodable > self.undecodable_reported {
            events.push(Event::Loss(LossEvent {
                timestamp: now,
                origin: LossOrigin::Undecodable,
                count: undecodable - self.undecodable_reported,
            }));
            self.undecodable_reported = undecodable;
        }
        Ok(events)
    }
}

/// What decodes the ring's records: the source's fields but the ring.
struct Sink<'a> {
    clock: &'a Clock,
    stats: &'a SourceStats,
    assembler: &'a mut Assembler,
    owners: &'a mut Option<OwnerRefresh>,
}

impl Sink<'_> {
    /// Decodes one record into `batch`.
    fn record(&mut self, item: &[u8], batch: &mut Vec<Event>) {
        // DNS packets, most records, are decoded from the ring's memory
        // without a copy.
        if let Some(packet) = decode::dns_packet_ref(item, self.clock) {
            match packet {
                Ok(packet) => self.dns_packet(packet, batch),
                Err(error) => self.undecodable(item.len(), &error),
            }
            return;
        }
        match decode::decode_record(item, self.clock) {
            // Named by their thread: the daemon's detector thread names
            // the process, off this runtime (`daemon::process_names`).
            Ok(Record::Connect(connect)) => batch.push(Event::Connect(connect)),
            Ok(Record::DnsOwner(owner)) => {
                if let Some(owners) = self.owners {
                    owners.announced(&owner);
                }
                batch.push(Event::DnsOwner(owner));
            }
            Ok(Record::DnsSent(sent)) => batch.push(Event::DnsSent(sent)),
            Ok(Record::DbSegment(packet)) => match decode::db_segment_event(&packet) {
                Ok(segment) => batch.push(Event::DbSegment(segment)),
                Err(error) => {
                    self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("undecodable database segment: {error}");
                }
            },
            // Read in place above; kept whole for any other path.
            Ok(Record::Dns(packet)) => self.dns_packet(packet.borrowed(), batch),
            Err(error) => self.undecodable(item.len(), &error),
        }
    }

    /// Decodes one captured DNS packet into `batch`.
    fn dns_packet(&mut self, packet: decode::DnsPacketRef<'_>, batch: &mut Vec<Event>) {
        // Named on the detector thread, as every owner record.
        if let Some(owner) = self
            .owners
            .as_mut()
            .and_then(|owners| owners.before_packet(packet.socket_cookie, self.clock))
        {
            batch.push(Event::DnsOwner(owner));
        }
        let pushed = self.assembler.push(
            packet.ip_packet,
            packet.meta(),
            packet.socket_cookie,
            packet.seen_at,
        );
        match pushed {
            Ok(events) => batch.extend(events.into_iter().map(Event::Dns)),
            Err(error) => {
                // Hostile or odd traffic on port 53 is normal; it is
                // counted, not alerted on.
                self.stats.dns_parse_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("undecodable DNS packet: {error}");
            }
        }
    }

    fn undecodable(&self, len: usize, error: &decode::DecodeError) {
        self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("undecodable kernel record ({len} bytes): {error}");
    }
}
