//! Durable state: [`Checkpoints`] of a running graph, each a consistent cut of every durable
//! node's state ([`Stream::durable`]) and every source's position ([`Feed`]), saved into a
//! [`StateStore`]; and the restore, when the same graph is built again over that store.
//!
//! **The cut** (DESIGN.md, "Checkpoints"): a graph is still when no source is inside an
//! emit, no element waits in a queue or an asynchronous step, and no task is handing
//! anything on. Every feed and every task counts itself in a [`Gate`] while it moves
//! elements; a checkpoint asks the sources to pause at their next emit, waits for the count
//! to reach zero, freezes the gate (a task that would start moving an element waits), reads
//! every state, and thaws. The states then hold exactly the elements before each source's
//! position. Writing the checkpoint happens after the thaw, on a blocking thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use event_listener::{Event, Listener};
use futures_util::future::{Either, select};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::{Checkpoint, SaveState, StateStore, StoreError, decode, encode};
use crate::clock::{Clock, IntoInterval, after};
use crate::error::{ErrorKind, StreamError};
use crate::executor::Executor;
use crate::node::{NodeArc, NodeInfo, NodeWeak, lock};
use crate::shared::GraphShared;
use crate::stream::{Element, Stream};
use crate::topology::{Direction, reachable};

// ------------------------------------------------------------------------------------ gate

const FROZEN: u64 = 1 << 63;
const REQUESTED: u64 = 1 << 62;
const COUNT: u64 = REQUESTED - 1;

/// What holds a checkpoint until the graph is still: one word, the count of what is moving
/// elements (feeds inside an emit, tasks handing on, elements queued or in asynchronous
/// steps, detached work) and two flags: a checkpoint is *requested* (feeds wait before their
/// next emit) and the graph is *frozen* (a checkpoint is reading the states; tasks wait too).
pub(crate) struct Gate {
    word: AtomicU64,
    changed: Event,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Gate {
            word: AtomicU64::new(0),
            changed: Event::new(),
        })
    }

    /// `n` more elements moving (they are inside something already counted, so the gate
    /// cannot be frozen now).
    pub(crate) fn add(&self, n: usize) {
        self.word.fetch_add(n as u64, Ordering::AcqRel);
    }

    /// `n` fewer moving; wakes a waiting checkpoint when none are left.
    pub(crate) fn sub(&self, n: usize) {
        let after = self.word.fetch_sub(n as u64, Ordering::AcqRel) - n as u64;
        if after & COUNT == 0 && after & REQUESTED != 0 {
            self.changed.notify(usize::MAX);
        }
    }

    /// Counts one more moving, unless `blocked_by` is set: one atomic operation on the way in,
    /// taken back when the flag turns out to be set.
    fn try_enter(&self, blocked_by: u64) -> bool {
        let before = self.word.fetch_add(1, Ordering::AcqRel);
        if before & blocked_by == 0 {
            return true;
        }
        self.sub(1);
        false
    }

    async fn enter(&self, blocked_by: u64) -> Moving<'_> {
        loop {
            if self.try_enter(blocked_by) {
                return Moving(self);
            }
            let listener = self.changed.listen();
            if self.word.load(Ordering::Acquire) & blocked_by == 0 {
                continue;
            }
            listener.await;
        }
    }

    fn enter_blocking(&self, blocked_by: u64) -> Moving<'_> {
        loop {
            if self.try_enter(blocked_by) {
                return Moving(self);
            }
            let listener = self.changed.listen();
            if self.word.load(Ordering::Acquire) & blocked_by == 0 {
                continue;
            }
            listener.wait();
        }
    }

    /// Asks the feeds to pause and waits, at most `patience`, until nothing moves; then
    /// freezes and returns true. False (and the request withdrawn) when the graph did not
    /// come still in time: a feed's emit may be waiting for another feed (a `zip` across
    /// sources), which must go on for it to finish.
    async fn freeze(&self, clock: &dyn Clock, patience: Duration) -> bool {
        self.word.fetch_or(REQUESTED, Ordering::AcqRel);
        let deadline = after(clock.now(), patience);
        loop {
            let v = self.word.load(Ordering::Acquire);
            if v & COUNT == 0 {
                if self
                    .word
                    .compare_exchange(v, v | FROZEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            let listener = self.changed.listen();
            if self.word.load(Ordering::Acquire) & COUNT == 0 {
                continue;
            }
            let sleep = clock.sleep_until(deadline);
            if let Either::Left(_) = select(sleep, listener).await
                && self.word.load(Ordering::Acquire) & COUNT != 0
            {
                self.thaw();
                return false;
            }
        }
    }

    /// Lets everything move again.
    fn thaw(&self) {
        self.word.fetch_and(!(FROZEN | REQUESTED), Ordering::AcqRel);
        self.changed.notify(usize::MAX);
    }

    /// Whether a checkpoint waits for the feeds to pause (a plain load: a feed that sees it
    /// late only pauses later).
    fn requested(&self) -> bool {
        self.word.load(Ordering::Relaxed) & REQUESTED != 0
    }
}

/// One thing counted as moving in a [`Gate`], until dropped.
pub(crate) struct Moving<'a>(&'a Gate);

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        self.0.sub(1);
    }
}

/// For a task about to take elements out of a durable node's saved state and hand them on
/// (a durable timed window's tick): waits while a checkpoint reads the states, then counts
/// the task as moving until the guard is dropped. Nothing, for a graph not checkpointed.
pub(crate) async fn start_moving(graph: &GraphShared) -> Option<Moving<'_>> {
    match graph.gate() {
        Some(gate) => Some(gate.enter(FROZEN).await),
        None => None,
    }
}

// ---------------------------------------------------------------------------- the durable view

/// The durable forms of the stateful operators: the same operators, whose state
/// [`Checkpoints`] save and restore. Made by [`Stream::durable`]; each method is documented
/// with the plain operator of the same name, and needs its state (and the elements it holds)
/// to be `serde`'s `Serialize` and `Deserialize`.
///
/// # Examples
///
/// ```
/// let source = streamz_core::Stream::new();
/// let totals = source.durable().accumulate(|a: &i64, x| a + x).sink_to_vec();
/// source.emit_blocking(3).unwrap();
/// source.emit_blocking(4).unwrap();
/// assert_eq!(totals.to_vec(), vec![3, 7]);
/// ```
#[derive(Debug)]
pub struct Durable<'a, T> {
    pub(crate) stream: &'a Stream<T>,
}

impl<T: Element> Stream<T> {
    /// The durable forms of the stateful operators that follow: `source.durable().accumulate(…)`
    /// is an `accumulate` whose state is saved in every checkpoint and restored from the
    /// last one when the graph is built again ([`Checkpoints`]). A node is known across
    /// restarts by its name ([`named`](Stream::named)), or else by its operator and its
    /// place among the graph's durable nodes of that operator (`accumulate #1`): name them
    /// when the graph may change.
    pub fn durable(&self) -> Durable<'_, T> {
        Durable { stream: self }
    }
}

// ------------------------------------------------------------------------------------- feeds

/// A source fed through checkpoints: every emit goes through [`Feed::emit`] with the
/// source's position after that element, which checkpoints save, so that a restarted run
/// resumes from [`Feed::position`]. Made by [`CheckpointsBuilder::feed`] (or
/// [`Stream::checkpoint`]).
pub struct Feed<T, P> {
    stream: Stream<T>,
    gate: Arc<Gate>,
    state: Arc<FeedState<P>>,
}

impl<T, P> fmt::Debug for Feed<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl<T, P> Clone for Feed<T, P> {
    fn clone(&self) -> Self {
        Feed {
            stream: self.stream.clone(),
            gate: self.gate.clone(),
            state: self.state.clone(),
        }
    }
}

struct FeedState<P> {
    position: Mutex<Option<P>>,
    /// Emits since the feed last yielded to its executor.
    since_yield: AtomicU32,
}

/// How many emits a feed makes before it yields to its executor once: a source whose emits
/// never wait (a synchronous graph) would otherwise keep the checkpoint task from running on
/// the same thread (tokio does not steal a task from the slot of the thread that woke it).
const YIELD_EVERY: u32 = 1 << 16;

impl<P: Serialize + DeserializeOwned + Send> SaveState for FeedState<P> {
    fn save(&self) -> Result<Vec<u8>, String> {
        encode(&*lock(&self.position))
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        *lock(&self.position) = decode(bytes)?;
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<P>()
    }
}

impl<T: Element, P: Clone + Send + 'static> Feed<T, P> {
    /// Where the source stands: the last checkpoint's position, once the graph is restored,
    /// and then the position given with the last element emitted. `None` for a source that
    /// has emitted nothing yet (or nothing before the checkpoint restored).
    pub fn position(&self) -> Option<P> {
        lock(&self.state.position).clone()
    }

    /// Emits `x` into the source, `position` being where the source stands once `x` is
    /// taken (the next line's byte offset, the next index): a checkpoint taken after this
    /// emit resumes after `x`. Waits while a checkpoint is being taken; otherwise the same as
    /// [`Stream::emit`], awaited.
    ///
    /// # Errors
    ///
    /// As for [`Stream::emit`]: the element failed somewhere (it counts as taken all the same).
    pub async fn emit(&self, x: T, position: P) -> Result<(), StreamError> {
        // a plain load and store: a count that need not be exact, for no atomic operation
        let since = self.state.since_yield.load(Ordering::Relaxed);
        if since >= YIELD_EVERY {
            self.state.since_yield.store(0, Ordering::Relaxed);
            YieldNow(false).await;
        } else {
            self.state.since_yield.store(since + 1, Ordering::Relaxed);
        }
        let _moving = self.gate.enter(FROZEN | REQUESTED).await;
        let done = self.stream.emit(x);
        *lock(&self.state.position) = Some(position);
        done.await
    }

    /// Feeds every `(element, position)` of `input` into the source, as
    /// [`emit`](Feed::emit) would one by one, and faster: while `input` has elements ready,
    /// the feed emits them without any synchronization of its own (one atomic operation per
    /// run of ready elements, not per element), letting a checkpoint in only between two
    /// of them or when `input` has to wait. Ends when `input` does.
    ///
    /// # Errors
    ///
    /// The first element that fails: the feed stops there (its position is past it).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use streamz_core::{Checkpoint, StateStore, StoreError};
    /// # #[derive(Default, Clone)]
    /// # struct Memory(Arc<Mutex<Option<Checkpoint>>>);
    /// # impl StateStore for Memory {
    /// #     fn load(&self) -> Result<Option<Checkpoint>, StoreError> { Ok(self.0.lock().unwrap().clone()) }
    /// #     fn save(&self, c: &Checkpoint) -> Result<(), StoreError> { *self.0.lock().unwrap() = Some(c.clone()); Ok(()) }
    /// # }
    /// use futures_util::stream;
    /// use streamz_core::{Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::<u64>::with_executor(executor.clone());
    /// let totals = source.durable().accumulate(|a: &u64, x| a + x).sink_to_vec();
    /// let (checkpoints, feed) = source.checkpoint::<u64>(Memory::default(), "1s").unwrap();
    /// executor.block_on(async {
    ///     feed.run(stream::iter((0..1000).map(|x| (x, x + 1)))).await.unwrap();
    ///     assert_eq!(checkpoints.checkpoint_now().await.unwrap().entries, 2);
    /// });
    /// assert_eq!(totals.to_vec().last(), Some(&499_500));
    /// assert_eq!(feed.position(), Some(1000));
    /// ```
    pub async fn run<S>(&self, input: S) -> Result<(), StreamError>
    where
        S: futures_core::Stream<Item = (T, P)>,
    {
        use futures_util::{FutureExt, StreamExt};
        enum Then {
            Wait,
            Yield,
            End,
        }
        let mut input = std::pin::pin!(input);
        loop {
            // waiting for input: the feed does not hold the gate
            let Some(mut item) = input.next().await else {
                return Ok(());
            };
            let moving = self.gate.enter(FROZEN | REQUESTED).await;
            let mut burst: u32 = 0;
            let mut position;
            let then = loop {
                let (x, p) = item;
                let done = self.stream.emit(x);
                position = p;
                if let Err(e) = done.await {
                    break Err(e);
                }
                burst += 1;
                // go on only with what is ready now, until a checkpoint asks for a pause
                if burst >= YIELD_EVERY || self.gate.requested() {
                    break Ok(Then::Yield);
                }
                match input.next().now_or_never() {
                    Some(Some(ready)) => item = ready,
                    Some(None) => break Ok(Then::End),
                    None => break Ok(Then::Wait),
                }
            };
            *lock(&self.state.position) = Some(position);
            drop(moving);
            match then? {
                Then::End => return Ok(()),
                Then::Yield => YieldNow(false).await,
                Then::Wait => {}
            }
        }
    }

    /// [`emit`](Feed::emit) from a plain thread, blocking it (as
    /// [`Stream::emit_blocking`]).
    ///
    /// # Errors
    ///
    /// As for [`Stream::emit_blocking`].
    pub fn emit_blocking(&self, x: T, position: P) -> Result<(), StreamError> {
        let _moving = self.gate.enter_blocking(FROZEN | REQUESTED);
        let done = self.stream.emit_blocking(x);
        *lock(&self.state.position) = Some(position);
        done
    }

    /// The source stream itself (to close it, or wait for it).
    pub fn stream(&self) -> &Stream<T> {
        &self.stream
    }
}

/// A source's own position, for a source registered with [`CheckpointsBuilder::source`]:
/// what checkpoints save of it, and how it learns that a checkpoint is durable.
///
/// # Examples
///
/// A source over a log that commits its offset only once a checkpoint covers it:
///
/// ```
/// # use std::sync::{Arc, Mutex};
/// # use streamz_core::{Checkpoint, StateStore, StoreError};
/// # #[derive(Default, Clone)]
/// # struct Memory(Arc<Mutex<Option<Checkpoint>>>);
/// # impl StateStore for Memory {
/// #     fn load(&self) -> Result<Option<Checkpoint>, StoreError> { Ok(self.0.lock().unwrap().clone()) }
/// #     fn save(&self, c: &Checkpoint) -> Result<(), StoreError> { *self.0.lock().unwrap() = Some(c.clone()); Ok(()) }
/// # }
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use streamz_core::{Checkpoints, SourceState, Stream, VirtualExecutor};
///
/// #[derive(Default)]
/// struct Log {
///     next: AtomicU64,
///     committed: AtomicU64,
/// }
///
/// impl SourceState for Log {
///     type Position = u64;
///     fn position(&self) -> u64 {
///         self.next.load(Ordering::Relaxed)
///     }
///     fn restore(&self, next: u64) {
///         self.next.store(next, Ordering::Relaxed);
///     }
///     fn durable(&self, next: &u64) {
///         self.committed.store(*next, Ordering::Relaxed); // commit to the broker here
///     }
/// }
///
/// let executor = VirtualExecutor::new();
/// let source = Stream::<u64>::with_executor(executor.clone());
/// let log = Arc::new(Log::default());
/// let mut builder = Checkpoints::builder(Memory::default());
/// let gate = builder.source(&source, log.clone());
/// let checkpoints = builder.start().unwrap();
/// executor.block_on(async {
///     for offset in 0..5 {
///         let _turn = gate.enter().await;
///         source.emit(offset).await.unwrap();
///         log.next.store(offset + 1, Ordering::Relaxed);
///     }
///     assert_eq!(log.committed.load(Ordering::Relaxed), 0); // no checkpoint yet
///     checkpoints.checkpoint_now().await.unwrap();
/// });
/// assert_eq!(log.committed.load(Ordering::Relaxed), 5);
/// ```
pub trait SourceState: Send + Sync + 'static {
    /// What the source's position is made of (an offset per partition).
    type Position: Serialize + DeserializeOwned + Send;
    /// Where the source stands: read while the graph is still, every element before it
    /// having been emitted.
    fn position(&self) -> Self::Position;
    /// Resumes from a checkpoint's position (before anything is emitted).
    fn restore(&self, position: Self::Position);
    /// A checkpoint holding `position` is durable: the source may commit it now.
    fn durable(&self, _position: &Self::Position) {}
}

/// State that a node of another crate keeps (an operator built on the core's, such as
/// streamz-rayon's fold on the pool), for checkpoints to save: attach it with
/// [`Stream::saves_state`].
///
/// # Examples
///
/// A running count kept in an atomic, outside any core operator, made durable:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use streamz_core::{NodeState, SavedState, Stream};
///
/// #[derive(Default)]
/// struct Count(AtomicU64);
///
/// impl NodeState for Count {
///     type State = u64;
///     fn state(&self) -> u64 {
///         self.0.load(Ordering::Relaxed)
///     }
///     fn restore(&self, state: u64) {
///         self.0.store(state, Ordering::Relaxed);
///     }
/// }
///
/// let source = Stream::<&str>::new();
/// let count = SavedState::new(Count::default());
/// let held = count.clone(); // the node's function holds it: saved while the node is there
/// let counted = source
///     .map(move |x| (held.get().0.fetch_add(1, Ordering::Relaxed) + 1, x))
///     .named("count")
///     .saves_state(&count);
/// # let _ = counted;
/// ```
pub trait NodeState: Send + Sync + 'static {
    /// What the state is made of.
    type State: Serialize + DeserializeOwned;
    /// The state, read while the graph is still (nothing being pushed, nothing in flight).
    fn state(&self) -> Self::State;
    /// Replaces the state with a checkpoint's (before anything is emitted).
    fn restore(&self, state: Self::State);
}

/// A [`NodeState`] as checkpoints save it: made by [`SavedState::new`], attached with
/// [`Stream::saves_state`], and held by the node's function (a checkpoint saves it while it
/// is alive).
pub struct SavedState<S>(S);

impl<S> fmt::Debug for SavedState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedState")
            .field("state", &std::any::type_name::<S>())
            .finish()
    }
}

impl<S: NodeState> SavedState<S> {
    /// `state`, to be saved by checkpoints.
    pub fn new(state: S) -> Arc<Self> {
        Arc::new(SavedState(state))
    }

    /// The state.
    pub fn get(&self) -> &S {
        &self.0
    }
}

impl<S: NodeState> SaveState for SavedState<S> {
    fn save(&self) -> Result<Vec<u8>, String> {
        encode(&self.0.state())
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        self.0.restore(decode(bytes)?);
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<S::State>()
    }
}

impl<T: Element> Stream<T> {
    /// Makes this node durable: checkpoints save `state` and restore it, keyed as the core's
    /// durable operators are (by the node's [name](Stream::named), else its operator and
    /// place). For operators other crates build on the core's; the node's function must
    /// hold `state` (a clone of the `Arc`), which is saved only while it is alive. What the
    /// node holds between pushes must be in `state`, or drained before a checkpoint (the
    /// core's async steps and buffers are).
    pub fn saves_state<S: NodeState>(self, state: &Arc<SavedState<S>>) -> Self {
        let weak: Weak<dyn SaveState> = Arc::downgrade(state) as Weak<dyn SaveState>;
        self.out.info.set_saved(weak, false);
        self
    }
}

/// What holds a registered source's position for checkpoints: the position the last
/// checkpoint read, until it is durable.
struct SourceSlot<S: SourceState> {
    state: Arc<S>,
    saving: Mutex<Option<S::Position>>,
}

impl<S: SourceState> SaveState for SourceSlot<S> {
    fn save(&self) -> Result<Vec<u8>, String> {
        let position = self.state.position();
        let bytes = encode(&position)?;
        *lock(&self.saving) = Some(position);
        Ok(bytes)
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        self.state.restore(decode(bytes)?);
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<S::Position>()
    }

    fn saved(&self) {
        if let Some(position) = lock(&self.saving).take() {
            self.state.durable(&position);
        }
    }
}

/// A registered source's turns to emit ([`CheckpointsBuilder::source`]): a checkpoint is
/// taken only while no source holds one.
#[derive(Clone)]
pub struct SourceGate {
    gate: Arc<Gate>,
}

impl fmt::Debug for SourceGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceGate").finish_non_exhaustive()
    }
}

/// A turn of a [`SourceGate`]: emit, and move the source's position past what was emitted,
/// while it is held; drop it when the emit has resolved.
#[must_use = "a turn lets a checkpoint in only once it is dropped"]
pub struct SourceTurn<'a>(#[allow(dead_code)] Moving<'a>);

impl fmt::Debug for SourceTurn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceTurn").finish_non_exhaustive()
    }
}

impl SourceGate {
    /// A turn to emit: at once, unless a checkpoint is being taken or asked for.
    pub async fn enter(&self) -> SourceTurn<'_> {
        SourceTurn(self.gate.enter(FROZEN | REQUESTED).await)
    }

    /// [`enter`](SourceGate::enter) from a plain thread, blocking it.
    pub fn enter_blocking(&self) -> SourceTurn<'_> {
        SourceTurn(self.gate.enter_blocking(FROZEN | REQUESTED))
    }
}

/// Returns `Pending` once, having woken its task: the task goes to the back of its
/// executor's queue.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

// ------------------------------------------------------------------------------- checkpoints

/// What a checkpoint was: its number, when, how large, and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Its number (counting on from the checkpoint a run was restored from).
    pub id: u64,
    /// When it was taken.
    pub taken_at: SystemTime,
    /// The bytes of its states (keys included).
    pub size: usize,
    /// How many nodes' and sources' states it holds.
    pub entries: usize,
    /// How long the graph was held still: from the request to the thaw.
    pub pause: Duration,
    /// How long the store took to write it, durably.
    pub write: Duration,
}

/// How a graph is checkpointed: the store, the interval, the sources, and the nodes to start
/// fresh. Made by [`Checkpoints::builder`]; [`start`](CheckpointsBuilder::start) restores
/// the graph and starts taking checkpoints.
pub struct CheckpointsBuilder {
    store: Arc<dyn StateStore>,
    every: Duration,
    patience: Duration,
    fresh: HashSet<String>,
    feeds: Vec<(NodeArc, Arc<dyn SaveState>)>,
    gate: Arc<Gate>,
}

impl fmt::Debug for CheckpointsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointsBuilder")
            .field("every", &self.every)
            .field("fresh", &self.fresh)
            .field("feeds", &self.feeds.len())
            .finish_non_exhaustive()
    }
}

impl CheckpointsBuilder {
    /// How often to take a checkpoint (1 s by default). Each one holds the graph still for
    /// as long as reading its states takes ([`CheckpointInfo::pause`]).
    ///
    /// # Panics
    ///
    /// If `interval` is zero.
    pub fn every(mut self, interval: impl IntoInterval) -> Self {
        let interval = interval.into_interval();
        assert!(
            !interval.is_zero(),
            "checkpoints: the interval must be longer than zero"
        );
        self.every = interval;
        self
    }

    /// Starts the node (or source) known as `key` fresh: its state in the checkpoint, if
    /// any, is ignored. `key` is the node's name, or what a restore's error calls it
    /// (`accumulate #1`). For a pipeline that changed.
    pub fn fresh(mut self, key: &str) -> Self {
        self.fresh.insert(key.to_owned());
        self
    }

    /// Registers `source` as one of the graph's sources: feed it through the [`Feed`]
    /// returned, whose position, of any serde type `P`, checkpoints save. Every source that
    /// feeds a checkpointed graph must be registered, in the same order on every run.
    pub fn feed<T, P>(&mut self, source: &Stream<T>) -> Feed<T, P>
    where
        T: Element,
        P: Serialize + DeserializeOwned + Clone + Send + 'static,
    {
        let state = Arc::new(FeedState {
            position: Mutex::new(None),
            since_yield: AtomicU32::new(0),
        });
        self.feeds.push((source.out.node(), state.clone()));
        Feed {
            stream: source.clone(),
            gate: self.gate.clone(),
            state,
        }
    }

    /// Registers `source` as a source that keeps its own position, `state` (a broker's
    /// offsets, per partition): checkpoints save `state.position()` when the graph is still,
    /// restore it with `state.restore`, and tell `state.durable` once a checkpoint holding it
    /// is saved, so that the source commits to its broker only positions a checkpoint covers.
    /// The source emits only while it holds a turn of the [`SourceGate`] returned.
    pub fn source<T, S>(&mut self, source: &Stream<T>, state: Arc<S>) -> SourceGate
    where
        T: Element,
        S: SourceState,
    {
        let slot = Arc::new(SourceSlot {
            state,
            saving: Mutex::new(None),
        });
        self.feeds.push((source.out.node(), slot));
        SourceGate {
            gate: self.gate.clone(),
        }
    }

    /// Restores the graph from the store's last checkpoint, if it has one, and starts
    /// taking checkpoints, on the graph's executor. Call it once the graph is built, before
    /// anything is emitted.
    ///
    /// # Errors
    ///
    /// The store could not be read or is damaged; the graph has no executor, or is already
    /// checkpointed, or holds elements already; or
    /// the checkpoint does not fit the graph: a durable node that has no state in it, a state
    /// it has for no node, a node whose operator changed, or a state that does not decode as
    /// the node's type. (A name given to several durable nodes keys the second as
    /// `name #2`, and so on.) Each is named, with what to do; [`fresh`](CheckpointsBuilder::fresh)
    /// starts such a node fresh.
    pub fn start(self) -> Result<Checkpoints, StoreError> {
        let Some((first, _)) = self.feeds.first() else {
            return Err(StoreError::new(
                "checkpoints: no source was registered (CheckpointsBuilder::feed)",
            ));
        };
        let Some(executor) = first.graph.executor.clone() else {
            return Err(StoreError::new(
                "checkpoints need an executor for their timer: build the graph from \
                 Stream::with_executor(...)",
            ));
        };
        // one walk of the graph, from the feeds in order: what every use below reads
        let nodes = self.reached();
        let entries = self.entries(&nodes);
        let not_durable: Vec<String> = nodes
            .iter()
            .filter(|n| n.keeps_state() && !n.is_durable())
            .map(|n| n.display_name().to_string())
            .collect();
        for name in &not_durable {
            tracing::warn!(node = %name, "checkpoints: this node keeps state that is not durable; a restart starts it afresh");
        }
        // every graph the feeds reach counts what moves in the gate: none may hold anything
        // yet, or a release would be counted that its hold was not
        let mut graphs: Vec<Arc<GraphShared>> = Vec::new();
        for node in &nodes {
            if node.in_flight() > 0 || node.graph.detached() > 0 {
                return Err(StoreError::new(format!(
                    "checkpoints: `{}` already holds elements; start checkpoints before \
                     anything is emitted",
                    node.display_name()
                )));
            }
            if !graphs.iter().any(|g| Arc::ptr_eq(g, &node.graph)) {
                graphs.push(node.graph.clone());
            }
        }
        let restored = self.restore(&entries)?;
        for graph in &graphs {
            if !graph.set_gate(&self.gate) {
                return Err(StoreError::new(
                    "checkpoints: this graph is checkpointed already",
                ));
            }
        }
        let (requests, inbox) = async_channel::bounded(16);
        let inner = Arc::new(Inner {
            store: Mutex::new(Some(self.store)),
            gate: self.gate,
            entries,
            executor: executor.clone(),
            graph: first.graph.clone(),
            next_id: AtomicU64::new(restored.as_ref().map_or(1, |c| c.id + 1)),
            last: Mutex::new(None),
            every: self.every,
            patience: self.patience,
            nodes: nodes.iter().map(NodeArc::downgrade).collect(),
        });
        executor.spawn(Box::pin(leader(Arc::downgrade(&inner), inbox)));
        Ok(Checkpoints {
            inner,
            requests,
            restored,
            not_durable,
        })
    }

    /// Every node the feeds reach, each once, in the order first seen walking downstream
    /// from each feed in turn (the order that keys `op #k`).
    fn reached(&self) -> Vec<NodeArc> {
        let mut seen = HashSet::new();
        let mut nodes = Vec::new();
        for (feed, _) in &self.feeds {
            for node in reachable(feed, Direction::Down) {
                if seen.insert(node.id) {
                    nodes.push(node);
                }
            }
        }
        nodes
    }

    /// The feeds, and the durable nodes among `nodes`, each with its key.
    fn entries(&self, nodes: &[NodeArc]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut per_op: HashMap<&'static str, usize> = HashMap::new();
        let mut named: HashMap<String, usize> = HashMap::new();
        // a name given to several durable nodes: the second is `name #2`, and so on
        let mut key_of = |info: &NodeInfo, op: &'static str| -> String {
            match info.given_name() {
                Some(name) => {
                    let k = named.entry(name.to_string()).or_insert(0);
                    *k += 1;
                    match *k {
                        1 => name.to_string(),
                        k => format!("{name} #{k}"),
                    }
                }
                None => {
                    let k = per_op.entry(op).or_insert(0);
                    *k += 1;
                    format!("{op} #{k}")
                }
            }
        };
        for (feed, state) in &self.feeds {
            entries.push(Entry {
                key: key_of(feed, "source"),
                op: "source",
                state: state.clone(),
            });
        }
        for node in nodes {
            let Some(state) = node.saved() else { continue };
            entries.push(Entry {
                key: key_of(node, node.kind.op),
                op: node.kind.op,
                state,
            });
        }
        entries
    }

    /// Puts the store's last checkpoint back into `entries`; what it was.
    fn restore(&self, entries: &[Entry]) -> Result<Option<CheckpointInfo>, StoreError> {
        let Some(checkpoint) = self.store.load()? else {
            return Ok(None);
        };
        let mut saved: BTreeMap<&str, &[u8]> = checkpoint.entries().collect();
        // (the node, what does not fit)
        let mut problems: Vec<(String, String)> = Vec::new();
        for entry in entries {
            let found = saved.remove(entry.key.as_str());
            if self.fresh.contains(&entry.key) {
                continue;
            }
            let key = entry.key.clone();
            let Some(bytes) = found else {
                problems.push((key, format!("is new, or was renamed ({})", entry.op)));
                continue;
            };
            let state = &entry.state;
            match unframe(bytes) {
                Some((op, was, payload)) if op == entry.op => {
                    if let Err(e) = state.restore(payload) {
                        problems.push((
                            key,
                            format!(
                                "has a state that does not read as {} (it was saved as {was}): {e}",
                                state.state_type()
                            ),
                        ));
                    }
                }
                Some((op, _, _)) => {
                    problems.push((key, format!("was a `{op}` and is now a `{}`", entry.op)))
                }
                None => problems.push((key, "has a state streamz did not write".to_owned())),
            }
        }
        for key in saved.keys() {
            if !self.fresh.contains(*key) {
                problems.push((
                    (*key).to_owned(),
                    "has a state in it, and is not in this graph".to_owned(),
                ));
            }
        }
        if !problems.is_empty() {
            let what: Vec<String> = problems.iter().map(|(k, p)| format!("`{k}` {p}")).collect();
            let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
            return Err(StoreError::new(format!(
                "the last checkpoint (#{}) does not fit this graph: {}; if the pipeline changed \
                 on purpose, start {} fresh: {}",
                checkpoint.id,
                what.join("; "),
                if keys.len() == 1 {
                    "that node"
                } else {
                    "those nodes"
                },
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(Some(CheckpointInfo {
            id: checkpoint.id,
            taken_at: checkpoint.taken_at,
            size: checkpoint.size(),
            entries: checkpoint.len(),
            pause: Duration::ZERO,
            write: Duration::ZERO,
        }))
    }
}

/// What a checkpoint holds for one node or source. The state is held strongly: checkpoints
/// keep their graph alive, so that the last one, after the sources have closed, still finds
/// every node.
struct Entry {
    key: String,
    op: &'static str,
    state: Arc<dyn SaveState>,
}

/// A state as a checkpoint keeps it: the operator and the state's type (to say what does not
/// fit, on restore), then the state.
fn frame(op: &str, state_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(op.len() + state_type.len() + 2 + payload.len());
    bytes.extend_from_slice(op.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(state_type.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(payload);
    bytes
}

fn unframe(bytes: &[u8]) -> Option<(&str, &str, &[u8])> {
    let mut parts = bytes.splitn(3, |&b| b == b'\n');
    let op = std::str::from_utf8(parts.next()?).ok()?;
    let ty = std::str::from_utf8(parts.next()?).ok()?;
    Some((op, ty, parts.next()?))
}

struct Inner {
    /// Taken when the `Checkpoints` are dropped, so that the store is closed then (unless a
    /// write holds it), whatever the leader task is doing.
    store: Mutex<Option<Arc<dyn StateStore>>>,
    gate: Arc<Gate>,
    entries: Vec<Entry>,
    executor: Arc<dyn Executor>,
    /// Where a checkpoint that fails is reported.
    graph: Arc<GraphShared>,
    next_id: AtomicU64,
    last: Mutex<Option<CheckpointInfo>>,
    every: Duration,
    patience: Duration,
    /// Every node the feeds reach, to say which hold what a checkpoint waits for.
    nodes: Vec<NodeWeak>,
}

impl Inner {
    /// The nodes holding elements a checkpoint must wait for, as `name (n held)`.
    fn holding(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(NodeWeak::upgrade)
            .filter(|n| n.in_flight() > 0 && !n.is_at_rest())
            .map(|n| format!("`{}` ({} held)", n.display_name(), n.in_flight()))
            .collect()
    }
}

type Reply = futures_channel::oneshot::Sender<Result<CheckpointInfo, StoreError>>;

/// How many times a periodic checkpoint is tried when the graph does not come still within
/// the patience, before the next interval.
const RETRIES: usize = 4;

/// After how many intervals in a row without a checkpoint (the graph never still) that is
/// reported as an error, and again after as many more.
const MISSED: u32 = 10;

/// Takes a checkpoint every interval, and whenever asked; ends when the [`Checkpoints`] is
/// dropped. Between checkpoints it holds the checkpoints' state weakly, so that dropping the
/// `Checkpoints` lets the store go (closing its file) even on an executor that is no longer
/// driven.
async fn leader(inner: Weak<Inner>, inbox: async_channel::Receiver<Reply>) {
    let mut missed: u32 = 0;
    loop {
        let sleep = {
            let Some(inner) = inner.upgrade() else { return };
            let clock = inner.executor.clock();
            clock.sleep_until(after(clock.now(), inner.every))
        };
        let asked = {
            let recv = std::pin::pin!(inbox.recv());
            match select(sleep, recv).await {
                Either::Left(_) => None,
                Either::Right((Ok(reply), _)) => Some(reply),
                Either::Right((Err(_), _)) => return,
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        if lock(&inner.store).is_none() {
            // the `Checkpoints` were dropped
            return;
        }
        let mut answer = None;
        match asked {
            // asked: until the graph is still, however long that takes
            Some(reply) => {
                let result = loop {
                    if let Some(done) = take(&inner).await {
                        break done;
                    }
                };
                answer = Some((reply, result));
            }
            None => {
                // a graph that did not come still (a feed waiting on another, across a join)
                // is tried again a few times before the next interval
                let mut taken = false;
                for _ in 0..RETRIES {
                    match take(&inner).await {
                        Some(Err(_)) if lock(&inner.store).is_none() => return,
                        Some(Err(e)) => {
                            inner.graph.report(StreamError::new(
                                ErrorKind::Checkpoint,
                                None,
                                e.to_string(),
                            ));
                            taken = true;
                            break;
                        }
                        Some(Ok(_)) => {
                            taken = true;
                            break;
                        }
                        None => inner.executor.clock().sleep(inner.patience / 4).await,
                    }
                }
                missed = if taken { 0 } else { missed + 1 };
                if missed > 0 && missed.is_multiple_of(MISSED) {
                    let holding = inner.holding();
                    inner.graph.report(StreamError::new(
                        ErrorKind::Checkpoint,
                        None,
                        format!(
                            "no checkpoint for {missed} intervals: the graph never came still{}",
                            if holding.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    "; these nodes always hold elements a checkpoint must wait \
                                     for: {} (their durable forms keep them in the checkpoint)",
                                    holding.join(", ")
                                )
                            }
                        ),
                    ));
                }
            }
        }
        // let go of the store before answering: one dropped right after `finish` is closed
        drop(inner);
        if let Some((reply, result)) = answer {
            let _ = reply.send(result);
        }
        if inbox.is_closed() && inbox.is_empty() {
            return;
        }
    }
}

/// One checkpoint: `None` when the graph did not come still within the patience.
async fn take(inner: &Arc<Inner>) -> Option<Result<CheckpointInfo, StoreError>> {
    let asked = Instant::now();
    if !inner
        .gate
        .freeze(inner.executor.clock(), inner.patience)
        .await
    {
        return None;
    }
    let id = inner.next_id.load(Ordering::Relaxed);
    let mut checkpoint = Checkpoint::new(id);
    let mut failed = None;
    for entry in &inner.entries {
        let state = &entry.state;
        match state.save() {
            Ok(payload) => checkpoint.insert(
                entry.key.clone(),
                frame(entry.op, state.state_type(), &payload),
            ),
            Err(e) => {
                failed = Some(StoreError::new(format!(
                    "checkpoint #{id}: cannot save `{}`'s state ({}): {e}",
                    entry.key,
                    state.state_type()
                )));
                break;
            }
        }
    }
    inner.gate.thaw();
    let pause = asked.elapsed();
    if let Some(e) = failed {
        return Some(Err(e));
    }
    let (reply, written) = futures_channel::oneshot::channel();
    let Some(store) = lock(&inner.store).clone() else {
        return Some(Err(StoreError::new(format!(
            "checkpoint #{id}: the checkpoints were dropped"
        ))));
    };
    let (size, entries) = (checkpoint.size(), checkpoint.len());
    inner.executor.spawn_blocking(Box::new(move || {
        let started = Instant::now();
        let result = store.save(&checkpoint).map(|()| started.elapsed());
        // let go of the store before answering: one dropped right after `finish` is closed
        drop(store);
        let _ = reply.send((result, checkpoint.taken_at));
    }));
    let (result, taken_at) = match written.await {
        Ok(done) => done,
        Err(_) => {
            return Some(Err(StoreError::new(format!(
                "checkpoint #{id}: the executor dropped the write"
            ))));
        }
    };
    Some(result.map(|write| {
        for entry in &inner.entries {
            entry.state.saved();
        }
        inner.next_id.store(id + 1, Ordering::Relaxed);
        let info = CheckpointInfo {
            id,
            taken_at,
            size,
            entries,
            pause,
            write,
        };
        *lock(&inner.last) = Some(info.clone());
        info
    }))
}

/// A graph's checkpoints: taken every interval on the graph's executor, on demand
/// ([`checkpoint_now`](Checkpoints::checkpoint_now)) and at the end
/// ([`finish`](Checkpoints::finish)), each saved atomically into the store. Dropping it stops
/// taking them.
///
/// A checkpoint that fails to be saved is reported to the graph's error stream
/// ([`ErrorKind::Checkpoint`]); the one before it stands.
///
/// # Examples
///
/// A running total over a source that resumes where it stood, with a store in memory (use
/// `streamz_store::RedbStore` for a file):
///
/// ```
/// # use std::sync::{Arc, Mutex};
/// # use streamz_core::{Checkpoint, StateStore, StoreError};
/// # #[derive(Default, Clone)]
/// # struct Memory(Arc<Mutex<Option<Checkpoint>>>);
/// # impl StateStore for Memory {
/// #     fn load(&self) -> Result<Option<Checkpoint>, StoreError> { Ok(self.0.lock().unwrap().clone()) }
/// #     fn save(&self, c: &Checkpoint) -> Result<(), StoreError> { *self.0.lock().unwrap() = Some(c.clone()); Ok(()) }
/// # }
/// use streamz_core::{Stream, VirtualExecutor};
///
/// let store = Memory::default();
/// let run = |upto: u64| {
///     let executor = VirtualExecutor::new();
///     let source = Stream::<u64>::with_executor(executor.clone());
///     let totals = source.durable().accumulate(|a: &u64, x| a + x).sink_to_vec();
///     let (checkpoints, feed) = source.checkpoint::<u64>(store.clone(), "1s").unwrap();
///     let from = feed.position().unwrap_or(0);
///     executor.block_on(async {
///         for x in from..upto {
///             feed.emit(x, x + 1).await.unwrap();
///         }
///         checkpoints.checkpoint_now().await.unwrap();
///     });
///     totals.to_vec()
/// };
/// assert_eq!(run(3), vec![0, 1, 3]); // 0 + 1 + 2, then the process stops
/// assert_eq!(run(5), vec![6, 10]); // restored: 3 + 3, 6 + 4
/// ```
pub struct Checkpoints {
    inner: Arc<Inner>,
    requests: async_channel::Sender<Reply>,
    restored: Option<CheckpointInfo>,
    not_durable: Vec<String>,
}

impl fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoints")
            .field("every", &self.inner.every)
            .field("restored", &self.restored)
            .field("last", &self.last())
            .finish_non_exhaustive()
    }
}

impl Drop for Checkpoints {
    /// Closes the store (once a write under way has ended): a run started again in the
    /// same process can open it at once.
    fn drop(&mut self) {
        drop(lock(&self.inner.store).take());
    }
}

impl Checkpoints {
    /// Checkpoints into `store`: register the sources with
    /// [`feed`](CheckpointsBuilder::feed), then [`start`](CheckpointsBuilder::start).
    pub fn builder(store: impl StateStore) -> CheckpointsBuilder {
        CheckpointsBuilder {
            store: Arc::new(store),
            every: Duration::from_secs(1),
            patience: Duration::from_millis(200),
            fresh: HashSet::new(),
            feeds: Vec::new(),
            gate: Gate::new(),
        }
    }

    /// The nodes that keep state and are not durable (a plain `accumulate` or `zip` in a
    /// checkpointed graph): checkpoints do not save them, so a restarted run starts them
    /// afresh. Each is logged as a warning when checkpoints start.
    pub fn not_durable(&self) -> &[String] {
        &self.not_durable
    }

    /// The checkpoint this run was restored from, if any.
    pub fn restored(&self) -> Option<&CheckpointInfo> {
        self.restored.as_ref()
    }

    /// The last checkpoint this run saved.
    pub fn last(&self) -> Option<CheckpointInfo> {
        lock(&self.inner.last).clone()
    }

    /// Takes a checkpoint now, once the graph is still, and resolves when it is saved.
    ///
    /// # Errors
    ///
    /// A state that cannot be encoded, or a store that cannot be written.
    pub async fn checkpoint_now(&self) -> Result<CheckpointInfo, StoreError> {
        let (reply, done) = futures_channel::oneshot::channel();
        if self.requests.send(reply).await.is_err() {
            return Err(StoreError::new(
                "checkpoints: the checkpoint task has ended",
            ));
        }
        match done.await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                "checkpoints: the checkpoint task ended before the checkpoint was saved",
            )),
        }
    }

    /// Takes a last checkpoint (call it once the sources are closed and the graph has
    /// drained, so that a restart finds the run complete) and stops.
    ///
    /// # Errors
    ///
    /// As for [`checkpoint_now`](Checkpoints::checkpoint_now).
    pub async fn finish(self) -> Result<CheckpointInfo, StoreError> {
        self.checkpoint_now().await
    }
}

impl<T: Element> Stream<T> {
    /// Checkpoints this source's graph into `store` every `every`: restores the graph's
    /// durable nodes ([`durable`](Stream::durable)) from the store's last checkpoint, and
    /// returns the [`Checkpoints`] and the [`Feed`] to emit through, whose
    /// [`position`](Feed::position) says where to resume. The same as
    /// [`Checkpoints::builder`] with this one source. See [`Checkpoints`] for an example.
    ///
    /// # Errors
    ///
    /// As for [`CheckpointsBuilder::start`].
    ///
    /// # Panics
    ///
    /// If `every` is zero.
    pub fn checkpoint<P>(
        &self,
        store: impl StateStore,
        every: impl IntoInterval,
    ) -> Result<(Checkpoints, Feed<T, P>), StoreError>
    where
        P: Serialize + DeserializeOwned + Clone + Send + 'static,
    {
        let mut builder = Checkpoints::builder(store).every(every);
        let feed = builder.feed(self);
        Ok((builder.start()?, feed))
    }
}
