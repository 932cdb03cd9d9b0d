//! The push machinery behind every [`Stream`](crate::Stream): node metadata, a node's
//! output side ([`Outlet`]), a node's input side ([`Inlet`]), and the generic [`OpNode`] that
//! turns an [`Operator`] into a node. See `DESIGN.md` for the contract.

use std::any::type_name;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use event_listener::Event;
use smallvec::SmallVec;

use crate::ack::Acks;
use crate::checkpoint::SaveState;
use crate::edges::{DirectArc, Edges};
use crate::emit::{Cx, Emit};
use crate::error::{BoxError, NodeRef, StreamError, next_id};
use crate::event_time::{Mark, PortMarks};
use crate::meter::Meter;
use crate::shared::GraphShared;

pub(crate) use crate::sync::lock;

/// An input port of a node. Single-input nodes only ever see port 0; `zip` and friends get a
/// new port for every upstream connected to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Port(pub(crate) u32);

/// How `visualize` draws a node (the original's shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Ellipse,
    Box,
    Diamond,
    Octagon,
    Triangle,
    Trapezium,
}

impl Shape {
    pub(crate) fn dot(self) -> &'static str {
        match self {
            Shape::Ellipse => "ellipse",
            Shape::Box => "box",
            Shape::Diamond => "diamond",
            Shape::Octagon => "octagon",
            Shape::Triangle => "triangle",
            Shape::Trapezium => "trapezium",
        }
    }
}

/// What a node is, for names, errors and `visualize`. Each operator has one, a `const`, and a
/// node keeps a `&'static` reference to it: one word.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    pub(crate) op: &'static str,
    pub(crate) shape: Shape,
    /// It keeps state between pushes on the synchronous path (a fold, a window, a join's
    /// held elements), which a checkpoint saves only when the node is durable.
    pub(crate) keeps_state: bool,
}

impl Kind {
    pub(crate) const fn new(op: &'static str, shape: Shape) -> Self {
        Kind {
            op,
            shape,
            keeps_state: false,
        }
    }

    /// An operator that keeps state between pushes (`keeps_state`).
    pub(crate) const fn stateful(op: &'static str, shape: Shape) -> Self {
        Kind {
            op,
            shape,
            keeps_state: true,
        }
    }
}

/// The name of a user function, when it has one (`inc` for `fn inc`; none for a closure): what
/// nodes are named after, for crates that label steps of their own.
///
/// # Examples
///
/// ```
/// fn increment(x: u32) -> u32 {
///     x + 1
/// }
/// fn name_of<F: Fn(u32) -> u32>(_: &F) -> Option<&'static str> {
///     streamz_core::fn_name::<F>()
/// }
/// assert_eq!(name_of(&increment), Some("increment"));
/// assert_eq!(name_of(&|x| x * 2), None);
/// ```
pub fn fn_name<F>() -> Option<&'static str> {
    let full = type_name::<F>();
    if full.contains("{{closure}}") || full.contains('<') {
        return None;
    }
    full.rsplit("::").next()
}

/// The label of a step running `F` as operator `op`, as nodes are named: `map: parse` for a
/// named `fn parse`, `map` for a closure. For crates that label steps of their own (a pool's,
/// a cluster's), so that their errors read like the core's.
///
/// # Examples
///
/// ```
/// fn parse(s: &str) -> u32 {
///     s.parse().unwrap_or(0)
/// }
/// fn label_of<F: Fn(&str) -> u32>(_: &F) -> String {
///     streamz_core::label::<F>("map")
/// }
/// assert_eq!(label_of(&parse), "map: parse");
/// assert_eq!(label_of(&|s: &str| s.len() as u32), "map");
/// ```
pub fn label<F>(op: &str) -> String {
    step_label(op, fn_name::<F>())
}

/// `op`, with `func` when there is one.
fn step_label(op: &str, func: Option<&str>) -> String {
    match func {
        Some(func) => format!("{op}: {func}"),
        None => op.to_owned(),
    }
}

/// What every node is, whatever its element type: the outlet that holds its [`NodeInfo`]
/// inline (one allocation for both).
pub(crate) trait HasInfo: Send + Sync {
    fn node_info(&self) -> &NodeInfo;
}

/// A node, untyped and shared: what graph walks, tasks and handles keep. It keeps the node's
/// outlet (and so what is downstream of it) alive, and derefs to its [`NodeInfo`].
#[derive(Clone)]
pub(crate) struct NodeArc(Arc<dyn HasInfo>);

impl NodeArc {
    /// The node whose outlet is `out`.
    pub(crate) fn of<T: 'static>(out: &Arc<Outlet<T>>) -> Self {
        NodeArc(out.clone())
    }

    pub(crate) fn downgrade(&self) -> NodeWeak {
        NodeWeak(Arc::downgrade(&self.0))
    }
}

impl std::ops::Deref for NodeArc {
    type Target = NodeInfo;

    fn deref(&self) -> &NodeInfo {
        self.0.node_info()
    }
}

/// A node, weakly (a neighbour link).
#[derive(Clone)]
pub(crate) struct NodeWeak(Weak<dyn HasInfo>);

impl NodeWeak {
    pub(crate) fn upgrade(&self) -> Option<NodeArc> {
        self.0.upgrade().map(NodeArc)
    }

    fn is(&self, node: &NodeArc) -> bool {
        std::ptr::addr_eq(self.0.as_ptr(), Arc::as_ptr(&node.0))
    }
}

/// A node's neighbours, weakly. Most nodes have one of each, kept inline.
#[derive(Default)]
struct Links {
    ups: SmallVec<[NodeWeak; 1]>,
    downs: SmallVec<[NodeWeak; 1]>,
}

/// What few nodes use, allocated on first use (`NodeInfo::cold`): a name the user gave,
/// checkpoint state, and event time's tables. Keeps `NodeInfo` small, so long chains stay
/// in cache.
#[derive(Default)]
struct Cold {
    name: Mutex<Option<Arc<str>>>,
    /// What it saves into a checkpoint, for a node built through `Stream::durable`.
    saved: OnceLock<Weak<dyn SaveState>>,
    /// What it holds is saved in its state (a durable timed window's elements), so a
    /// checkpoint need not wait for it to be handed on (`durable.rs`, "the cut").
    at_rest: AtomicBool,
    /// Its inputs' watermarks, once it has had more than one input (`combine_mark`).
    marks: OnceLock<Mutex<PortMarks>>,
    /// Watermarks waiting for the elements it held when they came (`hold_mark`).
    held_marks: OnceLock<HeldMarks>,
}

/// The untyped part of a node: identity, name, topology, completion and in-flight state.
pub(crate) struct NodeInfo {
    pub(crate) id: u64,
    pub(crate) kind: &'static Kind,
    func: Option<&'static str>,
    links: Mutex<Links>,
    pub(crate) graph: Arc<GraphShared>,
    next_port: AtomicU32,
    /// Upstreams attached and not yet closed.
    open_upstreams: AtomicUsize,
    closed: AtomicBool,
    /// Set once the node's close has gone all the way down: everything it flushed at end of
    /// stream has been handled, and its downstreams have been closed (see `close_from_task`).
    finished: AtomicBool,
    /// Shown as part of its upstream's stage by `Graph::snapshot` (`Stream::part_of_upstream`).
    pub(crate) part_of_upstream: AtomicBool,
    /// It keeps state between pushes (its kind's `keeps_state`, or `Stream::keeps_state`).
    keeps_state: AtomicBool,
    /// Elements accepted by this node and not yet handed on (buffers, timers, async work).
    in_flight: AtomicUsize,
    /// Its name, checkpoint state and event-time tables, once it has any.
    cold: OnceLock<Box<Cold>>,
    changed: Event,
    pub(crate) meter: Meter,
}

impl NodeInfo {
    pub(crate) fn new(
        kind: &'static Kind,
        func: Option<&'static str>,
        graph: Arc<GraphShared>,
    ) -> Self {
        NodeInfo {
            id: next_id(),
            kind,
            func,
            links: Mutex::new(Links::default()),
            next_port: AtomicU32::new(0),
            open_upstreams: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            part_of_upstream: AtomicBool::new(false),
            keeps_state: AtomicBool::new(kind.keeps_state),
            in_flight: AtomicUsize::new(0),
            cold: OnceLock::new(),
            changed: Event::new(),
            meter: Meter::new(graph.metrics_enabled()),
            graph,
        }
    }

    /// Its cold part, made on first use.
    fn cold(&self) -> &Cold {
        self.cold.get_or_init(Box::default)
    }

    /// Its cold part, if it has one.
    #[inline]
    fn cold_if_any(&self) -> Option<&Cold> {
        self.cold.get().map(|cold| &**cold)
    }

    pub(crate) fn set_name(&self, name: &str) {
        *lock(&self.cold().name) = Some(Arc::from(name));
    }

    /// The user's name for the node, or the operator with its function (`map: inc`).
    pub(crate) fn display_name(&self) -> Arc<str> {
        if let Some(name) = self.given_name() {
            return name;
        }
        match self.func {
            Some(_) => Arc::from(step_label(self.kind.op, self.func)),
            None => Arc::from(self.kind.op),
        }
    }

    pub(crate) fn given_name(&self) -> Option<Arc<str>> {
        self.cold_if_any().and_then(|cold| lock(&cold.name).clone())
    }

    pub(crate) fn func(&self) -> Option<&'static str> {
        self.func
    }

    pub(crate) fn node_ref(&self) -> NodeRef {
        NodeRef {
            id: self.id,
            name: self.display_name(),
        }
    }

    /// A panic in a user function at this node.
    pub(crate) fn panic_error(&self, payload: Box<dyn std::any::Any + Send>) -> StreamError {
        self.meter.count_error();
        StreamError::from_panic(self.node_ref(), payload)
    }

    /// A user error at this node.
    pub(crate) fn user_error(&self, err: BoxError) -> StreamError {
        self.meter.count_error();
        StreamError::from_user(self.node_ref(), err)
    }

    pub(crate) fn upstreams(&self) -> Vec<NodeArc> {
        lock(&self.links)
            .ups
            .iter()
            .filter_map(NodeWeak::upgrade)
            .collect()
    }

    pub(crate) fn downstreams(&self) -> Vec<NodeArc> {
        lock(&self.links)
            .downs
            .iter()
            .filter_map(NodeWeak::upgrade)
            .collect()
    }

    pub(crate) fn link(up: &NodeArc, down: &NodeArc) {
        lock(&up.links).downs.push(down.downgrade());
        lock(&down.links).ups.push(up.downgrade());
    }

    fn unlink(up: &NodeArc, down: &NodeArc) {
        let mut links = lock(&up.links);
        if let Some(i) = links.downs.iter().position(|w| w.is(down)) {
            links.downs.remove(i);
        }
        drop(links);
        let mut links = lock(&down.links);
        if let Some(i) = links.ups.iter().position(|w| w.is(up)) {
            links.ups.remove(i);
        }
    }

    pub(crate) fn new_port(&self) -> Port {
        self.open_upstreams.fetch_add(1, Ordering::AcqRel);
        Port(self.next_port.fetch_add(1, Ordering::Relaxed))
    }

    /// An upstream went away without closing.
    pub(crate) fn drop_port(&self, upstream_closed: bool) {
        if !upstream_closed {
            let _ = self
                .open_upstreams
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        }
    }

    /// One upstream closed. True when that was the last open one, so this node completes.
    pub(crate) fn upstream_closed(&self) -> bool {
        let prev = self
            .open_upstreams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        matches!(prev, Ok(1)) && !self.is_closed()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the node closed; true the first time only.
    pub(crate) fn mark_closed(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        if first {
            self.changed.notify(usize::MAX);
        }
        first
    }

    /// True once a node with a task has emitted what it held and its close has completed.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    fn mark_finished(&self) {
        self.finished.store(true, Ordering::Release);
        self.changed.notify(usize::MAX);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Notes `n` more elements held by this node (buffers, timers, async work). Unless they
    /// are at rest in its saved state, a checkpoint waits for them to be handed on.
    pub(crate) fn hold(&self, n: usize) {
        self.in_flight.fetch_add(n, Ordering::AcqRel);
        if let Some(gate) = self.graph.gate()
            && !self.is_at_rest()
        {
            gate.add(n);
        }
    }

    /// Notes `n` held elements handed on; wakes `flush` waiters when none are left.
    pub(crate) fn release(&self, n: usize) {
        if let Some(gate) = self.graph.gate()
            && !self.is_at_rest()
        {
            gate.sub(n);
        }
        if self.in_flight.fetch_sub(n, Ordering::AcqRel) == n {
            self.changed.notify(usize::MAX);
        }
        // against `hold_mark`, which makes the table and then reads the count
        std::sync::atomic::fence(Ordering::SeqCst);
        if let Some(held) = self.cold_if_any().and_then(|cold| cold.held_marks.get()) {
            held.released(n);
        }
    }

    /// A watermark reaching a node that holds elements (a buffer, a delay, an async step)
    /// must not overtake them: it waits until as many elements as the node held when it came
    /// have been handed on. True if it waits (it will be passed on with `forward`); false if
    /// nothing is held, and it goes on now.
    pub(crate) fn hold_mark(
        &self,
        mark: Mark,
        forward: impl FnOnce() -> Box<dyn Fn(Mark) + Send + Sync>,
    ) -> bool {
        let held = self.cold().held_marks.get_or_init(|| HeldMarks {
            pending: Mutex::new(std::collections::VecDeque::new()),
            forward: forward(),
        });
        std::sync::atomic::fence(Ordering::SeqCst);
        let mut pending = lock(&held.pending);
        let n = self.in_flight.load(Ordering::SeqCst);
        if n == 0 {
            // what came before has all been handed on: the newest mark says it all
            pending.clear();
            return false;
        }
        pending.push_back((n, mark));
        true
    }

    /// Makes `state` what this node saves into checkpoints; `at_rest` when what it holds
    /// is part of that state.
    pub(crate) fn set_saved(&self, state: Weak<dyn SaveState>, at_rest: bool) {
        let cold = self.cold();
        cold.at_rest.store(at_rest, Ordering::Relaxed);
        let _ = cold.saved.set(state);
    }

    /// What this node saves into checkpoints, if it is durable and still there.
    pub(crate) fn saved(&self) -> Option<Arc<dyn SaveState>> {
        self.cold_if_any()
            .and_then(|cold| cold.saved.get())
            .and_then(Weak::upgrade)
    }

    /// Whether what it holds is at rest in its saved state.
    pub(crate) fn is_at_rest(&self) -> bool {
        self.cold_if_any()
            .is_some_and(|cold| cold.at_rest.load(Ordering::Relaxed))
    }

    /// Whether it keeps state between pushes.
    pub(crate) fn keeps_state(&self) -> bool {
        self.keeps_state.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_keeps_state(&self) {
        self.keeps_state.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_durable(&self) -> bool {
        self.cold_if_any()
            .is_some_and(|cold| cold.saved.get().is_some())
    }

    /// The table of its inputs' watermarks, made when first needed from the ports it has had
    /// (until then it has had at most one input, and none went away).
    fn marks(&self) -> &Mutex<PortMarks> {
        self.cold()
            .marks
            .get_or_init(|| Mutex::new(PortMarks::new(self.next_port.load(Ordering::Acquire))))
    }

    /// Whether it has made its table of inputs' watermarks.
    fn has_marks(&self) -> bool {
        self.cold_if_any()
            .is_some_and(|cold| cold.marks.get().is_some())
    }

    /// `mark` arrived on `port`: what the node passes on, if anything. A node that has only
    /// ever had one input passes on what it gets; one with several passes on the least of
    /// theirs (`PortMarks`).
    pub(crate) fn combine_mark(&self, port: Port, mark: Mark) -> Option<Mark> {
        if !self.has_marks() && self.next_port.load(Ordering::Acquire) <= 1 {
            return Some(mark);
        }
        lock(self.marks()).update(port, mark)
    }

    /// Waits until `done` holds, re-checking whenever this node's state changes.
    pub(crate) async fn wait_until(&self, done: impl Fn(&NodeInfo) -> bool) {
        loop {
            if done(self) {
                return;
            }
            let listener = self.changed.listen();
            if done(self) {
                return;
            }
            listener.await;
        }
    }
}

/// The watermarks a node holds back until the elements it held when they came are handed on.
/// Each counts down what is still owed; when one reaches zero, it and those before it are due,
/// and the newest of them is passed on (watermarks only go forward). Bounded by what the node
/// holds: a watermark comes after an element, which the node holds until it hands it on.
struct HeldMarks {
    pending: Mutex<std::collections::VecDeque<(usize, Mark)>>,
    forward: Box<dyn Fn(Mark) + Send + Sync>,
}

impl HeldMarks {
    fn released(&self, n: usize) {
        let due = {
            let mut pending = lock(&self.pending);
            for (owed, _) in pending.iter_mut() {
                *owed = owed.saturating_sub(n);
            }
            let last_due = pending.iter().rposition(|(owed, _)| *owed == 0);
            last_due.and_then(|i| pending.drain(..=i).next_back().map(|(_, mark)| mark))
        };
        if let Some(mark) = due {
            (self.forward)(mark);
        }
    }
}

/// The input side of a node, as its upstreams see it.
pub(crate) trait Inlet<T>: Send + Sync {
    /// Takes one element arriving on `port`.
    fn push(&self, port: Port, x: T, cx: &mut Cx<'_>);
    /// The upstream on `port` has reached end of stream.
    fn close(&self, port: Port, cx: &mut Cx<'_>);
    /// The upstream on `port` passes on a watermark (or goes idle).
    fn watermark(&self, port: Port, mark: Mark, cx: &mut Cx<'_>);
    /// A new upstream is being connected; returns its port.
    fn attach(&self) -> Port;
    /// The upstream on `port` is being disconnected.
    fn detach(&self, port: Port, upstream_closed: bool);
    fn info(&self) -> &NodeInfo;
    /// The node, shared.
    fn node(&self) -> NodeArc;
}

/// One downstream connection.
pub(crate) struct Edge<T> {
    inlet: DirectArc<dyn Inlet<T>>,
    port: Port,
}

impl<T> Clone for Edge<T> {
    fn clone(&self) -> Self {
        Edge {
            inlet: self.inlet.clone(),
            port: self.port,
        }
    }
}

/// The output side of a node: its downstream connections.
///
/// The list is read on every element without a lock (see `edges.rs`) and replaced as a whole
/// when the graph is rewired, which is rare.
pub(crate) struct Outlet<T> {
    /// The node's untyped part, inline: one allocation for both.
    pub(crate) info: NodeInfo,
    edges: Edges<Edge<T>>,
}

impl<T: 'static> HasInfo for Outlet<T> {
    fn node_info(&self) -> &NodeInfo {
        &self.info
    }
}

impl<T: 'static> Outlet<T> {
    /// This outlet's node, shared.
    pub(crate) fn node(self: &Arc<Self>) -> NodeArc {
        NodeArc::of(self)
    }
}

impl<T: Clone + Send + 'static> Outlet<T> {
    pub(crate) fn new(info: NodeInfo) -> Self {
        Outlet {
            info,
            edges: Edges::new(),
        }
    }

    /// Pushes `x` to every downstream, depth first, in the order they were connected. The
    /// last downstream gets `x` itself, the others a clone.
    #[inline]
    pub(crate) fn push(&self, x: T, cx: &mut Cx<'_>) {
        self.info.meter.count_out();
        match self.edges.read(cx.guard()) {
            // The common case, kept to a stack check and a tail call.
            [only] if cx.has_stack() => only.inlet.push(only.port, x, cx),
            edges => Self::push_each(edges, x, cx),
        }
    }

    #[inline(never)]
    fn push_each(edges: &[Edge<T>], x: T, cx: &mut Cx<'_>) {
        if let Some((last, rest)) = edges.split_last() {
            for edge in rest {
                let x = x.clone();
                cx.descend(|cx| edge.inlet.push(edge.port, x, cx));
            }
            cx.descend(|cx| last.inlet.push(last.port, x, cx));
        }
    }

    /// Pushes `x`, which carries `acks`, from this node's task: a push of its own, whose
    /// `Emit` the task awaits.
    pub(crate) fn emit_acked(&self, x: T, acks: Acks) -> Emit {
        Cx::run_acked(&self.info.graph, false, acks, |cx| self.push(x, cx))
    }

    /// Closes this node's output from its task, once the task has emitted what it held;
    /// errors go to the error stream. When the close has gone all the way down, the `Emit` of
    /// the `close()` that reached this node resolves (see `OpNode::close`).
    pub(crate) async fn close_from_task(&self) {
        if let Err(e) = Cx::run(&self.info.graph, false, |cx| self.close(cx)).await {
            self.info.graph.report(e);
        }
        self.info.mark_finished();
    }

    /// Ends this node's output: marks it closed and passes completion downstream.
    pub(crate) fn close(&self, cx: &mut Cx<'_>) {
        if self.info.mark_closed() {
            let edges = self.edges.read(cx.guard()).to_vec();
            for edge in &edges {
                edge.inlet.close(edge.port, cx);
            }
        }
    }

    /// Passes a watermark (or word that this stream is idle) to every downstream, in the
    /// order they were connected.
    pub(crate) fn watermark(&self, mark: Mark, cx: &mut Cx<'_>) {
        for edge in self.edges.read(cx.guard()) {
            cx.descend(|cx| edge.inlet.watermark(edge.port, mark, cx));
        }
    }

    /// Whether anything is connected downstream.
    pub(crate) fn is_connected(&self, cx: &Cx<'_>) -> bool {
        !self.edges.read(cx.guard()).is_empty()
    }

    /// Pushes a watermark from this node's task: a push of its own.
    pub(crate) fn emit_mark(&self, mark: Mark) -> Emit {
        Cx::run(&self.info.graph, false, |cx| self.watermark(mark, cx))
    }

    /// Connects `inlet` as a new downstream. With `dedup`, a second connection to the same
    /// node is ignored (the original keeps downstreams in a set).
    pub(crate) fn connect(self: &Arc<Self>, inlet: Arc<dyn Inlet<T>>, dedup: bool) {
        let id = inlet.info().id;
        let mut added = false;
        self.edges.update(|edges| {
            let mut edges = edges.to_vec();
            if !(dedup && edges.iter().any(|e| e.inlet.info().id == id)) {
                edges.push(Edge {
                    inlet: DirectArc::new(inlet.clone()),
                    port: inlet.attach(),
                });
                added = true;
            }
            edges
        });
        if added {
            NodeInfo::link(&self.node(), &inlet.node());
        }
    }

    /// Disconnects every connection to the node `id`; true if there was one.
    pub(crate) fn disconnect(self: &Arc<Self>, id: u64) -> bool {
        let mut removed = Vec::new();
        self.edges.update(|edges| {
            let (gone, kept) = edges.iter().cloned().partition(|e| e.inlet.info().id == id);
            removed = gone;
            kept
        });
        let upstream_closed = self.info.is_closed();
        for edge in &removed {
            edge.inlet.detach(edge.port, upstream_closed);
            NodeInfo::unlink(&self.node(), &edge.inlet.node());
        }
        !removed.is_empty()
    }
}

impl<T> Drop for Outlet<T> {
    /// Dropping a node drops its downstreams, recursively; give a deep chain the stack it
    /// needs, as a push does.
    fn drop(&mut self) {
        let edges = self.edges.take();
        stacker::maybe_grow(
            crate::emit::STACK_RED_ZONE,
            crate::emit::STACK_SEGMENT,
            || drop(edges),
        );
    }
}

/// What happens at end of stream once an operator's `finish` has run.
pub(crate) enum Finish {
    /// Close the node's outlet now.
    Now,
    /// The operator's own task closes the outlet once it has emitted what it holds.
    Later,
}

/// What an operator does with its input; [`OpNode`] supplies the rest of the node.
pub(crate) trait Operator<T>: Send + Sync + 'static {
    type Out: Clone + Send + 'static;

    /// Handles one element from `port`, pushing results to `out`.
    fn push(&self, port: Port, x: T, out: &Arc<Outlet<Self::Out>>, cx: &mut Cx<'_>);

    /// Runs once when every upstream has closed, before completion goes downstream: the
    /// place to emit what the node still holds, or to tell its task to.
    fn finish(&self, _out: &Arc<Outlet<Self::Out>>, _cx: &mut Cx<'_>) -> Finish {
        Finish::Now
    }

    /// The node's watermark moved (the least of its inputs', see `event_time.rs`): an
    /// operator on event time acts on it (a window closes) before passing it on. The others
    /// pass it on as it is.
    fn watermark(&self, mark: Mark, out: &Arc<Outlet<Self::Out>>, cx: &mut Cx<'_>) {
        out.watermark(mark, cx);
    }

    /// A new upstream got `port` (multi-input operators).
    fn attach(&self, _port: Port) {}

    /// The upstream on `port` was disconnected (multi-input operators).
    fn detach(&self, _port: Port) {}
}

/// A node made of an operator and an outlet.
pub(crate) struct OpNode<T, O: Operator<T>> {
    op: O,
    out: Arc<Outlet<O::Out>>,
    _input: PhantomData<fn(T)>,
}

impl<T, O: Operator<T>> OpNode<T, O> {
    pub(crate) fn new(op: O, out: Arc<Outlet<O::Out>>) -> Arc<Self> {
        Arc::new(OpNode {
            op,
            out,
            _input: PhantomData,
        })
    }
}

impl<T: 'static, O: Operator<T>> Inlet<T> for OpNode<T, O> {
    #[inline]
    fn push(&self, port: Port, x: T, cx: &mut Cx<'_>) {
        // The upstream's outlet has checked the stack.
        self.out.info.meter.count_in();
        self.op.push(port, x, &self.out, cx);
    }

    /// The close protocol (DESIGN.md, "How completion travels"): the node's flush goes first,
    /// and completion goes downstream only once what was flushed is in. When the flush had to
    /// wait (a full buffer, a rate limit's turn, an async sink), the outlet is closed after
    /// that wait, inside the same `close()`'s `Emit`; a node with a task closes its outlet
    /// from the task, and the `Emit` waits for that too. So `close()` resolves once everything
    /// flushed has reached the sinks.
    fn close(&self, port: Port, cx: &mut Cx<'_>) {
        let last = self.out.info.upstream_closed();
        if !last && self.out.info.has_marks() {
            // an ended input holds the others' watermark back no longer
            let moved = lock(self.out.info.marks()).close(port);
            if let Some(mark) = moved {
                cx.descend(|cx| self.op.watermark(mark, &self.out, cx));
            }
        }
        if last {
            cx.descend(|cx| {
                let mark = cx.pending_len();
                match self.op.finish(&self.out, cx) {
                    Finish::Now if cx.pending_len() == mark => self.out.close(cx),
                    Finish::Now => {
                        let out = self.out.clone();
                        cx.then_after(mark, move || {
                            Cx::run(&out.info.graph, false, |cx| out.close(cx))
                        });
                    }
                    Finish::Later => {
                        let info = self.out.node();
                        cx.wait(async move {
                            info.wait_until(NodeInfo::is_finished).await;
                            Ok(())
                        });
                    }
                }
            });
        }
    }

    fn watermark(&self, port: Port, mark: Mark, cx: &mut Cx<'_>) {
        let Some(mark) = self.out.info.combine_mark(port, mark) else {
            return;
        };
        // a node with a task hands its elements on later: the mark waits for those before it
        // (such nodes pass marks on as they are, so it goes straight to the outlet)
        if self.out.info.in_flight() > 0 {
            let out = Arc::downgrade(&self.out);
            let forward = move || -> Box<dyn Fn(Mark) + Send + Sync> {
                Box::new(move |mark| {
                    if let Some(out) = out.upgrade() {
                        // a push of its own; what it leaves pending goes on detached
                        drop(out.emit_mark(mark));
                    }
                })
            };
            if self.out.info.hold_mark(mark, forward) {
                return;
            }
        }
        self.op.watermark(mark, &self.out, cx);
    }

    fn attach(&self) -> Port {
        let port = self.out.info.new_port();
        if port.0 > 0 || self.out.info.has_marks() {
            lock(self.out.info.marks()).attach(port);
        }
        self.op.attach(port);
        port
    }

    fn detach(&self, port: Port, upstream_closed: bool) {
        self.op.detach(port);
        // the next watermark from another input passes on what this one held back
        let _ = lock(self.out.info.marks()).detach(port);
        self.out.info.drop_port(upstream_closed);
    }

    fn info(&self) -> &NodeInfo {
        &self.out.info
    }

    fn node(&self) -> NodeArc {
        self.out.node()
    }
}

impl<T: 'static, O: Operator<T> + SaveState> SaveState for OpNode<T, O> {
    fn save(&self) -> Result<Vec<u8>, String> {
        self.op.save()
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        self.op.restore(bytes)
    }

    fn state_type(&self) -> &'static str {
        self.op.state_type()
    }
}

/// Runs a user function, turning a panic into an error recorded at `info`.
#[inline]
pub(crate) fn guard<R>(info: &NodeInfo, cx: &mut Cx<'_>, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            cx.fail(info.panic_error(payload));
            None
        }
    }
}

/// Runs a fallible user function, turning a panic or an `Err` into an error recorded at `info`.
#[inline]
pub(crate) fn guard_try<R, E: Into<BoxError>>(
    info: &NodeInfo,
    cx: &mut Cx<'_>,
    f: impl FnOnce() -> Result<R, E>,
) -> Option<R> {
    match guard(info, cx, f)? {
        Ok(r) => Some(r),
        Err(e) => {
            cx.fail(info.user_error(e.into()));
            None
        }
    }
}
#[cfg(test)]
mod tests {
    /// Long chains stay fast while nodes stay small (DESIGN.md, "The push path, measured"):
    /// a node's untyped part and its outlet are one allocation, the meter's counters and the
    /// cold fields out of line. Grow them only with a figure that pays for it.
    #[test]
    fn a_nodes_outlet_and_info_stay_small() {
        use std::mem::size_of;
        assert!(
            size_of::<super::NodeInfo>() <= 176,
            "{}",
            size_of::<super::NodeInfo>()
        );
        assert!(size_of::<crate::meter::Meter>() <= 16);
        assert!(
            size_of::<super::Outlet<u64>>() <= 176,
            "{}",
            size_of::<super::Outlet<u64>>()
        );
    }
}
