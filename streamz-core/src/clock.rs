//! The [`Clock`] trait: the time a graph's timers run on.

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
        self.sleep_until(self.now() + duration)
    }
}
