//! Stateful folds: `scan`, `accumulate` and its forms, and `frequencies`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use std::any::type_name;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::{SaveState, decode, encode};
use crate::durable::Durable;
use crate::emit::Cx;
use crate::error::BoxError;
use crate::node::{Kind, Operator, Outlet, Port, Shape, fn_name, guard_try, lock};
use crate::stream::{Element, Stream};

const ACCUMULATE: Kind = Kind::stateful("accumulate", Shape::Box);
const FREQUENCIES: Kind = Kind::stateful("frequencies", Shape::Box);

/// A fold: `step(state, x)` gives the next state and the element to emit. The state is
/// replaced only when `step` returns `Ok`, so a failing function leaves it as it was.
struct Scan<S, F> {
    state: Mutex<Option<S>>,
    step: F,
}

impl<S, F> Scan<S, F> {
    fn new(step: F) -> Self {
        Scan {
            state: Mutex::new(None),
            step,
        }
    }
}

impl<T, S, U, E, F> Operator<T> for Scan<S, F>
where
    T: 'static,
    S: Send + 'static,
    U: Element,
    E: Into<BoxError>,
    F: Fn(Option<&S>, T) -> Result<(S, U), E> + Send + Sync + 'static,
{
    type Out = U;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<U>>, cx: &mut Cx<'_>) {
        let mut state = lock(&self.state);
        if let Some((next, y)) = guard_try(&out.info, cx, || (self.step)(state.as_ref(), x)) {
            *state = Some(next);
            drop(state);
            out.push(y, cx);
        }
    }
}

/// A fold's step: from the state (none before the first element) and an element, the next
/// state and the element to emit.
trait Step<S, T, U, E>: Fn(Option<&S>, T) -> Result<(S, U), E> {}

impl<S, T, U, E, F: Fn(Option<&S>, T) -> Result<(S, U), E>> Step<S, T, U, E> for F {}

impl Scan<(), ()> {
    /// `accumulate`'s: the first element is the state.
    fn accumulate<T: Clone>(f: impl Fn(&T, T) -> T) -> Scan<T, impl Step<T, T, T, Infallible>> {
        Scan::new(move |state: Option<&T>, x: T| {
            let next = match state {
                None => x,
                Some(state) => f(state, x),
            };
            Ok((next.clone(), next))
        })
    }

    /// `accumulate_from`'s.
    fn accumulate_from<T, Z: Clone>(
        start: Z,
        f: impl Fn(&Z, T) -> Z,
    ) -> Scan<Z, impl Step<Z, T, Z, Infallible>> {
        Scan::new(move |state: Option<&Z>, x: T| {
            let next = f(state.unwrap_or(&start), x);
            Ok((next.clone(), next))
        })
    }

    /// `accumulate_returns_state`'s: without a start, the first element is both the state
    /// and the output.
    fn returns_state<T: Clone + Into<Z> + Into<U>, Z, U, E>(
        start: Option<Z>,
        f: impl Fn(&Z, T) -> Result<(Z, U), E>,
    ) -> Scan<Z, impl Step<Z, T, U, E>> {
        Scan::new(
            move |state: Option<&Z>, x: T| match state.or(start.as_ref()) {
                Some(state) => f(state, x),
                None => Ok((x.clone().into(), x.into())),
            },
        )
    }

    /// `accumulate_with_state`'s: emits the state with the output.
    fn with_state<T: Clone + Into<Z> + Into<U>, Z: Clone, U>(
        start: Option<Z>,
        f: impl Fn(&Z, T) -> (Z, U),
    ) -> Scan<Z, impl Step<Z, T, (Z, U), Infallible>> {
        Scan::new(move |state: Option<&Z>, x: T| {
            let (next, y) = match state.or(start.as_ref()) {
                Some(state) => f(state, x),
                None => (x.clone().into(), x.into()),
            };
            Ok((next.clone(), (next, y)))
        })
    }
}

impl<S: Serialize + DeserializeOwned + Send, F: Send + Sync> SaveState for Scan<S, F> {
    fn save(&self) -> Result<Vec<u8>, String> {
        encode(&*lock(&self.state))
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        *lock(&self.state) = decode(bytes)?;
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        type_name::<S>()
    }
}

/// `scan`'s fold: the state and the function together, since `f` may be `FnMut`; `f` changes
/// the state in place.
struct ScanMut<S, F> {
    inner: Mutex<(S, F)>,
}

impl<T, S, U, E, F> Operator<T> for ScanMut<S, F>
where
    T: 'static,
    S: Send + 'static,
    U: Element,
    E: Into<BoxError>,
    F: FnMut(&mut S, T) -> Result<U, E> + Send + 'static,
{
    type Out = U;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<U>>, cx: &mut Cx<'_>) {
        let mut inner = lock(&self.inner);
        let (state, f) = &mut *inner;
        let y = guard_try(&out.info, cx, || f(state, x));
        drop(inner);
        if let Some(y) = y {
            out.push(y, cx);
        }
    }
}

impl<S, F> ScanMut<S, F> {
    fn new(start: S, f: F) -> Self {
        ScanMut {
            inner: Mutex::new((start, f)),
        }
    }
}

impl ScanMut<(), ()> {
    fn infallible<S, T, U>(
        start: S,
        mut f: impl FnMut(&mut S, T) -> U,
    ) -> ScanMut<S, impl FnMut(&mut S, T) -> Result<U, Infallible>> {
        ScanMut::new(start, move |state: &mut S, x: T| Ok(f(state, x)))
    }
}

impl<S: Serialize + DeserializeOwned + Send, F: Send> SaveState for ScanMut<S, F> {
    fn save(&self) -> Result<Vec<u8>, String> {
        encode(&lock(&self.inner).0)
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        lock(&self.inner).0 = decode(bytes)?;
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        type_name::<S>()
    }
}

struct Frequencies<T> {
    counts: Mutex<HashMap<T, usize>>,
}

impl<T> Default for Frequencies<T> {
    fn default() -> Self {
        Frequencies {
            counts: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Serialize + DeserializeOwned + Hash + Eq + Send> SaveState for Frequencies<T> {
    fn save(&self) -> Result<Vec<u8>, String> {
        encode(&*lock(&self.counts))
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        *lock(&self.counts) = decode(bytes)?;
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        type_name::<HashMap<T, usize>>()
    }
}

impl<T: Element + Hash + Eq> Operator<T> for Frequencies<T> {
    type Out = HashMap<T, usize>;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<Self::Out>>, cx: &mut Cx<'_>) {
        let mut counts = lock(&self.counts);
        *counts.entry(x).or_insert(0) += 1;
        let snapshot = counts.clone();
        drop(counts);
        out.push(snapshot, cx);
    }
}

impl<T: Element> Stream<T> {
    /// A running fold with state of any type, as [`Iterator::scan`] and futures'
    /// `StreamExt::scan`: `f(&mut state, x)` updates the state in place and returns the
    /// element to emit. This is the original's `accumulate(f, start=s, returns_state=True)`
    /// for a state that is not an element.
    ///
    /// If `f` panics, that element fails at this node; whatever `f` had changed in the state
    /// before panicking stays, and the next element continues from it (change the state last,
    /// or use [`accumulate_returns_state`](Stream::accumulate_returns_state), which replaces
    /// the state only when the function returns).
    ///
    /// # Examples
    ///
    /// A running mean, the original's `accumulate(f, start=(0, 0), returns_state=True)`:
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let means = source
    ///     .scan((0.0, 0u32), |(sum, n): &mut (f64, u32), x: f64| {
    ///         *sum += x;
    ///         *n += 1;
    ///         *sum / f64::from(*n)
    ///     })
    ///     .sink_to_vec();
    /// for x in [2.0, 4.0, 9.0] {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(means.to_vec(), vec![2.0, 3.0, 5.0]);
    /// ```
    pub fn scan<S, U, F>(&self, start: S, f: F) -> Stream<U>
    where
        S: Send + 'static,
        U: Element,
        F: FnMut(&mut S, T) -> U + Send + 'static,
    {
        let name = fn_name::<F>();
        self.attach(&ACCUMULATE, name, ScanMut::infallible(start, f))
    }

    /// Like [`scan`](Stream::scan) for a function that can fail: an `Err` fails that element
    /// at this node (its `emit` returns the error), and the next element continues from the
    /// state as `f` left it.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let totals = source
    ///     .try_scan(0u8, |total: &mut u8, x: u8| {
    ///         *total = total.checked_add(x).ok_or("overflow")?;
    ///         Ok::<_, &str>(*total)
    ///     })
    ///     .sink_to_vec();
    /// source.emit_blocking(200).unwrap();
    /// assert!(source.emit_blocking(100).is_err()); // 300 does not fit: the total stays 200
    /// source.emit_blocking(50).unwrap();
    /// assert_eq!(totals.to_vec(), vec![200, 250]);
    /// ```
    pub fn try_scan<S, U, E, F>(&self, start: S, f: F) -> Stream<U>
    where
        S: Send + 'static,
        U: Element,
        E: Into<BoxError>,
        F: FnMut(&mut S, T) -> Result<U, E> + Send + 'static,
    {
        let name = fn_name::<F>();
        self.attach(&ACCUMULATE, name, ScanMut::new(start, f))
    }

    /// A running fold without a start value: the first element becomes the state and is
    /// emitted unchanged; after that, emits `state = f(&state, x)` for each element.
    ///
    /// If `f` fails (panics), the state is left as it was and the next element continues
    /// from it. The other forms:
    ///
    /// | the original | here |
    /// |---|---|
    /// | `accumulate(f)` | `accumulate(f)` |
    /// | `accumulate(f, start=s)` | [`accumulate_from(s, f)`](Stream::accumulate_from) |
    /// | `accumulate(f, returns_state=True)` | [`accumulate_returns_state(None, f)`](Stream::accumulate_returns_state) |
    /// | `accumulate(f, start=s, returns_state=True)` | [`scan(s, f)`](Stream::scan) (any state type), or [`accumulate_returns_state(Some(s), f)`](Stream::accumulate_returns_state) |
    /// | `accumulate(f, …, with_state=True)` | [`accumulate_with_state(…)`](Stream::accumulate_with_state) |
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let sums = source.accumulate(|acc: &i32, x| acc + x).sink_to_vec();
    /// for x in 0..5 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(sums.to_vec(), vec![0, 1, 3, 6, 10]);
    /// ```
    pub fn accumulate<F>(&self, f: F) -> Stream<T>
    where
        F: Fn(&T, T) -> T + Send + Sync + 'static,
    {
        self.attach(&ACCUMULATE, fn_name::<F>(), Scan::accumulate(f))
    }

    /// A running fold from `start`: emits `state = f(&state, x)` for each element, the first
    /// being `f(&start, x0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let sums = source.accumulate_from(100, |acc: &i64, x: i64| acc + x).sink_to_vec();
    /// for x in 1..4 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(sums.to_vec(), vec![101, 103, 106]);
    /// ```
    pub fn accumulate_from<S, F>(&self, start: S, f: F) -> Stream<S>
    where
        S: Element + Sync,
        F: Fn(&S, T) -> S + Send + Sync + 'static,
    {
        self.attach(&ACCUMULATE, fn_name::<F>(), Scan::accumulate_from(start, f))
    }

    /// A fold whose function returns `(new_state, output)` and emits the output (the
    /// original's `returns_state=True`). With `start` `None`, the first element becomes the
    /// state and is emitted unchanged, as in the original; that needs `T` convertible into
    /// both the state and the output type, which holds when all three are the same. For a
    /// state of another type (a running mean's `(sum, count)`), use [`scan`](Stream::scan).
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// // the state is the running sum; the output, the running product of sums and elements
    /// let out = source
    ///     .accumulate_returns_state(Some(0), |acc: &i32, x: i32| (acc + x, acc * x))
    ///     .sink_to_vec();
    /// for x in 1..4 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![0, 2, 9]);
    /// ```
    pub fn accumulate_returns_state<S, U, F>(&self, start: Option<S>, f: F) -> Stream<U>
    where
        S: Send + Sync + 'static,
        U: Element,
        T: Into<S> + Into<U>,
        F: Fn(&S, T) -> (S, U) + Send + Sync + 'static,
    {
        let f = move |state: &S, x| Ok::<_, Infallible>(f(state, x));
        self.attach(&ACCUMULATE, fn_name::<F>(), Scan::returns_state(start, f))
    }

    /// Like [`accumulate_returns_state`](Stream::accumulate_returns_state) for a function
    /// that can fail: an `Err` fails that element at this node (its `emit` returns the
    /// error) and leaves the state as it was, so the next element continues from it.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source
    ///     .try_accumulate_returns_state(Some(0u8), |acc: &u8, x: u8| {
    ///         let next = acc.checked_add(x).ok_or("overflow")?;
    ///         Ok::<_, &str>((next, next))
    ///     })
    ///     .sink_to_vec();
    /// source.emit_blocking(200).unwrap();
    /// assert!(source.emit_blocking(100).is_err()); // 300 does not fit: the state stays 200
    /// source.emit_blocking(50).unwrap();
    /// assert_eq!(out.to_vec(), vec![200, 250]);
    /// ```
    pub fn try_accumulate_returns_state<S, U, E, F>(&self, start: Option<S>, f: F) -> Stream<U>
    where
        S: Send + Sync + 'static,
        U: Element,
        E: Into<BoxError> + 'static,
        T: Into<S> + Into<U>,
        F: Fn(&S, T) -> Result<(S, U), E> + Send + Sync + 'static,
    {
        self.attach(&ACCUMULATE, fn_name::<F>(), Scan::returns_state(start, f))
    }

    /// Like [`accumulate_returns_state`](Stream::accumulate_returns_state), but emits
    /// `(state, output)` pairs (the original's `with_state=True`). For the original's plain
    /// `accumulate(f, with_state=True)`, return the new state as both halves.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source
    ///     .accumulate_with_state(None, |acc: &i32, x: i32| (acc + x, acc * x))
    ///     .sink_to_vec();
    /// for x in 1..4 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![(1, 1), (3, 2), (6, 9)]);
    /// ```
    pub fn accumulate_with_state<S, U, F>(&self, start: Option<S>, f: F) -> Stream<(S, U)>
    where
        S: Element + Sync,
        U: Element,
        T: Into<S> + Into<U>,
        F: Fn(&S, T) -> (S, U) + Send + Sync + 'static,
    {
        self.attach(&ACCUMULATE, fn_name::<F>(), Scan::with_state(start, f))
    }

    /// Counts the elements seen so far: emits a fresh map from element to count after each.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.frequencies().sink_to_vec();
    /// for c in "aba".chars() {
    ///     source.emit_blocking(c).unwrap();
    /// }
    /// let last = out.to_vec().pop().unwrap();
    /// assert_eq!((last[&'a'], last[&'b']), (2, 1));
    /// ```
    pub fn frequencies(&self) -> Stream<HashMap<T, usize>>
    where
        T: Hash + Eq,
    {
        self.attach(&FREQUENCIES, None, Frequencies::default())
    }
}

impl<T: Element> Durable<'_, T> {
    /// A durable [`scan`](Stream::scan): its state is saved in checkpoints.
    pub fn scan<S, U, F>(&self, start: S, f: F) -> Stream<U>
    where
        S: Serialize + DeserializeOwned + Send + 'static,
        U: Element,
        F: FnMut(&mut S, T) -> U + Send + 'static,
    {
        let op = ScanMut::infallible(start, f);
        self.stream
            .attach_saved(&ACCUMULATE, fn_name::<F>(), false, |_| op)
    }

    /// A durable [`try_scan`](Stream::try_scan).
    pub fn try_scan<S, U, E, F>(&self, start: S, f: F) -> Stream<U>
    where
        S: Serialize + DeserializeOwned + Send + 'static,
        U: Element,
        E: Into<BoxError>,
        F: FnMut(&mut S, T) -> Result<U, E> + Send + 'static,
    {
        let op = ScanMut::new(start, f);
        self.stream
            .attach_saved(&ACCUMULATE, fn_name::<F>(), false, |_| op)
    }

    /// A durable [`accumulate`](Stream::accumulate).
    pub fn accumulate<F>(&self, f: F) -> Stream<T>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(&T, T) -> T + Send + Sync + 'static,
    {
        let op = Scan::accumulate(f);
        self.stream
            .attach_saved(&ACCUMULATE, fn_name::<F>(), false, |_| op)
    }

    /// A durable [`accumulate_from`](Stream::accumulate_from).
    pub fn accumulate_from<S, F>(&self, start: S, f: F) -> Stream<S>
    where
        S: Element + Sync + Serialize + DeserializeOwned,
        F: Fn(&S, T) -> S + Send + Sync + 'static,
    {
        let op = Scan::accumulate_from(start, f);
        self.stream
            .attach_saved(&ACCUMULATE, fn_name::<F>(), false, |_| op)
    }

    /// A durable [`accumulate_returns_state`](Stream::accumulate_returns_state).
    pub fn accumulate_returns_state<S, U, F>(&self, start: Option<S>, f: F) -> Stream<U>
    where
        S: Send + Sync + 'static + Serialize + DeserializeOwned,
        U: Element,
        T: Into<S> + Into<U>,
        F: Fn(&S, T) -> (S, U) + Send + Sync + 'static,
    {
        let f = move |state: &S, x| Ok::<_, Infallible>(f(state, x));
        let op = Scan::returns_state(start, f);
        self.stream
            .attach_saved(&ACCUMULATE, fn_name::<F>(), false, |_| op)
    }

    /// A durable [`try_accumulate_returns_state`](Stream::try_accumulate_returns_state).
    pub fn try_accumulate_returns_state<S, U, E, F>(&self, start: Option<S>, f: F) -> Stream<U>
    where
        S: Send + Sync + 'static + Serialize + DeserializeOwned,
        U: Element,
        E: Into<BoxError> + 'static,
        T: Into<S> + Into<U>,
        F: Fn(&S, T) -> Result<(S, U), E> + Send + Sync + 'static,
    {
        let op = Scan::returns_state(start, f);
        self.stream
            .attach_saved(&ACCUMULATE, fn_name::<F>(), false, |_| op)
    }

    /// A durable [`accumulate_with_state`](Stream::accumulate_with_state).
    pub fn accumulate_with_state<S, U, F>(&self, start: Option<S>, f: F) -> Stream<(S, U)>
    where
        S: Element + Sync + Serialize + DeserializeOwned,
        U: Element,
        T: Into<S> + Into<U>,
        F: Fn(&S, T) -> (S, U) + Send + Sync + 'static,
    {
        let op = Scan::with_state(start, f);
        self.stream
            .attach_saved(&ACCUMULATE, fn_name::<F>(), false, |_| op)
    }

    /// A durable [`frequencies`](Stream::frequencies).
    pub fn frequencies(&self) -> Stream<HashMap<T, usize>>
    where
        T: Hash + Eq + Serialize + DeserializeOwned,
    {
        self.stream
            .attach_saved(&FREQUENCIES, None, false, |_| Frequencies::default())
    }
}
