//! Running the same time-based test on every executor, in virtual time.
//!
//! A [`Harness`] runs a test body on one executor with a clock that jumps to the next timer
//! whenever nothing else can happen, so a test observes exact times, the same on every
//! executor, on any machine:
//!
//! - [`Virtual`]: the core's `VirtualExecutor`.
//! - [`TokioPaused`]: tokio's current-thread runtime with paused time (tokio moves its clock
//!   itself when the runtime is idle).
//! - [`Smol`]: a `SmolExecutor` on a `ManualClock`, ticked until stalled between timers.
//! - [`AsyncStd`]: an `AsyncStdExecutor` on a `ManualClock`. async-std runs its tasks on
//!   threads of its own and has no way to ask whether they are idle, so the harness wraps
//!   every task to count outstanding wake-ups, and moves the clock only when none is left.
//! - [`TokioManual`] and [`Rayon`]: tokio on a background runtime thread, and a rayon `Pool`
//!   as the executor, each on a `ManualClock`, tracked the same way.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use streamz_asyncstd::AsyncStdExecutor;
use streamz_core::{BoxFuture, Clock, Element, Executor, ManualClock, Stream, VirtualExecutor};
use streamz_smol::SmolExecutor;
use streamz_tokio::TokioExecutor;

/// What a test body gets: the executor, and virtual time in milliseconds since the start.
#[derive(Clone, Debug)]
pub struct Runtime {
    executor: Arc<dyn Executor>,
    start: Instant,
}

impl Runtime {
    fn new(executor: Arc<dyn Executor>) -> Self {
        let start = executor.clock().now();
        Runtime { executor, start }
    }

    /// A new source on this runtime's executor.
    pub fn source<T: Element>(&self) -> Stream<T> {
        Stream::with_executor(self.executor.clone())
    }

    /// The executor.
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.executor
    }

    /// Milliseconds since the test started, on the executor's clock.
    pub fn now_ms(&self) -> u64 {
        let elapsed = self.executor.clock().now() - self.start;
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// A clock reading that can move into user functions.
    pub fn clock_ms(&self) -> impl Fn() -> u64 + Send + Sync + Clone + 'static {
        let rt = self.clone();
        move || rt.now_ms()
    }

    /// Sleeps `ms` milliseconds on the executor's clock.
    pub fn sleep_ms(&self, ms: u64) -> BoxFuture<()> {
        self.executor.clock().sleep(Duration::from_millis(ms))
    }
}

/// An executor to run a test body on, in virtual time.
pub trait Harness {
    /// The executor's name, for messages.
    const NAME: &'static str;

    /// Runs `body` to completion.
    ///
    /// # Panics
    ///
    /// If `body` can never complete (it waits and no timer is set).
    fn run<F, Fut>(body: F) -> Fut::Output
    where
        F: FnOnce(Runtime) -> Fut,
        Fut: Future;
}

/// The core's `VirtualExecutor`.
#[derive(Debug)]
pub struct Virtual;

impl Harness for Virtual {
    const NAME: &'static str = "virtual";

    fn run<F, Fut>(body: F) -> Fut::Output
    where
        F: FnOnce(Runtime) -> Fut,
        Fut: Future,
    {
        let executor = VirtualExecutor::new();
        executor.block_on(body(Runtime::new(Arc::new(executor.clone()))))
    }
}

/// tokio's current-thread runtime with paused time.
#[derive(Debug)]
pub struct TokioPaused;

impl Harness for TokioPaused {
    const NAME: &'static str = "tokio";

    fn run<F, Fut>(body: F) -> Fut::Output
    where
        F: FnOnce(Runtime) -> Fut,
        Fut: Future,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async {
            // tokio's timers tick in whole milliseconds from when its clock started: start the
            // test on a tick, so that deadlines a whole number of milliseconds away are exact.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let executor = TokioExecutor::current();
            body(Runtime::new(Arc::new(executor))).await
        })
    }
}

/// A `SmolExecutor` on a `ManualClock`.
#[derive(Debug)]
pub struct Smol;

impl Harness for Smol {
    const NAME: &'static str = "smol";

    fn run<F, Fut>(body: F) -> Fut::Output
    where
        F: FnOnce(Runtime) -> Fut,
        Fut: Future,
    {
        let clock = ManualClock::new();
        let executor = SmolExecutor::new().with_clock(clock.clone());
        let runtime = Runtime::new(Arc::new(executor.clone()));
        drive(body(runtime), &clock, || while executor.try_tick() {})
    }
}

/// An `AsyncStdExecutor` on a `ManualClock`, its tasks tracked to know when all are idle.
#[derive(Debug)]
pub struct AsyncStd;

impl Harness for AsyncStd {
    const NAME: &'static str = "async-std";

    fn run<F, Fut>(body: F) -> Fut::Output
    where
        F: FnOnce(Runtime) -> Fut,
        Fut: Future,
    {
        let clock = ManualClock::new();
        run_tracked(
            AsyncStdExecutor::new().with_clock(clock.clone()),
            clock,
            body,
        )
    }
}

/// tokio on a background runtime thread, on a `ManualClock`.
#[derive(Debug)]
pub struct TokioManual;

impl Harness for TokioManual {
    const NAME: &'static str = "tokio (manual clock)";

    fn run<F, Fut>(body: F) -> Fut::Output
    where
        F: FnOnce(Runtime) -> Fut,
        Fut: Future,
    {
        let clock = ManualClock::new();
        let executor = TokioExecutor::background()
            .expect("a tokio runtime")
            .with_clock(clock.clone());
        run_tracked(executor, clock, body)
    }
}

/// A rayon `Pool` as the executor, on a `ManualClock`.
#[derive(Debug)]
pub struct Rayon;

impl Harness for Rayon {
    const NAME: &'static str = "rayon";

    fn run<F, Fut>(body: F) -> Fut::Output
    where
        F: FnOnce(Runtime) -> Fut,
        Fut: Future,
    {
        let clock = ManualClock::new();
        let executor = streamz_rayon::Pool::new(2)
            .expect("a pool")
            .with_clock(clock.clone());
        run_tracked(executor, clock, body)
    }
}

/// Runs `body` on `executor`, its tasks tracked, moving `clock` whenever all are idle.
fn run_tracked<E, F, Fut>(executor: E, clock: ManualClock, body: F) -> Fut::Output
where
    E: Executor,
    F: FnOnce(Runtime) -> Fut,
    Fut: Future,
{
    let tracker = Arc::new(Tracker::default());
    let executor = Tracked {
        inner: executor,
        tracker: tracker.clone(),
    };
    let runtime = Runtime::new(Arc::new(executor));
    drive(body(runtime), &clock, || tracker.wait_idle())
}

/// Polls `body` on this thread; whenever it waits, lets the executor settle (`settle`), and
/// when nothing is left to run, fires the next timer on `clock`.
fn drive<Fut: Future>(body: Fut, clock: &ManualClock, settle: impl Fn()) -> Fut::Output {
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut body = pin!(body);
    loop {
        if flag.0.swap(false, Ordering::AcqRel)
            && let Poll::Ready(out) = body.as_mut().poll(&mut cx)
        {
            return out;
        }
        settle();
        if flag.0.load(Ordering::Acquire) {
            continue;
        }
        assert!(
            clock.fire_next(Duration::MAX),
            "the test body can never complete: it waits, nothing can run, and no timer is set"
        );
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Counts wake-ups of tracked tasks that have not been consumed by a finished poll.
#[derive(Default, Debug)]
struct Tracker {
    busy: AtomicUsize,
    lock: Mutex<()>,
    idle: Condvar,
}

impl Tracker {
    fn done_one(&self) {
        if self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.idle.notify_all();
        }
    }

    /// Blocks until no tracked task has a wake-up to handle.
    fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.busy.load(Ordering::Acquire) > 0 {
            assert!(Instant::now() < deadline, "tracked tasks never went idle");
            guard = self
                .idle
                .wait_timeout(guard, Duration::from_millis(10))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// An executor whose tasks are tracked by a [`Tracker`].
#[derive(Debug)]
struct Tracked<E> {
    inner: E,
    tracker: Arc<Tracker>,
}

impl<E: Executor> Executor for Tracked<E> {
    fn spawn(&self, task: BoxFuture<()>) {
        self.tracker.busy.fetch_add(1, Ordering::AcqRel);
        let state = Arc::new(TaskState {
            tracker: self.tracker.clone(),
            woken: AtomicBool::new(true),
            finished: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        self.inner.spawn(Box::pin(TrackedTask { task, state }));
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        self.inner.spawn_blocking(work);
    }

    fn clock(&self) -> &dyn Clock {
        self.inner.clock()
    }

    fn is_worker_thread(&self) -> bool {
        self.inner.is_worker_thread()
    }

    fn polls_anywhere(&self) -> bool {
        self.inner.polls_anywhere()
    }
}

struct TaskState {
    tracker: Arc<Tracker>,
    /// A wake-up is counted and not yet consumed by a poll.
    woken: AtomicBool,
    /// The task is done (or gone): later wake-ups, from wakers it left behind, are no work.
    finished: AtomicBool,
    /// The executor's own waker for the task.
    waker: Mutex<Option<Waker>>,
}

impl Wake for TaskState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.tracker.busy.fetch_add(1, Ordering::AcqRel);
        }
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

struct TrackedTask {
    task: BoxFuture<()>,
    state: Arc<TaskState>,
}

impl Future for TrackedTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let counted = self.state.woken.swap(false, Ordering::AcqRel);
        *self.state.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        let waker = Waker::from(self.state.clone());
        let result = self.task.as_mut().poll(&mut Context::from_waker(&waker));
        if result.is_ready() {
            self.finish();
        }
        if counted {
            self.state.tracker.done_one();
        }
        result
    }
}

impl TrackedTask {
    /// No more polls will come: a wake-up counted and not consumed never will be.
    fn finish(&self) {
        if !self.state.finished.swap(true, Ordering::AcqRel)
            && self.state.woken.swap(false, Ordering::AcqRel)
        {
            self.state.tracker.done_one();
        }
    }
}

impl Drop for TrackedTask {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Defines each named test, a generic `fn name<H: Harness>()`, once per executor.
#[macro_export]
macro_rules! on_every_executor {
    ($($test:ident),* $(,)?) => {
        mod virtual_time {
            $( #[test] fn $test() { super::$test::<$crate::harness::Virtual>() } )*
        }
        mod tokio_paused {
            $( #[test] fn $test() { super::$test::<$crate::harness::TokioPaused>() } )*
        }
        mod smol_manual_clock {
            $( #[test] fn $test() { super::$test::<$crate::harness::Smol>() } )*
        }
        mod async_std_manual_clock {
            $( #[test] fn $test() { super::$test::<$crate::harness::AsyncStd>() } )*
        }
        mod tokio_manual_clock {
            $( #[test] fn $test() { super::$test::<$crate::harness::TokioManual>() } )*
        }
        mod rayon_manual_clock {
            $( #[test] fn $test() { super::$test::<$crate::harness::Rayon>() } )*
        }
    };
}
