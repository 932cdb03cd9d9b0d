//! Batching by count: `partition`, `partition_by`, `partition_unique`, `partition_unique_by`.

use std::hash::Hash;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;

use crate::emit::Cx;
use crate::node::{Finish, Kind, Operator, Outlet, Port, Shape, fn_name, guard, lock};
use crate::stream::{Element, Stream};

const PARTITION: Kind = Kind::new("partition", Shape::Diamond);
const PARTITION_UNIQUE: Kind = Kind::new("partition_unique", Shape::Diamond);

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

/// Batches of `n`, one per key, emitted in the order they fill.
struct Partition<K, T, F> {
    n: usize,
    batches: Mutex<IndexMap<K, Vec<T>>>,
    key: F,
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
        let mut batches = lock(&self.batches);
        let entry = batches.entry(key);
        let index = entry.index();
        let batch = entry.or_insert_with(|| Vec::with_capacity(self.n));
        batch.push(x);
        if batch.len() < self.n {
            return;
        }
        // `shift_remove` keeps the other open batches in the order they started.
        let full = batches.shift_remove_index(index);
        drop(batches);
        if let Some((_, full)) = full {
            out.push(full, cx);
        }
    }

    /// End of stream: emit each unfinished batch, shorter than `n`, in the order it started.
    fn finish(&self, out: &Arc<Outlet<Vec<T>>>, cx: &mut Cx<'_>) -> Finish {
        let rest: Vec<Vec<T>> = lock(&self.batches).drain(..).map(|(_, b)| b).collect();
        for batch in rest {
            out.push(batch, cx);
        }
        Finish::Now
    }
}

/// Batches of `n` elements with distinct keys.
struct PartitionUnique<K, T, F> {
    n: usize,
    keep: Keep,
    batch: Mutex<IndexMap<K, T>>,
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
        match self.keep {
            Keep::First => {
                batch.entry(key).or_insert(x);
            }
            Keep::Last => {
                batch.shift_remove(&key);
                batch.insert(key, x);
            }
        }
        if batch.len() < self.n {
            return;
        }
        let full: Vec<T> = batch.drain(..).map(|(_, x)| x).collect();
        drop(batch);
        out.push(full, cx);
    }

    /// End of stream: emit the unfinished batch, if any.
    fn finish(&self, out: &Arc<Outlet<Vec<T>>>, cx: &mut Cx<'_>) -> Finish {
        let rest: Vec<T> = lock(&self.batch).drain(..).map(|(_, x)| x).collect();
        if !rest.is_empty() {
            out.push(rest, cx);
        }
        Finish::Now
    }
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
        self.attach(
            PARTITION,
            None,
            Partition {
                n,
                batches: Mutex::new(IndexMap::new()),
                key: |_: &T| (),
            },
        )
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
        self.attach(
            PARTITION,
            fn_name::<F>(),
            Partition {
                n,
                batches: Mutex::new(IndexMap::new()),
                key,
            },
        )
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
            PARTITION_UNIQUE,
            None,
            PartitionUnique {
                n,
                keep,
                batch: Mutex::new(IndexMap::new()),
                key: T::clone,
            },
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
            PARTITION_UNIQUE,
            fn_name::<F>(),
            PartitionUnique {
                n,
                keep,
                batch: Mutex::new(IndexMap::new()),
                key,
            },
        )
    }
}
