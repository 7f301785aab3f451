//! When an archive runs: once, every DUR (`--every 6h`), or daily at a local time
//! (`--at 02:30`). The next run's time is a plain function of the last run's start and the
//! clock; the waiting is done by a [`Timer`], which tests replace with a [`ManualTimer`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use tokio::sync::watch;

/// When to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Once, then stop.
    Once,
    /// Again this long after each run started (a run longer than that is followed at once).
    Every(Duration),
    /// Every day at this local time (of the machine the client runs on).
    DailyAt(NaiveTime),
}

/// Read a duration: a whole number and a unit, `s`, `m`, `h` or `d` (e.g. `90s`, `30m`,
/// `6h`, `1d`); at least a minute, so a typo cannot hammer the server.
pub fn parse_every(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. 30m, 6h or 1d"))?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("`{unit}` is not a unit: use s, m, h or d")),
    };
    if secs < 60 {
        return Err(format!("`{text}` is less than a minute"));
    }
    if secs > 366 * 86_400 {
        return Err(format!("`{text}` is more than a year"));
    }
    Ok(Duration::from_secs(secs))
}

/// Read a time of day, `HH:MM` (24-hour).
pub fn parse_at(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| format!("`{text}` is not a time of day HH:MM (e.g. 02:30)"))
}

impl Schedule {
    /// When the run after one that started at `last_start` is due, seen at `now`, with
    /// local times in `tz`; `None` when no run follows.
    pub fn next_run<Z: TimeZone>(
        &self,
        last_start: DateTime<Utc>,
        now: DateTime<Utc>,
        tz: &Z,
    ) -> Option<DateTime<Utc>> {
        match *self {
            Schedule::Once => None,
            Schedule::Every(every) => {
                let every = chrono::Duration::from_std(every).ok()?;
                Some((last_start + every).max(now))
            }
            Schedule::DailyAt(at) => {
                let local_now = now.with_timezone(tz).naive_local();
                let mut day = local_now.date();
                // The first local `at` after now; a day where `at` does not exist (a DST
                // gap) is skipped to the next.
                for _ in 0..3 {
                    let candidate = day.and_time(at);
                    if candidate > local_now
                        && let Some(t) = tz.from_local_datetime(&candidate).earliest()
                    {
                        return Some(t.with_timezone(&Utc));
                    }
                    day = day.succ_opt()?;
                }
                None
            }
        }
    }
}

/// A boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The clock of the schedule: what time it is, and waiting for a time.
pub trait Timer: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Complete at `at` (at once if it has passed).
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemTimer;

impl Timer for SystemTimer {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Re-read the clock after each wake-up: a laptop that slept past `at` runs at
            // once, and a clock set back waits the difference.
            loop {
                let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(Duration::from_secs(60))).await;
            }
        })
    }
}

/// A clock that moves only when told, for tests of the schedule: [`ManualTimer::set`] moves
/// it, and every sleep whose time has come then completes. It records the times it was
/// asked to sleep until.
#[derive(Debug, Clone)]
pub struct ManualTimer {
    now: Arc<watch::Sender<DateTime<Utc>>>,
    asked: Arc<Mutex<Vec<DateTime<Utc>>>>,
}

impl ManualTimer {
    /// A clock at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualTimer {
            now: Arc::new(watch::Sender::new(at)),
            asked: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Move the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        self.now.send_replace(at);
    }

    /// Every time a sleep was asked for, in order.
    pub fn sleeps_asked(&self) -> Vec<DateTime<Utc>> {
        self.asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Timer for ManualTimer {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        self.asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(at);
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`; an error cannot happen while we borrow it.
            let _ = rx.wait_for(|now| *now >= at).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 30, h, m, 0).unwrap()
    }

    #[test]
    fn durations_take_a_unit_and_at_least_a_minute() {
        assert_eq!(parse_every("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_every("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_every("90s"), Ok(Duration::from_secs(90)));
        for bad in ["30", "m", "5s", "3w", "-1h", "1.5h", "400d"] {
            assert!(parse_every(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_at("02:30"),
            Ok(NaiveTime::from_hms_opt(2, 30, 0).unwrap())
        );
        assert!(parse_at("25:00").is_err());
    }

    #[test]
    fn every_counts_from_the_last_start_and_a_long_run_is_followed_at_once() {
        let every = Schedule::Every(Duration::from_secs(3600));
        assert_eq!(every.next_run(t(10, 0), t(10, 5), &Utc), Some(t(11, 0)));
        assert_eq!(every.next_run(t(10, 0), t(11, 30), &Utc), Some(t(11, 30)));
        assert_eq!(Schedule::Once.next_run(t(10, 0), t(10, 5), &Utc), None);
    }

    #[test]
    fn daily_at_is_the_next_local_time_after_now_across_a_dst_change() {
        let at = Schedule::DailyAt(NaiveTime::from_hms_opt(2, 30, 0).unwrap());
        // 2024-03-30 10:00 UTC: the next 02:30 UTC is tomorrow's.
        assert_eq!(
            at.next_run(t(10, 0), t(10, 0), &Utc),
            Some(Utc.with_ymd_and_hms(2024, 3, 31, 2, 30, 0).unwrap())
        );
        // In Berlin, 2024-03-31 02:30 does not exist (clocks go 02:00 → 03:00): the run is
        // on the 1st of April, 02:30 CEST = 00:30 UTC.
        assert_eq!(
            at.next_run(t(10, 0), t(10, 0), &Tz::Europe__Berlin),
            Some(Utc.with_ymd_and_hms(2024, 4, 1, 0, 30, 0).unwrap())
        );
    }

    #[tokio::test]
    async fn a_manual_timer_wakes_a_sleeper_only_when_set_past_its_time() {
        let timer = ManualTimer::new(t(10, 0));
        let sleeper = {
            let timer = timer.clone();
            tokio::spawn(async move { timer.sleep_until(t(11, 0)).await })
        };
        // Wait until the sleep is asked for, then move the clock short of it, then past it.
        while timer.sleeps_asked().is_empty() {
            tokio::task::yield_now().await;
        }
        timer.set(t(10, 59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        timer.set(t(11, 0));
        sleeper.await.unwrap();
        assert_eq!(timer.sleeps_asked(), [t(11, 0)]);
    }
}
