//! Kernel timestamps (CLOCK_MONOTONIC, `bpf_ktime_get_ns`) to wall-clock time.
use std::time::{Duration, SystemTime};

/// Turns CLOCK_MONOTONIC nanoseconds from the kernel into wall-clock time.
///
/// It holds one offset measured when it was made. CLOCK_MONOTONIC stops
/// during suspend and NTP steps move CLOCK_REALTIME, so a long-running daemon
/// should make a fresh one now and then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Wall-clock time at which CLOCK_MONOTONIC read zero.
    realtime_at_zero: SystemTime,
}

impl Clock {
    /// Measures the offset between the two clocks now.
    pub fn from_system() -> Clock {
        // Reading monotonic on both sides of realtime and taking the midpoint
        // halves the error a preemption between the calls would cause.
        let before = read_clock(libc::CLOCK_MONOTONIC);
        let realtime = read_clock(libc::CLOCK_REALTIME);
        let after = read_clock(libc::CLOCK_MONOTONIC);
        let monotonic = before + (after.saturating_sub(before)) / 2;
        let realtime_at_zero = (SystemTime::UNIX_EPOCH + realtime)
            .checked_sub(monotonic)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Clock { realtime_at_zero }
    }

    /// A clock whose monotonic zero is `realtime_at_zero`; for tests and
    /// replays.
    pub fn fixed(realtime_at_zero: SystemTime) -> Clock {
        Clock { realtime_at_zero }
    }

    pub fn to_system_time(&self, monotonic_ns: u64) -> SystemTime {
        // Cannot overflow on Linux (i64 seconds hold u64 nanoseconds many
        // times over), but garbage input must not panic anywhere.
        self.realtime_at_zero
            .checked_add(Duration::from_nanos(monotonic_ns))
            .unwrap_or(self.realtime_at_zero)
    }
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
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_adds_monotonic_time() {
        let zero = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = Clock::fixed(zero);
        assert_eq!(clock.to_system_time(0), zero);
        assert_eq!(
            clock.to_system_time(1_500_000_000),
            zero + Duration::from_millis(1500)
        );
        // Garbage timestamps do not panic.
        let _ = clock.to_system_time(u64::MAX);
    }

    #[test]
    fn system_clock_maps_now_to_now() {
        let clock = Clock::from_system();
        let now = read_clock(libc::CLOCK_MONOTONIC).as_nanos() as u64;
        let mapped = clock.to_system_time(now);
        let wall = SystemTime::now();
        let skew = wall.duration_since(mapped).unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_secs(1), "skew {skew:?}");
    }
}
