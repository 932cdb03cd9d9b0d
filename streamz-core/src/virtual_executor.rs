//! [`VirtualExecutor`]: a deterministic executor with a clock that moves only when told to.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use async_task::Runnable;

use crate::clock::Clock;
use crate::emit::BoxFuture;
use crate::executor::Executor;
use crate::manual_clock::ManualClock;
use crate::node::lock;

/// A single-threaded, deterministic executor on virtual time, for tests.
///
/// Tasks run only inside [`run_until_stalled`](VirtualExecutor::run_until_stalled),
/// [`advance`](VirtualExecutor::advance) and [`block_on`](VirtualExecutor::block_on), on the
/// calling thread, in the order they were woken. The clock starts at zero and moves only
/// forward, only in those calls: `advance(d)` fires every timer due within `d`, one at a time
/// in deadline order (ties in the order they were set), running whatever each one wakes before
/// firing the next. So a time-based test gives the same answer on every machine, however
/// loaded, and takes no real time.
///
/// Cloning gives another handle on the same executor.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use streamz_core::{Executor, VirtualExecutor};
///
/// let executor = VirtualExecutor::new();
/// let log = Arc::new(Mutex::new(Vec::new()));
/// for ms in [30u64, 10, 20] {
///     let (clock, log) = (executor.clone(), log.clone());
///     executor.spawn(Box::pin(async move {
///         clock.clock().sleep(Duration::from_millis(ms)).await;
///         log.lock().unwrap().push(ms);
///     }));
/// }
/// executor.advance(Duration::from_millis(15));
/// assert_eq!(*log.lock().unwrap(), vec![10]);
/// executor.advance(Duration::from_millis(15));
/// assert_eq!(*log.lock().unwrap(), vec![10, 20, 30]);
/// assert_eq!(executor.elapsed(), Duration::from_millis(30));
/// ```
#[derive(Clone)]
pub struct VirtualExecutor {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<VecDeque<Runnable>>,
    clock: ManualClock,
}

impl Default for VirtualExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualExecutor {
    /// A new executor, its clock at zero.
    pub fn new() -> Self {
        VirtualExecutor {
            shared: Arc::new(Shared {
                queue: Mutex::new(VecDeque::new()),
                clock: ManualClock::new(),
            }),
        }
    }

    /// Virtual time since the executor was created.
    pub fn elapsed(&self) -> Duration {
        self.shared.clock.elapsed()
    }

    /// How many timers are set and have not fired.
    pub fn pending_timers(&self) -> usize {
        self.shared.clock.pending_timers()
    }

    /// The executor's clock, as a [`ManualClock`].
    pub fn manual_clock(&self) -> &ManualClock {
        &self.shared.clock
    }

    /// Runs tasks until none can make progress without the clock moving.
    pub fn run_until_stalled(&self) {
        loop {
            let next = lock(&self.shared.queue).pop_front();
            match next {
                Some(runnable) => {
                    runnable.run();
                }
                None => return,
            }
        }
    }

    /// Moves the clock forward by `duration`, firing every timer that falls due on the way, in
    /// deadline order, and running the tasks each one wakes before firing the next.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use streamz_core::{Executor, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let rang = Arc::new(AtomicBool::new(false));
    /// let (clock, bell) = (executor.clone(), rang.clone());
    /// executor.spawn(Box::pin(async move {
    ///     clock.clock().sleep(Duration::from_secs(1)).await;
    ///     bell.store(true, Ordering::SeqCst);
    /// }));
    /// executor.run_until_stalled();
    /// assert_eq!(executor.pending_timers(), 1);
    /// executor.advance(Duration::from_millis(999));
    /// assert!(!rang.load(Ordering::SeqCst));
    /// executor.advance(Duration::from_millis(1));
    /// assert!(rang.load(Ordering::SeqCst));
    /// ```
    pub fn advance(&self, duration: Duration) {
        let target = self.elapsed() + duration;
        self.run_until_stalled();
        while self.shared.clock.fire_next(target) {
            self.run_until_stalled();
        }
        self.shared
            .clock
            .advance(target.saturating_sub(self.elapsed()));
        self.run_until_stalled();
    }

    /// Runs `future` to completion on this thread, running the executor's tasks meanwhile and
    /// moving the clock straight to the next timer whenever nothing else can happen.
    ///
    /// # Panics
    ///
    /// If `future` can never complete: it is pending, no task can run and no timer is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Executor, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let clock = executor.clone();
    /// let out = executor.block_on(async move {
    ///     clock.clock().sleep(Duration::from_secs(60)).await;
    ///     "an hour later? no, a minute"
    /// });
    /// assert_eq!(out, "an hour later? no, a minute");
    /// assert_eq!(executor.elapsed(), Duration::from_secs(60));
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let flag = Arc::new(WakeFlag(AtomicBool::new(true)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if flag.0.swap(false, Ordering::AcqRel)
                && let Poll::Ready(out) = future.as_mut().poll(&mut cx)
            {
                return out;
            }
            self.run_until_stalled();
            if flag.0.load(Ordering::Acquire) {
                continue;
            }
            if !self.shared.clock.fire_next(Duration::MAX) {
                panic!(
                    "VirtualExecutor::block_on: the future can never complete (no task can run and no timer is set)"
                );
            }
        }
    }
}

struct WakeFlag(AtomicBool);

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

impl fmt::Debug for VirtualExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualExecutor")
            .field("elapsed", &self.elapsed())
            .field("runnable", &lock(&self.shared.queue).len())
            .field("timers", &self.pending_timers())
            .finish()
    }
}

impl Executor for VirtualExecutor {
    fn spawn(&self, task: BoxFuture<()>) {
        let queue: Weak<Shared> = Arc::downgrade(&self.shared);
        let schedule = move |runnable: Runnable| {
            // Once the executor is gone its tasks cannot run; dropping them cancels them.
            if let Some(shared) = queue.upgrade() {
                lock(&shared.queue).push_back(runnable);
            }
        };
        let (runnable, task) = async_task::spawn(task, schedule);
        runnable.schedule();
        task.detach();
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        self.spawn(Box::pin(async move { work() }));
    }

    fn clock(&self) -> &dyn Clock {
        self
    }

    /// Always true: tasks run only when the caller drives the executor, so a caller blocked
    /// on them would wait forever. Await `emit` inside [`block_on`](VirtualExecutor::block_on)
    /// instead of calling `emit_blocking`.
    fn is_worker_thread(&self) -> bool {
        true
    }
}

impl Clock for VirtualExecutor {
    fn now(&self) -> Instant {
        self.shared.clock.now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        self.shared.clock.sleep_until(deadline)
    }
}
