//! Waiting for what another task, thread or process does: the check is polled every few
//! milliseconds until it holds or the time limit passes, and then the test fails naming what
//! it waited for (and, when the check says, what it saw last). Nothing here sleeps a fixed
//! time and hopes.
//!
//! The async waits sleep and read the time through tokio (so a paused test clock applies to
//! them); [`eventually_blocking`] is for plain threads.
//!
//! A check returns what [`Ready`] is implemented for: `bool`, `Option<T>` (the wait returns
//! the `T`), or `Result<T, E>` whose `E` says what was seen instead (shown on failure).

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a wait may take before the test fails. Generous, because the machines running
/// the tests are shared; a passing test never waits it out.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How often a check is polled.
const POLL: Duration = Duration::from_millis(10);

/// The result of one poll of a check: done (with a value), or not yet.
pub trait Ready {
    /// What the wait returns once the check holds.
    type Value;

    /// `Ok` once done; `Err` while not, with what was seen instead when the check says.
    fn ready(self) -> Result<Self::Value, Option<String>>;
}

impl Ready for bool {
    type Value = ();

    fn ready(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Ready for Option<T> {
    type Value = T;

    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Ready for Result<T, E> {
    type Value = T;

    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// The time limit of a wait; each wait starts its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(Duration);

impl Timeout {
    /// [`DEADLINE`], what the free functions of this module use.
    pub const DEFAULT: Timeout = Timeout(DEADLINE);

    /// A limit of `secs` seconds.
    pub const fn secs(secs: u64) -> Timeout {
        Timeout(Duration::from_secs(secs))
    }

    /// A limit of `limit`.
    pub const fn of(limit: Duration) -> Timeout {
        Timeout(limit)
    }

    /// Polls `check` until it is ready; fails the test once the limit has passed.
    pub async fn eventually<R: Ready>(self, what: &str, mut check: impl FnMut() -> R) -> R::Value {
        self.eventually_async(what, || std::future::ready(check()))
            .await
    }

    /// The same with an async check (one that queries a task, a store thread, a socket).
    pub async fn eventually_async<R, F>(self, what: &str, mut check: impl FnMut() -> F) -> R::Value
    where
        R: Ready,
        F: Future<Output = R>,
    {
        let deadline = tokio::time::Instant::now() + self.0;
        loop {
            let seen = match check().await.ready() {
                Ok(value) => return value,
                Err(seen) => seen,
            };
            if tokio::time::Instant::now() >= deadline {
                self.fail(what, seen);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The same on a plain thread: the check is polled between `std::thread::sleep`s.
    #[track_caller]
    pub fn eventually_blocking<R: Ready>(
        self,
        what: &str,
        mut check: impl FnMut() -> R,
    ) -> R::Value {
        let deadline = Instant::now() + self.0;
        loop {
            let seen = match check().ready() {
                Ok(value) => return value,
                Err(seen) => seen,
            };
            if Instant::now() >= deadline {
                self.fail(what, seen);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Awaits `future`; fails the test if it has not finished within the limit.
    pub async fn within<F: Future>(self, what: &str, future: F) -> F::Output {
        match tokio::time::timeout(self.0, future).await {
            Ok(output) => output,
            Err(_) => self.fail(what, None),
        }
    }

    #[track_caller]
    fn fail(self, what: &str, seen: Option<String>) -> ! {
        match seen {
            Some(seen) => panic!("timed out after {:?} waiting for {what}; {seen}", self.0),
            None => panic!("timed out after {:?} waiting for {what}", self.0),
        }
    }
}

/// Polls `check` until it is ready; fails the test after [`DEADLINE`].
pub async fn eventually<R: Ready>(what: &str, check: impl FnMut() -> R) -> R::Value {
    Timeout::DEFAULT.eventually(what, check).await
}

/// Polls an async `check` until it is ready; fails the test after [`DEADLINE`].
pub async fn eventually_async<R, F>(what: &str, check: impl FnMut() -> F) -> R::Value
where
    R: Ready,
    F: Future<Output = R>,
{
    Timeout::DEFAULT.eventually_async(what, check).await
}

/// Polls `check` on this thread until it is ready; fails the test after [`DEADLINE`].
#[track_caller]
pub fn eventually_blocking<R: Ready>(what: &str, check: impl FnMut() -> R) -> R::Value {
    Timeout::DEFAULT.eventually_blocking(what, check)
}

/// Awaits `future`; fails the test if it has not finished after [`DEADLINE`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    Timeout::DEFAULT.within(what, future).await
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const SHORT: Timeout = Timeout::of(Duration::from_millis(50));

    #[tokio::test]
    async fn a_check_that_comes_true_returns_its_value() {
        let polls = Cell::new(0);
        let value = eventually("the third poll", || {
            polls.set(polls.get() + 1);
            (polls.get() == 3).then_some("done")
        })
        .await;
        assert_eq!((value, polls.get()), ("done", 3));
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for the impossible")]
    async fn a_check_that_never_holds_fails_naming_what_was_awaited() {
        SHORT.eventually("the impossible", || false).await;
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for two rows; the index has 1")]
    async fn a_failure_shows_what_the_check_saw_last() {
        SHORT
            .eventually_async("two rows", || async { Err::<(), _>("the index has 1") })
            .await;
    }

    #[test]
    fn a_blocking_wait_returns_once_another_thread_did_its_part() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let set = flag.clone();
        let thread =
            std::thread::spawn(move || set.store(true, std::sync::atomic::Ordering::SeqCst));
        eventually_blocking("the flag", || {
            flag.load(std::sync::atomic::Ordering::SeqCst)
        });
        thread.join().unwrap();
    }

    #[test]
    #[should_panic(expected = "timed out after 50ms waiting for a thread")]
    fn a_blocking_wait_has_a_limit_too() {
        SHORT.eventually_blocking("a thread", || false);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for a reply")]
    async fn within_fails_a_future_that_does_not_finish() {
        SHORT.within("a reply", std::future::pending::<()>()).await;
    }
}
