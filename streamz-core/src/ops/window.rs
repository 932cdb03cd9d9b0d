//! Count-based windows: `sliding_window`, and `collect` with its [`Collector`] handle.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ack::Acks;
use crate::checkpoint::{SaveState, decode, encode};
use crate::durable::Durable;
use crate::emit::{Cx, Emit};
use crate::node::{Finish, Kind, Operator, Outlet, Port, Shape, lock};
use crate::stream::{Element, GraphNode, Stream};

const SLIDING_WINDOW: Kind = Kind::stateful("sliding_window", Shape::Diamond);
const COLLECT: Kind = Kind::stateful("collect", Shape::Diamond);

struct SlidingWindow<T> {
    window: Mutex<Window<T>>,
    n: usize,
    return_partial: bool,
}

/// The last `n` elements, and their acknowledgements once any element has had some: each is
/// done only when it has left the window.
struct Window<T> {
    items: VecDeque<T>,
    acks: Option<VecDeque<Acks>>,
}

impl<T: Element> Operator<T> for SlidingWindow<T> {
    type Out = Vec<T>;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<Vec<T>>>, cx: &mut Cx<'_>) {
        let mut guard = lock(&self.window);
        let window = &mut *guard;
        // the oldest element's acknowledgements are let go after the lock
        let mut left = None;
        if window.items.len() == self.n {
            window.items.pop_front();
            if let Some(acks) = &mut window.acks {
                left = acks.pop_front();
            }
        }
        window.items.push_back(x);
        if window.acks.is_none() && !cx.acks().is_empty() {
            let earlier = window.items.len() - 1;
            window.acks = Some(
                std::iter::repeat_with(Acks::default)
                    .take(earlier)
                    .collect(),
            );
        }
        if let Some(acks) = &mut window.acks {
            acks.push_back(cx.acks().clone());
        }
        if !self.return_partial && window.items.len() < self.n {
            drop(guard);
            drop(left);
            return;
        }
        let emitted: Vec<T> = window.items.iter().cloned().collect();
        // the window is derived from every element in it
        let mut carried = Acks::default();
        for acks in window.acks.iter().flatten() {
            carried.merge(acks);
        }
        drop(guard);
        drop(left);
        cx.with_acks(&carried, |cx| out.push(emitted, cx));
    }
}

impl<T: Serialize + DeserializeOwned + Send + Sync> SaveState for SlidingWindow<T> {
    fn save(&self) -> Result<Vec<u8>, String> {
        encode(&lock(&self.window).items)
    }

    /// The elements come back without acknowledgements: those of a run that stopped are gone.
    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let items: VecDeque<T> = decode(bytes)?;
        if items.len() > self.n {
            return Err(format!(
                "it holds {} elements, more than the window's {}",
                items.len(),
                self.n
            ));
        }
        *lock(&self.window) = Window { items, acks: None };
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<VecDeque<T>>()
    }
}

fn sliding_window_op<T>(n: usize, return_partial: bool) -> SlidingWindow<T> {
    assert!(n >= 1, "sliding_window: n must be at least 1");
    SlidingWindow {
        // grows with what it holds: `n` sizes nothing up front
        window: Mutex::new(Window {
            items: VecDeque::new(),
            acks: None,
        }),
        n,
        return_partial,
    }
}

/// What `collect` holds until a flush: the elements and their acknowledgements.
struct Held<T> {
    items: Vec<T>,
    acks: Acks,
}

impl<T> Held<T> {
    fn take(&mut self) -> (Vec<T>, Acks) {
        (
            std::mem::take(&mut self.items),
            std::mem::take(&mut self.acks),
        )
    }
}

struct Collect<T> {
    held: Arc<Mutex<Held<T>>>,
}

impl<T: Element> Operator<T> for Collect<T> {
    type Out = Vec<T>;

    fn push(&self, _: Port, x: T, _out: &Arc<Outlet<Vec<T>>>, cx: &mut Cx<'_>) {
        let mut held = lock(&self.held);
        held.items.push(x);
        held.acks.merge(cx.acks());
    }

    fn finish(&self, out: &Arc<Outlet<Vec<T>>>, cx: &mut Cx<'_>) -> Finish {
        let (items, acks) = lock(&self.held).take();
        if !items.is_empty() {
            cx.with_acks(&acks, |cx| out.push(items, cx));
        }
        Finish::Now
    }
}

/// The handle returned by [`Stream::collect`]: a stream of the batches it emits, and
/// [`flush`](Collector::flush) to emit one.
///
/// It dereferences to that [`Stream<Vec<T>>`], so stream methods apply to it directly.
///
/// # Examples
///
/// ```
/// let source = streamz_core::Stream::new();
/// let collector = source.collect();
/// let batches = collector.sink_to_vec(); // a method of the stream of batches
/// source.emit_blocking('a').unwrap();
/// source.emit_blocking('b').unwrap();
/// assert_eq!(collector.len(), 2);
/// collector.flush().wait().unwrap();
/// assert!(collector.is_empty());
/// assert_eq!(batches.to_vec(), vec![vec!['a', 'b']]);
/// ```
#[must_use = "a Collector's elements are emitted only by its `flush`: keep it to flush them"]
pub struct Collector<T> {
    stream: Stream<Vec<T>>,
    held: Arc<Mutex<Held<T>>>,
}

impl<T> Clone for Collector<T> {
    fn clone(&self) -> Self {
        Collector {
            stream: self.stream.clone(),
            held: self.held.clone(),
        }
    }
}

impl<T> fmt::Debug for Collector<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collector")
            .field("stream", &self.stream)
            .field("held", &lock(&self.held).items.len())
            .finish()
    }
}

impl<T: Element> Collector<T> {
    /// Emits everything collected since the last flush as one `Vec` (an empty one if
    /// nothing was) and starts over. Returns the completion of that batch, as
    /// [`Stream::emit`] does.
    ///
    /// (The graph-wide wait is [`Stream::flush`]; reach it with `collector.stream().flush()`.)
    pub fn flush(&self) -> Emit {
        let (batch, acks) = lock(&self.held).take();
        self.stream.push_new_acked(batch, acks)
    }

    /// How many elements are waiting for the next flush.
    pub fn len(&self) -> usize {
        lock(&self.held).items.len()
    }

    /// True when nothing is waiting for the next flush.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stream of batches.
    pub fn stream(&self) -> &Stream<Vec<T>> {
        &self.stream
    }
}

impl<T> Deref for Collector<T> {
    type Target = Stream<Vec<T>>;

    fn deref(&self) -> &Stream<Vec<T>> {
        &self.stream
    }
}

impl<T> GraphNode for Collector<T> {
    fn node_id(&self) -> u64 {
        self.stream.id()
    }
}

impl<T: Element> Stream<T> {
    /// Emits the last `n` elements as a `Vec` on every element, oldest first. With
    /// `return_partial` (the original's default) the first windows are shorter, growing to `n`;
    /// without it, only full windows are emitted.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.sliding_window(2, true).sink_to_vec();
    /// for x in 0..3 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![vec![0], vec![0, 1], vec![1, 2]]);
    /// ```
    pub fn sliding_window(&self, n: usize, return_partial: bool) -> Stream<Vec<T>> {
        self.attach(&SLIDING_WINDOW, None, sliding_window_op(n, return_partial))
    }

    /// Holds elements until [`Collector::flush`] is called, which emits them as one `Vec`.
    /// At end of stream whatever is held is emitted, so nothing is lost. It holds everything it
    /// is given between flushes: flush it as often as memory requires.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    ///
    /// let items = Stream::new();
    /// let ticks = Stream::<()>::new();
    /// let collector = items.collect();
    /// let batches = collector.sink_to_vec();
    /// let flusher = collector.clone();
    /// ticks.sink(move |()| flusher.flush().wait().unwrap());
    ///
    /// items.emit_blocking(1).unwrap();
    /// items.emit_blocking(2).unwrap();
    /// ticks.emit_blocking(()).unwrap();
    /// ticks.emit_blocking(()).unwrap();
    /// items.emit_blocking(3).unwrap();
    /// ticks.emit_blocking(()).unwrap();
    /// assert_eq!(batches.to_vec(), vec![vec![1, 2], vec![], vec![3]]);
    /// ```
    pub fn collect(&self) -> Collector<T> {
        let held = Arc::new(Mutex::new(Held {
            items: Vec::new(),
            acks: Acks::default(),
        }));
        let stream = self.attach(&COLLECT, None, Collect { held: held.clone() });
        Collector { stream, held }
    }
}

impl<T: Element + Serialize + DeserializeOwned + Sync> Durable<'_, T> {
    /// A durable [`sliding_window`](Stream::sliding_window): the elements in the window are
    /// saved in checkpoints.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn sliding_window(&self, n: usize, return_partial: bool) -> Stream<Vec<T>> {
        let op = sliding_window_op(n, return_partial);
        self.stream
            .attach_saved(&SLIDING_WINDOW, None, false, |_| op)
    }
}
