//! Operators that pass some elements and drop others by position or history: `unique`,
//! `unique_by`, `slice`.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::num::NonZeroUsize;

use lru::LruCache;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::{SaveState, decode, encode};
use crate::durable::Durable;
use crate::emit::Cx;
use crate::node::{Kind, Operator, Outlet, Port, Shape, fn_name, guard, lock};
use crate::stream::{Element, Stream};

const UNIQUE: Kind = Kind::stateful("unique", Shape::Ellipse);
const SLICE: Kind = Kind::stateful("slice", Shape::Ellipse);

/// The keys `unique` remembers.
enum History<K> {
    /// Every key ever seen.
    All(HashSet<K>),
    /// The `maxsize` most recently seen keys; seeing a key again makes it the most recent.
    /// The cache grows with what it holds (`maxsize` sizes nothing up front).
    Recent(LruCache<K, ()>, usize),
}

impl<K: Hash + Eq> History<K> {
    fn new(maxsize: Option<usize>) -> Self {
        match maxsize {
            None => History::All(HashSet::new()),
            Some(0) => panic!("unique: maxsize must be at least 1, or None for no limit"),
            Some(n) => History::Recent(LruCache::unbounded(), n),
        }
    }

    /// Records `key`; true if it was new.
    fn insert(&mut self, key: K) -> bool {
        match self {
            History::All(seen) => seen.insert(key),
            History::Recent(recent, maxsize) => {
                if recent.get(&key).is_some() {
                    false
                } else {
                    recent.put(key, ());
                    if recent.len() == *maxsize && recent.cap().get() > *maxsize {
                        // full for the first time: from now on each new key reuses the
                        // evicted one's slot, so the steady state allocates nothing
                        recent.resize(NonZeroUsize::new(*maxsize).unwrap_or(NonZeroUsize::MIN));
                    }
                    true
                }
            }
        }
    }
}

struct Unique<K, F> {
    history: Mutex<History<K>>,
    key: F,
}

impl<K: Hash + Eq, F> Unique<K, F> {
    fn new(maxsize: Option<usize>, key: F) -> Self {
        Unique {
            history: Mutex::new(History::new(maxsize)),
            key,
        }
    }
}

/// Saves the keys remembered, the least recent first; restored, they are remembered in that
/// order (under `maxsize`, the last `maxsize` of them).
impl<K, F> SaveState for Unique<K, F>
where
    K: Serialize + DeserializeOwned + Hash + Eq + Send,
    F: Send + Sync,
{
    fn save(&self) -> Result<Vec<u8>, String> {
        match &*lock(&self.history) {
            History::All(seen) => encode(&seen.iter().collect::<Vec<_>>()),
            History::Recent(recent, _) => {
                encode(&recent.iter().rev().map(|(k, ())| k).collect::<Vec<_>>())
            }
        }
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let keys: Vec<K> = decode(bytes)?;
        let mut history = lock(&self.history);
        let maxsize = match &*history {
            History::All(_) => None,
            History::Recent(_, maxsize) => Some(*maxsize),
        };
        *history = History::new(maxsize);
        for key in keys {
            history.insert(key);
        }
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<Vec<K>>()
    }
}

impl Slice {
    fn new(start: usize, stop: Option<usize>, step: usize) -> Self {
        assert!(step >= 1, "slice: step must be at least 1");
        Slice {
            next_index: AtomicU64::new(0),
            start: start as u64,
            stop: stop.map(|s| s as u64),
            step: step as u64,
        }
    }
}

/// Saves the index of the next element.
impl SaveState for Slice {
    fn save(&self) -> Result<Vec<u8>, String> {
        encode(&self.next_index.load(Ordering::Relaxed))
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        self.next_index.store(decode(bytes)?, Ordering::Relaxed);
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        "u64"
    }
}

impl<T, K, F> Operator<T> for Unique<K, F>
where
    T: Element,
    K: Hash + Eq + Send + 'static,
    F: Fn(&T) -> K + Send + Sync + 'static,
{
    type Out = T;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        let Some(key) = guard(&out.info, cx, || (self.key)(&x)) else {
            return;
        };
        let new = lock(&self.history).insert(key);
        if new {
            out.push(x, cx);
        }
    }
}

struct Slice {
    next_index: AtomicU64,
    start: u64,
    stop: Option<u64>,
    step: u64,
}

impl<T: Element> Operator<T> for Slice {
    type Out = T;

    #[inline]
    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        let i = self.next_index.fetch_add(1, Ordering::Relaxed);
        let below_stop = self.stop.is_none_or(|stop| i < stop);
        if i >= self.start && below_stop && (i - self.start).is_multiple_of(self.step) {
            out.push(x, cx);
        }
    }
}

impl<T: Element> Stream<T> {
    /// Emits only elements not seen before. With `maxsize` `Some(n)`, "before" means among the
    /// `n` most recently seen distinct elements (seeing one again makes it the most recent);
    /// `Some(1)` drops consecutive duplicates. With `None` it remembers every element ever
    /// seen, so memory grows with the number of distinct elements: pass `None` only when that
    /// number is bounded.
    ///
    /// # Panics
    ///
    /// If `maxsize` is `Some(0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.unique(Some(2)).sink_to_vec();
    /// for x in [1, 2, 1, 2, 3, 2, 1] {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![1, 2, 3, 1]);
    /// ```
    pub fn unique(&self, maxsize: Option<usize>) -> Stream<T>
    where
        T: Hash + Eq,
    {
        self.attach(&UNIQUE, None, Unique::new(maxsize, T::clone))
    }

    /// Like [`unique`](Stream::unique), comparing elements by `key(x)`.
    ///
    /// # Panics
    ///
    /// If `maxsize` is `Some(0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// // drop elements of the same parity as the previous one
    /// let out = source.unique_by(Some(1), |x: &i32| x % 2).sink_to_vec();
    /// for x in [1, 2, 4, 6, 3] {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![1, 2, 3]);
    /// ```
    pub fn unique_by<K, F>(&self, maxsize: Option<usize>, key: F) -> Stream<T>
    where
        K: Hash + Eq + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        self.attach(&UNIQUE, fn_name::<F>(), Unique::new(maxsize, key))
    }

    /// Emits the elements at positions `start, start + step, start + 2·step, …` below `stop`
    /// (counting from 0), like Python's `itertools.islice`. `stop` `Some(0)` emits nothing;
    /// `None` has no end.
    ///
    /// This differs on purpose from the original, which counts the step from 0 rather than
    /// from `start` and treats `stop=0` as no end.
    ///
    /// # Panics
    ///
    /// If `step` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.slice(1, Some(8), 2).sink_to_vec();
    /// for x in 0..10 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![1, 3, 5, 7]);
    /// ```
    pub fn slice(&self, start: usize, stop: Option<usize>, step: usize) -> Stream<T> {
        self.attach(&SLICE, None, Slice::new(start, stop, step))
    }
}

impl<T: Element> Durable<'_, T> {
    /// A durable [`unique`](Stream::unique): the elements remembered are saved.
    ///
    /// # Panics
    ///
    /// If `maxsize` is `Some(0)`.
    pub fn unique(&self, maxsize: Option<usize>) -> Stream<T>
    where
        T: Hash + Eq + Serialize + DeserializeOwned,
    {
        let op = Unique::new(maxsize, T::clone);
        self.stream.attach_saved(&UNIQUE, None, false, |_| op)
    }

    /// A durable [`unique_by`](Stream::unique_by): the keys remembered are saved.
    ///
    /// # Panics
    ///
    /// If `maxsize` is `Some(0)`.
    pub fn unique_by<K, F>(&self, maxsize: Option<usize>, key: F) -> Stream<T>
    where
        K: Hash + Eq + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let op = Unique::new(maxsize, key);
        self.stream
            .attach_saved(&UNIQUE, fn_name::<F>(), false, |_| op)
    }

    /// A durable [`slice`](Stream::slice): the index it has reached is saved.
    ///
    /// # Panics
    ///
    /// If `step` is 0.
    pub fn slice(&self, start: usize, stop: Option<usize>, step: usize) -> Stream<T> {
        let op = Slice::new(start, stop, step);
        self.stream.attach_saved(&SLICE, None, false, |_| op)
    }
}
