//! [`Stream`], the handle on a node of a graph, and the methods every node shares: emitting,
//! closing, waiting, rewiring, naming and drawing. The operators live in `ops/`, one file per
//! family, each adding its own `impl Stream<T>` block.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};

use crate::ack::{Ack, Acks};
use crate::checkpoint::SaveState;
use crate::emit::{Cx, Emit};
use crate::error::{ErrorKind, StreamError};
use crate::executor::Executor;
use crate::node::{Inlet, Kind, NodeInfo, OpNode, Operator, Outlet, Port, Shape};
use crate::shared::GraphShared;
use crate::topology::{Direction, reachable};

/// How many elements `emit_iter` pushes in one push context at most.
const RUN: usize = 256;

/// What a stream's elements must be: cloned when a node has several downstreams, sent between
/// threads when an executor drives the graph.
///
/// Wrap large values in an [`Arc`] to make the clones cheap.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use streamz_core::Stream;
///
/// let frames = Stream::<Arc<Vec<u8>>>::new(); // one allocation, shared by every branch
/// let sizes = frames.map(|f| f.len()).sink_to_vec();
/// let firsts = frames.map(|f| f[0]).sink_to_vec();
/// frames.emit_blocking(Arc::new(vec![7; 1 << 20])).unwrap();
/// assert_eq!((sizes.to_vec(), firsts.to_vec()), (vec![1 << 20], vec![7]));
/// ```
pub trait Element: Clone + Send + 'static {}

impl<T: Clone + Send + 'static> Element for T {}

/// A handle on one node of a stream graph, whose output elements are `T`.
///
/// Handles are cheap to clone and can be sent to other threads. Building methods
/// ([`map`](Stream::map), [`accumulate`](Stream::accumulate), [`zip`](Stream::zip), …) add a
/// node downstream of this one and return a handle on it. [`emit`](Stream::emit) pushes an
/// element to this node's downstreams, synchronously and depth first, in the order they were
/// created.
///
/// A node owns its downstreams: the graph below a handle stays alive while the handle does,
/// and nothing is kept alive by anything global.
///
/// # Examples
///
/// ```
/// use streamz_core::Stream;
///
/// let source = Stream::new();
/// let totals = source
///     .map(|x: i64| x + 1)
///     .accumulate(|acc: &i64, x| acc + x)
///     .sink_to_vec();
///
/// for x in 0..4 {
///     source.emit_blocking(x)?;
/// }
/// assert_eq!(totals.to_vec(), vec![1, 3, 6, 10]);
/// # Ok::<(), streamz_core::StreamError>(())
/// ```
///
/// A `Stream` is `Send` and `Sync`, so it needs elements that can cross threads:
///
/// ```compile_fail
/// let source = streamz_core::Stream::<std::rc::Rc<i32>>::new();
/// ```
pub struct Stream<T> {
    pub(crate) out: Arc<Outlet<T>>,
    /// The node's own input, as `Arc<dyn Inlet<I>>` for its input type `I`, when other
    /// streams may be connected to it (sources, `union`, `zip_all`, …).
    inlet: Option<Arc<dyn Any + Send + Sync>>,
}

impl<T> Clone for Stream<T> {
    fn clone(&self) -> Self {
        Stream {
            out: self.out.clone(),
            inlet: self.inlet.clone(),
        }
    }
}

impl<T> fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.out.info.id)
            .field("name", &self.out.info.display_name())
            .finish()
    }
}

impl<T: Element> Default for Stream<T> {
    fn default() -> Self {
        Stream::new()
    }
}

/// Passes elements through unchanged: sources, and plain nodes that others connect to.
pub(crate) struct Identity;

impl<T: Element> Operator<T> for Identity {
    type Out = T;

    #[inline]
    fn push(&self, _port: Port, x: T, out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        out.push(x, cx);
    }
}

const SOURCE: Kind = Kind::new("stream", Shape::Ellipse);

/// A source's node in `graph`: its outlet, and its inlet that `emit` and `connect` feed.
pub(crate) fn source_node<T: Element>(
    graph: Arc<GraphShared>,
    name: &str,
) -> (Arc<Outlet<T>>, Arc<dyn Inlet<T>>) {
    let info = NodeInfo::new(&SOURCE, None, graph);
    if name != SOURCE.op {
        info.set_name(name);
    }
    let out = Arc::new(Outlet::new(info));
    let inlet: Arc<dyn Inlet<T>> = OpNode::new(Identity, out.clone());
    (out, inlet)
}

impl<T: Element> Stream<T> {
    /// A new source: a node with no upstream that you feed with [`emit`](Stream::emit).
    ///
    /// A graph built from it has no executor, which is all a synchronous graph needs. Use
    /// [`with_executor`](Stream::with_executor) for graphs with time-based or asynchronous
    /// nodes.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::<String>::new();
    /// let lengths = source.map(|s| s.len()).sink_to_vec();
    /// source.emit_blocking("hello".to_owned()).unwrap();
    /// assert_eq!(lengths.to_vec(), vec![5]);
    /// ```
    pub fn new() -> Self {
        Self::source(None)
    }

    /// A new source whose graph runs its timers and tasks on `executor`. Every node built
    /// downstream of it inherits the executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::<u32>::with_executor(executor.clone());
    /// assert!(source.executor().is_some());
    /// ```
    pub fn with_executor(executor: impl Executor) -> Self {
        Self::source(Some(Arc::new(executor)))
    }

    fn source(executor: Option<Arc<dyn Executor>>) -> Self {
        Self::source_in(GraphShared::new(executor), SOURCE.op)
    }

    /// A source in an existing graph context.
    pub(crate) fn source_in(graph: Arc<GraphShared>, name: &str) -> Self {
        let (out, inlet) = source_node(graph, name);
        Stream::with_inlet(out, inlet)
    }

    /// A handle on a node that only its own upstreams feed.
    pub(crate) fn from_outlet(out: Arc<Outlet<T>>) -> Self {
        Stream { out, inlet: None }
    }

    /// A handle whose node accepts connections of `I` elements.
    pub(crate) fn with_inlet<I: 'static>(out: Arc<Outlet<T>>, inlet: Arc<dyn Inlet<I>>) -> Self {
        Stream {
            out,
            inlet: Some(Arc::new(inlet)),
        }
    }

    /// Adds a node running `op` downstream of this one.
    pub(crate) fn attach<O: Operator<T>>(
        &self,
        kind: &'static Kind,
        func: Option<&'static str>,
        op: O,
    ) -> Stream<O::Out> {
        self.attach_with(kind, func, |_| op)
    }

    /// Adds a node downstream of this one whose operator is made from the node's outlet and
    /// context (to start the node's task, for operators that have one).
    pub(crate) fn attach_with<U: Element, O: Operator<T, Out = U>>(
        &self,
        kind: &'static Kind,
        func: Option<&'static str>,
        make: impl FnOnce(&Arc<Outlet<U>>) -> O,
    ) -> Stream<U> {
        let info = NodeInfo::new(kind, func, self.out.info.graph.clone());
        let out = Arc::new(Outlet::new(info));
        let op = make(&out);
        self.out.connect(OpNode::new(op, out.clone()), false);
        Stream::from_outlet(out)
    }

    /// [`attach_with`](Stream::attach_with) for an operator whose state checkpoints save
    /// (`Stream::durable`); `at_rest` when the elements it holds are part of that state.
    pub(crate) fn attach_saved<U: Element, O: Operator<T, Out = U> + SaveState>(
        &self,
        kind: &'static Kind,
        func: Option<&'static str>,
        at_rest: bool,
        make: impl FnOnce(&Arc<Outlet<U>>) -> O,
    ) -> Stream<U> {
        let info = NodeInfo::new(kind, func, self.out.info.graph.clone());
        let out = Arc::new(Outlet::new(info));
        let node = OpNode::new(make(&out), out.clone());
        let saved: Weak<dyn SaveState> = Arc::downgrade(&node) as Weak<dyn SaveState>;
        out.info.set_saved(saved, at_rest);
        self.out.connect(node, false);
        Stream::from_outlet(out)
    }

    /// Pushes `x` to this node's downstreams and returns the completion of that element.
    ///
    /// Every synchronous node downstream has run when `emit` returns; the [`Emit`] resolves
    /// when the rest of the element's work (async functions, waiting for room in a buffer, a
    /// rate limit's turn) has finished, so `source.emit(x).await` is the backpressure. For a
    /// purely synchronous graph it is ready at once and nothing was allocated.
    ///
    /// # Errors
    ///
    /// The `Emit` resolves to `Err` when a user function panicked or returned `Err` at some
    /// node; the error names the node. Every other branch still received the element, and
    /// the graph is ready for the next one. Emitting into a closed stream is an
    /// [`ErrorKind::Closed`] error.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// # futures_executor::block_on(async {
    /// let source = Stream::new();
    /// let out = source.map(|x: i32| x + 1).sink_to_vec();
    /// source.emit(1).await?;
    /// source.emit(2).await?;
    /// assert_eq!(out.to_vec(), vec![2, 3]);
    /// # Ok::<(), streamz_core::StreamError>(())
    /// # }).unwrap();
    /// ```
    pub fn emit(&self, x: T) -> Emit {
        self.push_new(x, false)
    }

    /// Pushes `x` and blocks the calling thread until the element's work is complete.
    ///
    /// The same as [`emit`](Stream::emit) followed by [`Emit::wait`]; for plain threads.
    /// Nodes that would have to wait on a producer only this thread can feed (a full `zip`
    /// input, say) refuse the element with [`ErrorKind::WouldDeadlock`] instead of blocking
    /// forever. Do not call it from inside an async task.
    ///
    /// # Errors
    ///
    /// As for [`emit`](Stream::emit).
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let evens = source.filter(|x: &u8| x % 2 == 0).sink_to_vec();
    /// for x in 0..6 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(evens.to_vec(), vec![0, 2, 4]);
    /// ```
    pub fn emit_blocking(&self, x: T) -> Result<(), StreamError> {
        self.push_new(x, true).wait()
    }

    /// Emits every element of `items` in order: the same as
    /// `for x in items { source.emit(x).await? }`, element for element (each one's work is
    /// complete before the next is pushed, so backpressure and errors are per element, and
    /// the first error stops it), but faster: elements that go through the graph
    /// synchronously share one push context instead of setting one up each.
    ///
    /// # Errors
    ///
    /// The first element's error, as [`emit`](Stream::emit) would return it; the elements
    /// after it are not emitted.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// # futures_executor::block_on(async {
    /// let source = Stream::new();
    /// let out = source.map(|x: i32| x * 10).sink_to_vec();
    /// source.emit_iter(1..=3).await?;
    /// assert_eq!(out.to_vec(), vec![10, 20, 30]);
    /// # Ok::<(), streamz_core::StreamError>(())
    /// # }).unwrap();
    /// ```
    pub async fn emit_iter(&self, items: impl IntoIterator<Item = T>) -> Result<(), StreamError> {
        let mut items = items.into_iter();
        loop {
            let (emit, more) = self.push_run(&mut items, false);
            emit.await?;
            if !more {
                return Ok(());
            }
        }
    }

    /// [`emit_iter`](Stream::emit_iter) for plain threads: the same as
    /// `for x in items { source.emit_blocking(x)? }`.
    ///
    /// # Errors
    ///
    /// As for [`emit_blocking`](Stream::emit_blocking), the first one; the elements after it
    /// are not emitted.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let evens = source.filter(|x: &u8| x % 2 == 0).sink_to_vec();
    /// source.emit_iter_blocking(0..6).unwrap();
    /// assert_eq!(evens.to_vec(), vec![0, 2, 4]);
    /// ```
    pub fn emit_iter_blocking(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<(), StreamError> {
        let mut items = items.into_iter();
        loop {
            let (emit, more) = self.push_run(&mut items, true);
            emit.wait()?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Pushes elements of `items` in one push context until one fails or leaves work pending,
    /// or [`RUN`] have gone: that last element's completion, and whether `items` may have
    /// more. (The push context pins an epoch, which holds back freeing rewired edge lists
    /// everywhere, so it is let go every `RUN` elements.)
    fn push_run(&self, items: &mut impl Iterator<Item = T>, blocking: bool) -> (Emit, bool) {
        let mut more = true;
        let emit = Cx::run(&self.out.info.graph, blocking, |cx| {
            for _ in 0..RUN {
                let Some(x) = items.next() else {
                    more = false;
                    return;
                };
                if self.out.info.is_closed() {
                    cx.fail(self.closed_error());
                    return;
                }
                self.out.info.meter.count_in();
                self.out.push(x, cx);
                if cx.must_stop() {
                    return;
                }
            }
        });
        (emit, more)
    }

    /// Pushes `x` as [`emit`](Stream::emit) does, with an acknowledgement: `ack`'s function
    /// is called once `x` and everything derived from it downstream is done (handled by every
    /// sink, or dropped by an operator's own semantics, such as a filter's), with the first
    /// failure if any part failed. Nodes that keep an element (buffers, delays, async
    /// functions, `latest`, timed windows, partitions) keep its acknowledgement until they
    /// hand it on or drop it. This is what a broker's source commits by.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use streamz_core::{Ack, Stream};
    ///
    /// let (done, acked) = mpsc::channel();
    /// let source = Stream::new();
    /// let batches = source.partition(2).sink_to_vec();
    /// for x in 0..3 {
    ///     let done = done.clone();
    ///     source.emit_acked(x, Ack::new(move |r| done.send((x, r.is_ok())).unwrap())).wait().unwrap();
    /// }
    /// // 0 and 1 went out in a batch; 2 waits in the partition
    /// assert_eq!(acked.try_iter().collect::<Vec<_>>(), vec![(0, true), (1, true)]);
    /// source.close().wait().unwrap();
    /// assert_eq!(acked.try_iter().collect::<Vec<_>>(), vec![(2, true)]);
    /// assert_eq!(batches.to_vec(), vec![vec![0, 1], vec![2]]);
    /// ```
    pub fn emit_acked(&self, x: T, ack: Ack) -> Emit {
        self.push_new_acked(x, Acks::one(ack))
    }

    fn push_new(&self, x: T, blocking: bool) -> Emit {
        if self.out.info.is_closed() {
            return Emit::failed(self.closed_error(), self.out.info.graph.clone());
        }
        self.out.info.meter.count_in();
        Cx::run(&self.out.info.graph, blocking, |cx| self.out.push(x, cx))
    }

    /// [`push_new`](Stream::push_new) for an element that carries `acks` (kept apart, so that
    /// the plain path is the one it always was).
    pub(crate) fn push_new_acked(&self, x: T, acks: Acks) -> Emit {
        if self.out.info.is_closed() {
            let err = self.closed_error();
            acks.fail(&err);
            return Emit::failed(err, self.out.info.graph.clone());
        }
        self.out.info.meter.count_in();
        Cx::run_acked(&self.out.info.graph, false, acks, |cx| self.out.push(x, cx))
    }

    #[cold]
    fn closed_error(&self) -> StreamError {
        StreamError::new(
            ErrorKind::Closed,
            Some(self.out.info.node_ref()),
            "cannot emit after close()",
        )
    }

    /// Ends this stream: completion travels downstream, and nodes that hold elements emit
    /// them first (`partition` its remainder, `collect` what it has collected); `zip` reports
    /// unmatched elements as an [`ErrorKind::Unflushed`] error. A node with several upstreams
    /// completes when all of them have. Later `emit`s on this handle are errors.
    ///
    /// The returned [`Emit`] resolves once everything flushed at close has reached the sinks:
    /// a flush into a downstream that must wait (a full [`buffer`](Stream::buffer), a
    /// [`rate_limit`](Stream::rate_limit)'s turn, an async sink) is waited for before that
    /// downstream is closed, and nodes with a task (buffers, timers, async functions) have
    /// emitted what they held. Nothing accepted is dropped at end of stream. A node with
    /// another upstream still open does not complete, and this `Emit` does not wait for it;
    /// [`closed`](Stream::closed) waits for the whole graph below, from any handle.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let batches = source.partition(3).sink_to_vec();
    /// for x in 0..7 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// source.close().wait().unwrap();
    /// assert_eq!(batches.to_vec(), vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    /// assert!(batches.is_closed());
    /// ```
    pub fn close(&self) -> Emit {
        Cx::run(&self.out.info.graph, false, |cx| self.out.close(cx))
    }

    /// True once this node has completed (see [`close`](Stream::close)).
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::<i32>::new();
    /// let doubled = source.map(|x| x * 2);
    /// source.close().wait().unwrap();
    /// assert!(source.is_closed() && doubled.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.out.info.is_closed()
    }

    /// Waits until every node downstream of this one holds no element in flight (buffers,
    /// timers, async work), without ending the stream. Work left running by dropped
    /// [`Emit`]s of this graph, and by `emit_blocking` calls refused with
    /// [`ErrorKind::WouldDeadlock`], is waited for too. An element whose `emit` is still
    /// waiting for room at a full node counts as held there: await (or drop) that `Emit`
    /// before flushing from the same task, or the flush waits for an element nobody moves.
    ///
    /// The original streamz has no way to do this (its issue #449).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_executor::block_on(async {
    /// let source = streamz_core::Stream::new();
    /// let out = source.map(|x: i32| x * 10).sink_to_vec();
    /// source.emit(1).await.unwrap();
    /// source.flush().await;
    /// assert_eq!(out.to_vec(), vec![10]);
    /// # });
    /// ```
    pub fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        let nodes = reachable(&self.out.node(), Direction::Down);
        let graph = self.out.info.graph.clone();
        async move {
            // work of dropped `Emit`s (and of refused `emit_blocking`s) first: it may still
            // be on its way into the nodes
            graph.detached_done().await;
            for node in nodes {
                node.wait_until(|n| n.in_flight() == 0).await;
            }
        }
    }

    /// Waits until completion has reached every node downstream of this one and nothing is
    /// left in flight: after [`close`](Stream::close), the moment all results are out.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_executor::block_on(async {
    /// let source = streamz_core::Stream::new();
    /// let out = source.sliding_window(2, false).sink_to_vec();
    /// for x in 0..3 {
    ///     source.emit(x).await.unwrap();
    /// }
    /// source.close().await.unwrap();
    /// source.closed().await;
    /// assert_eq!(out.to_vec(), vec![vec![0, 1], vec![1, 2]]);
    /// # });
    /// ```
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let nodes = reachable(&self.out.node(), Direction::Down);
        let graph = self.out.info.graph.clone();
        async move {
            graph.detached_done().await;
            for node in nodes {
                node.wait_until(|n| n.is_closed() && n.in_flight() == 0)
                    .await;
            }
        }
    }

    /// Connects this stream's output to `downstream`'s input, so that `downstream` receives
    /// every element this node emits from now on (the original's `connect`). Connecting the
    /// same pair twice has no further effect. Used to splice prebuilt graphs together, to add
    /// an input to [`zip_all`](Stream::zip_all) or [`union`](Stream::union), and to build
    /// feedback loops.
    ///
    /// # Panics
    ///
    /// If `downstream` is not a node that accepts connections of `T` elements: a source
    /// ([`Stream::new`]), `union`, `zip_all`, `combine_latest_all` or `zip_latest_all` of the
    /// same element type. Operators such as `map` are only fed by the stream they were built on.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// let upstream = Stream::new();
    /// let downstream = Stream::new();
    /// let out = downstream.map(|x: i32| x + 1).sink_to_vec();
    /// upstream.connect(&downstream);
    /// upstream.emit_blocking(2).unwrap();
    /// upstream.disconnect(&downstream);
    /// upstream.emit_blocking(4).unwrap();
    /// assert_eq!(out.to_vec(), vec![3]);
    /// ```
    pub fn connect<U>(&self, downstream: &Stream<U>) {
        match downstream
            .inlet
            .as_ref()
            .and_then(|inlet| inlet.downcast_ref::<Arc<dyn Inlet<T>>>())
        {
            Some(inlet) => self.out.connect(inlet.clone(), true),
            None => panic!(
                "cannot connect {} to {}: the downstream node does not accept connections of `{}` elements",
                self.out.info.node_ref(),
                downstream.out.info.node_ref(),
                std::any::type_name::<T>(),
            ),
        }
    }

    /// Disconnects `downstream` from this stream: it receives nothing more from here. Returns
    /// whether the two were connected. Works for any downstream node, including the ones built
    /// from this stream (the original's `destroy`).
    pub fn disconnect(&self, downstream: &impl GraphNode) -> bool {
        self.out.disconnect(downstream.node_id())
    }

    /// The executor this graph runs its tasks and timers on, if it has one.
    pub fn executor(&self) -> Option<&Arc<dyn Executor>> {
        self.out.info.graph.executor.as_ref()
    }

    /// The graph's error stream: every error that no `emit` is there to return, because it
    /// happened after the element had left `emit` (in a buffer's consumer, behind a timed
    /// window, in an async sink whose `Emit` was dropped) or because the `Emit` holding it was
    /// dropped unread. The node that failed goes on with the next element.
    ///
    /// It is the same stream whichever node of the graph you ask (the graph being everything
    /// built from one source). Errors that arrive while nothing is connected to it are only
    /// logged, through `tracing`, at the failing node's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{ErrorKind, Stream};
    ///
    /// let source = Stream::new();
    /// let errors = source.errors().sink_to_vec();
    /// source.map(|x: i32| 10 / x).named("divide");
    /// drop(source.emit(0)); // nobody reads this Emit's error...
    /// let seen = errors.to_vec(); // ...so it went to the error stream
    /// assert_eq!(seen.len(), 1);
    /// assert_eq!(seen[0].node().unwrap().name(), "divide");
    /// assert_eq!(seen[0].kind(), ErrorKind::Panic);
    /// ```
    pub fn errors(&self) -> Stream<StreamError> {
        let (out, inlet) = self
            .out
            .info
            .graph
            .error_source(|executor| source_node(GraphShared::new(executor), "errors"));
        Stream::with_inlet(out.clone(), inlet.clone())
    }

    pub(crate) fn graph_shared(&self) -> &Arc<GraphShared> {
        &self.out.info.graph
    }
}

impl<T> Stream<T> {
    /// Names this node; the name shows in errors and in [`visualize`](Stream::visualize).
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::<i32>::new().named("numbers");
    /// assert_eq!(source.name(), "numbers");
    /// assert_eq!(source.map(|x| x + 1).name(), "map");
    /// ```
    pub fn named(self, name: &str) -> Self {
        self.out.info.set_name(name);
        self
    }

    /// Marks this node as one that keeps state between elements which checkpoints do not
    /// save (a `map` whose closure counts, say), so that a checkpointed graph lists it in
    /// [`Checkpoints::not_durable`](crate::Checkpoints::not_durable). The stateful
    /// operators of this crate are marked already.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let source = streamz_core::Stream::<u64>::new();
    /// let seen = AtomicU64::new(0);
    /// let numbered = source
    ///     .map(move |x| (seen.fetch_add(1, Ordering::Relaxed), x))
    ///     .keeps_state();
    /// # let _ = numbered;
    /// ```
    pub fn keeps_state(self) -> Self {
        self.out.info.mark_keeps_state();
        self
    }

    /// This node's name: the one given with [`named`](Stream::named), or the operator's,
    /// with the function's name when it is a named `fn` (`map: parse`).
    pub fn name(&self) -> String {
        self.out.info.display_name().to_string()
    }

    /// This node's id, unique in the process.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::<i32>::new();
    /// assert_ne!(source.id(), source.map(|x| x).id());
    /// assert_eq!(source.id(), source.clone().id());
    /// ```
    pub fn id(&self) -> u64 {
        self.out.info.id
    }

    /// This node as errors name it: its id and its current name. For crates that run this
    /// node's functions elsewhere and report their failures as its own (see
    /// [`StreamError::new`](crate::StreamError::new)).
    ///
    /// # Examples
    ///
    /// ```
    /// let parse = streamz_core::Stream::<i32>::new().map(|x| x + 1).named("parse");
    /// let node = parse.node();
    /// assert_eq!((node.id(), node.name()), (parse.id(), "parse"));
    /// ```
    pub fn node(&self) -> crate::NodeRef {
        self.out.info.node_ref()
    }

    /// Shows this node as a part of its upstream's stage in [`Graph::snapshot`](crate::Graph::snapshot)
    /// (and so in a dashboard): for a conversion a library adds after an operator, such as
    /// `sliding_window(3).map(Value::Array)`, which is not a stage the user wrote. The two are
    /// shown as one node, with this node's id, this node's name when it has one (else the
    /// upstream's), the upstream's operator and elements in, and this node's elements out.
    /// It applies only while this node has one upstream, and is that upstream's only
    /// downstream; the graph itself, and [`visualize`](Stream::visualize), are unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let windows = source
    ///     .sliding_window(2, true)
    ///     .map(|w: Vec<i32>| w.iter().sum::<i32>())
    ///     .part_of_upstream()
    ///     .named("pair sums");
    /// source.enable_metrics();
    /// source.emit_blocking(1).unwrap();
    /// let nodes = windows.graph().snapshot().nodes;
    /// let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    /// assert_eq!(names, ["stream", "pair sums"]);
    /// assert_eq!((nodes[1].id, nodes[1].operator), (windows.id(), "sliding_window"));
    /// ```
    pub fn part_of_upstream(self) -> Self {
        self.out
            .info
            .part_of_upstream
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// The whole graph this node belongs to (everything connected to it, up and down), as
    /// Graphviz DOT text. Nodes are drawn in the original's shapes; when a node has several
    /// downstreams its edges are numbered in delivery order.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// let source = Stream::<i32>::new().named("numbers");
    /// source.map(|x| x * 2).sink(|_| {});
    /// let dot = source.visualize();
    /// assert!(dot.starts_with("digraph {"));
    /// assert!(dot.contains("numbers"));
    /// assert!(dot.contains("shape=trapezium")); // the sink
    /// ```
    pub fn visualize(&self) -> String
    where
        T: 'static,
    {
        crate::visualize::to_dot(&self.out.node())
    }

    /// Turns on per-node metrics for the whole graph this node belongs to, and for nodes built
    /// in it later: elements in and out of each node, besides the errors, elements held and
    /// async latencies that are always kept. Read them with [`graph`](Stream::graph)`()
    /// .snapshot()`. Each node then costs two relaxed atomic increments per element.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// let source = Stream::new();
    /// source.enable_metrics();
    /// let evens = source.filter(|x: &u32| x % 2 == 0); // built later: metered too
    /// for x in 0..5 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// let node = &evens.graph().snapshot().nodes[1];
    /// assert_eq!((node.operator, node.elements_in, node.elements_out), ("filter", 5, 3));
    /// ```
    pub fn enable_metrics(&self)
    where
        T: 'static,
    {
        self.graph().enable_metrics();
    }

    /// A type-erased handle on the graph this node belongs to, to read its structure and
    /// figures ([`Graph::snapshot`](crate::Graph::snapshot)) from code that does not know its
    /// element types, such as a dashboard.
    pub fn graph(&self) -> crate::Graph
    where
        T: 'static,
    {
        crate::Graph::new(self.out.node())
    }
}

/// Anything that stands for a node of a graph: [`Stream`], [`Sink`](crate::Sink),
/// [`VecSink`](crate::VecSink), [`Collector`](crate::Collector).
///
/// # Examples
///
/// ```
/// use streamz_core::{GraphNode, Stream};
///
/// let source = Stream::<i32>::new();
/// let out = source.sink_to_vec();
/// assert_ne!(out.node_id(), source.node_id());
/// assert!(source.disconnect(&out));
/// ```
pub trait GraphNode {
    /// The node's id, unique in the process.
    fn node_id(&self) -> u64;
}

impl<T> GraphNode for Stream<T> {
    fn node_id(&self) -> u64 {
        self.out.info.id
    }
}
