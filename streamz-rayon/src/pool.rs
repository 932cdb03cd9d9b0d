//! [`Pool`]: a rayon thread pool for the work, and the executor the graph's tasks run on.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    jobs: Arc<Jobs>,
}

/// The pooled functions' jobs, for [`Pool::snapshot`].
#[derive(Default)]
struct Jobs {
    /// Submitted and not finished (queued or running).
    in_flight: AtomicUsize,
    /// Running on a thread now.
    running: AtomicUsize,
    completed: AtomicU64,
}

/// A pool's figures at one moment: see [`Pool::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSnapshot {
    /// The rayon pool's threads.
    pub threads: usize,
    /// Calls of pooled functions submitted and not yet finished (queued or running).
    pub in_flight: usize,
    /// Calls running on a thread now.
    pub running: usize,
    /// Calls finished since the pool was made.
    pub completed: u64,
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
        streamz_core::deadline_timer(Instant::now(), deadline, futures_timer::Delay::new)
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
                jobs: Arc::default(),
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
                jobs: self.inner.jobs.clone(),
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

    /// Its threads and the pooled functions' calls at this moment (for a dashboard).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(2).unwrap();
    /// let source = Stream::new();
    /// let _out = source.scatter(&pool).map(|x: u32| x + 1).gather().sink_to_vec();
    /// source.emit_blocking(1).unwrap();
    /// // the call's job ends just after it hands its result on
    /// while pool.snapshot().completed < 1 {
    ///     std::thread::yield_now();
    /// }
    /// let now = pool.snapshot();
    /// assert_eq!((now.threads, now.in_flight, now.running), (2, 0, 0));
    /// ```
    pub fn snapshot(&self) -> PoolSnapshot {
        let jobs = &self.inner.jobs;
        PoolSnapshot {
            threads: self.threads(),
            in_flight: jobs.in_flight.load(Ordering::Relaxed),
            running: jobs.running.load(Ordering::Relaxed),
            completed: jobs.completed.load(Ordering::Relaxed),
        }
    }

    /// Runs `job` (a pooled function's call) on the rayon pool.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        let jobs = self.inner.jobs.clone();
        jobs.in_flight.fetch_add(1, Ordering::Relaxed);
        self.inner.threads.spawn(move || {
            jobs.running.fetch_add(1, Ordering::Relaxed);
            // counted as done even if the job unwinds
            struct Done(Arc<Jobs>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.running.fetch_sub(1, Ordering::Relaxed);
                    self.0.completed.fetch_add(1, Ordering::Relaxed);
                    self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
            }
            let _done = Done(jobs);
            job();
        });
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
