//! Where every crate's idea of "now" comes from.
//!
//! Retention, audit times and tombstones (the store), API actions and reconciliation (the
//! daemon) and the simulated switch all read the time through [`Clock`], so tests (and a dry
//! run "as of" some date) can move time without waiting for it.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// Microseconds since the Unix epoch: the unit of the switch's `Event-Date-Timestamp`, and of
/// every time the daemon's decisions compare.
pub type Micros = i64;

/// A switch timestamp as a UTC time (the epoch for one out of chrono's range).
pub fn to_utc(at: Micros) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(at).unwrap_or_default()
}

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current time, UTC.
    fn now(&self) -> DateTime<Utc>;

    /// The current time in microseconds since the epoch.
    fn now_micros(&self) -> Micros {
        self.now().timestamp_micros()
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(Mutex::new(at)))
    }

    /// Set the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Move the time forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
