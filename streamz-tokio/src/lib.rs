//! Runs streamz graphs on [tokio](https://tokio.rs).
//!
//! [`TokioExecutor`] implements streamz-core's `Executor` with tokio's spawn and timers, in two
//! ways of running a graph:
//!
//! - **Within the event loop**: [`TokioExecutor::current`] uses the runtime you are in
//!   (`#[tokio::main]`), and you drive the graph with `source.emit(x).await`, which waits
//!   until the pipeline is ready for more.
//! - **On a separate thread**: [`TokioExecutor::background`] starts a runtime on a thread of
//!   its own, and plain code drives the graph with `source.emit_blocking(x)`.
//!
//! ```
//! use streamz_core::Stream;
//! use streamz_tokio::TokioExecutor;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     let source = Stream::with_executor(TokioExecutor::current());
//!     let out = source.map(|x: u32| x * 2).rate_limit("10ms").sink_to_vec();
//!     for x in 0..3 {
//!         source.emit(x).await.unwrap();
//!     }
//!     assert_eq!(out.to_vec(), vec![0, 2, 4]);
//! }
//! ```
//!
//! The clock is tokio's, so tests can use paused time (`#[tokio::test(start_paused = true)]`)
//! and get exact timings; an executor can also be given a
//! [`ManualClock`](streamz_core::ManualClock) with [`TokioExecutor::with_clock`].
//!
//! [`RuntimeThread`] is for connectors whose client library needs tokio: it runs one future
//! on a one-thread runtime of its own, so that they work under every streamz executor.

/// The crate's README, whose example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use streamz_core::{BoxFuture, Clock, Executor};
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

mod runtime_thread;

pub use crate::runtime_thread::{RuntimeThread, Stopping};

/// An `Executor` on a tokio runtime.
///
/// Cloning gives another handle on the same runtime.
#[derive(Clone)]
pub struct TokioExecutor {
    handle: Handle,
    clock: Arc<dyn Clock>,
    /// Set for a runtime started by [`TokioExecutor::background`]: keeps its thread running.
    background: Option<Arc<Background>>,
}

impl fmt::Debug for TokioExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioExecutor")
            .field("background", &self.background.is_some())
            .finish_non_exhaustive()
    }
}

/// tokio's clock: paused time included, no timer for a deadline that has passed (tokio
/// rounds even a zero-length sleep up to a millisecond), and wake-ups on time (see
/// [`sleep_until`]).
#[derive(Debug)]
struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        streamz_core::deadline_timer(self.now(), deadline, |_| sleep_until(deadline))
    }
}

/// Sleeps until `deadline` on tokio's clock, on time.
///
/// tokio's timer works in whole milliseconds and fires up to a millisecond or more late, which
/// would stretch every `rate_limit` gap. So the sleep also races a `futures-timer` delay, whose
/// thread wakes to within a fraction of a millisecond. Under paused time tokio's own timer
/// wins (the runtime jumps its clock to it as soon as it is idle), and an early real-time
/// wake-up is ignored, so virtual timings stay exact.
async fn sleep_until(deadline: Instant) {
    let mut coarse = std::pin::pin!(tokio::time::sleep_until(deadline.into()));
    let left = deadline.saturating_duration_since(tokio::time::Instant::now().into_std());
    tokio::select! {
        biased;
        () = &mut coarse => return,
        () = futures_timer::Delay::new(left) => {}
    }
    if tokio::time::Instant::now().into_std() < deadline {
        coarse.await;
    }
}

impl TokioExecutor {
    /// An executor on the runtime the caller is running in.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime; use [`try_current`](TokioExecutor::try_current) to
    /// get an error instead.
    pub fn current() -> Self {
        match Self::try_current() {
            Ok(executor) => executor,
            Err(e) => panic!("TokioExecutor::current() {e}"),
        }
    }

    /// An executor on the runtime the caller is running in, or an error outside one.
    ///
    /// # Errors
    ///
    /// When not called from within a tokio runtime.
    pub fn try_current() -> Result<Self, tokio::runtime::TryCurrentError> {
        Ok(Self::from_handle(Handle::try_current()?))
    }

    /// An executor on the runtime behind `handle`.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let executor = streamz_tokio::TokioExecutor::from_handle(runtime.handle().clone());
    /// let source = streamz_core::Stream::<u8>::with_executor(executor);
    /// let out = source.delay("1ms").sink_to_vec();
    /// source.emit_blocking(7).unwrap();
    /// runtime.block_on(source.flush());
    /// assert_eq!(out.to_vec(), vec![7]);
    /// ```
    pub fn from_handle(handle: Handle) -> Self {
        TokioExecutor {
            handle,
            clock: Arc::new(TokioClock),
            background: None,
        }
    }

    /// Starts a runtime on a thread of its own, for graphs driven from plain code with
    /// `emit_blocking`. The runtime runs until every clone of this executor, and every graph
    /// using it, is gone.
    ///
    /// `emit_blocking` called from a task on this runtime returns a
    /// [`WouldDeadlock`](streamz_core::ErrorKind::WouldDeadlock) error instead of blocking
    /// the thread the work needs.
    ///
    /// # Errors
    ///
    /// When the runtime or its thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_tokio::TokioExecutor;
    ///
    /// let executor = TokioExecutor::background().unwrap();
    /// let source = Stream::with_executor(executor);
    /// let out = source.rate_limit("5ms").sink_to_vec();
    /// for x in 0..3 {
    ///     source.emit_blocking(x).unwrap(); // waits for its rate-limit slot
    /// }
    /// assert_eq!(out.to_vec(), vec![0, 1, 2]);
    /// ```
    pub fn background() -> std::io::Result<Self> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("streamz-tokio".into())
            .spawn(move || {
                runtime.block_on(async {
                    // Ends when the sender is dropped.
                    let _ = stopped.await;
                });
            })?;
        Ok(TokioExecutor {
            handle,
            clock: Arc::new(TokioClock),
            background: Some(Arc::new(Background {
                id: thread.thread().id(),
                _stop: stop,
            })),
        })
    }

    /// This executor with `clock` in place of tokio's, for example a
    /// [`ManualClock`](streamz_core::ManualClock) that a test moves by hand.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{Executor, ManualClock};
    /// use streamz_tokio::TokioExecutor;
    ///
    /// let clock = ManualClock::new();
    /// let executor = TokioExecutor::background().unwrap().with_clock(clock.clone());
    /// assert_eq!(executor.clock().now(), streamz_core::Clock::now(&clock));
    /// ```
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The runtime's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` to completion on this executor's runtime from plain code, blocking
    /// the calling thread.
    ///
    /// # Panics
    ///
    /// If called from within a tokio runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }
}

/// The thread of a background runtime; the runtime stops when this is dropped.
struct Background {
    id: thread::ThreadId,
    _stop: oneshot::Sender<()>,
}

impl Executor for TokioExecutor {
    fn spawn(&self, task: BoxFuture<()>) {
        self.handle.spawn(task);
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        self.handle.spawn_blocking(work);
    }

    fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    fn is_worker_thread(&self) -> bool {
        match &self.background {
            Some(thread) => thread::current().id() == thread.id,
            // Inside the runtime itself, blocking a worker thread on the graph can stall the
            // very tasks it waits for.
            None => Handle::try_current().is_ok(),
        }
    }
}
