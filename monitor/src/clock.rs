//! The daemon's one time base: the kernel's monotonic clock.
//!
//! The programs stamp records with `bpf_ktime_get_coarse_ns`
//! (CLOCK_MONOTONIC, coarse), which NTP never steps. Every time inside the
//! daemon — event stamps, loss and expiry ticks, matching, blind and fold
//! windows — is that clock, placed on the wall clock once at start:
//! `SystemTime` values that only move as monotonic time does. The wall
//! clock comes in only where a time leaves the daemon (an alert's
//! `@timestamp`, status): [`TimeBase::to_wall`] shifts by how far the wall
//! clock has moved against the monotonic one since start (NTP steps, time
//! spent suspended, which CLOCK_MONOTONIC does not count), measured again
//! every [`REFRESH_EVERY`].
use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use crate::decode::Clock;

/// How often the wall clock's offset is measured again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The two clocks the time base reads; the host's, or a test's.
pub trait Clocks: Send + Sync {
    /// CLOCK_MONOTONIC: what the kernel stamps records with.
    fn monotonic(&self) -> Duration;
    /// CLOCK_REALTIME.
    fn realtime(&self) -> SystemTime;
}

/// The host's clocks (vDSO reads, tens of nanoseconds).
pub struct HostClocks;

impl Clocks for HostClocks {
    fn monotonic(&self) -> Duration {
        read_clock(libc::CLOCK_MONOTONIC)
    }

    fn realtime(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + read_clock(libc::CLOCK_REALTIME)
    }
}

pub struct TimeBase {
    clocks: Arc<dyn Clocks>,
    /// Where the wall clock put monotonic zero at start.
    zero: SystemTime,
    /// Where it puts it now, minus `zero`, in nanoseconds.
    drift_ns: AtomicI64,
    /// Monotonic nanoseconds at the last measurement.
    measured_ns: AtomicU64,
}

impl TimeBase {
    pub fn host() -> TimeBase {
        TimeBase::new(Arc::new(HostClocks))
    }

    pub fn new(clocks: Arc<dyn Clocks>) -> TimeBase {
        let (zero, measured) = wall_at_zero(clocks.as_ref());
        TimeBase {
            clocks,
            zero,
            drift_ns: AtomicI64::new(0),
            measured_ns: AtomicU64::new(nanos(measured)),
        }
    }

    /// Turns the kernel's stamps into daemon time.
    pub fn kernel_clock(&self) -> Clock {
        Clock::fixed(self.zero)
    }

    /// Daemon time now: monotonic, whatever the wall clock does.
    pub fn now(&self) -> SystemTime {
        self.kernel_clock()
            .to_system_time(nanos(self.clocks.monotonic()))
    }

    /// Measures the wall clock's offset again if [`REFRESH_EVERY`] passed.
    pub fn refresh_if_due(&self) {
        let now = nanos(self.clocks.monotonic());
        let last = self.measured_ns.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= nanos(REFRESH_EVERY) {
            self.refresh();
        }
    }

    /// Measures the wall clock's offset again.
    pub fn refresh(&self) {
        let (zero, measured) = wall_at_zero(self.clocks.as_ref());
        let drift = match zero.duration_since(self.zero) {
            Ok(ahead) => i64::try_from(ahead.as_nanos()).unwrap_or(i64::MAX),
            Err(behind) => i64::try_from(behind.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        };
        self.drift_ns.store(drift, Ordering::Relaxed);
        self.measured_ns.store(nanos(measured), Ordering::Relaxed);
    }

    /// The wall-clock time of daemon time `at`, as of the last measurement.
    pub fn to_wall(&self, at: SystemTime) -> SystemTime {
        let drift = self.drift_ns.load(Ordering::Relaxed);
        let shift = Duration::from_nanos(drift.unsigned_abs());
        let wall = if drift >= 0 {
            at.checked_add(shift)
        } else {
            at.checked_sub(shift)
        };
        wall.unwrap_or(at)
    }
}

/// Where the wall clock puts monotonic zero, and the monotonic reading it
/// was measured at. Reading monotonic on both sides of realtime and taking
/// the midpoint halves the error a preemption between the calls causes.
fn wall_at_zero(clocks: &dyn Clocks) -> (SystemTime, Duration) {
    let before = clocks.monotonic();
    let realtime = clocks.realtime();
    let after = clocks.monotonic();
    let monotonic = before + after.saturating_sub(before) / 2;
    let zero = realtime
        .checked_sub(monotonic)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    (zero, monotonic)
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn read_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    // Only EINVAL/EFAULT are possible, and neither applies to these clocks
    // and a stack pointer.
    assert_eq!(
        rc,
        0,
        "clock_gettime({clock}) failed: {}",
        std::io::Error::last_os_error()
    );
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Clocks a test sets and steps.
#[cfg(test)]
pub(crate) mod fake {
    use std::{
        sync::{Mutex, PoisonError},
        time::{Duration, SystemTime},
    };

    pub(crate) struct FakeClocks(Mutex<(Duration, SystemTime)>);

    impl FakeClocks {
        pub(crate) fn new(monotonic: Duration, realtime: SystemTime) -> FakeClocks {
            FakeClocks(Mutex::new((monotonic, realtime)))
        }

        /// Time passes: both clocks move on.
        pub(crate) fn advance(&self, by: Duration) {
            let mut clocks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            clocks.0 += by;
            clocks.1 += by;
        }

        /// The wall clock is set to `to` (an NTP step); monotonic time does
        /// not move.
        pub(crate) fn step_wall(&self, to: SystemTime) {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).1 = to;
        }
    }

    impl super::Clocks for FakeClocks {
        fn monotonic(&self) -> Duration {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).0
        }

        fn realtime(&self) -> SystemTime {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{fake::FakeClocks, *};

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn kernel_stamps_and_ticks_share_one_base_across_a_wall_step() {
        let clocks = Arc::new(FakeClocks::new(Duration::from_secs(100), at(1_000_000)));
        let time = TimeBase::new(clocks.clone());
        clocks.advance(Duration::from_secs(5));
        clocks.step_wall(at(1_000_005) - HOUR);
        time.refresh();
        // A record the kernel stamped now, and a tick read now, agree.
        let stamped = time.kernel_clock().to_system_time(105_000_000_000);
        assert_eq!(stamped, time.now());
        // Windows measure monotonic time: 5 s since start, not 5 s - 1 h.
        assert_eq!(time.now(), at(1_000_005));
        // What leaves the daemon carries the wall clock as it is now.
        assert_eq!(time.to_wall(time.now()), at(1_000_005) - HOUR);
        assert_eq!(time.to_wall(at(1_000_001)), at(1_000_001) - HOUR);
    }

    #[test]
    fn time_spent_suspended_reaches_the_wall_clock_only() {
        let clocks = Arc::new(FakeClocks::new(Duration::from_secs(100), at(1_000_000)));
        let time = TimeBase::new(clocks.clone());
        // Suspended for an hour: CLOCK_MONOTONIC stood still.
        clocks.step_wall(at(1_000_000) + HOUR);
        time.refresh_if_due();
        assert_eq!(time.to_wall(time.now()), at(1_000_000), "not due yet");
        clocks.advance(REFRESH_EVERY);
        time.refresh_if_due();
        assert_eq!(time.now(), at(1_000_001));
        assert_eq!(time.to_wall(time.now()), at(1_000_001) + HOUR);
    }

    #[test]
    fn host_time_base_maps_now_to_now() {
        let time = TimeBase::host();
        let skew = SystemTime::now()
            .duration_since(time.to_wall(time.now()))
            .unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_secs(1), "skew {skew:?}");
    }
}
