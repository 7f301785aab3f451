//! The simulator's notion of time.
//!
//! A manual clock moves only when a test calls [`crate::Simulator::advance`], so a 30-second
//! call takes microseconds of wall time and every event timestamp is deterministic. A
//! real-time clock follows the wall clock (optionally faster) for the demo and for pointing a
//! real `callrec serve` at the simulator.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeZone, Utc};

pub use callrec_model::Micros;

/// How the simulator's clock moves.
#[derive(Debug, Clone)]
pub enum ClockMode {
    /// Time stands still until [`crate::Simulator::advance`] moves it; starts at this instant.
    Manual {
        /// The instant the simulated switch believes it is at start-up.
        start: DateTime<Utc>,
    },
    /// Time follows the wall clock, multiplied by `speed` (1.0 is real time).
    RealTime {
        /// How many simulated seconds pass per wall-clock second.
        speed: f64,
    },
}

impl ClockMode {
    /// A manual clock starting at the date of the reference captures (2026-11-24 15:24 UTC).
    pub fn manual() -> ClockMode {
        ClockMode::Manual {
            start: Utc
                .with_ymd_and_hms(2026, 11, 24, 15, 24, 0)
                .single()
                .unwrap_or_else(Utc::now),
        }
    }

    /// The wall clock, unscaled.
    pub fn real_time() -> ClockMode {
        ClockMode::RealTime { speed: 1.0 }
    }
}

impl Default for ClockMode {
    fn default() -> Self {
        ClockMode::manual()
    }
}

/// A shared handle on the simulated time. It is a [`callrec_model::Clock`] too, so a daemon
/// under test can be given the same time as the switch it talks to.
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
enum ClockInner {
    Manual(AtomicI64),
    RealTime {
        origin: Micros,
        started: Instant,
        speed: f64,
    },
}

impl SimClock {
    /// Creates a clock in the given mode.
    pub fn new(mode: &ClockMode) -> SimClock {
        let inner = match mode {
            ClockMode::Manual { start } => {
                ClockInner::Manual(AtomicI64::new(start.timestamp_micros()))
            }
            ClockMode::RealTime { speed } => ClockInner::RealTime {
                origin: wall_micros(),
                started: Instant::now(),
                speed: if speed.is_finite() && *speed > 0.0 {
                    *speed
                } else {
                    1.0
                },
            },
        };
        SimClock {
            inner: Arc::new(inner),
        }
    }

    /// Whether time only moves when told to.
    pub fn is_manual(&self) -> bool {
        matches!(*self.inner, ClockInner::Manual(_))
    }

    /// The current simulated time in microseconds since the epoch.
    pub fn now(&self) -> Micros {
        match &*self.inner {
            ClockInner::Manual(t) => t.load(Ordering::SeqCst),
            ClockInner::RealTime {
                origin,
                started,
                speed,
            } => origin + (started.elapsed().as_micros() as f64 * speed) as Micros,
        }
    }

    /// The current simulated time as a date.
    pub fn now_utc(&self) -> DateTime<Utc> {
        to_utc(self.now())
    }

    /// How long a simulated duration lasts on the wall clock (real-time mode only).
    pub(crate) fn wall_duration(&self, simulated: Duration) -> Duration {
        match &*self.inner {
            ClockInner::Manual(_) => simulated,
            ClockInner::RealTime { speed, .. } => simulated.div_f64(*speed),
        }
    }

    /// Moves a manual clock to `t` (never backwards). No effect on a real-time clock.
    pub(crate) fn set(&self, t: Micros) {
        if let ClockInner::Manual(now) = &*self.inner {
            now.fetch_max(t, Ordering::SeqCst);
        }
    }
}

impl callrec_model::Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        self.now_utc()
    }

    fn now_micros(&self) -> Micros {
        SimClock::now(self)
    }
}

fn wall_micros() -> Micros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as Micros)
        .unwrap_or(0)
}

/// Converts microseconds since the epoch to a UTC date (the epoch itself if out of range).
pub fn to_utc(t: Micros) -> DateTime<Utc> {
    Utc.timestamp_micros(t).single().unwrap_or_default()
}

/// `Event-Date-Local` / `*_stamp` form: `2026-11-24 15:24:26` (the simulated switch runs in UTC).
pub fn local_stamp(t: Micros) -> String {
    to_utc(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `Event-Date-GMT` form: `Tue, 24 Nov 2026 15:24:26 GMT`.
pub fn gmt_stamp(t: Micros) -> String {
    to_utc(t).format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// RFC 2822 form used by the vanilla dialplan's `RFC2822_DATE`: `Tue, 24 Nov 2026 15:34:08 +0000`.
pub fn rfc2822_stamp(t: Micros) -> String {
    to_utc(t).format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// Converts a duration to microseconds, saturating.
pub(crate) fn micros(d: Duration) -> Micros {
    d.as_micros().min(i64::MAX as u128) as Micros
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_the_captures() {
        let t = 1_795_533_866_509_562;
        assert_eq!(local_stamp(t), "2026-11-24 15:24:26");
        assert_eq!(gmt_stamp(t), "Tue, 24 Nov 2026 15:24:26 GMT");
        assert_eq!(rfc2822_stamp(t), "Tue, 24 Nov 2026 15:24:26 +0000");
    }

    #[test]
    fn manual_clock_only_moves_forward_when_told() {
        let clock = SimClock::new(&ClockMode::manual());
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.set(t0 + 5);
        assert_eq!(clock.now(), t0 + 5);
        clock.set(t0);
        assert_eq!(clock.now(), t0 + 5);
    }
}
