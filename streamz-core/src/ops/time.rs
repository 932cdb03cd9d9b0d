//! Time-based flow control: `rate_limit`, `delay`, `timed_window`, `timed_window_unique`.
//!
//! Each node has one task on the graph's executor and at most one timer at a time; the
//! synchronous path takes no timer at all when nothing has to wait.

use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::TrySendError;

use crate::queue::{Receiver, Sender};
use futures_channel::oneshot;
use futures_util::future::{Either, select};
use indexmap::IndexMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ack::Acks;
use crate::checkpoint::{SaveState, decode, encode};
use crate::clock::{IntoInterval, after};
use crate::durable::{Durable, start_moving};
use crate::emit::Cx;
use crate::error::StreamError;
use crate::executor::Executor;
use crate::node::{Finish, Kind, NodeInfo, Operator, Outlet, Port, Shape, fn_name, guard, lock};
use crate::ops::partition::Keep;
use crate::stream::{Element, Stream};
use crate::task::{
    InFlight, Inbox, NodeState, QUEUE, TaskQueue, closed_before_queued, hand_on, sleep_until,
    task_queue,
};

const RATE_LIMIT: Kind = Kind::new("rate_limit", Shape::Octagon);
const DELAY: Kind = Kind::new("delay", Shape::Octagon);
const TIMED_WINDOW: Kind = Kind::new("timed_window", Shape::Octagon);
const TIMED_WINDOW_UNIQUE: Kind = Kind::new("timed_window_unique", Shape::Octagon);

// ------------------------------------------------------------------------------ rate_limit

struct RateState {
    /// The earliest time the next element may go.
    next_free: Option<Instant>,
    /// Elements queued or being handed on by the task.
    queued: usize,
}

/// An element waiting for its turn, its acknowledgements, and where its result goes.
type Turn<T> = (T, Acks, oneshot::Sender<Result<(), StreamError>>);

struct RateLimit<T> {
    interval: Duration,
    executor: Arc<dyn Executor>,
    state: Arc<Mutex<RateState>>,
    queue: Sender<Turn<T>>,
}

impl<T: Element> Operator<T> for RateLimit<T> {
    type Out = T;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        let now = self.executor.clock().now();
        let mut state = lock(&self.state);
        if state.queued == 0 && state.next_free.is_none_or(|t| t <= now) {
            // Nothing is owed: pass it on now, without a timer.
            state.next_free = Some(after(now, self.interval));
            drop(state);
            out.push(x, cx);
            return;
        }
        state.queued += 1;
        drop(state);
        // The element waits for its turn; its `Emit` resolves when it has been handled.
        let (done, turn) = oneshot::channel();
        let info = out.node();
        match self.queue.try_send((x, cx.acks().clone(), done)) {
            Ok(()) => cx.wait(async move { turn.await.unwrap_or_else(|_| Err(dropped(&info))) }),
            Err(TrySendError::Full(item)) => {
                let (queue, state) = (self.queue.clone(), self.state.clone());
                cx.wait(async move {
                    if queue.send(item).await.is_err() {
                        lock(&state).queued -= 1;
                        return Err(closed_before_queued(&info));
                    }
                    turn.await.unwrap_or_else(|_| Err(dropped(&info)))
                });
            }
            Err(TrySendError::Closed(_)) => {
                lock(&self.state).queued -= 1;
                cx.fail(closed_before_queued(&info));
            }
        }
    }

    fn finish(&self, _out: &Arc<Outlet<T>>, _cx: &mut Cx<'_>) -> Finish {
        self.queue.close();
        Finish::Later
    }
}

/// The node's task went away with the element still queued (the graph was dropped).
fn dropped(info: &NodeInfo) -> StreamError {
    StreamError::new(
        crate::error::ErrorKind::Abandoned,
        Some(info.node_ref()),
        "the node was dropped with the element still queued",
    )
}

async fn rate_limit_task<T: Element>(
    queue: Receiver<Turn<T>>,
    out: Arc<Outlet<T>>,
    state: Arc<Mutex<RateState>>,
    executor: Arc<dyn Executor>,
    interval: Duration,
) {
    while let Ok((x, acks, done)) = queue.recv().await {
        let next_free = lock(&state).next_free;
        if let Some(t) = next_free {
            sleep_until(&*executor, t).await;
        }
        // The gap is measured from when the element really goes, so a late wake-up never
        // makes the next gap shorter than `interval`.
        let now = executor.clock().now();
        {
            let mut state = lock(&state);
            state.next_free = Some(after(now, interval));
            state.queued -= 1;
        }
        let result = out.emit_acked(x, acks).await;
        if let Err(Err(e)) = done.send(result) {
            // The emitter dropped its `Emit`: nobody else will see this error.
            out.info.graph.report(e);
        }
    }
    out.close_from_task().await;
}

// ---------------------------------------------------------------------------------- delay

struct Delay<T> {
    interval: Duration,
    executor: Arc<dyn Executor>,
    queue: TaskQueue<(Instant, T)>,
}

impl<T: Element> Operator<T> for Delay<T> {
    type Out = T;

    fn push(&self, _: Port, x: T, _out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        let due = after(self.executor.clock().now(), self.interval);
        self.queue.push((due, x), cx);
    }

    fn finish(&self, _out: &Arc<Outlet<T>>, _cx: &mut Cx<'_>) -> Finish {
        self.queue.close();
        Finish::Later
    }
}

async fn delay_task<T: Element>(
    queue: Inbox<(Instant, T)>,
    out: Arc<Outlet<T>>,
    executor: Arc<dyn Executor>,
) {
    while let Some(((due, x), held)) = queue.recv().await {
        sleep_until(&*executor, due).await;
        hand_on(&out, x, held).await;
    }
    out.close_from_task().await;
}

// ---------------------------------------------------------------------------- timed_window

/// What a timed window collects between ticks.
trait WindowBuffer<T>: Send + 'static {
    fn add(&mut self, x: T, info: &NodeInfo, cx: &mut Cx<'_>);
    fn take(&mut self) -> Vec<T>;
    fn len(&self) -> usize;
}

impl<T: Send + 'static> WindowBuffer<T> for Vec<T> {
    fn add(&mut self, x: T, _info: &NodeInfo, _cx: &mut Cx<'_>) {
        self.push(x);
    }

    fn take(&mut self) -> Vec<T> {
        std::mem::take(self)
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// `timed_window_unique`'s buffer: one element per key.
struct UniqueBuffer<K, T, F> {
    items: IndexMap<K, T>,
    keep: Keep,
    key: F,
}

impl<K, T, F> WindowBuffer<T> for UniqueBuffer<K, T, F>
where
    K: Hash + Eq + Send + 'static,
    T: Send + 'static,
    F: Fn(&T) -> K + Send + Sync + 'static,
{
    fn add(&mut self, x: T, info: &NodeInfo, cx: &mut Cx<'_>) {
        let Some(key) = guard(info, cx, || (self.key)(&x)) else {
            return;
        };
        match self.keep {
            Keep::First => {
                self.items.entry(key).or_insert(x);
            }
            Keep::Last => {
                self.items.shift_remove(&key);
                self.items.insert(key, x);
            }
        }
    }

    fn take(&mut self) -> Vec<T> {
        self.items.drain(..).map(|(_, x)| x).collect()
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

struct WindowState<B> {
    buffer: B,
    /// What holds the elements in the buffer.
    held: InFlight,
    /// The previous window is still being handled downstream.
    busy: bool,
    closed: bool,
}

struct TimedWindow<B> {
    shared: Arc<NodeState<WindowState<B>>>,
}

impl<T: Element, B: WindowBuffer<T>> Operator<T> for TimedWindow<B> {
    type Out = Vec<T>;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<Vec<T>>>, cx: &mut Cx<'_>) {
        let mut state = self.shared.lock();
        let before = state.buffer.len();
        state.buffer.add(x, &out.info, cx);
        // what the window keeps is held, with its acknowledgements; `timed_window_unique`'s
        // duplicates' are held with the window too (one may have replaced an earlier one), so
        // none is done before the window goes out
        let added = state.buffer.len() - before;
        state.held.add(added, cx.acks());
        let busy = state.busy;
        drop(state);
        if busy {
            // The original's backpressure: wait for the previous window's downstream work.
            let shared = self.shared.clone();
            cx.wait(async move {
                loop {
                    let listener = shared.listen();
                    if !shared.lock().busy {
                        return Ok(());
                    }
                    listener.await;
                }
            });
        }
    }

    fn finish(&self, _out: &Arc<Outlet<Vec<T>>>, _cx: &mut Cx<'_>) -> Finish {
        self.shared.update(|state| state.closed = true);
        Finish::Later
    }
}

impl<B> Drop for TimedWindow<B> {
    fn drop(&mut self) {
        // The node is gone: stop its ticker.
        self.shared.update(|state| state.closed = true);
    }
}

async fn timed_window_task<T: Element, B: WindowBuffer<T>>(
    shared: Arc<NodeState<WindowState<B>>>,
    out: Arc<Outlet<Vec<T>>>,
    executor: Arc<dyn Executor>,
    interval: Duration,
    mut start: Instant,
    skip_empty: bool,
) {
    let mut tick: u32 = 1;
    loop {
        // A fixed schedule, start + k·interval: no drift, whatever the downstream costs.
        let deadline = after(start, interval.saturating_mul(tick));
        let listener = shared.listen();
        let closed = shared.lock().closed;
        if !closed {
            let sleep = std::pin::pin!(sleep_until(&*executor, deadline));
            if let Either::Right(_) = select(sleep, listener).await
                && !shared.lock().closed
            {
                continue; // woken by a change that is not the end: wait on
            }
        }
        // taking the window out of the saved state: not while a checkpoint reads it
        let moving = start_moving(&out.info.graph).await;
        let (window, held, closed) = {
            let mut state = shared.lock();
            let window = state.buffer.take();
            let held = state.held.take();
            state.busy = true;
            (window, held, state.closed)
        };
        if window.is_empty() && (skip_empty || closed) {
            drop(held);
        } else {
            hand_on(&out, window, held).await;
        }
        shared.update(|state| state.busy = false);
        drop(moving);
        if closed {
            out.close_from_task().await;
            return;
        }
        // If the downstream took longer than an interval, the windows it overran are merged
        // into the next one, which still closes on the schedule: catching up by emitting
        // every missed window at once would keep the node busy for ever.
        let elapsed = executor.clock().now().saturating_duration_since(start);
        let due = u32::try_from(elapsed.as_nanos() / interval.as_nanos()).unwrap_or(u32::MAX);
        tick = tick.saturating_add(1).max(due.saturating_add(1));
        if tick >= 1 << 30 {
            // the same schedule from a later start, before the count runs out (49 days of
            // 1 ms windows reach 2^32)
            start = after(start, interval.saturating_mul(tick - 1));
            tick = 1;
        }
    }
}

impl<T: Element> Stream<T> {
    /// Passes elements on no closer together than `interval`, in order, never dropping one.
    /// The first passes at once; an element that arrives too soon waits for its turn, and its
    /// `Emit` resolves once it has been passed on and handled downstream.
    ///
    /// Differs on purpose from the original: the gap is measured from when an element really
    /// goes, so a late timer never makes the next gap shorter than `interval`; and an element
    /// that owes nothing is passed on at once, without a timer (tokio's timers round even a
    /// zero-length sleep up to 1 ms).
    ///
    /// # Panics
    ///
    /// If the graph has no executor, or `interval` is a string that is not a duration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let clock = executor.clone();
    /// let times = source.rate_limit("50ms").map(move |_: u8| clock.elapsed()).sink_to_vec();
    /// executor.block_on(async {
    ///     for x in 0..3 {
    ///         source.emit(x).await.unwrap();
    ///     }
    /// });
    /// let ms = |n| Duration::from_millis(n);
    /// assert_eq!(times.to_vec(), vec![ms(0), ms(50), ms(100)]);
    /// ```
    pub fn rate_limit(&self, interval: impl IntoInterval) -> Stream<T> {
        let interval = interval.into_interval();
        let executor = self.graph_shared().require_executor("rate_limit");
        self.attach_with(&RATE_LIMIT, None, |out| {
            let state = Arc::new(Mutex::new(RateState {
                next_free: None,
                queued: 0,
            }));
            let (queue, rx) = crate::queue::bounded(QUEUE);
            executor.spawn(Box::pin(rate_limit_task(
                rx,
                out.clone(),
                state.clone(),
                executor.clone(),
                interval,
            )));
            RateLimit {
                interval,
                executor,
                state,
                queue,
            }
        })
    }

    /// Emits every element `interval` after it arrived, in order. `emit` returns as soon as
    /// the element is queued (up to 1024 waiting; beyond that `emit` waits for room).
    ///
    /// Differs on purpose from the original, whose `delay` sleeps after each emission, so
    /// that an element arriving at an idle stream is not delayed at all.
    ///
    /// # Panics
    ///
    /// If the graph has no executor, or `interval` is a string that is not a duration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Executor, Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let clock = executor.clone();
    /// let out = source.delay(Duration::from_millis(200)).map(move |x: u8| (x, clock.elapsed())).sink_to_vec();
    /// executor.block_on(async {
    ///     source.emit(1).await.unwrap();
    ///     executor.clock().sleep(Duration::from_millis(50)).await;
    ///     source.emit(2).await.unwrap();
    ///     source.flush().await;
    /// });
    /// let ms = |n| Duration::from_millis(n);
    /// assert_eq!(out.to_vec(), vec![(1, ms(200)), (2, ms(250))]);
    /// ```
    pub fn delay(&self, interval: impl IntoInterval) -> Stream<T> {
        let interval = interval.into_interval();
        let executor = self.graph_shared().require_executor("delay");
        self.attach_with(&DELAY, None, |out| {
            let (queue, inbox) = task_queue(&out.node(), QUEUE);
            executor.spawn(Box::pin(delay_task(inbox, out.clone(), executor.clone())));
            Delay {
                interval,
                executor,
                queue,
            }
        })
    }

    /// Emits, every `interval`, a `Vec` of the elements that arrived since the last one, empty
    /// windows included. Windows close on a fixed schedule, `interval` after the node was
    /// built and every `interval` after that. An element that arrives while the previous
    /// window is still being handled downstream waits in its `Emit` (the original's
    /// backpressure); if the downstream takes longer than an interval, the windows it overran
    /// are merged into the next one, which still closes on the schedule. At end of stream,
    /// what the window holds is emitted at once.
    ///
    /// Differs on purpose from the original, which sleeps `interval` after each emission, so
    /// its windows drift later and later, and which emits its first window at once.
    ///
    /// # Panics
    ///
    /// If the graph has no executor, or `interval` is a string that is not a duration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Executor, Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let windows = source.timed_window("100ms").sink_to_vec();
    /// executor.block_on(async {
    ///     for x in 0..5 {
    ///         source.emit(x).await.unwrap();
    ///         executor.clock().sleep(Duration::from_millis(40)).await;
    ///     }
    /// });
    /// executor.advance(Duration::from_millis(200));
    /// // arrivals at 0, 40, 80, 120, 160 ms; windows close at 100, 200, 300, 400 ms
    /// assert_eq!(windows.to_vec(), vec![vec![0, 1, 2], vec![3, 4], vec![], vec![]]);
    /// ```
    pub fn timed_window(&self, interval: impl IntoInterval) -> Stream<Vec<T>> {
        self.timed_window_with(
            &TIMED_WINDOW,
            interval.into_interval(),
            false,
            None,
            Vec::new(),
        )
    }

    /// Like [`timed_window`](Stream::timed_window), but empty windows are not emitted.
    ///
    /// # Panics
    ///
    /// If the graph has no executor, or `interval` is a string that is not a duration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let windows = source.timed_window_nonempty("10ms").sink_to_vec();
    /// executor.block_on(source.emit('a')).unwrap();
    /// executor.advance(Duration::from_millis(100));
    /// assert_eq!(windows.to_vec(), vec![vec!['a']]);
    /// ```
    pub fn timed_window_nonempty(&self, interval: impl IntoInterval) -> Stream<Vec<T>> {
        self.timed_window_with(
            &TIMED_WINDOW,
            interval.into_interval(),
            true,
            None,
            Vec::new(),
        )
    }

    /// A [`timed_window`](Stream::timed_window) holding one element per `key(x)`: a
    /// duplicate within the window is ignored ([`Keep::First`]) or replaces the earlier one
    /// and moves to the end ([`Keep::Last`]).
    ///
    /// # Panics
    ///
    /// If the graph has no executor, or `interval` is a string that is not a duration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Keep, Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let windows = source.timed_window_unique("50ms", Keep::Last, |x: &i32| *x).sink_to_vec();
    /// executor.block_on(async {
    ///     for x in [1, 2, 1, 3, 1, 3, 3, 2] {
    ///         source.emit(x).await.unwrap();
    ///     }
    /// });
    /// executor.advance(Duration::from_millis(50));
    /// assert_eq!(windows.to_vec(), vec![vec![1, 3, 2]]);
    /// ```
    pub fn timed_window_unique<K, F>(
        &self,
        interval: impl IntoInterval,
        keep: Keep,
        key: F,
    ) -> Stream<Vec<T>>
    where
        K: Hash + Eq + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let buffer = UniqueBuffer {
            items: IndexMap::new(),
            keep,
            key,
        };
        self.timed_window_with(
            &TIMED_WINDOW_UNIQUE,
            interval.into_interval(),
            false,
            fn_name::<F>(),
            buffer,
        )
    }

    fn timed_window_with<B: WindowBuffer<T>>(
        &self,
        kind: &'static Kind,
        interval: Duration,
        skip_empty: bool,
        func: Option<&'static str>,
        buffer: B,
    ) -> Stream<Vec<T>> {
        let make = self.timed_window_op(kind, interval, skip_empty, buffer);
        self.attach_with(kind, func, make)
    }

    /// What makes a timed window's node, once it has its outlet: its state, and its task.
    fn timed_window_op<B: WindowBuffer<T>>(
        &self,
        kind: &'static Kind,
        interval: Duration,
        skip_empty: bool,
        buffer: B,
    ) -> impl FnOnce(&Arc<Outlet<Vec<T>>>) -> TimedWindow<B> {
        assert!(
            !interval.is_zero(),
            "{}: the interval must be longer than zero",
            kind.op
        );
        let executor = self.graph_shared().require_executor(kind.op);
        move |out| {
            let shared = NodeState::new(WindowState {
                buffer,
                held: InFlight::none(out.node()),
                busy: false,
                closed: false,
            });
            let start = executor.clock().now();
            executor.spawn(Box::pin(timed_window_task(
                shared.clone(),
                out.clone(),
                executor.clone(),
                interval,
                start,
                skip_empty,
            )));
            TimedWindow { shared }
        }
    }
}

/// A durable timed window saves the elements of the window being collected: they are at
/// rest there between ticks, so a checkpoint need not wait for the tick. Restored, they are
/// in the first window of the new run.
impl<T: Serialize + DeserializeOwned + Send + 'static> SaveState for TimedWindow<Vec<T>> {
    fn save(&self) -> Result<Vec<u8>, String> {
        encode(&self.shared.lock().buffer)
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let items: Vec<T> = decode(bytes)?;
        let mut state = self.shared.lock();
        state.held.add(items.len(), &Acks::default());
        state.buffer = items;
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<Vec<T>>()
    }
}

impl<T: Element + Serialize + DeserializeOwned> Durable<'_, T> {
    /// A durable [`timed_window`](Stream::timed_window): the window being collected is
    /// saved in checkpoints, and a checkpoint does not wait for it to close.
    ///
    /// # Panics
    ///
    /// As [`timed_window`](Stream::timed_window).
    pub fn timed_window(&self, interval: impl IntoInterval) -> Stream<Vec<T>> {
        let make =
            self.stream
                .timed_window_op(&TIMED_WINDOW, interval.into_interval(), false, Vec::new());
        self.stream.attach_saved(&TIMED_WINDOW, None, true, make)
    }

    /// A durable [`timed_window_nonempty`](Stream::timed_window_nonempty).
    ///
    /// # Panics
    ///
    /// As [`timed_window`](Stream::timed_window).
    pub fn timed_window_nonempty(&self, interval: impl IntoInterval) -> Stream<Vec<T>> {
        let make =
            self.stream
                .timed_window_op(&TIMED_WINDOW, interval.into_interval(), true, Vec::new());
        self.stream.attach_saved(&TIMED_WINDOW, None, true, make)
    }
}
