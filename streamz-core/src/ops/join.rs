//! Operators with several inputs: `union`, `zip`, `combine_latest`, `zip_latest`.
//!
//! Each has one engine over a single element type `E` with one input port per upstream. The
//! `*_all` forms use it directly (`E = T`, output `Vec<T>`, more inputs can be connected later);
//! the typed two-input forms tag each side into `Pair<A, B>` on the way in, and untag on the
//! way out.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, ThreadId};

use event_listener::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ack::Acks;
use crate::checkpoint::{SaveState, decode, encode};
use crate::durable::Durable;
use crate::emit::Cx;
use crate::error::{ErrorKind, StreamError};
use crate::event_time::Mark;
use crate::node::{
    Finish, Inlet, Kind, NodeArc, NodeInfo, OpNode, Operator, Outlet, Port, Shape, lock,
};
use crate::shared::GraphShared;
use crate::stream::{Element, Identity, Stream};

const UNION: Kind = Kind::new("union", Shape::Ellipse);
const ZIP: Kind = Kind::stateful("zip", Shape::Triangle);
const COMBINE_LATEST: Kind = Kind::stateful("combine_latest", Shape::Triangle);
const ZIP_LATEST: Kind = Kind::stateful("zip_latest", Shape::Triangle);

/// The default bound on each `zip` input, as in the original.
const ZIP_MAXSIZE: usize = 10;

/// An input of [`Stream::zip_all`]: a stream, or a value spliced into every tuple at its
/// position (the original's literals).
///
/// # Examples
///
/// ```
/// use streamz_core::{Stream, ZipInput};
///
/// let a = Stream::new();
/// let tagged = Stream::zip_all([ZipInput::Value("a"), ZipInput::Stream(&a)], 10).sink_to_vec();
/// a.emit_blocking("x").unwrap();
/// assert_eq!(tagged.to_vec(), vec![vec!["a", "x"]]);
/// ```
pub enum ZipInput<'a, T> {
    /// Elements come from this stream.
    Stream(&'a Stream<T>),
    /// This value appears in every output at this position.
    Value(T),
}

impl<T> fmt::Debug for ZipInput<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZipInput::Stream(s) => f.debug_tuple("Stream").field(s).finish(),
            ZipInput::Value(_) => f.write_str("Value(..)"),
        }
    }
}

impl<'a, T> From<&'a Stream<T>> for ZipInput<'a, T> {
    fn from(stream: &'a Stream<T>) -> Self {
        ZipInput::Stream(stream)
    }
}

/// One element of either side of a typed two-input join.
#[derive(Clone)]
enum Pair<A, B> {
    A(A),
    B(B),
}

fn unpair<A, B>(items: Vec<Pair<A, B>>) -> Option<(A, B)> {
    let mut items = items.into_iter();
    match (items.next(), items.next()) {
        (Some(Pair::A(a)), Some(Pair::B(b))) => Some((a, b)),
        _ => None,
    }
}

/// Feeds one side of a typed join: tags elements and forwards everything else to the node.
struct Tagged<X, E> {
    node: Arc<dyn Inlet<E>>,
    tag: fn(X) -> E,
}

impl<X: 'static, E: 'static> Inlet<X> for Tagged<X, E> {
    #[inline]
    fn push(&self, port: Port, x: X, cx: &mut Cx<'_>) {
        self.node.push(port, (self.tag)(x), cx);
    }

    fn close(&self, port: Port, cx: &mut Cx<'_>) {
        self.node.close(port, cx);
    }

    fn watermark(&self, port: Port, mark: Mark, cx: &mut Cx<'_>) {
        self.node.watermark(port, mark, cx);
    }

    fn attach(&self) -> Port {
        self.node.attach()
    }

    fn detach(&self, port: Port, upstream_closed: bool) {
        self.node.detach(port, upstream_closed);
    }

    fn info(&self) -> &NodeInfo {
        self.node.info()
    }

    fn node(&self) -> NodeArc {
        self.node.node()
    }
}

/// A node's output, and its input for the caller to connect upstreams to.
type Standalone<I, O> = (Arc<Outlet<O>>, Arc<dyn Inlet<I>>);

/// A node with no upstream yet; its inputs are connected by the caller.
fn standalone<I: 'static, O: Operator<I>>(
    kind: &'static Kind,
    graph: Arc<GraphShared>,
    op: O,
) -> Standalone<I, O::Out> {
    let out = Arc::new(Outlet::new(NodeInfo::new(kind, None, graph)));
    let node: Arc<dyn Inlet<I>> = OpNode::new(op, out.clone());
    (out, node)
}

/// [`standalone`] for an operator whose state checkpoints save.
fn standalone_saved<I: 'static, O: Operator<I> + SaveState>(
    kind: &'static Kind,
    graph: Arc<GraphShared>,
    op: O,
) -> Standalone<I, O::Out> {
    let out = Arc::new(Outlet::new(NodeInfo::new(kind, None, graph)));
    let node = OpNode::new(op, out.clone());
    let saved: Weak<dyn SaveState> = Arc::downgrade(&node) as Weak<dyn SaveState>;
    out.info.set_saved(saved, false);
    let node: Arc<dyn Inlet<I>> = node;
    (out, node)
}

/// Builds a typed two-input join over `Pair<A, B>`.
fn join_pair<A: Element, B: Element, O>(
    a: &Stream<A>,
    b: &Stream<B>,
    kind: &'static Kind,
    op: O,
) -> Stream<O::Out>
where
    O: Operator<Pair<A, B>>,
{
    let (out, node) = standalone(kind, a.out.info.graph.clone(), op);
    a.out.connect(
        Arc::new(Tagged {
            node: node.clone(),
            tag: Pair::<A, B>::A,
        }),
        false,
    );
    b.out.connect(
        Arc::new(Tagged {
            node,
            tag: Pair::<A, B>::B,
        }),
        false,
    );
    Stream::from_outlet(out)
}

// ---------------------------------------------------------------------------------------- zip

enum ZipSlot<E> {
    Input {
        port: Option<Port>,
        /// Waiting elements, each with its acknowledgements.
        buffer: VecDeque<(E, Acks)>,
        /// The thread that last fed this input, to tell a deadlock from a wait.
        feeder: Option<ThreadId>,
    },
    Value(E),
}

struct ZipShared<E> {
    slots: Mutex<Vec<ZipSlot<E>>>,
    maxsize: usize,
    /// Notified whenever a tuple leaves, which makes room in every input.
    room: Event,
}

impl<E: Clone> ZipShared<E> {
    /// Takes one tuple, with the acknowledgements of its parts, if every input has an element.
    fn take_ready(slots: &mut [ZipSlot<E>]) -> Option<(Vec<E>, Acks)> {
        let mut inputs = 0;
        for slot in slots.iter() {
            if let ZipSlot::Input { buffer, .. } = slot {
                if buffer.is_empty() {
                    return None;
                }
                inputs += 1;
            }
        }
        if inputs == 0 {
            return None;
        }
        let mut tuple = Vec::with_capacity(slots.len());
        let mut acks = Acks::default();
        for slot in slots.iter_mut() {
            match slot {
                ZipSlot::Input { buffer, .. } => {
                    if let Some((x, a)) = buffer.pop_front() {
                        tuple.push(x);
                        acks.merge(&a);
                    }
                }
                ZipSlot::Value(v) => tuple.push(v.clone()),
            }
        }
        Some((tuple, acks))
    }
}

/// Where the element on `port` goes, after the room check.
enum Admit<E> {
    /// Taken; here is the tuple it completed, if any, with its parts' acknowledgements.
    Taken(Option<(Vec<E>, Acks)>),
    /// The input is full.
    Full(E),
    /// The input is full and only this thread could drain it.
    Deadlock,
    /// The input was disconnected meanwhile.
    Gone,
}

impl<E: Clone> ZipShared<E> {
    fn admit(&self, port: Port, x: E, acks: &Acks, blocking: bool) -> Admit<E> {
        let me = thread::current().id();
        let mut slots = lock(&self.slots);
        let Some(index) = slots
            .iter()
            .position(|s| matches!(s, ZipSlot::Input { port: Some(p), .. } if *p == port))
        else {
            return Admit::Gone;
        };
        let full =
            matches!(&slots[index], ZipSlot::Input { buffer, .. } if buffer.len() >= self.maxsize);
        if full {
            let other_feeder = slots.iter().any(|s| {
                matches!(s, ZipSlot::Input { buffer, feeder: Some(t), .. } if buffer.is_empty() && *t != me)
            });
            return if blocking && !other_feeder {
                Admit::Deadlock
            } else {
                Admit::Full(x)
            };
        }
        if let ZipSlot::Input { buffer, feeder, .. } = &mut slots[index] {
            buffer.push_back((x, acks.clone()));
            *feeder = Some(me);
        }
        Admit::Taken(Self::take_ready(&mut slots))
    }
}

struct Zip<E, O> {
    shared: Arc<ZipShared<E>>,
    convert: fn(Vec<E>) -> Option<O>,
}

impl<E: Element, O: Element> Zip<E, O> {
    fn emit(&self, tuple: Option<(Vec<E>, Acks)>, out: &Outlet<O>, cx: &mut Cx<'_>) {
        if let Some((tuple, acks)) = tuple {
            self.shared.room.notify(usize::MAX);
            if let Some(o) = (self.convert)(tuple) {
                cx.with_acks(&acks, |cx| out.push(o, cx));
            }
        }
    }
}

impl<E: Element, O: Element> Operator<E> for Zip<E, O> {
    type Out = O;

    fn push(&self, port: Port, x: E, out: &Arc<Outlet<O>>, cx: &mut Cx<'_>) {
        match self.shared.admit(port, x, cx.acks(), cx.is_blocking()) {
            Admit::Taken(tuple) => self.emit(tuple, out, cx),
            Admit::Gone => {}
            Admit::Deadlock => cx.fail(StreamError::new(
                ErrorKind::WouldDeadlock,
                Some(out.info.node_ref()),
                format!(
                    "an input already holds maxsize={} elements, and the inputs it waits on have \
                     only been fed from this thread; feed them from another thread or await emit()",
                    self.shared.maxsize
                ),
            )),
            Admit::Full(x) => {
                // Wait for room; the element travels in the emitter's `Emit`.
                let (shared, out, convert) = (self.shared.clone(), out.clone(), self.convert);
                let acks = cx.acks().clone();
                cx.wait(async move {
                    let mut x = x;
                    loop {
                        let listener = shared.room.listen();
                        match shared.admit(port, x, &acks, false) {
                            Admit::Full(back) => x = back,
                            Admit::Taken(tuple) => {
                                let zip = Zip { shared, convert };
                                let done = Cx::run_acked(&out.info.graph, false, acks, |cx| {
                                    zip.emit(tuple, &out, cx)
                                });
                                return done.await;
                            }
                            Admit::Gone | Admit::Deadlock => return Ok(()),
                        }
                        listener.await;
                    }
                });
            }
        }
    }

    /// End of stream: unmatched elements cannot be emitted; report them.
    fn finish(&self, out: &Arc<Outlet<O>>, cx: &mut Cx<'_>) -> Finish {
        let mut slots = lock(&self.shared.slots);
        let dropped: Vec<VecDeque<(E, Acks)>> = slots
            .iter_mut()
            .filter_map(|s| match s {
                ZipSlot::Input { buffer, .. } => Some(std::mem::take(buffer)),
                ZipSlot::Value(_) => None,
            })
            .collect();
        drop(slots);
        let held: Vec<usize> = dropped.iter().map(VecDeque::len).collect();
        let total: usize = held.iter().sum();
        if total > 0 {
            let err = StreamError::new(
                ErrorKind::Unflushed,
                Some(out.info.node_ref()),
                format!("{total} unmatched elements dropped (held per input: {held:?})"),
            );
            // their sources learn that they failed
            for (_, acks) in dropped.iter().flatten() {
                acks.fail(&err);
            }
            cx.fail(err);
        }
        Finish::Now
    }

    fn attach(&self, port: Port) {
        let mut slots = lock(&self.shared.slots);
        let free = slots
            .iter_mut()
            .find(|s| matches!(s, ZipSlot::Input { port: None, .. }));
        match free {
            Some(ZipSlot::Input { port: p, .. }) => *p = Some(port),
            _ => slots.push(ZipSlot::Input {
                port: Some(port),
                buffer: VecDeque::new(),
                feeder: None,
            }),
        }
    }

    fn detach(&self, port: Port) {
        lock(&self.shared.slots)
            .retain(|s| !matches!(s, ZipSlot::Input { port: Some(p), .. } if *p == port));
        self.shared.room.notify(usize::MAX);
    }
}

/// A durable `zip_all` saves each input's waiting elements (`None` for a literal value's
/// place), without their acknowledgements.
impl<E: Serialize + DeserializeOwned + Send + Sync, O: Send + Sync> SaveState for Zip<E, O> {
    fn save(&self) -> Result<Vec<u8>, String> {
        let slots = lock(&self.shared.slots);
        let held: Vec<Option<Vec<&E>>> = slots
            .iter()
            .map(|slot| match slot {
                ZipSlot::Input { buffer, .. } => Some(buffer.iter().map(|(x, _)| x).collect()),
                ZipSlot::Value(_) => None,
            })
            .collect();
        encode(&held)
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let held: Vec<Option<Vec<E>>> = decode(bytes)?;
        let mut slots = lock(&self.shared.slots);
        if held.len() != slots.len() {
            return Err(format!(
                "it had {} inputs and values, and has {} now",
                held.len(),
                slots.len()
            ));
        }
        for (slot, saved) in slots.iter_mut().zip(held) {
            match (slot, saved) {
                (ZipSlot::Input { buffer, .. }, Some(items)) => {
                    if items.len() > self.shared.maxsize {
                        return Err(format!(
                            "an input holds {} elements, more than maxsize {}",
                            items.len(),
                            self.shared.maxsize
                        ));
                    }
                    *buffer = items.into_iter().map(|x| (x, Acks::default())).collect();
                }
                (ZipSlot::Value(_), None) => {}
                _ => return Err("its inputs and literal values are in other places".to_owned()),
            }
        }
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<Vec<Option<Vec<E>>>>()
    }
}

fn zip_op<E, O>(
    slots: Vec<ZipSlot<E>>,
    maxsize: usize,
    convert: fn(Vec<E>) -> Option<O>,
) -> Zip<E, O> {
    assert!(maxsize >= 1, "zip: maxsize must be at least 1");
    Zip {
        shared: Arc::new(ZipShared {
            slots: Mutex::new(slots),
            maxsize,
            room: Event::new(),
        }),
        convert,
    }
}

fn open_input<E>() -> ZipSlot<E> {
    ZipSlot::Input {
        port: None,
        buffer: VecDeque::new(),
        feeder: None,
    }
}

// ------------------------------------------------------------------ combine_latest, zip_latest

struct LatestSlot<E> {
    port: Option<Port>,
    /// The latest value, with its acknowledgements: they are done once it is replaced.
    value: Option<(E, Acks)>,
    emit_on: bool,
}

/// Both `combine_latest` and `zip_latest`: the latest value of every input. `zip_latest`
/// also queues every element of its first input (the lossless one).
struct Latest<E, O> {
    state: Mutex<LatestState<E>>,
    convert: fn(Vec<E>) -> Option<O>,
    lossless: bool,
}

struct LatestState<E> {
    slots: Vec<LatestSlot<E>>,
    /// `emit_on` for inputs connected after construction.
    emit_on_new: bool,
    /// `zip_latest`: elements of the first input not emitted yet.
    queue: VecDeque<(E, Acks)>,
}

impl<E: Clone> LatestState<E> {
    fn all_present(&self, skip_first: bool) -> bool {
        let skip = usize::from(skip_first);
        self.slots.iter().skip(skip).all(|s| s.value.is_some())
    }

    /// The latest values, and their acknowledgements.
    fn snapshot(&self) -> (Vec<E>, Acks) {
        let mut acks = Acks::default();
        let values = self
            .slots
            .iter()
            .filter_map(|s| {
                let (x, a) = s.value.as_ref()?;
                acks.merge(a);
                Some(x.clone())
            })
            .collect();
        (values, acks)
    }
}

impl<E: Element, O: Element> Operator<E> for Latest<E, O> {
    type Out = O;

    fn push(&self, port: Port, x: E, out: &Arc<Outlet<O>>, cx: &mut Cx<'_>) {
        let mut state = lock(&self.state);
        let Some(index) = state.slots.iter().position(|s| s.port == Some(port)) else {
            return;
        };
        let mut outputs = Vec::new();
        // values replaced are done, once the lock is let go
        let mut replaced = Vec::new();
        let acks = cx.acks().clone();
        if self.lossless {
            if index == 0 {
                state.queue.push_back((x, acks));
            } else {
                replaced.extend(state.slots[index].value.replace((x, acks)));
            }
            if state.all_present(true) {
                while let Some(head) = state.queue.pop_front() {
                    replaced.extend(state.slots[0].value.replace(head));
                    outputs.push(state.snapshot());
                }
            }
        } else {
            replaced.extend(state.slots[index].value.replace((x, acks)));
            if state.slots[index].emit_on && state.all_present(false) {
                outputs.push(state.snapshot());
            }
        }
        drop(state);
        drop(replaced);
        for (output, acks) in outputs {
            if let Some(o) = (self.convert)(output) {
                cx.with_acks(&acks, |cx| out.push(o, cx));
            }
        }
    }

    fn finish(&self, out: &Arc<Outlet<O>>, cx: &mut Cx<'_>) -> Finish {
        let mut state = lock(&self.state);
        let queue = std::mem::take(&mut state.queue);
        // no input sends more: the latest values are done with
        let latest: Vec<_> = state
            .slots
            .iter_mut()
            .filter_map(|s| s.value.take())
            .collect();
        drop(state);
        drop(latest);
        if !queue.is_empty() {
            let err = StreamError::new(
                ErrorKind::Unflushed,
                Some(out.info.node_ref()),
                format!(
                    "{} elements of the lossless input dropped: some input never produced a value",
                    queue.len()
                ),
            );
            for (_, acks) in &queue {
                acks.fail(&err);
            }
            cx.fail(err);
        }
        Finish::Now
    }

    fn attach(&self, port: Port) {
        let mut state = lock(&self.state);
        if let Some(slot) = state.slots.iter_mut().find(|s| s.port.is_none()) {
            slot.port = Some(port);
        } else {
            let emit_on = state.emit_on_new;
            state.slots.push(LatestSlot {
                port: Some(port),
                value: None,
                emit_on,
            });
        }
    }

    fn detach(&self, port: Port) {
        let mut state = lock(&self.state);
        state.slots.retain(|s| s.port != Some(port));
        if !state.slots.iter().any(|s| s.emit_on) {
            for slot in &mut state.slots {
                slot.emit_on = true;
            }
        }
    }
}

/// A durable `combine_latest` or `zip_latest` saves each input's latest value and the
/// lossless input's waiting elements.
impl<E: Serialize + DeserializeOwned + Send + Sync, O: Send + Sync> SaveState for Latest<E, O> {
    fn save(&self) -> Result<Vec<u8>, String> {
        let state = lock(&self.state);
        let values: Vec<Option<&E>> = state
            .slots
            .iter()
            .map(|s| s.value.as_ref().map(|(x, _)| x))
            .collect();
        let queue: Vec<&E> = state.queue.iter().map(|(x, _)| x).collect();
        encode(&(values, queue))
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let (values, queue): (Vec<Option<E>>, Vec<E>) = decode(bytes)?;
        let mut state = lock(&self.state);
        if values.len() != state.slots.len() {
            return Err(format!(
                "it had {} inputs, and has {} now",
                values.len(),
                state.slots.len()
            ));
        }
        for (slot, value) in state.slots.iter_mut().zip(values) {
            slot.value = value.map(|x| (x, Acks::default()));
        }
        state.queue = queue.into_iter().map(|x| (x, Acks::default())).collect();
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<(Vec<Option<E>>, Vec<E>)>()
    }
}

fn latest_op<E, O>(
    emit_on: Vec<bool>,
    emit_on_new: bool,
    lossless: bool,
    convert: fn(Vec<E>) -> Option<O>,
) -> Latest<E, O> {
    Latest {
        state: Mutex::new(LatestState {
            slots: emit_on
                .into_iter()
                .map(|emit_on| LatestSlot {
                    port: None,
                    value: None,
                    emit_on,
                })
                .collect(),
            emit_on_new,
            queue: VecDeque::new(),
        }),
        convert,
        lossless,
    }
}

// ------------------------------------------------------------------------- building methods

impl<T: Element> Stream<T> {
    /// A node with several upstreams, which more can be connected to later.
    fn join_all<O: Operator<T>>(
        kind: &'static Kind,
        inputs: &[&Stream<T>],
        dedup: bool,
        op: O,
    ) -> Stream<O::Out> {
        let graph = match inputs.first() {
            Some(first) => first.out.info.graph.clone(),
            None => GraphShared::new(None),
        };
        let (out, node) = standalone(kind, graph, op);
        for input in inputs {
            input.out.connect(node.clone(), dedup);
        }
        Stream::with_inlet(out, node)
    }

    /// Emits every element of this stream and of `others`, as each arrives. A stream given
    /// twice is delivered once.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// let (a, b) = (Stream::new(), Stream::new());
    /// let out = a.union([&b]).sink_to_vec();
    /// a.emit_blocking(1).unwrap();
    /// b.emit_blocking(2).unwrap();
    /// a.emit_blocking(3).unwrap();
    /// assert_eq!(out.to_vec(), vec![1, 2, 3]);
    /// ```
    pub fn union<'a>(&self, others: impl IntoIterator<Item = &'a Stream<T>>) -> Stream<T> {
        let mut inputs: Vec<&Stream<T>> = vec![self];
        for other in others {
            inputs.push(other);
        }
        Self::join_all(&UNION, &inputs, true, Identity)
    }

    /// Pairs the elements of this stream and `other` in order: the first of each, then the
    /// second of each, …. Each side holds at most 10 unmatched elements (the original's
    /// default `maxsize`); see [`zip_all`](Stream::zip_all) for what happens beyond that.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// let (numbers, names) = (Stream::new(), Stream::new());
    /// let out = numbers.zip(&names).sink_to_vec();
    /// numbers.emit_blocking(1).unwrap();
    /// numbers.emit_blocking(2).unwrap();
    /// names.emit_blocking("one").unwrap();
    /// names.emit_blocking("two").unwrap();
    /// assert_eq!(out.to_vec(), vec![(1, "one"), (2, "two")]);
    /// ```
    pub fn zip<U: Element>(&self, other: &Stream<U>) -> Stream<(T, U)> {
        let op = zip_op(
            vec![open_input(), open_input()],
            ZIP_MAXSIZE,
            unpair::<T, U>,
        );
        join_pair(self, other, &ZIP, op)
    }

    /// Zips any number of streams of one type into `Vec`s, with literal values spliced in
    /// at their positions (the original's `zip(a, 123, b)`). More streams can be connected
    /// later with [`connect`](Stream::connect), and removed with
    /// [`disconnect`](Stream::disconnect).
    ///
    /// Each input holds at most `maxsize` unmatched elements. An element arriving at a full
    /// input waits, in its [`Emit`](crate::Emit), until a tuple leaves: that is the
    /// backpressure. Under [`emit_blocking`](Stream::emit_blocking), when the inputs it waits
    /// on have only been fed from the calling thread, waiting could never end, so the element
    /// is refused with [`ErrorKind::WouldDeadlock`] instead (the original deadlocks, or lets
    /// the buffer grow without bound). At end of stream, unmatched elements are reported as an
    /// [`ErrorKind::Unflushed`] error from `close`.
    ///
    /// # Panics
    ///
    /// If `maxsize` is 0, or no input is a stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{Stream, ZipInput};
    ///
    /// let (a, b) = (Stream::new(), Stream::new());
    /// let out = Stream::zip_all([(&a).into(), ZipInput::Value(123), (&b).into()], 10).sink_to_vec();
    /// a.emit_blocking(1).unwrap();
    /// b.emit_blocking(2).unwrap();
    /// assert_eq!(out.to_vec(), vec![vec![1, 123, 2]]);
    /// ```
    pub fn zip_all<'a>(
        inputs: impl IntoIterator<Item = ZipInput<'a, T>>,
        maxsize: usize,
    ) -> Stream<Vec<T>> {
        let mut streams = Vec::new();
        let mut slots = Vec::new();
        for input in inputs {
            match input {
                ZipInput::Stream(s) => {
                    streams.push(s);
                    slots.push(open_input());
                }
                ZipInput::Value(v) => slots.push(ZipSlot::Value(v)),
            }
        }
        assert!(
            !streams.is_empty(),
            "zip_all: at least one input must be a stream"
        );
        Self::join_all(&ZIP, &streams, false, zip_op(slots, maxsize, Some))
    }

    /// Emits `(latest of this, latest of other)` whenever either emits, once both have.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// let (a, b) = (Stream::new(), Stream::new());
    /// let out = a.combine_latest(&b).sink_to_vec();
    /// a.emit_blocking(1).unwrap();
    /// a.emit_blocking(2).unwrap();
    /// b.emit_blocking('a').unwrap();
    /// a.emit_blocking(3).unwrap();
    /// b.emit_blocking('b').unwrap();
    /// assert_eq!(out.to_vec(), vec![(2, 'a'), (3, 'a'), (3, 'b')]);
    /// ```
    pub fn combine_latest<U: Element>(&self, other: &Stream<U>) -> Stream<(T, U)> {
        let op = latest_op(vec![true, true], true, false, unpair::<T, U>);
        join_pair(self, other, &COMBINE_LATEST, op)
    }

    /// Emits the latest value of every input, as a `Vec` in input order, whenever one of the
    /// inputs listed in `emit_on` (by position in `inputs`; `None` for all) emits, once every
    /// input has emitted. Inputs connected later emit when `emit_on` is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// let (a, b, c) = (Stream::new(), Stream::new(), Stream::new());
    /// let out = Stream::combine_latest_all(&[&a, &b, &c], Some(&[1])).sink_to_vec();
    /// a.emit_blocking(1).unwrap();
    /// b.emit_blocking(2).unwrap();
    /// c.emit_blocking(3).unwrap();
    /// b.emit_blocking(4).unwrap(); // emits: b is listed
    /// a.emit_blocking(5).unwrap();
    /// c.emit_blocking(6).unwrap();
    /// b.emit_blocking(7).unwrap(); // emits
    /// assert_eq!(out.to_vec(), vec![vec![1, 4, 3], vec![5, 7, 6]]);
    /// ```
    pub fn combine_latest_all(inputs: &[&Stream<T>], emit_on: Option<&[usize]>) -> Stream<Vec<T>> {
        let flags = (0..inputs.len())
            .map(|i| emit_on.is_none_or(|on| on.contains(&i)))
            .collect();
        let op = latest_op(flags, emit_on.is_none(), false, Some);
        Self::join_all(&COMBINE_LATEST, inputs, false, op)
    }

    /// Emits every element of this stream exactly once, paired with the latest value of
    /// `other`; `other`'s elements never emit by themselves. Elements of this stream that
    /// arrive before `other` has emitted wait, and are emitted when it does.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// let (a, b) = (Stream::new(), Stream::new());
    /// let out = a.zip_latest(&b).sink_to_vec();
    /// a.emit_blocking(1).unwrap();
    /// a.emit_blocking(2).unwrap();
    /// b.emit_blocking('a').unwrap();
    /// b.emit_blocking('b').unwrap();
    /// a.emit_blocking(3).unwrap();
    /// assert_eq!(out.to_vec(), vec![(1, 'a'), (2, 'a'), (3, 'b')]);
    /// ```
    pub fn zip_latest<U: Element>(&self, other: &Stream<U>) -> Stream<(T, U)> {
        let op = latest_op(vec![false, false], false, true, unpair::<T, U>);
        join_pair(self, other, &ZIP_LATEST, op)
    }

    /// [`zip_latest`](Stream::zip_latest) over any number of streams of one type: every
    /// element of `lossless` is emitted once, with the latest values of `others`, as a `Vec`
    /// in input order.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// let (s1, s2, s3) = (Stream::new(), Stream::new(), Stream::new());
    /// let out = Stream::zip_latest_all(&s1, &[&s2, &s3]).sink_to_vec();
    /// s1.emit_blocking("1").unwrap();
    /// s2.emit_blocking("I").unwrap();
    /// s2.emit_blocking("II").unwrap();
    /// s3.emit_blocking("a").unwrap();
    /// s1.emit_blocking("2").unwrap();
    /// assert_eq!(out.to_vec(), vec![vec!["1", "II", "a"], vec!["2", "II", "a"]]);
    /// ```
    pub fn zip_latest_all(lossless: &Stream<T>, others: &[&Stream<T>]) -> Stream<Vec<T>> {
        let mut inputs = vec![lossless];
        inputs.extend_from_slice(others);
        let op = latest_op(vec![false; inputs.len()], false, true, Some);
        Self::join_all(&ZIP_LATEST, &inputs, false, op)
    }
}

impl<T: Element + Serialize + DeserializeOwned + Sync> Durable<'_, T> {
    /// The inputs, this stream first: a join's inputs in the order they are connected.
    fn with(&self, others: &[&Stream<T>]) -> Vec<Stream<T>> {
        std::iter::once(self.stream)
            .chain(others.iter().copied())
            .cloned()
            .collect()
    }

    /// A node over `inputs` whose state checkpoints save.
    fn join_saved<O: Operator<T> + SaveState>(
        kind: &'static Kind,
        inputs: &[Stream<T>],
        op: O,
    ) -> Stream<O::Out> {
        let graph = inputs[0].out.info.graph.clone();
        let (out, node) = standalone_saved(kind, graph, op);
        for input in inputs {
            input.out.connect(node.clone(), false);
        }
        Stream::with_inlet(out, node)
    }

    /// A durable [`zip_all`](Stream::zip_all) of this stream and `others`, in that order:
    /// the elements waiting in each input are saved in checkpoints.
    ///
    /// # Panics
    ///
    /// If `maxsize` is 0.
    pub fn zip(&self, others: &[&Stream<T>], maxsize: usize) -> Stream<Vec<T>> {
        let inputs = self.with(others);
        let slots = inputs.iter().map(|_| open_input()).collect();
        Self::join_saved(&ZIP, &inputs, zip_op(slots, maxsize, Some))
    }

    /// A durable [`combine_latest_all`](Stream::combine_latest_all) of this stream and
    /// `others`, in that order (`emit_on` counts this stream as 0): the latest values are
    /// saved.
    pub fn combine_latest(
        &self,
        others: &[&Stream<T>],
        emit_on: Option<&[usize]>,
    ) -> Stream<Vec<T>> {
        let inputs = self.with(others);
        let flags = (0..inputs.len())
            .map(|i| emit_on.is_none_or(|on| on.contains(&i)))
            .collect();
        let op = latest_op(flags, emit_on.is_none(), false, Some);
        Self::join_saved(&COMBINE_LATEST, &inputs, op)
    }

    /// A durable [`zip_latest_all`](Stream::zip_latest_all), this stream the lossless one:
    /// the latest values, and this stream's elements waiting for them, are saved.
    pub fn zip_latest(&self, others: &[&Stream<T>]) -> Stream<Vec<T>> {
        let inputs = self.with(others);
        let op = latest_op(vec![false; inputs.len()], false, true, Some);
        Self::join_saved(&ZIP_LATEST, &inputs, op)
    }
}
