//! The [`Clock`] trait: the time a graph's timers run on.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::emit::BoxFuture;

/// A source of time and timers.
///
/// Real executors read the system's monotonic clock; the
/// [`VirtualExecutor`](crate::VirtualExecutor) has a clock that moves only when a test says so.
pub trait Clock: Send + Sync {
    /// The current instant on this clock.
    fn now(&self) -> Instant;

    /// A future that completes once [`now`](Clock::now) has reached `deadline`. A deadline in
    /// the past completes at once, without sleeping.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;
}

impl dyn Clock + '_ {
    /// A future that completes `duration` from now on this clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Executor, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let clock = executor.clock();
    /// let start = clock.now();
    /// executor.block_on(clock.sleep(Duration::from_secs(5)));
    /// assert_eq!(clock.now() - start, Duration::from_secs(5));
    /// ```
    pub fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        self.sleep_until(after(self.now(), duration))
    }
}

/// A [`Clock::sleep_until`] for executors: ready at once, taking no timer, when `deadline` is
/// not after `now`; otherwise `sleep(deadline - now)`, the executor's own timer. Every
/// executor crate's clock is written with it, so a deadline that has passed never costs a
/// timer (tokio's would round even a zero wait up to a millisecond).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let now = Instant::now();
/// let past = streamz_core::deadline_timer(now, now - Duration::from_secs(1), |_| async {
///     unreachable!("no timer for a deadline that has passed")
/// });
/// futures_executor::block_on(past);
/// let soon = streamz_core::deadline_timer(now, now + Duration::from_millis(5), |wait| {
///     assert_eq!(wait, Duration::from_millis(5));
///     async move { std::thread::sleep(wait) }
/// });
/// futures_executor::block_on(soon);
/// ```
pub fn deadline_timer<F, Fut>(now: Instant, deadline: Instant, sleep: F) -> BoxFuture<()>
where
    F: FnOnce(Duration) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if deadline <= now {
        return Box::pin(std::future::ready(()));
    }
    Box::pin(sleep(deadline - now))
}

/// `now + wait`, or a hundred years from now when that is past what an `Instant` can hold
/// (`Duration::MAX`, a user's `500000000y`): a wait that long is a wait for ever, not a
/// panic.
pub(crate) fn after(now: Instant, wait: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(wait.min(CENTURY))
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// A time interval for the time-based operators: a [`Duration`], or a human-readable string
/// such as `"500ms"`, `"1s"` or `"2m 30s"` (see the `humantime` crate for the format).
///
/// # Panics
///
/// A string that is not a duration panics where the graph is built, naming the string.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use streamz_core::IntoInterval;
///
/// assert_eq!("500ms".into_interval(), Duration::from_millis(500));
/// assert_eq!("1m 30s".into_interval(), Duration::from_secs(90));
/// assert_eq!(Duration::from_secs(2).into_interval(), Duration::from_secs(2));
/// ```
///
/// ```should_panic
/// use streamz_core::IntoInterval;
///
/// let _ = "5 parsecs".into_interval(); // panics: invalid interval "5 parsecs": …
/// ```
pub trait IntoInterval {
    /// The interval as a `Duration`.
    fn into_interval(self) -> Duration;
}

impl IntoInterval for Duration {
    fn into_interval(self) -> Duration {
        self
    }
}

impl IntoInterval for &str {
    fn into_interval(self) -> Duration {
        match humantime::parse_duration(self) {
            Ok(d) => d,
            Err(e) => panic!(
                "invalid interval {self:?}: {e} (write it like \"500ms\", \"1s\" or \"2m 30s\")"
            ),
        }
    }
}

impl IntoInterval for String {
    fn into_interval(self) -> Duration {
        self.as_str().into_interval()
    }
}
