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
    time::{Duration, SystemTime},
};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use pinwatch_common::{LOSS_CONNECT, LOSS_DB_SEGMENT, LOSS_DNS_PACKET};
use tokio::{io::unix::AsyncFd, sync::mpsc};

use crate::{
    decode::{self, Clock, Record},
    event::{Event, LossEvent, LossOrigin},
};

/// How long the reader lets events accumulate after a drain.
const BATCH_INTERVAL: Duration = Duration::from_millis(1);
/// How often the kernel's loss counters are read.
const LOSS_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Counters the source keeps; shared with status and metrics.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub records: AtomicU64,
    pub undecodable: AtomicU64,
    pub dns_parse_errors: AtomicU64,
    /// The kernel's loss counters as last read (once a second).
    pub lost_dns_packets: AtomicU64,
    pub lost_connects: AtomicU64,
    pub lost_db_segments: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot watch the ring buffer: {0}")]
    Poll(#[source] std::io::Error),
    #[error("cannot read the loss counters: {0}")]
    LossCounters(#[source] aya::maps::MapError),
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
    lost_seen: [u64; pinwatch_common::LOSS_SLOTS as usize],
    clock: Clock,
    stats: Arc<SourceStats>,
    undecodable_reported: u64,
}

impl KernelSource {
    pub fn new(
        ring: RingBuf<MapData>,
        lost: PerCpuArray<MapData, u64>,
        clock: Clock,
        stats: Arc<SourceStats>,
    ) -> Result<KernelSource, SourceError> {
        // SAFETY: the ring buffer owns its map fd for as long as it lives, and
        // the AsyncFd owns the ring buffer: the fd stays open and the same.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|error| SourceError::Poll(error.into_parts().1))?;
        Ok(KernelSource {
            ring,
            lost,
            lost_seen: [0; pinwatch_common::LOSS_SLOTS as usize],
            clock,
            stats,
            undecodable_reported: 0,
        })
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
        loop {
            let wake = tokio::select! {
                () = &mut shutdown => Wake::Shutdown,
                ready = self.ring.readable_mut() => {
                    ready.map_err(SourceError::Poll)?.clear_ready();
                    Wake::Events
                }
                _ = loss_tick.tick() => Wake::LossPoll,
            };
            let mut batch = self.drain();
            if wake != Wake::Events {
                batch.extend(self.losses()?);
            }
            // The loss poll sends its batch even when empty: once a second,
            // it is the detector thread's tick (alert fold windows close on
            // it when no event arrives).
            let tick = wake == Wake::LossPoll;
            if (tick || !batch.is_empty()) && events.send(batch).await.is_err() {
                return Ok(());
            }
            if wake == Wake::Shutdown {
                return Ok(());
            }
            tokio::time::sleep(BATCH_INTERVAL).await;
        }
    }

    fn drain(&mut self) -> Vec<Event> {
        let mut batch = Vec::new();
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            self.stats.records.fetch_add(1, Ordering::Relaxed);
            match decode::decode_record(&item, &self.clock) {
                Ok(Record::Connect(connect)) => batch.push(Event::Connect(connect)),
                Ok(Record::DbSegment(packet)) => match decode::db_segment_event(&packet) {
                    Ok(segment) => batch.push(Event::DbSegment(segment)),
                    Err(error) => {
                        self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("undecodable database segment: {error}");
                    }
                },
                Ok(Record::Dns(packet)) => match decode::dns_events(&packet) {
                    Ok(events) => batch.extend(events.into_iter().map(Event::Dns)),
                    Err(error) => {
                        // Hostile or odd traffic on port 53 is normal; it is
                        // counted, not alerted on.
                        self.stats.dns_parse_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("undecodable DNS packet: {error}");
                    }
                },
                Err(error) => {
                    self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("undecodable kernel record ({} bytes): {error}", item.len());
                }
            }
        }
        batch
    }

    /// Turns growth of the kernel's per-CPU loss counters, and of records
    /// this side could not decode, into loss events.
    fn losses(&mut self) -> Result<Vec<Event>, SourceError> {
        let now = SystemTime::now();
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
        ] {
            let total: u64 = self
                .lost
                .get(&slot, 0)
                .map_err(SourceError::LossCounters)?
                .iter()
                .sum();
            reported.store(total, Ordering::Relaxed);
            let seen = &mut self.lost_seen[slot as usize];
            if total > *seen {
                events.push(Event::Loss(LossEvent {
                    timestamp: now,
                    origin,
                    count: total - *seen,
                }));
                *seen = total;
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
