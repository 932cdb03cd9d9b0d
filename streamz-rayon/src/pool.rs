//! [`Pool`]: a rayon thread pool for the work, and the executor the graph's tasks run on.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use streamz_core::{BoxFuture, Clock, Executor};

/// A rayon thread pool for scattered work, and an [`Executor`] for the graph around it.
///
/// Functions given to [`Scattered`](crate::Scattered) operators run on the rayon pool. As an
/// executor (`Stream::with_executor(pool.clone())`), the pool runs the graph's tasks, such as
/// `gather` or an async sink, and blocking work on the same rayon threads, with
/// `futures-timer` timers: a task woken by a pooled function that just finished runs next on
/// that function's thread, so an element crosses threads only on its way in and out. A graph that already has an
/// executor (tokio, smol, …) keeps it; scatter to a pool all the same.
///
/// Cloning gives another handle on the same pool.
///
/// # Examples
///
/// ```
/// use streamz_core::Stream;
/// use streamz_rayon::{Pool, ScatterExt};
///
/// let pool = Pool::new(2).unwrap();
/// let source = Stream::with_executor(pool.clone());
/// let squares = source.scatter(&pool).map(|x: u64| x * x).buffer(4).gather().sink_to_vec();
/// for x in 0..5 {
///     source.emit_blocking(x).unwrap();
/// }
/// futures_executor::block_on(source.flush());
/// assert_eq!(squares.to_vec(), vec![0, 1, 4, 9, 16]);
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    threads: Arc<rayon::ThreadPool>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads())
            .finish_non_exhaustive()
    }
}

/// `futures-timer` timers on the system clock; no timer for a deadline that has passed.
#[derive(Debug)]
struct TimerClock;

impl Clock for TimerClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        let now = Instant::now();
        if deadline <= now {
            return Box::pin(std::future::ready(()));
        }
        Box::pin(futures_timer::Delay::new(deadline - now))
    }
}

impl Pool {
    /// A new pool of `threads` rayon threads (0: one per core).
    ///
    /// # Errors
    ///
    /// When the threads cannot be started.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("streamz-rayon-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Self::from_pool(Arc::new(pool))
    }

    /// A pool handle on an existing rayon pool.
    ///
    /// # Errors
    ///
    /// None at present; the `Result` leaves room for pools that need starting.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let rayon_pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap());
    /// let pool = streamz_rayon::Pool::from_pool(rayon_pool).unwrap();
    /// assert_eq!(pool.threads(), 3);
    /// ```
    pub fn from_pool(threads: Arc<rayon::ThreadPool>) -> std::io::Result<Self> {
        Ok(Pool {
            inner: Arc::new(Inner {
                threads,
                clock: Arc::new(TimerClock),
            }),
        })
    }

    /// This pool with `clock` in place of the system clock, for example a
    /// [`ManualClock`](streamz_core::ManualClock) that a test moves by hand.
    pub fn with_clock(self, clock: impl Clock + 'static) -> Self {
        Pool {
            inner: Arc::new(Inner {
                threads: self.inner.threads.clone(),
                clock: Arc::new(clock),
            }),
        }
    }

    /// How many threads the rayon pool has.
    pub fn threads(&self) -> usize {
        self.inner.threads.current_num_threads()
    }

    /// The rayon pool.
    pub fn rayon(&self) -> &Arc<rayon::ThreadPool> {
        &self.inner.threads
    }

    /// Runs `job` on the rayon pool.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        self.inner.threads.spawn(job);
    }
}

impl Executor for Pool {
    fn spawn(&self, task: BoxFuture<()>) {
        // Each wake-up polls the task as a rayon job; woken on a pool thread (by a pooled
        // function's result), the job goes on that thread's own queue and runs next there.
        let threads = self.inner.threads.clone();
        let schedule = move |runnable: async_task::Runnable| {
            threads.spawn(move || {
                runnable.run();
            });
        };
        let (runnable, task) = async_task::spawn(task, schedule);
        task.detach();
        runnable.schedule();
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        self.inner.threads.spawn(work);
    }

    fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    fn is_worker_thread(&self) -> bool {
        self.inner.threads.current_thread_index().is_some()
    }

    /// The pool's futures and `futures-timer` timers need no runtime context.
    fn polls_anywhere(&self) -> bool {
        true
    }
}
