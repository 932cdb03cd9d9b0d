//! Asynchronous user functions: `map_async`, `try_map_async`, `sink_async`, `try_sink_async`.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use futures_util::{FutureExt, StreamExt};

use crate::emit::{BoxFuture, Cx, Emit};
use crate::error::{BoxError, StreamError};
use crate::node::{Finish, Kind, NodeArc, Operator, Outlet, Port, Shape, fn_name, guard, lock};
use crate::ops::sink::Sink;
use crate::queue::Receiver;
use crate::stream::{Element, Stream};
use crate::task::{InFlight, TaskQueue, task_queue};

const MAP_ASYNC: Kind = Kind::new("map_async", Shape::Ellipse);
const MAP_ASYNC_UNORDERED: Kind = Kind::new("map_async_unordered", Shape::Ellipse);
const THEN: Kind = Kind::new("then", Shape::Ellipse);
const SINK_ASYNC: Kind = Kind::new("sink_async", Shape::Trapezium);

/// Runs a user future, turning a panic or an `Err` into an error at `node`.
async fn run_user<R>(
    node: NodeArc,
    work: impl Future<Output = Result<R, BoxError>>,
) -> Result<R, StreamError> {
    let started = node.meter.is_on().then(Instant::now);
    let outcome = AssertUnwindSafe(work).catch_unwind().await;
    if let Some(started) = started {
        node.meter.record_latency(started.elapsed());
    }
    match outcome {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(node.user_error(e)),
        Err(panic) => Err(node.panic_error(panic)),
    }
}

/// A user's async function as the boxed, fallible one the operators run.
fn infallible<T, U, F, Fut>(
    f: F,
) -> impl Fn(T) -> BoxFuture<Result<U, BoxError>> + Send + Sync + 'static
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = U> + Send + 'static,
{
    move |x| {
        let work = f(x);
        Box::pin(async move { Ok(work.await) })
    }
}

/// A user's fallible async function as the boxed one the operators run.
fn fallible<T, U, E, F, Fut>(
    f: F,
) -> impl Fn(T) -> BoxFuture<Result<U, BoxError>> + Send + Sync + 'static
where
    E: Into<BoxError>,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
{
    move |x| {
        let work = f(x);
        Box::pin(async move { work.await.map_err(Into::into) })
    }
}

/// Polls a user's future once, without a waker to call (the caller polls again, with one, if
/// it is pending), catching a panic. Not under `emit_blocking` on a runtime whose futures need
/// its own threads (tokio's): the calling thread is a plain one, outside the runtime; the work
/// then runs on the executor.
fn first_poll<R>(work: &mut BoxFuture<R>, cx: &Cx<'_>) -> std::thread::Result<Poll<R>> {
    first_poll_pinned(work.as_mut(), cx)
}

/// [`first_poll`] for a future pinned anywhere.
fn first_poll_pinned<W: Future + ?Sized>(
    work: Pin<&mut W>,
    cx: &Cx<'_>,
) -> std::thread::Result<Poll<W::Output>> {
    if !cx.may_poll_here() {
        return Ok(Poll::Pending);
    }
    catch_unwind(AssertUnwindSafe(|| {
        work.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    }))
}

// ------------------------------------------------------------------------------- map_async

struct MapAsync<T, U> {
    queue: TaskQueue<T>,
    _out: PhantomData<fn() -> U>,
}

impl<T: Element, U: Element> Operator<T> for MapAsync<T, U> {
    type Out = U;

    fn push(&self, _: Port, x: T, _out: &Arc<Outlet<U>>, cx: &mut Cx<'_>) {
        self.queue.push(x, cx);
    }

    fn finish(&self, _out: &Arc<Outlet<U>>, _cx: &mut Cx<'_>) -> Finish {
        self.queue.close();
        Finish::Later
    }
}

/// Runs up to `parallelism` calls at once and hands the results on in input order, one at a
/// time, each after the previous one's downstream work: one task per node, however many
/// calls are in flight.
async fn map_async_task<T, U, F>(
    queue: Receiver<(T, InFlight)>,
    out: Arc<Outlet<U>>,
    f: F,
    parallelism: usize,
    ordered: bool,
) where
    T: Element,
    U: Element,
    F: Fn(T) -> BoxFuture<Result<U, BoxError>> + Send + 'static,
{
    let mut queue = Box::pin(queue);
    let mut running = Running::new(ordered);
    // each result with what holds its element until it has been handed on
    type Done<U> = (Result<U, StreamError>, InFlight);
    let mut done: VecDeque<Done<U>> = VecDeque::new();
    let mut handing_on: Option<(Emit, InFlight)> = None;
    let mut input_open = true;
    let start = |(x, held): (T, InFlight)| -> BoxFuture<Done<U>> {
        let node = out.node();
        match catch_unwind(AssertUnwindSafe(|| f(x))) {
            Ok(work) => Box::pin(async move { (run_user(node, work).await, held) }),
            Err(panic) => Box::pin(std::future::ready((Err(node.panic_error(panic)), held))),
        }
    };
    poll_fn(|task| {
        loop {
            let mut progressed = false;
            while input_open && running.len() + done.len() < parallelism {
                match queue.poll_next_unpin(task) {
                    Poll::Ready(Some(item)) => {
                        running.push_back(start(item));
                        progressed = true;
                    }
                    Poll::Ready(None) => input_open = false,
                    Poll::Pending => break,
                }
            }
            while let Poll::Ready(Some(result)) = running.poll_next(task) {
                done.push_back(result);
                progressed = true;
            }
            if handing_on.is_none()
                && let Some((result, mut held)) = done.pop_front()
            {
                progressed = true;
                match result {
                    Ok(y) => {
                        let acks = std::mem::take(&mut held.acks);
                        handing_on = Some((out.emit_acked(y, acks), held));
                    }
                    Err(e) => {
                        held.acks.fail(&e);
                        out.info.graph.report(e);
                    }
                }
            }
            if let Some((emit, _)) = &mut handing_on
                && let Poll::Ready(result) = Pin::new(emit).poll(task)
            {
                handing_on = None; // and what held the element with it
                progressed = true;
                if let Err(e) = result {
                    out.info.graph.report(e);
                }
            }
            if !input_open && running.is_empty() && done.is_empty() && handing_on.is_none() {
                return Poll::Ready(());
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    })
    .await;
    out.close_from_task().await;
}

/// The calls in flight, handed on in input order or in completion order.
enum Running<R> {
    Ordered(FuturesOrdered<BoxFuture<R>>),
    Unordered(FuturesUnordered<BoxFuture<R>>),
}

impl<R> Running<R> {
    fn new(ordered: bool) -> Self {
        if ordered {
            Running::Ordered(FuturesOrdered::new())
        } else {
            Running::Unordered(FuturesUnordered::new())
        }
    }

    fn len(&self) -> usize {
        match self {
            Running::Ordered(r) => r.len(),
            Running::Unordered(r) => r.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push_back(&mut self, call: BoxFuture<R>) {
        match self {
            Running::Ordered(r) => r.push_back(call),
            Running::Unordered(r) => r.push(call),
        }
    }

    fn poll_next(&mut self, task: &mut std::task::Context<'_>) -> Poll<Option<R>> {
        match self {
            Running::Ordered(r) => r.poll_next_unpin(task),
            Running::Unordered(r) => r.poll_next_unpin(task),
        }
    }
}

// ------------------------------------------------------------------------------------ then

struct Then<F>(F);

impl<T, U, F> Operator<T> for Then<F>
where
    T: 'static,
    U: Element,
    F: Fn(T) -> BoxFuture<Result<U, BoxError>> + Send + Sync + 'static,
{
    type Out = U;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<U>>, cx: &mut Cx<'_>) {
        let Some(mut work) = guard(&out.info, cx, || (self.0)(x)) else {
            return;
        };
        // Most calls of a quick function are done at the first poll: hand the result on
        // within this push. Otherwise the element's `Emit` waits for it.
        match first_poll(&mut work, cx) {
            Ok(Poll::Ready(Ok(y))) => out.push(y, cx),
            Ok(Poll::Ready(Err(e))) => cx.fail(out.info.user_error(e)),
            Err(panic) => cx.fail(out.info.panic_error(panic)),
            Ok(Poll::Pending) => {
                let (node, out) = (out.node(), out.clone());
                let in_flight = InFlight::hold(node.clone(), 1);
                // the element's acknowledgements go on with the result (this push's `Emit`
                // holds them as well, until this work is done)
                let acks = cx.acks().clone();
                cx.wait(async move {
                    let y = run_user(node, work).await;
                    drop(in_flight);
                    out.emit_acked(y?, acks).await
                });
            }
        }
    }
}

// ------------------------------------------------------------------------------ sink_async

/// An async sink. Its user's future is polled where it was made: in a box the node keeps and
/// reuses, so a write that is done at its first poll allocates nothing; one that is pending
/// takes the box along and gives it back when it is done.
struct SinkAsync<F, W> {
    f: F,
    /// A box for the next element's future, left by the last one that finished.
    spare: Arc<Mutex<Option<Slot<W>>>>,
}

/// A pinned place for one future at a time (`Pin::set` puts the next in, in place).
type Slot<W> = Pin<Box<Option<W>>>;

impl<F, W> SinkAsync<F, W> {
    fn new<T>(f: F) -> Self
    where
        F: Fn(T) -> W,
    {
        SinkAsync {
            f,
            spare: Arc::new(Mutex::new(None)),
        }
    }
}

/// A future in a [`Slot`], polled where it is.
struct InSlot<W>(Slot<W>);

impl<W: Future<Output: SinkOutput>> Future for InSlot<W> {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.0.as_mut().as_pin_mut() {
            Some(work) => work.poll(cx).map(SinkOutput::into_result),
            None => unreachable!("a slot is made with its future in it"),
        }
    }
}

impl<T, F, W> Operator<T> for SinkAsync<F, W>
where
    T: 'static,
    F: Fn(T) -> W + Send + Sync + 'static,
    W: Future<Output: SinkOutput> + Send + 'static,
{
    type Out = ();

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<()>>, cx: &mut Cx<'_>) {
        let Some(work) = guard(&out.info, cx, || (self.f)(x)) else {
            return;
        };
        let mut slot = lock(&self.spare).take().unwrap_or_else(|| Box::pin(None));
        slot.set(Some(work));
        let first = match slot.as_mut().as_pin_mut() {
            Some(work) => first_poll_pinned(work, cx).map(|p| p.map(SinkOutput::into_result)),
            None => unreachable!("just put in"),
        };
        // A write that is done at its first poll costs no pending work and no allocation.
        let done = match first {
            Ok(Poll::Ready(Ok(()))) => true,
            Ok(Poll::Ready(Err(e))) => {
                cx.fail(out.info.user_error(e));
                true
            }
            Err(panic) => {
                cx.fail(out.info.panic_error(panic));
                true
            }
            Ok(Poll::Pending) => false,
        };
        if done {
            slot.set(None);
            *lock(&self.spare) = Some(slot);
            return;
        }
        let node = out.node();
        let in_flight = InFlight::hold(node.clone(), 1);
        let spare = self.spare.clone();
        cx.wait(async move {
            let mut work = InSlot(slot);
            let result = run_user(node, &mut work).await;
            drop(in_flight);
            // the box is free again: the next element's future goes in it
            work.0.set(None);
            *lock(&spare) = Some(work.0);
            result
        });
    }
}

/// What an async sink's future returns: nothing, or a `Result` whose error is boxed.
trait SinkOutput {
    fn into_result(self) -> Result<(), BoxError>;
}

impl SinkOutput for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> SinkOutput for Result<(), E> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

impl<T: Element> Stream<T> {
    /// Emits the output of the asynchronous function `f` for each element, in input order,
    /// running up to `parallelism` calls at once. A call's slot is free again once its result
    /// has been handed on, in order, so at most `parallelism` results are ever held. `emit`
    /// returns once the element is queued (up to `parallelism` wait; beyond that `emit` waits
    /// for room), as in the original.
    ///
    /// A panic in `f` or its future goes to the [error stream](Stream::errors), and that
    /// element is dropped; the next goes on.
    ///
    /// # Panics
    ///
    /// If `parallelism` is 0, or the graph has no executor.
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
    /// let out = source
    ///     .map_async(3, move |x: u64| {
    ///         let clock = clock.clone();
    ///         async move {
    ///             clock.clock().sleep(Duration::from_millis(100 - 10 * x)).await; // later ones finish first
    ///             x * 10
    ///         }
    ///     })
    ///     .sink_to_vec();
    /// executor.block_on(async {
    ///     for x in 0..3 {
    ///         source.emit(x).await.unwrap();
    ///     }
    ///     source.flush().await;
    /// });
    /// assert_eq!(out.to_vec(), vec![0, 10, 20]); // in input order
    /// assert_eq!(executor.elapsed(), Duration::from_millis(100)); // all three ran at once
    /// ```
    pub fn map_async<U, F, Fut>(&self, parallelism: usize, f: F) -> Stream<U>
    where
        U: Element,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = U> + Send + 'static,
    {
        let name = fn_name::<F>();
        self.map_async_in(parallelism, name, true, infallible(f))
    }

    /// Like [`map_async`](Stream::map_async) for a function whose future returns a `Result`:
    /// an `Err` goes to the [error stream](Stream::errors), and that element is dropped.
    ///
    /// # Panics
    ///
    /// If `parallelism` is 0, or the graph has no executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let errors = source.errors().sink_to_vec();
    /// let out = source
    ///     .try_map_async(1, |s: &'static str| async move { s.parse::<i32>() })
    ///     .sink_to_vec();
    /// executor.block_on(async {
    ///     for s in ["1", "x", "3"] {
    ///         source.emit(s).await.unwrap();
    ///     }
    ///     source.flush().await;
    /// });
    /// assert_eq!(out.to_vec(), vec![1, 3]);
    /// assert_eq!(errors.len(), 1);
    /// ```
    pub fn try_map_async<U, E, F, Fut>(&self, parallelism: usize, f: F) -> Stream<U>
    where
        U: Element,
        E: Into<BoxError>,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
    {
        let name = fn_name::<F>();
        self.map_async_in(parallelism, name, true, fallible(f))
    }

    /// Like [`map_async`](Stream::map_async), but emits each result as soon as it is ready,
    /// in completion order (the `as_completed` order the original's users asked for in its
    /// issue #163). At most `parallelism` calls run at once.
    ///
    /// # Panics
    ///
    /// If `parallelism` is 0, or the graph has no executor.
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
    /// let out = source
    ///     .map_async_unordered(3, move |x: u64| {
    ///         let clock = clock.clone();
    ///         async move {
    ///             clock.clock().sleep(Duration::from_millis(100 - 10 * x)).await;
    ///             x
    ///         }
    ///     })
    ///     .sink_to_vec();
    /// executor.block_on(async {
    ///     for x in 0..3 {
    ///         source.emit(x).await.unwrap();
    ///     }
    ///     source.flush().await;
    /// });
    /// assert_eq!(out.to_vec(), vec![2, 1, 0]); // quickest first
    /// ```
    pub fn map_async_unordered<U, F, Fut>(&self, parallelism: usize, f: F) -> Stream<U>
    where
        U: Element,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = U> + Send + 'static,
    {
        let name = fn_name::<F>();
        self.map_async_in(parallelism, name, false, infallible(f))
    }

    /// [`map_async_unordered`](Stream::map_async_unordered) for a function whose future
    /// returns a `Result`: an `Err` goes to the [error stream](Stream::errors).
    ///
    /// # Panics
    ///
    /// If `parallelism` is 0, or the graph has no executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let out = source
    ///     .try_map_async_unordered(2, |s: &'static str| async move { s.parse::<u8>() })
    ///     .sink_to_vec();
    /// executor.block_on(async {
    ///     for s in ["7", "x"] {
    ///         source.emit(s).await.unwrap();
    ///     }
    ///     source.flush().await;
    /// });
    /// assert_eq!(out.to_vec(), vec![7]);
    /// ```
    pub fn try_map_async_unordered<U, E, F, Fut>(&self, parallelism: usize, f: F) -> Stream<U>
    where
        U: Element,
        E: Into<BoxError>,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
    {
        let name = fn_name::<F>();
        self.map_async_in(parallelism, name, false, fallible(f))
    }

    /// Emits `f(x).await` for every element, one at a time: the element's `Emit` waits for
    /// the call and for what is downstream of its result (like `StreamExt::then` in
    /// `futures`). No executor is needed; a call that is done at its first poll is handed on
    /// within the `emit`. A panic in `f` or its future is an error from the element's `Emit`.
    ///
    /// For several calls at once, see [`map_async`](Stream::map_async).
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.then(|x: u32| async move { x + 1 }).sink_to_vec();
    /// futures_executor::block_on(source.emit(1)).unwrap();
    /// assert_eq!(out.to_vec(), vec![2]);
    /// ```
    pub fn then<U, F, Fut>(&self, f: F) -> Stream<U>
    where
        U: Element,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = U> + Send + 'static,
    {
        let name = fn_name::<F>();
        self.attach(&THEN, name, Then(infallible(f)))
    }

    /// [`then`](Stream::then) for a function whose future returns a `Result`: an `Err` is an
    /// error from the element's `Emit`, naming this node.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.try_then(|s: &'static str| async move { s.parse::<i32>() }).sink_to_vec();
    /// assert!(futures_executor::block_on(source.emit("4")).is_ok());
    /// assert!(futures_executor::block_on(source.emit("four")).is_err());
    /// assert_eq!(out.to_vec(), vec![4]);
    /// ```
    pub fn try_then<U, E, F, Fut>(&self, f: F) -> Stream<U>
    where
        U: Element,
        E: Into<BoxError>,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
    {
        let name = fn_name::<F>();
        self.attach(&THEN, name, Then(fallible(f)))
    }

    fn map_async_in<U, F>(
        &self,
        parallelism: usize,
        name: Option<&'static str>,
        ordered: bool,
        f: F,
    ) -> Stream<U>
    where
        U: Element,
        F: Fn(T) -> BoxFuture<Result<U, BoxError>> + Send + Sync + 'static,
    {
        assert!(
            parallelism >= 1,
            "map_async: parallelism must be at least 1"
        );
        let executor = self.graph_shared().require_executor("map_async");
        let kind = if ordered {
            &MAP_ASYNC
        } else {
            &MAP_ASYNC_UNORDERED
        };
        self.attach_with(kind, name, |out| {
            let (queue, inbox) = task_queue(&out.node(), parallelism);
            executor.spawn(Box::pin(map_async_task(
                inbox.into_receiver(),
                out.clone(),
                f,
                parallelism,
                ordered,
            )));
            MapAsync {
                queue,
                _out: PhantomData,
            }
        })
    }

    /// Calls the asynchronous function `f` on every element; the element's `Emit` resolves
    /// when `f`'s future has (the original's sink with a coroutine). No executor is needed
    /// while every `Emit` is awaited; an `Emit` dropped before the write finished leaves the
    /// write running on the graph's executor.
    ///
    /// A panic in `f` or its future is an error from the element's `Emit`, or, when nobody
    /// awaits that, goes to the [error stream](Stream::errors).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let source = streamz_core::Stream::new();
    /// let table = Arc::new(Mutex::new(Vec::new()));
    /// let db = table.clone();
    /// source.sink_async(move |row: String| {
    ///     let db = db.clone();
    ///     async move { db.lock().unwrap().push(row) } // an async database write
    /// });
    /// futures_executor::block_on(source.emit("a row".to_owned())).unwrap();
    /// assert_eq!(*table.lock().unwrap(), vec!["a row"]);
    /// ```
    pub fn sink_async<F, Fut>(&self, f: F) -> Sink
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = fn_name::<F>();
        Sink::of(&self.attach(&SINK_ASYNC, name, SinkAsync::new(f)))
    }

    /// Like [`sink_async`](Stream::sink_async) for a function whose future returns a
    /// `Result`; an `Err` is an error from the element's `Emit`.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// source.try_sink_async(|x: i32| async move {
    ///     if x < 0 { Err("negative rows are refused") } else { Ok(()) }
    /// });
    /// assert!(futures_executor::block_on(source.emit(1)).is_ok());
    /// let err = futures_executor::block_on(source.emit(-1)).unwrap_err();
    /// assert!(err.to_string().contains("refused"));
    /// ```
    pub fn try_sink_async<E, F, Fut>(&self, f: F) -> Sink
    where
        E: Into<BoxError>,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let name = fn_name::<F>();
        Sink::of(&self.attach(&SINK_ASYNC, name, SinkAsync::new(f)))
    }
}
