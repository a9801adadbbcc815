//! The one clock the core sees: `std::time::Instant` mapped to the core's `Instant` (µs since a
//! process-wide epoch), and the wall clock in Unix seconds for certificate validity.
//!
//! Every instant handed to a probe comes from here, whether read now or stamped earlier by a
//! connection task or the kernel, so round trips computed by the core never mix two clocks.

use std::sync::OnceLock;
use std::time::{Instant as StdInstant, SystemTime, UNIX_EPOCH};

use o365probe_core::time::{Duration, Instant};

static EPOCH: OnceLock<StdInstant> = OnceLock::new();

/// The process's epoch: the core's `Instant` 0. Fixed by the first call to anything in this module.
pub fn epoch() -> StdInstant {
    *EPOCH.get_or_init(StdInstant::now)
}

/// Now, as the core counts time.
pub fn now() -> Instant {
    from_std(StdInstant::now())
}

/// `at` as the core counts time; an instant before the epoch is the epoch.
pub fn from_std(at: StdInstant) -> Instant {
    let since = at.saturating_duration_since(epoch());
    Instant::from_micros(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
}

/// The std instant of a core instant (for timers).
pub fn to_std(at: Instant) -> StdInstant {
    let since = std::time::Duration::from_micros(at.as_micros());
    epoch()
        .checked_add(since)
        // Instant::MAX and its like: far enough that no timer fires.
        .unwrap_or_else(|| epoch() + std::time::Duration::from_secs(100 * 365 * 86_400))
}

/// A core duration as a std one.
pub fn std_duration(d: Duration) -> std::time::Duration {
    std::time::Duration::from_micros(d.as_micros())
}

/// A std duration (a config value) as the core counts it, to the microsecond; saturating.
pub fn core_duration(d: std::time::Duration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A std duration in the report's microseconds, saturating at `u32::MAX` (71 minutes).
pub fn micros_u32(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The wall clock in Unix seconds, for the TLS probe's validity check; `None` if the clock is before 1970
/// (a router without RTC that has not synced yet is more likely to say 1970 or 2000: the caller decides
/// whether to trust it).
pub fn unix_seconds() -> Option<i64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since.as_secs()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_and_core_instants_map_both_ways_to_the_microsecond() {
        let a = now();
        let std_a = to_std(a);
        assert_eq!(from_std(std_a), a);
        let later = std_a + std::time::Duration::from_micros(1_234_567);
        assert_eq!(from_std(later) - a, Duration::from_micros(1_234_567));
        // The clock never runs backwards and starts at the epoch.
        assert!(now() >= a);
        assert_eq!(from_std(epoch()), Instant::from_micros(0));
    }

    #[test]
    fn an_instant_before_the_epoch_is_the_epoch() {
        let before = epoch()
            .checked_sub(std::time::Duration::from_secs(1))
            .unwrap();
        assert_eq!(from_std(before), Instant::from_micros(0));
    }

    #[test]
    fn wall_clock_is_unix_seconds() {
        let s = unix_seconds().unwrap();
        // After this code was written (2026) and before 2100.
        assert!((1_780_000_000..4_102_444_800).contains(&s), "{s}");
    }

    #[test]
    fn config_durations_convert_to_the_microsecond_and_saturate() {
        let d = std::time::Duration::from_micros(1_500_001);
        assert_eq!(core_duration(d), Duration::from_micros(1_500_001));
        assert_eq!(std_duration(core_duration(d)), d);
        assert_eq!(micros_u32(d), 1_500_001);
        let two_hours = std::time::Duration::from_secs(7200);
        assert_eq!(micros_u32(two_hours), u32::MAX);
    }

    #[test]
    fn the_far_future_does_not_panic() {
        assert!(to_std(Instant::MAX) > StdInstant::now());
    }
}
