//! Windows on event time: `window` with tumbling, sliding and session windows, per key or
//! not, folded as their elements arrive and emitted when the watermark passes their end;
//! allowed lateness, early firings, and late elements as a stream of their own.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use indexmap::IndexMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ack::Acks;
use crate::checkpoint::{SaveState, decode, encode};
use crate::clock::IntoInterval;
use crate::durable::Durable;
use crate::emit::Cx;
use crate::error::{ErrorKind, StreamError};
use crate::event_time::{EventTime, Mark, nanos};
use crate::node::{Kind, NodeInfo, Operator, Outlet, Port, Shape, fn_name, guard, lock};
use crate::stream::{Element, Stream, source_node};

const WINDOW: Kind = Kind::stateful("window", Shape::Box);

/// Which windows an element belongs to, by its event time: the first argument of
/// [`Stream::window`].
///
/// Windows are half open, `[start, end)`. Tumbling and sliding windows are aligned on an
/// origin ([`origin`](Window::origin), the time origin by default): a 1-minute window starts
/// on the minute.
///
/// # Examples
///
/// ```
/// use streamz_core::{EventTime, Window};
///
/// let minutes = Window::tumbling("1m");
/// let last_hour_every_5m = Window::sliding("1h", "5m");
/// let visits = Window::session("30m");
/// let shifted = Window::tumbling("1d").origin(EventTime::from_secs(-3600)); // days at 23:00
/// # let _ = (minutes, last_hour_every_5m, visits, shifted);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    shape: WindowShape,
    origin: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowShape {
    Tumbling { size: i64 },
    Sliding { size: i64, slide: i64 },
    Session { gap: i64 },
}

impl Window {
    /// Back-to-back windows of `size`: each element is in exactly one.
    ///
    /// # Panics
    ///
    /// If `size` is zero, or a string that is not a duration.
    pub fn tumbling(size: impl IntoInterval) -> Self {
        let size = positive("tumbling", "size", size);
        Window {
            shape: WindowShape::Tumbling { size },
            origin: 0,
        }
    }

    /// Windows of `size` starting every `slide`: each element is in `size / slide` of them
    /// (rounded up).
    ///
    /// # Panics
    ///
    /// If either is zero or not a duration, or `slide` is longer than `size` (elements
    /// between windows would belong to none).
    pub fn sliding(size: impl IntoInterval, slide: impl IntoInterval) -> Self {
        let size = positive("sliding", "size", size);
        let slide = positive("sliding", "slide", slide);
        assert!(
            slide <= size,
            "window: a sliding window's slide must not be longer than its size"
        );
        Window {
            shape: WindowShape::Sliding { size, slide },
            origin: 0,
        }
    }

    /// Sessions: elements (of one key) at most `gap` apart are in the same window, which
    /// runs from its first element to `gap` after its last. An element that fills the gap
    /// between two sessions merges them.
    ///
    /// # Panics
    ///
    /// If `gap` is zero, or a string that is not a duration.
    pub fn session(gap: impl IntoInterval) -> Self {
        let gap = positive("session", "gap", gap);
        Window {
            shape: WindowShape::Session { gap },
            origin: 0,
        }
    }

    /// Aligns tumbling and sliding windows on `origin` instead of the time origin: windows
    /// start at `origin + k × slide` (sessions have no alignment).
    pub fn origin(self, origin: EventTime) -> Self {
        Window {
            origin: origin.as_nanos(),
            ..self
        }
    }

    /// The starts of the tumbling or sliding windows holding `t`, earliest first.
    fn starts(&self, t: i64, mut each: impl FnMut(i64)) {
        let (size, slide) = match self.shape {
            WindowShape::Tumbling { size } => (size, size),
            WindowShape::Sliding { size, slide } => (size, slide),
            WindowShape::Session { .. } => return,
        };
        // in i64 when nothing overflows (the common case: i128 division is slow), else i128
        if let Some(last) = t
            .checked_sub(self.origin)
            .and_then(|d| d.div_euclid(slide).checked_mul(slide))
            .and_then(|d| d.checked_add(self.origin))
            && let Some(low) = t.checked_sub(size - 1)
        {
            let span = last.saturating_sub(low).max(0);
            let mut s = last - span.div_euclid(slide) * slide;
            while s <= last {
                each(s);
                s += slide;
            }
            return;
        }
        let o = i128::from(self.origin);
        let t = i128::from(t);
        let last = o + (t - o).div_euclid(i128::from(slide)) * i128::from(slide);
        // the earliest start whose window still holds t: last - k·slide > t - size
        let span = (last - (t - i128::from(size) + 1)).max(0);
        let first = last - span.div_euclid(i128::from(slide)) * i128::from(slide);
        let mut s = first;
        while s <= last {
            if let Ok(s) = i64::try_from(s) {
                each(s);
            }
            s += i128::from(slide);
        }
    }
}

fn positive(shape: &str, what: &str, d: impl IntoInterval) -> i64 {
    let d = d.into_interval();
    assert!(
        !d.is_zero(),
        "window: a {shape} window's {what} must be longer than zero"
    );
    nanos(d)
}

/// Why a window's result was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Firing {
    /// A partial result, before the watermark reached the window's end
    /// ([`early_every`](WindowBuilder::early_every)).
    Early,
    /// The result, when the watermark reached the window's end.
    OnTime,
    /// An update: an element that came after the watermark had passed the window's end, but
    /// within the allowed [`lateness`](WindowBuilder::lateness), changed the window. It
    /// replaces what was emitted before for the same key and an overlapping window.
    Late,
}

/// One window's result: what [`WindowBuilder::fold`] emits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Windowed<K, A> {
    /// The key (`()` for windows not per key).
    pub key: K,
    /// The window's first instant.
    pub start: EventTime,
    /// Just after the window's last instant: it holds times in `[start, end)`.
    pub end: EventTime,
    /// The fold of the window's elements, in the order they arrived.
    pub value: A,
    /// Why it was emitted.
    pub firing: Firing,
}

/// An event-time window being built: [`Stream::window`] makes one, and
/// [`fold`](WindowBuilder::fold) adds it to the graph. `D` says whether its state is saved
/// in checkpoints ([`Saved`], from [`Durable::window`]) or not ([`Plain`]).
#[must_use = "a window does nothing until it is folded"]
pub struct WindowBuilder<T, TF, KF, D = Plain> {
    stream: Stream<T>,
    window: Window,
    time: TF,
    key: KF,
    lateness: i64,
    early: Option<i64>,
    durable: std::marker::PhantomData<D>,
}

/// A [`WindowBuilder`] whose windows are not saved in checkpoints.
#[derive(Debug, Clone, Copy)]
pub struct Plain;

/// A [`WindowBuilder`] whose windows are saved in checkpoints ([`Durable::window`]).
#[derive(Debug, Clone, Copy)]
pub struct Saved;

impl<T, TF, KF, D> std::fmt::Debug for WindowBuilder<T, TF, KF, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowBuilder")
            .field("window", &self.window)
            .field("lateness", &self.lateness)
            .field("early", &self.early)
            .finish_non_exhaustive()
    }
}

/// The key of windows not per key.
fn no_key<T>(_: &T) {}

impl<T: Element> Stream<T> {
    /// Windows on event time: each element goes, by `time(x)`, into the `window`s it belongs
    /// to, and each window is emitted once the watermark passes its end (see
    /// [`watermarks`](Stream::watermarks)); [`key`](WindowBuilder::key) makes them per key,
    /// [`fold`](WindowBuilder::fold) says what a window computes and adds it to the graph.
    ///
    /// An element is *late* when the watermark has passed the end of every window it belongs
    /// to, plus the allowed [`lateness`](WindowBuilder::lateness): it goes to the late stream
    /// `fold` returns, and is counted in the node's metrics
    /// ([`NodeSnapshot::late`](crate::NodeSnapshot::late)). With nothing connected to the
    /// late stream, a late element is an [`ErrorKind::Late`] error in the graph's error stream:
    /// none is dropped silently. At end of stream every window still open is emitted.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{EventTime, Firing, Stream, Watermarks, Window};
    ///
    /// // (user, time in seconds)
    /// let source = Stream::new();
    /// let (visits, late) = source
    ///     .watermarks(|x: &(&str, i64)| EventTime::from_secs(x.1), Watermarks::bounded("5s"))
    ///     .window(Window::session("10s"), |x| EventTime::from_secs(x.1))
    ///     .key(|x| x.0)
    ///     .fold(0, |clicks, _| *clicks += 1);
    /// let visits = visits.map(|w| (w.key, w.start.as_millis() / 1000, w.value)).sink_to_vec();
    /// let late = late.sink_to_vec();
    /// for x in [("ann", 0), ("bob", 2), ("ann", 8), ("ann", 30), ("bob", 3), ("ann", 1)] {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// // at ("ann", 30) the watermark reached 25 s: ann's session 0–18 s and bob's 2–12 s
    /// // closed; ("bob", 3) and ("ann", 1) came too late
    /// assert_eq!(visits.to_vec(), vec![("bob", 2, 1), ("ann", 0, 2)]);
    /// assert_eq!(late.to_vec(), vec![("bob", 3), ("ann", 1)]);
    /// source.close().wait().unwrap();
    /// assert_eq!(visits.to_vec().last(), Some(&("ann", 30, 1)));
    /// ```
    pub fn window<TF>(&self, window: Window, time: TF) -> WindowBuilder<T, TF, fn(&T)>
    where
        TF: Fn(&T) -> EventTime + Send + Sync + 'static,
    {
        WindowBuilder {
            stream: self.clone(),
            window,
            time,
            key: no_key::<T>,
            lateness: 0,
            early: None,
            durable: std::marker::PhantomData,
        }
    }
}

impl<T: Element + Serialize + DeserializeOwned> Durable<'_, T> {
    /// A durable [`window`](Stream::window): its open windows (and those kept for late
    /// elements) are saved in checkpoints.
    pub fn window<TF>(&self, window: Window, time: TF) -> WindowBuilder<T, TF, fn(&T), Saved>
    where
        TF: Fn(&T) -> EventTime + Send + Sync + 'static,
    {
        let plain = self.stream.window(window, time);
        WindowBuilder {
            stream: plain.stream,
            window: plain.window,
            time: plain.time,
            key: plain.key,
            lateness: plain.lateness,
            early: plain.early,
            durable: std::marker::PhantomData,
        }
    }
}

impl<T: Element, TF, KF, D> WindowBuilder<T, TF, KF, D>
where
    TF: Fn(&T) -> EventTime + Send + Sync + 'static,
{
    /// Windows per key: each key has its own.
    pub fn key<K, G>(self, key: G) -> WindowBuilder<T, TF, G, D>
    where
        G: Fn(&T) -> K + Send + Sync + 'static,
    {
        WindowBuilder {
            stream: self.stream,
            window: self.window,
            time: self.time,
            key,
            lateness: self.lateness,
            early: self.early,
            durable: self.durable,
        }
    }

    /// Keeps each window for `lateness` after the watermark passed its end: an element that
    /// comes in that time updates it, and the update is emitted at once, as
    /// [`Firing::Late`]. The default is none.
    ///
    /// # Panics
    ///
    /// If `lateness` is a string that is not a duration.
    pub fn lateness(self, lateness: impl IntoInterval) -> Self {
        WindowBuilder {
            lateness: nanos(lateness.into_interval()),
            ..self
        }
    }

    /// Emits a window's partial result ([`Firing::Early`]) each time the watermark passes
    /// `start + k × every` before its end (once however many such points one watermark
    /// passes): for long windows.
    ///
    /// # Panics
    ///
    /// If `every` is zero, or a string that is not a duration.
    pub fn early_every(self, every: impl IntoInterval) -> Self {
        let every = positive("window's", "early_every", every);
        WindowBuilder {
            early: Some(every),
            ..self
        }
    }

    /// The node's operator, and its late stream.
    fn op<K, A, F>(self, init: A, f: F) -> WithLate<WindowOp<T, K, A, TF, KF, F>, T>
    where
        K: Hash + Eq + Clone,
    {
        let graph = self.stream.graph_shared().clone();
        let (late, _) = source_node::<T>(graph, "late");
        let op = WindowOp {
            window: self.window,
            lateness: self.lateness,
            early: self.early,
            time: self.time,
            key: self.key,
            init,
            f,
            state: Mutex::new(WindowState::new()),
            late: late.clone(),
        };
        (op, late)
    }
}

/// A window node's operator and its late stream's outlet.
type WithLate<O, T> = (O, Arc<Outlet<T>>);

/// The window node's stream and its late stream, linked so that the graph shows them.
fn with_late<U: Element, T: Element>(
    windows: Stream<U>,
    late: Arc<Outlet<T>>,
) -> (Stream<U>, Stream<T>) {
    NodeInfo::link(&windows.out.node(), &late.node());
    (windows, Stream::from_outlet(late))
}

impl<T: Element, TF, KF> WindowBuilder<T, TF, KF, Plain>
where
    TF: Fn(&T) -> EventTime + Send + Sync + 'static,
{
    /// Adds the windows to the graph: each starts as `init` and takes its elements, in the
    /// order they arrived, through `f`. Returns the windows' results and the late elements.
    pub fn fold<K, A, F>(self, init: A, f: F) -> (Stream<Windowed<K, A>>, Stream<T>)
    where
        KF: Fn(&T) -> K + Send + Sync + 'static,
        K: Hash + Eq + Clone + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        F: Fn(&mut A, &T) + Send + Sync + 'static,
    {
        let stream = self.stream.clone();
        let (op, late) = self.op(init, f);
        with_late(stream.attach(&WINDOW, fn_name::<F>(), op), late)
    }
}

impl<T: Element + Serialize + DeserializeOwned, TF, KF> WindowBuilder<T, TF, KF, Saved>
where
    TF: Fn(&T) -> EventTime + Send + Sync + 'static,
{
    /// [`fold`](WindowBuilder::fold), for windows saved in checkpoints: the open windows
    /// and those kept for late elements, with their elements for sessions.
    pub fn fold<K, A, F>(self, init: A, f: F) -> (Stream<Windowed<K, A>>, Stream<T>)
    where
        KF: Fn(&T) -> K + Send + Sync + 'static,
        K: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
        A: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
        F: Fn(&mut A, &T) + Send + Sync + 'static,
    {
        let stream = self.stream.clone();
        let (op, late) = self.op(init, f);
        with_late(
            stream.attach_saved(&WINDOW, fn_name::<F>(), false, |_| op),
            late,
        )
    }
}

/// What is due at a time: a window's early firing, its firing, or its end (it is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Due {
    Early,
    Fire,
    Drop,
}

/// The hasher of the windows' keys: quicker than the standard library's, and seeded per
/// process.
type Hasher = foldhash::fast::RandomState;

/// One key's tumbling or sliding window: its fold, and what it carries.
#[derive(Serialize, Deserialize)]
struct Acc<A> {
    acc: A,
    /// Emitted complete (on time or late) at least once.
    emitted: bool,
    /// The acknowledgements of what it folded and has not yet emitted complete.
    #[serde(skip)]
    acks: Acks,
}

impl<A: Clone> Acc<A> {
    /// A complete result (on time, or an update), with the acknowledgements it carries.
    fn complete<K: Clone>(&mut self, key: &K, start: i64, end: i64, firing: Firing) -> Out<K, A> {
        self.emitted = true;
        Out {
            result: result(key, start, end, &self.acc, firing),
            acks: std::mem::take(&mut self.acks),
        }
    }

    /// The result when the watermark reaches the end: on time, or late if it was emitted
    /// before (a session a late element extended).
    fn fire<K: Clone>(&mut self, key: &K, start: i64, end: i64) -> Out<K, A> {
        let firing = if self.emitted {
            Firing::Late
        } else {
            Firing::OnTime
        };
        self.complete(key, start, end, firing)
    }
}

/// The tumbling or sliding windows that start at one time, one per key, in the order the keys
/// first came (the order they are emitted in). They end, fire early and are dropped together.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Hash + Eq, A: Serialize",
    deserialize = "K: Deserialize<'de> + Hash + Eq, A: Deserialize<'de>"
))]
struct Slot<K, A> {
    end: i64,
    keys: IndexMap<K, Acc<A>, Hasher>,
}

/// One key's session.
#[derive(Serialize, Deserialize)]
struct Session<K, A, T> {
    key: K,
    start: i64,
    end: i64,
    fold: Acc<A>,
    early_at: Option<i64>,
    /// Its elements, with their arrival numbers: sessions merge, and a merged session is
    /// folded again in arrival order.
    items: Vec<(u64, T)>,
}

/// A window node's state: its watermark, its windows, and what is due when. What is due at
/// one watermark is handled in order of time, then of the window's start, then of creation
/// (slots keep their keys in order; sessions have numbers given in order).
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Hash + Eq, A: Serialize, T: Serialize",
    deserialize = "K: Deserialize<'de> + Hash + Eq + Clone, A: Deserialize<'de>, T: Deserialize<'de>"
))]
struct WindowState<K, A, T> {
    watermark: i64,
    /// Tumbling and sliding windows, by start.
    slots: BTreeMap<i64, Slot<K, A>>,
    /// Sessions, by number.
    sessions: HashMap<u64, Session<K, A, T>, Hasher>,
    next_session: u64,
    arrivals: u64,
    /// (time, window start, session number or 0, what is due).
    due: BTreeSet<(i64, i64, u64, Due)>,
    /// Each key's sessions.
    #[serde(skip)]
    by_key: HashMap<K, Vec<u64>, Hasher>,
}

impl<K: Hash + Eq + Clone, A, T> WindowState<K, A, T> {
    fn new() -> Self {
        WindowState {
            watermark: i64::MIN,
            slots: BTreeMap::new(),
            sessions: HashMap::default(),
            next_session: 0,
            arrivals: 0,
            due: BTreeSet::new(),
            by_key: HashMap::default(),
        }
    }

    /// The index of sessions by key, made again after a restore.
    fn reindex(&mut self) {
        self.by_key.clear();
        let mut ids: Vec<u64> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let key = self.sessions[&id].key.clone();
            self.by_key.entry(key).or_default().push(id);
        }
    }

    /// What a window (`id` 0 for a slot) has due after the watermark: its next early firing,
    /// its firing (unless the watermark is past its end: it was emitted as it changed), its
    /// end.
    fn schedule(&mut self, start: i64, end: i64, id: u64, early_at: Option<i64>, lateness: i64) {
        if let Some(at) = early_at {
            self.due.insert((at, start, id, Due::Early));
        }
        if end > self.watermark {
            self.due.insert((end, start, id, Due::Fire));
        }
        if lateness > 0 {
            self.due
                .insert((end.saturating_add(lateness), start, id, Due::Drop));
        }
    }

    fn unschedule(&mut self, start: i64, end: i64, id: u64, early_at: Option<i64>, lateness: i64) {
        if let Some(at) = early_at {
            self.due.remove(&(at, start, id, Due::Early));
        }
        self.due.remove(&(end, start, id, Due::Fire));
        self.due
            .remove(&(end.saturating_add(lateness), start, id, Due::Drop));
    }

    fn remove_session(&mut self, id: u64) -> Option<Session<K, A, T>> {
        let w = self.sessions.remove(&id)?;
        if let Some(ids) = self.by_key.get_mut(&w.key) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.by_key.remove(&w.key);
            }
        }
        Some(w)
    }
}

/// The first early point after `watermark` for a window starting at `start`, if one comes
/// before `end`.
fn next_early(every: Option<i64>, start: i64, end: i64, watermark: i64) -> Option<i64> {
    let every = i128::from(every?);
    let (start, end, watermark) = (i128::from(start), i128::from(end), i128::from(watermark));
    let k = if watermark < start {
        1
    } else {
        (watermark - start).div_euclid(every) + 1
    };
    let at = start + k.max(1) * every;
    (at < end).then(|| i64::try_from(at).ok()).flatten()
}

/// The window node.
struct WindowOp<T, K, A, TF, KF, F> {
    window: Window,
    lateness: i64,
    early: Option<i64>,
    time: TF,
    key: KF,
    init: A,
    f: F,
    state: Mutex<WindowState<K, A, T>>,
    late: Arc<Outlet<T>>,
}

/// What a push or a watermark makes a window node emit, once its lock is let go.
struct Out<K, A> {
    result: Windowed<K, A>,
    acks: Acks,
}

/// One element's push into a window node: where its user functions' failures go, its
/// acknowledgements, and the results it makes.
struct Adding<'p, 'c, K, A> {
    info: &'p NodeInfo,
    cx: &'p mut Cx<'c>,
    acks: Acks,
    due: Vec<Out<K, A>>,
}

fn result<K: Clone, A: Clone>(
    key: &K,
    start: i64,
    end: i64,
    acc: &A,
    firing: Firing,
) -> Windowed<K, A> {
    Windowed {
        key: key.clone(),
        start: EventTime::from_nanos(start),
        end: EventTime::from_nanos(end),
        value: acc.clone(),
        firing,
    }
}

impl<T, K, A, TF, KF, F> WindowOp<T, K, A, TF, KF, F>
where
    T: Element,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    A: Clone + Send + Sync + 'static,
    TF: Fn(&T) -> EventTime + Send + Sync + 'static,
    KF: Fn(&T) -> K + Send + Sync + 'static,
    F: Fn(&mut A, &T) + Send + Sync + 'static,
{
    fn is_session(&self) -> bool {
        matches!(self.window.shape, WindowShape::Session { .. })
    }

    /// Folds `x` into the tumbling or sliding windows it belongs to; false if it is too late
    /// for all of them.
    fn add_aligned(
        &self,
        state: &mut WindowState<K, A, T>,
        key: K,
        t: i64,
        x: &T,
        p: &mut Adding<'_, '_, K, A>,
    ) -> bool {
        let size = match self.window.shape {
            WindowShape::Tumbling { size } | WindowShape::Sliding { size, .. } => size,
            WindowShape::Session { .. } => unreachable!("sessions are added by add_session"),
        };
        let watermark = state.watermark;
        let mut accepted = false;
        self.window.starts(t, |start| {
            let end = start.saturating_add(size);
            if end.saturating_add(self.lateness) <= watermark {
                return; // this one is gone
            }
            accepted = true;
            if !state.slots.contains_key(&start) {
                let early_at = next_early(self.early, start, end, watermark);
                state.schedule(start, end, 0, early_at, self.lateness);
                // as many keys as the newest slot has had: no rehashing as it fills
                let keys = state.slots.values().next_back().map_or(0, |s| s.keys.len());
                let slot = Slot {
                    end,
                    keys: IndexMap::with_capacity_and_hasher(keys, Hasher::default()),
                };
                state.slots.insert(start, slot);
            }
            let slot = state.slots.get_mut(&start).expect("made above");
            let i = match slot.keys.get_index_of(&key) {
                Some(i) => i,
                None => {
                    let acc = Acc {
                        acc: self.init.clone(),
                        emitted: false,
                        acks: Acks::default(),
                    };
                    slot.keys.insert_full(key.clone(), acc).0
                }
            };
            let (k, w) = slot.keys.get_index_mut(i).expect("there");
            if guard(p.info, p.cx, || (self.f)(&mut w.acc, x)).is_none() {
                return;
            }
            w.acks.merge(&p.acks);
            if end <= watermark {
                p.due.push(w.complete(k, start, end, Firing::Late));
            }
        });
        accepted
    }

    /// Adds `x` to its key's sessions, merging those it joins; gives it back if it is too
    /// late.
    fn add_session(
        &self,
        state: &mut WindowState<K, A, T>,
        key: K,
        t: i64,
        x: T,
        p: &mut Adding<'_, '_, K, A>,
    ) -> Result<(), T> {
        let WindowShape::Session { gap } = self.window.shape else {
            unreachable!("aligned windows are added by add_aligned")
        };
        let watermark = state.watermark;
        let (mut start, mut end) = (t, t.saturating_add(gap));
        // the sessions it touches ([t, t + gap) meets [s, e) when s <= t + gap and t <= e), in
        // order of creation: a merged session keeps the number of its oldest part
        let mut touching: Vec<u64> = state
            .by_key
            .get(&key)
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|id| {
                        let w = &state.sessions[id];
                        w.start <= end && start <= w.end
                    })
                    .collect()
            })
            .unwrap_or_default();
        touching.sort_unstable();
        for id in &touching {
            let w = &state.sessions[id];
            start = start.min(w.start);
            end = end.max(w.end);
        }
        if end.saturating_add(self.lateness) <= watermark {
            return Err(x);
        }
        let arrival = state.arrivals;
        state.arrivals += 1;
        let merges = touching.len() > 1;
        let mut joined: Option<(u64, Session<K, A, T>)> = None;
        for id in touching {
            let w = state.remove_session(id).expect("a key's sessions exist");
            state.unschedule(w.start, w.end, id, w.early_at, self.lateness);
            joined = Some(match joined {
                None => (id, w),
                Some((first, mut m)) => {
                    m.items.extend(w.items);
                    m.fold.emitted |= w.fold.emitted;
                    m.fold.acks.merge(&w.fold.acks);
                    (first, m)
                }
            });
        }
        let (id, mut w) = joined.unwrap_or_else(|| {
            state.next_session += 1;
            let w = Session {
                key: key.clone(),
                start,
                end,
                fold: Acc {
                    acc: self.init.clone(),
                    emitted: false,
                    acks: Acks::default(),
                },
                early_at: None,
                items: Vec::new(),
            };
            (state.next_session, w)
        });
        if merges {
            // sessions merged: fold their elements again, in the order they arrived
            w.items.sort_by_key(|(n, _)| *n);
            let mut acc = self.init.clone();
            let mut folded = true;
            for (_, item) in &w.items {
                folded &= guard(p.info, p.cx, || (self.f)(&mut acc, item)).is_some();
            }
            if folded {
                w.fold.acc = acc;
            }
        }
        let folded = guard(p.info, p.cx, || (self.f)(&mut w.fold.acc, &x)).is_some();
        w.items.push((arrival, x));
        w.start = start;
        w.end = end;
        w.fold.acks.merge(&p.acks);
        w.early_at = if w.fold.emitted {
            None
        } else {
            next_early(self.early, start, end, watermark)
        };
        if folded && end <= watermark {
            p.due
                .push(w.fold.complete(&w.key, start, end, Firing::Late));
        }
        state.schedule(start, end, id, w.early_at, self.lateness);
        state.by_key.entry(key).or_default().push(id);
        state.sessions.insert(id, w);
        Ok(())
    }

    /// Moves the watermark to `watermark`: what is due by then, in order.
    fn advance(&self, state: &mut WindowState<K, A, T>, watermark: i64, out: &mut Vec<Out<K, A>>) {
        if watermark <= state.watermark {
            return;
        }
        state.watermark = watermark;
        while let Some(&(at, start, id, due)) = state.due.first() {
            if at > watermark {
                break;
            }
            state.due.remove(&(at, start, id, due));
            if id == 0 {
                self.advance_slot(state, start, due, watermark, out);
                continue;
            }
            let lateness = self.lateness;
            let w = state.sessions.get_mut(&id).expect("due sessions exist");
            match due {
                Due::Early if w.end > watermark => {
                    out.push(Out {
                        result: result(&w.key, w.start, w.end, &w.fold.acc, Firing::Early),
                        acks: Acks::default(),
                    });
                    w.early_at = next_early(self.early, w.start, w.end, watermark);
                    if let Some(next) = w.early_at {
                        state.due.insert((next, start, id, Due::Early));
                    }
                }
                Due::Early => w.early_at = None,
                Due::Fire => {
                    out.push(w.fold.fire(&w.key, w.start, w.end));
                    if lateness == 0 {
                        state.remove_session(id);
                    }
                }
                Due::Drop => {
                    state.remove_session(id);
                }
            }
        }
    }

    /// What is due for the slot of windows starting at `start`.
    fn advance_slot(
        &self,
        state: &mut WindowState<K, A, T>,
        start: i64,
        due: Due,
        watermark: i64,
        out: &mut Vec<Out<K, A>>,
    ) {
        let Some(slot) = state.slots.get_mut(&start) else {
            return;
        };
        let end = slot.end;
        match due {
            Due::Early if end > watermark => {
                for (k, w) in &slot.keys {
                    out.push(Out {
                        result: result(k, start, end, &w.acc, Firing::Early),
                        acks: Acks::default(),
                    });
                }
                if let Some(next) = next_early(self.early, start, end, watermark) {
                    state.due.insert((next, start, 0, Due::Early));
                }
            }
            Due::Early => {}
            Due::Fire => {
                for (k, w) in &mut slot.keys {
                    out.push(w.fire(k, start, end));
                }
                if self.lateness == 0 {
                    state.slots.remove(&start);
                }
            }
            Due::Drop => {
                state.slots.remove(&start);
            }
        }
    }

    /// Emits what is due, then lets the late element go.
    fn emit(
        &self,
        due: Vec<Out<K, A>>,
        late: Option<(T, i64, i64)>,
        out: &Arc<Outlet<Windowed<K, A>>>,
        cx: &mut Cx<'_>,
    ) {
        for Out { result, acks } in due {
            cx.with_acks(&acks, |cx| out.push(result, cx));
        }
        if let Some((x, t, watermark)) = late {
            out.info.meter.count_late();
            if self.late.is_connected(cx) {
                self.late.push(x, cx);
            } else {
                cx.fail(StreamError::new(
                    ErrorKind::Late,
                    Some(out.info.node_ref()),
                    format!(
                        "an element at {} came when the watermark was {}, past every window \
                         it belongs to (and their lateness), and nothing is connected to the \
                         window's late stream",
                        EventTime::from_nanos(t),
                        EventTime::from_nanos(watermark)
                    ),
                ));
            }
        }
    }
}

impl<T, K, A, TF, KF, F> Operator<T> for WindowOp<T, K, A, TF, KF, F>
where
    T: Element,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    A: Clone + Send + Sync + 'static,
    TF: Fn(&T) -> EventTime + Send + Sync + 'static,
    KF: Fn(&T) -> K + Send + Sync + 'static,
    F: Fn(&mut A, &T) + Send + Sync + 'static,
{
    type Out = Windowed<K, A>;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<Windowed<K, A>>>, cx: &mut Cx<'_>) {
        let info = &out.info;
        let Some(t) = guard(info, cx, || (self.time)(&x)) else {
            return;
        };
        let Some(key) = guard(info, cx, || (self.key)(&x)) else {
            return;
        };
        let t = t.as_nanos();
        let acks = cx.acks().clone();
        let mut p = Adding {
            info,
            cx,
            acks,
            due: Vec::new(),
        };
        let mut late = None;
        let mut state = lock(&self.state);
        if self.is_session() {
            late = self.add_session(&mut state, key, t, x, &mut p).err();
        } else if !self.add_aligned(&mut state, key, t, &x, &mut p) {
            late = Some(x);
        }
        let watermark = state.watermark;
        drop(state);
        let late = late.map(|x| (x, t, watermark));
        let due = p.due;
        if !due.is_empty() || late.is_some() {
            self.emit(due, late, out, cx);
        }
    }

    fn watermark(&self, mark: Mark, out: &Arc<Outlet<Windowed<K, A>>>, cx: &mut Cx<'_>) {
        if let Mark::At(t) = mark {
            let mut due = Vec::new();
            self.advance(&mut lock(&self.state), t.as_nanos(), &mut due);
            self.emit(due, None, out, cx);
        }
        // the results go first: a window downstream sees them before the watermark
        out.watermark(mark, cx);
        self.late.watermark(mark, cx);
    }

    fn finish(&self, out: &Arc<Outlet<Windowed<K, A>>>, cx: &mut Cx<'_>) -> crate::node::Finish {
        let mut due = Vec::new();
        {
            let mut state = lock(&self.state);
            self.advance(&mut state, i64::MAX, &mut due);
            // and what lateness still kept
            state.slots.clear();
            state.sessions.clear();
            state.by_key.clear();
            state.due.clear();
        }
        self.emit(due, None, out, cx);
        self.late.close(cx);
        crate::node::Finish::Now
    }
}

impl<T, K, A, TF, KF, F> SaveState for WindowOp<T, K, A, TF, KF, F>
where
    T: Element + Serialize + DeserializeOwned,
    K: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    A: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    TF: Send + Sync,
    KF: Send + Sync,
    F: Send + Sync,
{
    fn save(&self) -> Result<Vec<u8>, String> {
        encode(&*lock(&self.state))
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let mut state: WindowState<K, A, T> = decode(bytes)?;
        state.reindex();
        *lock(&self.state) = state;
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<WindowState<K, A, T>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(w: Window, t: i64) -> Vec<i64> {
        let mut v = Vec::new();
        w.starts(t, |s| v.push(s));
        v
    }

    use std::time::Duration;

    #[test]
    fn an_element_belongs_to_the_windows_that_hold_it() {
        let ns = Duration::from_nanos;
        assert_eq!(starts(Window::tumbling(ns(10)), 25), vec![20]);
        assert_eq!(starts(Window::tumbling(ns(10)), -1), vec![-10]);
        assert_eq!(starts(Window::sliding(ns(10), ns(5)), 25), vec![20, 25]);
        assert_eq!(starts(Window::sliding(ns(10), ns(5)), 24), vec![15, 20]);
        assert_eq!(starts(Window::sliding(ns(10), ns(3)), 10), vec![3, 6, 9]);
        assert_eq!(
            starts(Window::tumbling(ns(10)).origin(EventTime::from_nanos(3)), 2),
            vec![-7]
        );
    }

    #[test]
    fn early_points_come_every_step_after_the_watermark() {
        assert_eq!(next_early(Some(10), 0, 100, i64::MIN), Some(10));
        assert_eq!(next_early(Some(10), 0, 100, 10), Some(20));
        assert_eq!(next_early(Some(10), 0, 100, 95), None);
        assert_eq!(next_early(None, 0, 100, 0), None);
    }
}
