//! Operators that pass some elements and drop others by position or history: `unique`,
//! `unique_by`, `slice`.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::emit::Cx;
use crate::node::{Kind, Operator, Outlet, Port, Shape, fn_name, guard, lock};
use crate::stream::{Element, Stream};

const UNIQUE: Kind = Kind::new("unique", Shape::Ellipse);
const SLICE: Kind = Kind::new("slice", Shape::Ellipse);

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
        self.attach(
            UNIQUE,
            None,
            Unique {
                history: Mutex::new(History::new(maxsize)),
                key: T::clone,
            },
        )
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
        self.attach(
            UNIQUE,
            fn_name::<F>(),
            Unique {
                history: Mutex::new(History::new(maxsize)),
                key,
            },
        )
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
        assert!(step >= 1, "slice: step must be at least 1");
        self.attach(
            SLICE,
            None,
            Slice {
                next_index: AtomicU64::new(0),
                start: start as u64,
                stop: stop.map(|s| s as u64),
                step: step as u64,
            },
        )
    }
}
