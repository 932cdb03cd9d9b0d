//! Runs streamz graphs on [async-std](https://docs.rs/async-std) 1.13.
//!
//! async-std is discontinued upstream; its maintainers point to smol, and so do we: new code
//! should use [`streamz-smol`](https://docs.rs/streamz-smol). This crate is for programs
//! already built on async-std.
//!
//! [`AsyncStdExecutor`] implements streamz-core's `Executor` with async-std's global executor
//! and timers:
//!
//! ```
//! use streamz_asyncstd::AsyncStdExecutor;
//! use streamz_core::Stream;
//!
//! #[async_std::main]
//! async fn main() {
//!     let source = Stream::with_executor(AsyncStdExecutor::new());
//!     let out = source.map(|x: u32| x * 3).rate_limit("5ms").sink_to_vec();
//!     for x in 0..3 {
//!         source.emit(x).await.unwrap();
//!     }
//!     assert_eq!(out.to_vec(), vec![0, 3, 6]);
//! }
//! ```

/// The crate's README, whose example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use streamz_core::{BoxFuture, Clock, Executor};

/// An `Executor` on async-std's global executor.
///
/// Cloning gives another handle on the same executor.
#[derive(Clone)]
pub struct AsyncStdExecutor {
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for AsyncStdExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncStdExecutor").finish_non_exhaustive()
    }
}

impl Default for AsyncStdExecutor {
    fn default() -> Self {
        Self::new()
    }
}

/// async-std's timers on the system clock; no timer for a deadline that has passed.
#[derive(Debug)]
struct AsyncStdClock;

impl Clock for AsyncStdClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        streamz_core::deadline_timer(Instant::now(), deadline, async_std::task::sleep)
    }
}

impl AsyncStdExecutor {
    /// An executor on async-std's global executor, whose threads start on first use.
    pub fn new() -> Self {
        AsyncStdExecutor {
            clock: Arc::new(AsyncStdClock),
        }
    }

    /// This executor with `clock` in place of the system clock, for example a
    /// [`ManualClock`](streamz_core::ManualClock) that a test moves by hand.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}

impl Executor for AsyncStdExecutor {
    fn spawn(&self, task: BoxFuture<()>) {
        // Dropping the handle detaches the task.
        drop(async_std::task::spawn(task));
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        drop(async_std::task::spawn_blocking(work));
    }

    fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    fn is_worker_thread(&self) -> bool {
        // Inside one of async-std's tasks, blocking can stall the work it waits for.
        async_std::task::try_current().is_some()
    }

    /// async-std's futures and timers need no runtime context.
    fn polls_anywhere(&self) -> bool {
        true
    }
}
