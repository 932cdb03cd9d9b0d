//! The [`Executor`] trait: how a graph spawns tasks, offloads blocking work and keeps time.
//!
//! Time-based operators and asynchronous user functions use only this trait, never a runtime
//! directly, so the same graph runs on tokio, async-std, smol, a thread pool, or the
//! [`VirtualExecutor`](crate::VirtualExecutor) in tests.

use std::fmt;
use std::sync::Arc;

use crate::clock::Clock;
use crate::emit::BoxFuture;

/// A runtime that can drive a graph's background work.
///
/// The trait is dyn-compatible (graphs hold an `Arc<dyn Executor>`) and written without
/// `async fn`, so implementing it for a runtime takes a few lines.
///
/// # Examples
///
/// An executor that runs every task on a new thread, for illustration:
///
/// ```
/// use std::time::{Duration, Instant};
/// use streamz_core::{BoxFuture, Clock, Executor};
///
/// #[derive(Debug)]
/// struct ThreadPerTask;
///
/// impl Clock for ThreadPerTask {
///     fn now(&self) -> Instant {
///         Instant::now()
///     }
///     fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
///         Box::pin(async move {
///             std::thread::sleep(deadline.saturating_duration_since(Instant::now()))
///         })
///     }
/// }
///
/// impl Executor for ThreadPerTask {
///     fn spawn(&self, task: BoxFuture<()>) {
///         std::thread::spawn(move || futures_executor::block_on(task));
///     }
///     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
///         std::thread::spawn(work);
///     }
///     fn clock(&self) -> &dyn Clock {
///         self
///     }
/// }
///
/// let source = streamz_core::Stream::<i32>::with_executor(ThreadPerTask);
/// assert!(source.executor().is_some());
/// ```
pub trait Executor: Send + Sync + fmt::Debug + 'static {
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: BoxFuture<()>);

    /// Runs `work`, which may block, where it will not stall the executor's async tasks.
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>);

    /// The executor's clock; timers must be set on it, not on the system clock.
    fn clock(&self) -> &dyn Clock;

    /// True when called from one of the executor's own worker threads, where blocking on the
    /// graph's pending work could deadlock (`emit_blocking` then returns an error instead).
    fn is_worker_thread(&self) -> bool {
        false
    }

    /// True when the futures of a graph on this executor (its clock's timers included) can be
    /// polled on any thread, not only inside the runtime: they need no thread-local runtime
    /// context, as tokio's timers do. Then `emit_blocking` polls an element's pending work
    /// on the calling thread, instead of handing it to the executor and waiting for the
    /// answer, which saves two thread switches per element that has to wait.
    ///
    /// The default, `false`, is always correct.
    fn polls_anywhere(&self) -> bool {
        false
    }
}

impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn spawn(&self, task: BoxFuture<()>) {
        (**self).spawn(task)
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        (**self).spawn_blocking(work)
    }

    fn clock(&self) -> &dyn Clock {
        (**self).clock()
    }

    fn is_worker_thread(&self) -> bool {
        (**self).is_worker_thread()
    }

    fn polls_anywhere(&self) -> bool {
        (**self).polls_anywhere()
    }
}
