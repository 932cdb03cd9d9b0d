//! [`VirtualExecutor`]: a deterministic executor with a clock that moves only when told to.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use async_task::Runnable;

use crate::clock::Clock;
use crate::emit::BoxFuture;
use crate::executor::Executor;
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
    start: Instant,
    queue: Mutex<VecDeque<Runnable>>,
    timers: Mutex<Timers>,
}

struct Timers {
    now: Duration,
    next_seq: u64,
    due: BTreeMap<(Duration, u64), Waker>,
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
                start: Instant::now(),
                queue: Mutex::new(VecDeque::new()),
                timers: Mutex::new(Timers {
                    now: Duration::ZERO,
                    next_seq: 0,
                    due: BTreeMap::new(),
                }),
            }),
        }
    }

    /// Virtual time since the executor was created.
    pub fn elapsed(&self) -> Duration {
        lock(&self.shared.timers).now
    }

    /// How many timers are set and have not fired.
    pub fn pending_timers(&self) -> usize {
        lock(&self.shared.timers).due.len()
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
        while self.fire_next(target) {
            self.run_until_stalled();
        }
        let mut timers = lock(&self.shared.timers);
        timers.now = timers.now.max(target);
        drop(timers);
        self.run_until_stalled();
    }

    /// Fires the earliest timer due at or before `limit`; false if there is none.
    fn fire_next(&self, limit: Duration) -> bool {
        let mut timers = lock(&self.shared.timers);
        let Some((&(deadline, seq), _)) = timers.due.iter().next() else {
            return false;
        };
        if deadline > limit {
            return false;
        }
        let waker = timers.due.remove(&(deadline, seq));
        timers.now = timers.now.max(deadline);
        drop(timers);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
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
            if !self.fire_next(Duration::MAX) {
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
}

impl Clock for VirtualExecutor {
    fn now(&self) -> Instant {
        self.shared.start + self.elapsed()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(Sleep {
            shared: self.shared.clone(),
            deadline: deadline.saturating_duration_since(self.shared.start),
            key: None,
        })
    }
}

/// A timer on virtual time.
struct Sleep {
    shared: Arc<Shared>,
    deadline: Duration,
    key: Option<(Duration, u64)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let shared = self.shared.clone();
        let mut timers = lock(&shared.timers);
        if timers.now >= self.deadline {
            if let Some(key) = self.key.take() {
                timers.due.remove(&key);
            }
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let key = (self.deadline, timers.next_seq);
                timers.next_seq += 1;
                self.key = Some(key);
                key
            }
        };
        timers.due.insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.shared.timers).due.remove(&key);
        }
    }
}
