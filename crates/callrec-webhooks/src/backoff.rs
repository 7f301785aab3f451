//! When to try an endpoint again after `failures` failed attempts in a row: capped
//! exponential backoff, with up to a fifth added at random so endpoints that failed together
//! do not all come back in the same second.

use std::time::Duration;

/// The wait after `failures` (≥ 1) failures: `initial × 2^(failures-1)`, at most `max`, before
/// jitter.
pub fn base_delay(failures: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    initial.saturating_mul(1 << doublings).min(max)
}

/// [`base_delay`] plus `jitter` (0.0 to 1.0) of a fifth of it.
pub fn delay(failures: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let base = base_delay(failures, initial, max);
    base + base.mul_f64(jitter.clamp(0.0, 1.0) / 5.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_wait_and_stops_at_the_cap() {
        let s = Duration::from_secs;
        let waits: Vec<_> = (1..=14).map(|n| base_delay(n, s(1), s(3600))).collect();
        assert_eq!(&waits[..5], &[s(1), s(2), s(4), s(8), s(16)]);
        assert_eq!(waits[11], s(2048));
        assert_eq!(waits[12], s(3600));
        assert_eq!(base_delay(1000, s(1), s(3600)), s(3600));
        assert_eq!(delay(3, s(1), s(3600), 1.0), Duration::from_millis(4800));
        assert_eq!(delay(3, s(1), s(3600), 0.0), s(4));
    }
}
