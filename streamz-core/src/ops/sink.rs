//! Sinks, the ends of a graph: `sink`, `try_sink`, `sink_to_vec`, and their handles.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::emit::Cx;
use crate::error::BoxError;
use crate::node::{
    Kind, NodeArc, NodeInfo, Operator, Outlet, Port, Shape, fn_name, guard, guard_try, lock,
};
use crate::stream::{Element, GraphNode, Stream};

const SINK: Kind = Kind::new("sink", Shape::Trapezium);
const SINK_TO_VEC: Kind = Kind::new("sink_to_vec", Shape::Trapezium);

/// A sink's `FnMut`, called one element at a time, and safe to re-enter from its own thread.
///
/// A feedback loop (the function emits into a source upstream of itself, the original's
/// `sink(source.emit)`) reaches the same sink again while its function is still running. An
/// `FnMut` cannot be called inside itself, and waiting for the lock would deadlock, so such
/// an element is queued and handled by the outer call as soon as the function returns, in the
/// order they came: the loop runs to completion. Another thread waits for the lock as usual.
struct Reentrant<F, T> {
    f: Mutex<F>,
    /// The thread calling `f` now (its marker's address), 0 when none.
    owner: AtomicUsize,
    /// Elements that arrived from inside `f` on the owner's thread, and how many.
    deferred: Mutex<VecDeque<T>>,
    waiting: AtomicUsize,
}

thread_local! {
    static THREAD_MARK: u8 = const { 0 };
}

fn this_thread() -> usize {
    THREAD_MARK.with(|m| m as *const u8 as usize)
}

impl<F, T> Reentrant<F, T> {
    fn new(f: F) -> Self {
        Reentrant {
            f: Mutex::new(f),
            owner: AtomicUsize::new(0),
            deferred: Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Calls `call(f, x)`, and then for every element that arrived meanwhile from inside it.
    #[inline]
    fn call(&self, x: T, cx: &mut Cx<'_>, mut call: impl FnMut(&mut F, T, &mut Cx<'_>)) {
        let me = this_thread();
        if self.owner.load(Ordering::Relaxed) == me {
            lock(&self.deferred).push_back(x);
            self.waiting.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut f = lock(&self.f);
        self.owner.store(me, Ordering::Relaxed);
        call(&mut f, x, cx);
        // only this thread defers, and only while it owns `f`: no lock unless it did
        while self.waiting.load(Ordering::Relaxed) > 0 {
            let next = lock(&self.deferred).pop_front();
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            if let Some(y) = next {
                call(&mut f, y, cx);
            }
        }
        self.owner.store(0, Ordering::Relaxed);
    }
}

struct SinkFn<F, T>(Reentrant<F, T>);

impl<T: Send + 'static, F: FnMut(T) + Send + 'static> Operator<T> for SinkFn<F, T> {
    type Out = ();

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<()>>, cx: &mut Cx<'_>) {
        self.0.call(x, cx, |f, x, cx| {
            guard(&out.info, cx, || (f)(x));
        });
    }
}

struct TrySinkFn<F, T>(Reentrant<F, T>);

impl<T, E, F> Operator<T> for TrySinkFn<F, T>
where
    T: Send + 'static,
    E: Into<BoxError>,
    F: FnMut(T) -> Result<(), E> + Send + 'static,
{
    type Out = ();

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<()>>, cx: &mut Cx<'_>) {
        self.0.call(x, cx, |f, x, cx| {
            guard_try(&out.info, cx, || (f)(x));
        });
    }
}

/// Appends to the caller's `Vec` while the caller holds its [`VecSink`]; once that is dropped,
/// elements are dropped instead of kept.
struct ToVec<T>(Weak<Mutex<Vec<T>>>);

impl<T: Send + 'static> Operator<T> for ToVec<T> {
    type Out = ();

    fn push(&self, _: Port, x: T, _out: &Arc<Outlet<()>>, _cx: &mut Cx<'_>) {
        if let Some(items) = self.0.upgrade() {
            lock(&items).push(x);
        }
    }
}

/// A handle on a sink node, returned by [`Stream::sink`]: to watch for end of stream, or to
/// [`disconnect`](Stream::disconnect) it.
///
/// # Examples
///
/// ```
/// use streamz_core::Stream;
///
/// let source = Stream::<i32>::new();
/// let sink = source.sink(|x| println!("{x}")).named("print");
/// assert_eq!(sink.name(), "print");
/// assert!(!sink.is_closed());
/// source.close().wait().unwrap();
/// assert!(sink.is_closed());
/// assert!(source.disconnect(&sink));
/// ```
#[derive(Clone)]
pub struct Sink {
    info: NodeArc,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("id", &self.info.id)
            .field("name", &self.info.display_name())
            .finish()
    }
}

impl Sink {
    pub(crate) fn of<T: 'static>(stream: &Stream<T>) -> Self {
        Sink {
            info: stream.out.node(),
        }
    }

    /// The sink's name (see [`Stream::named`]).
    pub fn name(&self) -> String {
        self.info.display_name().to_string()
    }

    /// Names the sink.
    pub fn named(self, name: &str) -> Self {
        self.info.set_name(name);
        self
    }

    /// True once end of stream has reached the sink.
    pub fn is_closed(&self) -> bool {
        self.info.is_closed()
    }

    /// Waits until end of stream has reached the sink.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let info = self.info.clone();
        async move { info.wait_until(NodeInfo::is_closed).await }
    }
}

impl GraphNode for Sink {
    fn node_id(&self) -> u64 {
        self.info.id
    }
}

/// The handle returned by [`Stream::sink_to_vec`]: the elements that reached the sink so far.
///
/// Clones share the same `Vec`. When every clone is dropped, the sink stops keeping elements,
/// so a forgotten `sink_to_vec` does not grow forever.
///
/// # Examples
///
/// ```
/// let source = streamz_core::Stream::new();
/// let out = source.map(|x: u8| x + 1).sink_to_vec();
/// source.emit_blocking(1).unwrap();
/// source.emit_blocking(2).unwrap();
/// assert_eq!(out.len(), 2);
/// assert_eq!(out.to_vec(), vec![2, 3]); // a copy
/// assert_eq!(out.take(), vec![2, 3]); // moved out
/// assert!(out.is_empty());
/// ```
#[must_use = "a dropped VecSink still collects every element, where nobody can read them"]
pub struct VecSink<T> {
    items: Arc<Mutex<Vec<T>>>,
    sink: Sink,
}

impl<T> Clone for VecSink<T> {
    fn clone(&self) -> Self {
        VecSink {
            items: self.items.clone(),
            sink: self.sink.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for VecSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VecSink")
            .field("sink", &self.sink)
            .field("items", &*lock(&self.items))
            .finish()
    }
}

impl<T> VecSink<T> {
    /// A copy of the elements so far.
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        lock(&self.items).clone()
    }

    /// Takes the elements so far, leaving the sink's `Vec` empty.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *lock(&self.items))
    }

    /// How many elements the sink holds.
    pub fn len(&self) -> usize {
        lock(&self.items).len()
    }

    /// True when the sink holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once end of stream has reached the sink.
    pub fn is_closed(&self) -> bool {
        self.sink.is_closed()
    }

    /// Waits until end of stream has reached the sink.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.sink.closed()
    }

    /// The sink node.
    pub fn sink(&self) -> &Sink {
        &self.sink
    }
}

impl<T> GraphNode for VecSink<T> {
    fn node_id(&self) -> u64 {
        self.sink.node_id()
    }
}

impl<T: Element> Stream<T> {
    /// Calls `f` on every element. A sink emits nothing downstream.
    ///
    /// A panic in `f` becomes an error from the `emit` of that element; the sink goes on with
    /// the next one.
    ///
    /// `f` may emit into a stream upstream of itself (a feedback loop, the original's
    /// `sink(source.emit)`): an element that comes back to this sink while `f` is running is
    /// handled as soon as `f` returns, in order, so the loop runs to its end without
    /// deadlocking or growing the stack. Calls from other threads wait their turn.
    ///
    /// ```
    /// let source = streamz_core::Stream::<u64>::new();
    /// let steps = source.sink_to_vec();
    /// let again = source.clone();
    /// source.sink(move |n| if n > 1 { again.emit_blocking(n / 2).unwrap() });
    /// source.emit_blocking(20).unwrap();
    /// assert_eq!(steps.to_vec(), vec![20, 10, 5, 2, 1]);
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let source = streamz_core::Stream::new();
    /// let seen = Arc::new(Mutex::new(String::new()));
    /// let log = seen.clone();
    /// source.sink(move |word: &str| log.lock().unwrap().push_str(word));
    /// source.emit_blocking("stream").unwrap();
    /// source.emit_blocking("z").unwrap();
    /// assert_eq!(*seen.lock().unwrap(), "streamz");
    /// ```
    pub fn sink<F>(&self, f: F) -> Sink
    where
        F: FnMut(T) + Send + 'static,
    {
        Sink::of(&self.attach(&SINK, fn_name::<F>(), SinkFn(Reentrant::new(f))))
    }

    /// Calls `f` on every element; an `Err` is an error from the `emit` of that element.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// source.try_sink(|x: i32| if x < 0 { Err("negative") } else { Ok(()) });
    /// assert!(source.emit_blocking(1).is_ok());
    /// assert!(source.emit_blocking(-1).is_err());
    /// ```
    pub fn try_sink<E, F>(&self, f: F) -> Sink
    where
        E: Into<BoxError>,
        F: FnMut(T) -> Result<(), E> + Send + 'static,
    {
        Sink::of(&self.attach(&SINK, fn_name::<F>(), TrySinkFn(Reentrant::new(f))))
    }

    /// Keeps every element in a `Vec` that the returned handle reads (the original's
    /// `sink_to_list`). The `Vec` grows with every element until you
    /// [`take`](VecSink::take) them or drop the handle.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.sink_to_vec();
    /// source.emit_blocking('x').unwrap();
    /// assert_eq!(out.take(), vec!['x']);
    /// assert!(out.is_empty());
    /// ```
    pub fn sink_to_vec(&self) -> VecSink<T> {
        let items = Arc::new(Mutex::new(Vec::new()));
        let stream = self.attach(&SINK_TO_VEC, None, ToVec(Arc::downgrade(&items)));
        VecSink {
            items,
            sink: Sink::of(&stream),
        }
    }
}
