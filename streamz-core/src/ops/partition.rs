//! Batching by count: `partition`, `partition_by`, `partition_unique`, `partition_unique_by`.

use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{Either, select};
use indexmap::IndexMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ack::Acks;
use crate::checkpoint::{SaveState, decode, encode};
use crate::clock::IntoInterval;
use crate::durable::{Durable, start_moving};
use crate::emit::Cx;
use crate::executor::Executor;
use crate::node::{Finish, Kind, NodeArc, Operator, Outlet, Port, Shape, fn_name, guard, lock};
use crate::stream::{Element, Stream};
use crate::task::{InFlight, NodeState, hand_on, sleep_until};

const PARTITION: Kind = Kind::stateful("partition", Shape::Diamond);
/// A partition with a timeout: what it holds is handed on by its task, so a checkpoint waits
/// for it rather than saving it.
const PARTITION_TIMED: Kind = Kind::new("partition", Shape::Diamond);
const PARTITION_UNIQUE: Kind = Kind::stateful("partition_unique", Shape::Diamond);

/// Which element `partition_unique` keeps when a key comes again before the batch is full.
///
/// # Examples
///
/// ```
/// use streamz_core::{Keep, Stream};
///
/// let source = Stream::new();
/// let first = source.partition_unique(2, Keep::First).sink_to_vec();
/// let last = source.partition_unique(2, Keep::Last).sink_to_vec();
/// for x in [1, 1, 2] {
///     source.emit_blocking(x).unwrap();
/// }
/// assert_eq!(first.to_vec(), vec![vec![1, 2]]);
/// assert_eq!(last.to_vec(), vec![vec![1, 2]]);
/// assert_eq!(Keep::default(), Keep::First);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// Keep the first element with the key; ignore later ones.
    #[default]
    First,
    /// Keep the latest element with the key, moved to the end of the batch.
    Last,
}

struct Batch<T> {
    items: Vec<T>,
    /// The acknowledgements of its elements, without a timeout (with one, `timed` holds them).
    acks: Acks,
    /// With a timeout: when the batch is emitted even if not full, and what holds its
    /// elements until then (the timeout task may hand them on).
    timed: Option<(Instant, InFlight)>,
}

impl<T> Batch<T> {
    /// The acknowledgements of its elements, for emitting it in this push; what held them for
    /// the timeout is released.
    fn acks_and_release(&mut self) -> Acks {
        let mut acks = std::mem::take(&mut self.acks);
        if let Some((_, held)) = self.timed.take() {
            acks.merge(&held.acks);
        }
        acks
    }
}

/// The open batches, shared with the timeout task (notified when a batch starts and at end
/// of stream).
struct Batches<K, T> {
    /// Open batches, in the order they started.
    open: IndexMap<K, Batch<T>>,
    closed: bool,
}

/// End of stream (or the node is gone): what is left, in the order it started.
fn close<K, T>(shared: &NodeState<Batches<K, T>>) -> Vec<Batch<T>> {
    shared.update(|batches| {
        batches.closed = true;
        batches.open.drain(..).map(|(_, b)| b).collect()
    })
}

/// Batches of `n`, one per key, emitted in the order they fill; with a timeout, also when
/// the timeout has passed since a batch's first element.
struct Partition<K, T, F> {
    n: usize,
    key: F,
    shared: Arc<NodeState<Batches<K, T>>>,
    /// With a timeout: how long, the clock's executor, and the node (what holds a restored
    /// batch's elements).
    timeout: Option<(Duration, Arc<dyn Executor>)>,
    node: Option<NodeArc>,
}

impl<T, K, F> Operator<T> for Partition<K, T, F>
where
    T: Element,
    K: Hash + Eq + Send + 'static,
    F: Fn(&T) -> K + Send + Sync + 'static,
{
    type Out = Vec<T>;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<Vec<T>>>, cx: &mut Cx<'_>) {
        let Some(key) = guard(&out.info, cx, || (self.key)(&x)) else {
            return;
        };
        let mut batches = self.shared.lock();
        let entry = batches.open.entry(key);
        let index = entry.index();
        let mut started = false;
        let batch = entry.or_insert_with(|| {
            started = true;
            Batch {
                // at most a few slots up front, whatever `n` is; it grows with what it holds
                items: Vec::with_capacity(self.n.min(16)),
                acks: Acks::default(),
                timed: self.timeout.as_ref().map(|(t, ex)| {
                    let due = crate::clock::after(ex.clock().now(), *t);
                    (due, InFlight::none(out.node()))
                }),
            }
        });
        batch.items.push(x);
        let full = batch.items.len() >= self.n;
        let timed = match &mut batch.timed {
            // Counted in flight: the timeout may hand it on.
            Some((_, held)) => {
                held.add(1, cx.acks());
                true
            }
            None => {
                batch.acks.merge(cx.acks());
                false
            }
        };
        // `shift_remove` keeps the other open batches in the order they started.
        let batch = if full {
            batches.open.shift_remove_index(index)
        } else {
            None
        };
        drop(batches);
        if timed && started {
            self.shared.notify();
        }
        if let Some((_, mut batch)) = batch {
            let acks = batch.acks_and_release();
            cx.with_acks(&acks, |cx| out.push(batch.items, cx));
        }
    }

    /// End of stream: emit each unfinished batch, shorter than `n`, in the order it started.
    /// With a timeout, the task does that once it has handed on the batch it may be emitting
    /// now, so the remainder never overtakes it and the outlet closes only after both.
    fn finish(&self, out: &Arc<Outlet<Vec<T>>>, cx: &mut Cx<'_>) -> Finish {
        if self.timeout.is_some() {
            self.shared.update(|batches| batches.closed = true);
            return Finish::Later;
        }
        for mut batch in close(&self.shared) {
            let acks = batch.acks_and_release();
            cx.with_acks(&acks, |cx| out.push(batch.items, cx));
        }
        Finish::Now
    }
}

impl<K, T, F> Drop for Partition<K, T, F> {
    fn drop(&mut self) {
        // Stops the timeout task.
        close(&self.shared);
    }
}

/// Emits each batch whose timeout has passed, oldest first; one timer at a time per node.
async fn partition_timeout_task<K: Send + 'static, T: Element>(
    shared: Arc<NodeState<Batches<K, T>>>,
    out: Arc<Outlet<Vec<T>>>,
    executor: Arc<dyn Executor>,
) {
    loop {
        let listener = shared.listen();
        let (due, closed) = {
            let batches = shared.lock();
            (
                batches
                    .open
                    .first()
                    .and_then(|(_, b)| b.timed.as_ref().map(|t| t.0)),
                batches.closed,
            )
        };
        if closed {
            // End of stream (or the node was dropped): the rest, in the order it started.
            let moving = start_moving(&out.info.graph).await;
            for batch in close(&shared) {
                hand_on_batch(&out, batch).await;
            }
            drop(moving);
            out.close_from_task().await;
            return;
        }
        let Some(due) = due else {
            listener.await;
            continue;
        };
        let sleep = std::pin::pin!(sleep_until(&*executor, due));
        if let Either::Right(_) = select(sleep, listener).await {
            continue;
        }
        // taking batches out of the saved state: not while a checkpoint reads it
        let moving = start_moving(&out.info.graph).await;
        let now = executor.clock().now();
        let ready: Vec<Batch<T>> = {
            let mut batches = shared.lock();
            let mut ready = Vec::new();
            while batches
                .open
                .first()
                .is_some_and(|(_, b)| b.timed.as_ref().is_some_and(|t| t.0 <= now))
            {
                if let Some((_, batch)) = batches.open.shift_remove_index(0) {
                    ready.push(batch);
                }
            }
            ready
        };
        for batch in ready {
            hand_on_batch(&out, batch).await;
        }
        drop(moving);
    }
}

/// Hands a batch on from the timeout task.
async fn hand_on_batch<T: Element>(out: &Arc<Outlet<Vec<T>>>, batch: Batch<T>) {
    let held = batch
        .timed
        .map_or_else(|| InFlight::none(out.node()), |(_, held)| held);
    hand_on(out, batch.items, held).await;
}

fn partition_op<K, T, F>(
    n: usize,
    key: F,
    timeout: Option<(Duration, Arc<dyn Executor>)>,
) -> Partition<K, T, F> {
    Partition {
        n,
        key,
        shared: NodeState::new(Batches {
            open: IndexMap::new(),
            closed: false,
        }),
        timeout,
        node: None,
    }
}

/// A partition saves its open batches, in the order they started. With a timeout, they are at
/// rest in it until their time (the timeout task takes `start_moving` to hand them on), and a
/// restored batch's time starts again at the restore.
impl<K, T, F> SaveState for Partition<K, T, F>
where
    K: Serialize + DeserializeOwned + Hash + Eq + Send,
    T: Serialize + DeserializeOwned + Send,
    F: Send + Sync,
{
    fn save(&self) -> Result<Vec<u8>, String> {
        let batches = self.shared.lock();
        let open: Vec<(&K, &Vec<T>)> = batches.open.iter().map(|(k, b)| (k, &b.items)).collect();
        encode(&open)
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let open: Vec<(K, Vec<T>)> = decode(bytes)?;
        if let Some((_, items)) = open.iter().find(|(_, items)| items.len() >= self.n) {
            return Err(format!(
                "a batch holds {} elements, as many as the partition's {} or more",
                items.len(),
                self.n
            ));
        }
        let mut batches = self.shared.lock();
        batches.open = open
            .into_iter()
            .map(|(k, items)| {
                let timed = match (&self.timeout, &self.node) {
                    (Some((t, ex)), Some(node)) => Some((
                        crate::clock::after(ex.clock().now(), *t),
                        InFlight::hold(node.clone(), items.len()),
                    )),
                    _ => None,
                };
                let batch = Batch {
                    items,
                    acks: Acks::default(),
                    timed,
                };
                (k, batch)
            })
            .collect();
        drop(batches);
        self.shared.notify();
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<Vec<(K, Vec<T>)>>()
    }
}

/// Batches of `n` elements with distinct keys.
struct PartitionUnique<K, T, F> {
    n: usize,
    keep: Keep,
    /// The batch, each element with its acknowledgements (a duplicate ignored or replaced is
    /// done when it is).
    batch: Mutex<IndexMap<K, (T, Acks)>>,
    key: F,
}

impl<T, K, F> Operator<T> for PartitionUnique<K, T, F>
where
    T: Element,
    K: Hash + Eq + Send + 'static,
    F: Fn(&T) -> K + Send + Sync + 'static,
{
    type Out = Vec<T>;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<Vec<T>>>, cx: &mut Cx<'_>) {
        let Some(key) = guard(&out.info, cx, || (self.key)(&x)) else {
            return;
        };
        let mut batch = lock(&self.batch);
        let replaced = match self.keep {
            Keep::First => {
                batch.entry(key).or_insert_with(|| (x, cx.acks().clone()));
                None
            }
            Keep::Last => {
                let replaced = batch.shift_remove(&key);
                batch.insert(key, (x, cx.acks().clone()));
                replaced
            }
        };
        if batch.len() < self.n {
            drop(batch);
            drop(replaced);
            return;
        }
        let (full, acks) = drain(&mut batch);
        drop(batch);
        drop(replaced);
        cx.with_acks(&acks, |cx| out.push(full, cx));
    }

    /// End of stream: emit the unfinished batch, if any.
    fn finish(&self, out: &Arc<Outlet<Vec<T>>>, cx: &mut Cx<'_>) -> Finish {
        let (rest, acks) = drain(&mut lock(&self.batch));
        if !rest.is_empty() {
            cx.with_acks(&acks, |cx| out.push(rest, cx));
        }
        Finish::Now
    }
}

impl<K, T, F> PartitionUnique<K, T, F> {
    fn new(n: usize, keep: Keep, key: F) -> Self {
        PartitionUnique {
            n,
            keep,
            batch: Mutex::new(IndexMap::new()),
            key,
        }
    }
}

impl<K, T, F> SaveState for PartitionUnique<K, T, F>
where
    K: Serialize + DeserializeOwned + Hash + Eq + Send,
    T: Serialize + DeserializeOwned + Send,
    F: Send + Sync,
{
    fn save(&self) -> Result<Vec<u8>, String> {
        let batch = lock(&self.batch);
        let held: Vec<(&K, &T)> = batch.iter().map(|(k, (x, _))| (k, x)).collect();
        encode(&held)
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let held: Vec<(K, T)> = decode(bytes)?;
        if held.len() >= self.n {
            return Err(format!(
                "the batch holds {} elements, as many as the partition's {} or more",
                held.len(),
                self.n
            ));
        }
        *lock(&self.batch) = held
            .into_iter()
            .map(|(k, x)| (k, (x, Acks::default())))
            .collect();
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<Vec<(K, T)>>()
    }
}

/// A batch's elements, and their acknowledgements together.
fn drain<K, T>(batch: &mut IndexMap<K, (T, Acks)>) -> (Vec<T>, Acks) {
    let mut acks = Acks::default();
    let items = batch
        .drain(..)
        .map(|(_, (x, a))| {
            acks.merge(&a);
            x
        })
        .collect();
    (items, acks)
}

fn check_n(op: &str, n: usize) {
    assert!(n >= 1, "{op}: n must be at least 1");
}

impl<T: Element> Stream<T> {
    /// Emits the elements in batches of `n`, as `Vec`s. At end of stream
    /// ([`close`](Stream::close)) the last, shorter batch is emitted, where the original
    /// holds it forever.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.partition(2).sink_to_vec();
    /// for x in 0..5 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![vec![0, 1], vec![2, 3]]);
    /// source.close().wait().unwrap();
    /// assert_eq!(out.to_vec(), vec![vec![0, 1], vec![2, 3], vec![4]]);
    /// ```
    pub fn partition(&self, n: usize) -> Stream<Vec<T>> {
        check_n("partition", n);
        self.attach(&PARTITION, None, partition_op(n, |_: &T| (), None))
    }

    /// Batches of `n` elements with the same `key(x)`, each emitted as soon as it is full, so
    /// batches of different keys come out in the order they complete. At end of stream the
    /// unfinished batches are emitted in the order they started.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.partition_by(2, |x: &i32| x % 2).sink_to_vec();
    /// for x in 0..8 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![vec![0, 2], vec![1, 3], vec![4, 6], vec![5, 7]]);
    /// ```
    pub fn partition_by<K, F>(&self, n: usize, key: F) -> Stream<Vec<T>>
    where
        K: Hash + Eq + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        check_n("partition", n);
        self.attach(&PARTITION, fn_name::<F>(), partition_op(n, key, None))
    }

    /// Like [`partition`](Stream::partition), but a batch is also emitted, shorter, when
    /// `timeout` has passed since its first element arrived. One timer per node, whatever
    /// the number of batches.
    ///
    /// # Panics
    ///
    /// If `n` is 0, the graph has no executor, or `timeout` is a string that is not a
    /// duration.
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
    ///     .partition_timeout(10, "10ms")
    ///     .map(move |batch: Vec<i32>| (batch, clock.elapsed()))
    ///     .sink_to_vec();
    /// executor.block_on(async {
    ///     for x in 0..5 {
    ///         source.emit(x).await.unwrap();
    ///     }
    ///     source.flush().await;
    /// });
    /// assert_eq!(out.to_vec(), vec![(vec![0, 1, 2, 3, 4], Duration::from_millis(10))]);
    /// ```
    pub fn partition_timeout(&self, n: usize, timeout: impl IntoInterval) -> Stream<Vec<T>> {
        self.partition_by_timeout(n, timeout, |_: &T| ())
    }

    /// [`partition_by`](Stream::partition_by) with a timeout for each key's batch, as in
    /// [`partition_timeout`](Stream::partition_timeout).
    ///
    /// # Panics
    ///
    /// If `n` is 0, the graph has no executor, or `timeout` is a string that is not a
    /// duration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let out = source.partition_by_timeout(3, "50ms", |x: &i32| x % 2).sink_to_vec();
    /// executor.block_on(async {
    ///     for x in 0..3 {
    ///         source.emit(x).await.unwrap();
    ///     }
    /// });
    /// executor.advance(Duration::from_millis(50));
    /// assert_eq!(out.to_vec(), vec![vec![0, 2], vec![1]]);
    /// ```
    pub fn partition_by_timeout<K, F>(
        &self,
        n: usize,
        timeout: impl IntoInterval,
        key: F,
    ) -> Stream<Vec<T>>
    where
        K: Hash + Eq + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let make = self.partition_timed_op(n, timeout.into_interval(), key);
        self.attach_with(&PARTITION_TIMED, fn_name::<F>(), make)
    }

    /// What makes a partition with a timeout, once it has its outlet: its state and its task.
    fn partition_timed_op<K, F>(
        &self,
        n: usize,
        timeout: Duration,
        key: F,
    ) -> impl FnOnce(&Arc<Outlet<Vec<T>>>) -> Partition<K, T, F>
    where
        K: Hash + Eq + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        check_n("partition", n);
        let executor = self
            .graph_shared()
            .require_executor("partition with a timeout");
        move |out| {
            let mut op = partition_op(n, key, Some((timeout, executor.clone())));
            op.node = Some(out.node());
            executor.spawn(Box::pin(partition_timeout_task(
                op.shared.clone(),
                out.clone(),
                executor.clone(),
            )));
            op
        }
    }

    /// Batches of `n` distinct elements: a duplicate of an element already in the batch is
    /// ignored ([`Keep::First`]) or replaces it and moves to the end ([`Keep::Last`]). At end
    /// of stream the unfinished batch is emitted.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{Keep, Stream};
    ///
    /// let source = Stream::new();
    /// let out = source.partition_unique(3, Keep::Last).sink_to_vec();
    /// for x in [1, 2, 1, 3, 1, 3, 3, 2] {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![vec![2, 1, 3], vec![1, 3, 2]]);
    /// ```
    pub fn partition_unique(&self, n: usize, keep: Keep) -> Stream<Vec<T>>
    where
        T: Hash + Eq,
    {
        check_n("partition_unique", n);
        self.attach(
            &PARTITION_UNIQUE,
            None,
            PartitionUnique::new(n, keep, T::clone),
        )
    }

    /// Like [`partition_unique`](Stream::partition_unique), comparing elements by `key(x)`.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{Keep, Stream};
    ///
    /// let source = Stream::new();
    /// let out = source.partition_unique_by(3, Keep::First, |s: &&str| s.len()).sink_to_vec();
    /// for s in ["f", "fo", "f", "foo", "f", "foo", "foo", "fo"] {
    ///     source.emit_blocking(s).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![vec!["f", "fo", "foo"], vec!["f", "foo", "fo"]]);
    /// ```
    pub fn partition_unique_by<K, F>(&self, n: usize, keep: Keep, key: F) -> Stream<Vec<T>>
    where
        K: Hash + Eq + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        check_n("partition_unique", n);
        self.attach(
            &PARTITION_UNIQUE,
            fn_name::<F>(),
            PartitionUnique::new(n, keep, key),
        )
    }
}

impl<T: Element + Serialize + DeserializeOwned> Durable<'_, T> {
    /// A durable [`partition`](Stream::partition): the open batch is saved in checkpoints.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn partition(&self, n: usize) -> Stream<Vec<T>> {
        check_n("partition", n);
        let op = partition_op(n, |_: &T| (), None);
        self.stream.attach_saved(&PARTITION, None, false, |_| op)
    }

    /// A durable [`partition_by`](Stream::partition_by): the open batches are saved, with
    /// their keys.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn partition_by<K, F>(&self, n: usize, key: F) -> Stream<Vec<T>>
    where
        K: Hash + Eq + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        check_n("partition", n);
        let op = partition_op(n, key, None);
        self.stream
            .attach_saved(&PARTITION, fn_name::<F>(), false, |_| op)
    }

    /// A durable [`partition_timeout`](Stream::partition_timeout): the open batch is saved,
    /// and a checkpoint does not wait for its timeout; restored, its timeout starts again.
    ///
    /// # Panics
    ///
    /// As [`partition_timeout`](Stream::partition_timeout).
    pub fn partition_timeout(&self, n: usize, timeout: impl IntoInterval) -> Stream<Vec<T>> {
        self.partition_by_timeout(n, timeout, |_: &T| ())
    }

    /// A durable [`partition_by_timeout`](Stream::partition_by_timeout).
    ///
    /// # Panics
    ///
    /// As [`partition_by_timeout`](Stream::partition_by_timeout).
    pub fn partition_by_timeout<K, F>(
        &self,
        n: usize,
        timeout: impl IntoInterval,
        key: F,
    ) -> Stream<Vec<T>>
    where
        K: Hash + Eq + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let make = self
            .stream
            .partition_timed_op(n, timeout.into_interval(), key);
        self.stream
            .attach_saved(&PARTITION_TIMED, fn_name::<F>(), true, make)
    }

    /// A durable [`partition_unique`](Stream::partition_unique).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn partition_unique(&self, n: usize, keep: Keep) -> Stream<Vec<T>>
    where
        T: Hash + Eq,
    {
        check_n("partition_unique", n);
        let op = PartitionUnique::new(n, keep, T::clone);
        self.stream
            .attach_saved(&PARTITION_UNIQUE, None, false, |_| op)
    }

    /// A durable [`partition_unique_by`](Stream::partition_unique_by).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn partition_unique_by<K, F>(&self, n: usize, keep: Keep, key: F) -> Stream<Vec<T>>
    where
        K: Hash + Eq + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        check_n("partition_unique", n);
        let op = PartitionUnique::new(n, keep, key);
        self.stream
            .attach_saved(&PARTITION_UNIQUE, fn_name::<F>(), false, |_| op)
    }
}
