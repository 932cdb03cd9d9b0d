//! Runs streamz graphs on [smol](https://docs.rs/smol) 2: an
//! [`async-executor`](https://docs.rs/async-executor) executor with
//! [`async-io`](https://docs.rs/async-io) timers.
//!
//! [`SmolExecutor`] implements streamz-core's `Executor`. Drive a graph from within the
//! executor with `source.emit(x).await` inside [`SmolExecutor::run`], or start threads that
//! run it with [`SmolExecutor::background`] and use `emit_blocking` from plain code.
//!
//! ```
//! use streamz_core::Stream;
//! use streamz_smol::SmolExecutor;
//!
//! let executor = SmolExecutor::new();
//! let source = Stream::with_executor(executor.clone());
//! let out = source.map(|x: u32| x + 1).rate_limit("5ms").sink_to_vec();
//! executor.run(async {
//!     for x in 0..3 {
//!         source.emit(x).await.unwrap();
//!     }
//! });
//! assert_eq!(out.to_vec(), vec![1, 2, 3]);
//! ```

/// The crate's README, whose example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

use async_executor::Executor as AsyncExecutor;
use streamz_core::{BoxFuture, Clock, Executor};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The id of the `SmolExecutor` this thread is running, if any.
    static RUNNING: Cell<u64> = const { Cell::new(0) };
}

/// An `Executor` on an `async-executor` executor, with `async-io` timers.
///
/// Cloning gives another handle on the same executor.
#[derive(Clone)]
pub struct SmolExecutor {
    id: u64,
    executor: Arc<AsyncExecutor<'static>>,
    clock: Arc<dyn Clock>,
    _threads: Option<Arc<Threads>>,
}

impl fmt::Debug for SmolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolExecutor")
            .field("id", &self.id)
            .field("background", &self._threads.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for SmolExecutor {
    fn default() -> Self {
        Self::new()
    }
}

/// `async-io`'s timers on the system clock; no timer for a deadline that has passed.
#[derive(Debug)]
struct SmolClock;

impl Clock for SmolClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        streamz_core::deadline_timer(Instant::now(), deadline, |_| {
            let timer = async_io::Timer::at(deadline);
            async move {
                timer.await;
            }
        })
    }
}

/// Background threads running the executor; they stop when this is dropped.
struct Threads {
    _stop: async_channel::Sender<()>,
}

impl SmolExecutor {
    /// A new executor. Its tasks run while some thread runs it: [`run`](SmolExecutor::run),
    /// or the threads of [`background`](SmolExecutor::background).
    pub fn new() -> Self {
        SmolExecutor {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            executor: Arc::new(AsyncExecutor::new()),
            clock: Arc::new(SmolClock),
            _threads: None,
        }
    }

    /// A new executor run by `threads` threads of its own, for graphs driven from plain code
    /// with `emit_blocking`. The threads stop when every clone of this executor, and every
    /// graph using it, is gone.
    ///
    /// # Errors
    ///
    /// When a thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// let executor = streamz_smol::SmolExecutor::background(1).unwrap();
    /// let source = streamz_core::Stream::with_executor(executor);
    /// let out = source.delay("2ms").sink_to_vec();
    /// source.emit_blocking('x').unwrap();
    /// futures_lite::future::block_on(source.flush());
    /// assert_eq!(out.to_vec(), vec!['x']);
    /// ```
    pub fn background(threads: usize) -> std::io::Result<Self> {
        let mut executor = Self::new();
        let (stop, stopped) = async_channel::bounded::<()>(1);
        for i in 0..threads.max(1) {
            let (runner, stopped) = (executor.clone(), stopped.clone());
            thread::Builder::new()
                .name(format!("streamz-smol-{i}"))
                .spawn(move || {
                    runner.run(async move {
                        // Ends when the sender is dropped.
                        let _ = stopped.recv().await;
                    })
                })?;
        }
        executor._threads = Some(Arc::new(Threads { _stop: stop }));
        Ok(executor)
    }

    /// This executor with `clock` in place of the system clock, for example a
    /// [`ManualClock`](streamz_core::ManualClock) that a test moves by hand.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Runs the executor's tasks on this thread until `future` completes.
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        let outer = RUNNING.with(|r| r.replace(self.id));
        let out = async_io::block_on(self.executor.run(future));
        RUNNING.with(|r| r.set(outer));
        out
    }

    /// Runs one task that is ready to make progress, if any; true if one ran. Tests use it to
    /// run everything until nothing can move without the clock.
    pub fn try_tick(&self) -> bool {
        let outer = RUNNING.with(|r| r.replace(self.id));
        let ran = self.executor.try_tick();
        RUNNING.with(|r| r.set(outer));
        ran
    }
}

impl Executor for SmolExecutor {
    fn spawn(&self, task: BoxFuture<()>) {
        self.executor.spawn(task).detach();
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        // smol's thread pool for blocking work.
        blocking::unblock(work).detach();
    }

    fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    fn is_worker_thread(&self) -> bool {
        RUNNING.with(|r| r.get()) == self.id
    }

    /// smol's futures and `async-io` timers need no runtime context.
    fn polls_anywhere(&self) -> bool {
        true
    }
}
