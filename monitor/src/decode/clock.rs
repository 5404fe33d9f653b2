//! Kernel timestamps (CLOCK_MONOTONIC, `bpf_ktime_get_coarse_ns`) as times.
use std::time::{Duration, SystemTime};

/// Places CLOCK_MONOTONIC nanoseconds from the kernel at a fixed offset:
/// the daemon's time base ([`crate::clock::TimeBase::kernel_clock`]), or a
/// test's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// The time CLOCK_MONOTONIC zero stands for.
    realtime_at_zero: SystemTime,
}

impl Clock {
    /// A clock whose monotonic zero is `realtime_at_zero`.
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
}
