//! [`Scattered`]: the part of a graph between `scatter` and `gather`, whose functions run on
//! the pool.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use streamz_core::{
    ApplyTuple, BoxError, Element, ErrorKind, IntoInterval, NodeRef, NodeState, SavedState, Stream,
    StreamError, label, lock, panic_message,
};

use crate::lane::Lane;
use crate::pool::Pool;
use crate::remote::{Items, Outcome, Promise, Remote, Window};

/// Elements that may be scattered: shared between the graph's thread and the pool's.
pub trait Scatterable: Element + Sync {}

impl<T: Element + Sync> Scatterable for T {}

/// `scatter` for every [`Stream`].
pub trait ScatterExt<T> {
    /// Sends the elements to `pool`: the functions of the returned [`Scattered`] stream's
    /// operators run there, until [`gather`](Scattered::gather) brings the results back.
    ///
    /// Without a [`buffer`](Scattered::buffer), one element is on the pool at a time and
    /// `emit` waits for its result (as with Dask); with `buffer(n)`, up to `n` are, and `emit`
    /// waits only while `n` are.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(2).unwrap();
    /// let source = Stream::new();
    /// let out = source.scatter(&pool).map(|x: u32| x + 1).gather().sink_to_vec();
    /// source.emit_blocking(1).unwrap(); // waits for the pool's result
    /// assert_eq!(out.to_vec(), vec![2]);
    /// ```
    fn scatter(&self, pool: &Pool) -> Scattered<T>;
}

impl<T: Scatterable> ScatterExt<T> for Stream<T> {
    fn scatter(&self, pool: &Pool) -> Scattered<T> {
        let window = Window::new(1);
        let permits = window.clone();
        let stream = self
            .then(move |x: T| {
                // Usually a permit is free, and this is ready at its first poll.
                let permits = permits.clone();
                async move { Remote::ready(x, permits.acquire().await) }
            })
            .named("scatter");
        Scattered {
            stream,
            pool: pool.clone(),
            window,
            buffered: false,
            stage: None,
        }
    }
}

/// A stream whose functions run on a rayon [`Pool`]: made by
/// [`scatter`](ScatterExt::scatter), ended by [`gather`](Scattered::gather) or
/// [`gather_unordered`](Scattered::gather_unordered).
///
/// `map`, `try_map`, `filter`, `starmap`, `flatten` and `accumulate` run their functions on
/// the pool; consecutive steps of one element follow each other there, without a pool thread
/// ever waiting. A panic or an `Err` in a pooled function fails that element with an error of
/// its own stage ([`ErrorKind::Panic`] or [`ErrorKind::Failed`], naming the stage's node), as
/// the same function would fail in the local graph; it comes out at `gather` (from `emit`, or
/// on the error stream when buffered), and the elements after it are not affected.
pub struct Scattered<T> {
    stream: Stream<Remote<T>>,
    pool: Pool,
    window: Arc<Window>,
    buffered: bool,
    /// The node the last pooled stage's failures name, when the last node is one.
    stage: Option<StageNode>,
}

/// The node a pooled stage's failures name: its node, renamed with it.
#[derive(Clone)]
struct StageNode(Arc<Mutex<NodeRef>>);

impl StageNode {
    fn new(name: &str) -> Self {
        StageNode(Arc::new(Mutex::new(NodeRef::detached(name))))
    }

    fn set(&self, node: NodeRef) {
        *lock(&self.0) = node;
    }

    fn get(&self) -> NodeRef {
        lock(&self.0).clone()
    }
}

impl<T> Clone for Scattered<T> {
    fn clone(&self) -> Self {
        Scattered {
            stream: self.stream.clone(),
            pool: self.pool.clone(),
            window: self.window.clone(),
            buffered: self.buffered,
            stage: self.stage.clone(),
        }
    }
}

impl<T> fmt::Debug for Scattered<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scattered")
            .field("stream", &self.stream)
            .field("buffered", &self.buffered)
            .finish_non_exhaustive()
    }
}

impl<T: Scatterable> Scattered<T> {
    fn with_stream<U>(&self, stream: Stream<Remote<U>>) -> Scattered<U> {
        Scattered {
            stream,
            pool: self.pool.clone(),
            window: self.window.clone(),
            buffered: self.buffered,
            stage: None,
        }
    }

    /// The stage whose node is `stream`, failing as `node`.
    fn with_stage<U: 'static>(&self, stream: Stream<Remote<U>>, node: StageNode) -> Scattered<U> {
        node.set(stream.node());
        Scattered {
            stage: Some(node),
            ..self.with_stream(stream)
        }
    }

    /// Adds a step that runs `job` on the pool once the element's previous step is done.
    fn pooled<U: Scatterable>(
        &self,
        name: String,
        job: impl Fn(Items<T>) -> Result<Items<U>, BoxError> + Send + Sync + 'static,
    ) -> Scattered<U> {
        let node = StageNode::new(&name);
        let stage = node.clone();
        let lane = Lane::new(self.pool.clone(), move |items| {
            run_job(&node, || job(items))
        });
        let stream = self
            .stream
            .map(move |input: Remote<T>| {
                let output: Remote<U> = input.next();
                let done = output.outcome.clone();
                let lane = lane.clone();
                input
                    .outcome
                    .when_set(move |outcome: Arc<Outcome<T>>| match &*outcome {
                        Err(failure) => done.set(Err(failure.clone())),
                        Ok(items) => lane.push(items.clone(), done),
                    });
                output
            })
            .named(&name);
        self.with_stage(stream, stage)
    }

    /// Runs `f(x)` on the pool for each element.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(2).unwrap();
    /// let source = Stream::new();
    /// let out = source.scatter(&pool).map(|s: String| s.len()).gather().sink_to_vec();
    /// source.emit_blocking("four".to_owned()).unwrap();
    /// assert_eq!(out.to_vec(), vec![4]);
    /// ```
    pub fn map<U, F>(&self, f: F) -> Scattered<U>
    where
        U: Scatterable,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.pooled(label::<F>("map"), move |items| Ok(items.map(&f)))
    }

    /// Runs `f(x)` on the pool for each element; an `Err` fails that element at this stage
    /// (it comes out at `gather`).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(1).unwrap();
    /// let source = Stream::new();
    /// let out = source.scatter(&pool).try_map(|s: &'static str| s.parse::<u8>()).gather().sink_to_vec();
    /// source.emit_blocking("8").unwrap();
    /// assert!(source.emit_blocking("eight").is_err());
    /// assert_eq!(out.to_vec(), vec![8]);
    /// ```
    pub fn try_map<U, E, F>(&self, f: F) -> Scattered<U>
    where
        U: Scatterable,
        E: Into<BoxError>,
        F: Fn(T) -> Result<U, E> + Send + Sync + 'static,
    {
        self.pooled(label::<F>("map"), move |items| {
            let mut out = Vec::new();
            for x in items {
                out.push(f(x).map_err(Into::into)?);
            }
            Ok(Items::Many(out))
        })
    }

    /// Keeps the elements for which `predicate`, run on the pool, is true.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(2).unwrap();
    /// let source = Stream::new();
    /// let out = source.scatter(&pool).filter(|x: &u32| x % 2 == 1).gather().sink_to_vec();
    /// for x in 0..5 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![1, 3]);
    /// ```
    pub fn filter<F>(&self, predicate: F) -> Scattered<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.pooled(label::<F>("filter"), move |items| {
            Ok(Items::Many(
                items.into_iter().filter(|x| predicate(x)).collect(),
            ))
        })
    }

    /// Keeps the elements for which `predicate`, run on the pool, returns `Ok(true)`; an
    /// `Err` fails that element at this stage (it comes out at `gather`), as
    /// [`Stream::try_filter`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(1).unwrap();
    /// let source = Stream::new();
    /// let out = source
    ///     .scatter(&pool)
    ///     .try_filter(|s: &&'static str| s.parse::<u8>().map(|n| n > 5))
    ///     .gather()
    ///     .sink_to_vec();
    /// source.emit_blocking("8").unwrap();
    /// source.emit_blocking("3").unwrap();
    /// assert!(source.emit_blocking("eight").is_err());
    /// assert_eq!(out.to_vec(), vec!["8"]);
    /// ```
    pub fn try_filter<E, F>(&self, predicate: F) -> Scattered<T>
    where
        E: Into<BoxError>,
        F: Fn(&T) -> Result<bool, E> + Send + Sync + 'static,
    {
        self.pooled(label::<F>("filter"), move |items| {
            let mut kept = Vec::new();
            for x in items {
                if predicate(&x).map_err(Into::into)? {
                    kept.push(x);
                }
            }
            Ok(Items::Many(kept))
        })
    }

    /// For elements that are tuples, runs `f(a, b, …)` on the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(2).unwrap();
    /// let source = Stream::new();
    /// let out = source.scatter(&pool).starmap(|a: u32, b: u32| a * b).gather().sink_to_vec();
    /// source.emit_blocking((6, 7)).unwrap();
    /// assert_eq!(out.to_vec(), vec![42]);
    /// ```
    pub fn starmap<F>(&self, f: F) -> Scattered<F::Output>
    where
        F: ApplyTuple<T>,
        F::Output: Scatterable,
    {
        self.pooled(label::<F>("starmap"), move |items| {
            Ok(items.map(|x| f.apply(x)))
        })
    }

    /// For elements that are collections, their items, one by one, on the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(2).unwrap();
    /// let source = Stream::new();
    /// let out = source.scatter(&pool).flatten().gather().sink_to_vec();
    /// source.emit_blocking(vec![1, 2]).unwrap();
    /// source.emit_blocking(vec![]).unwrap();
    /// source.emit_blocking(vec![3]).unwrap();
    /// assert_eq!(out.to_vec(), vec![1, 2, 3]);
    /// ```
    pub fn flatten(&self) -> Scattered<T::Item>
    where
        T: IntoIterator,
        T::Item: Scatterable,
    {
        self.pooled("flatten".to_owned(), |items| {
            Ok(Items::Many(items.into_iter().flatten().collect()))
        })
    }

    /// A running fold on the pool, as [`Stream::accumulate`]: the first element is the first
    /// state, and each next one is `f(&state, x)`. Steps of consecutive elements follow each
    /// other in input order; a failing step leaves the state as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(2).unwrap();
    /// let source = Stream::new();
    /// let out = source.scatter(&pool).map(|x: u64| x + 1).accumulate(|a, x| a + x).gather().sink_to_vec();
    /// for x in 0..5 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![1, 3, 6, 10, 15]);
    /// ```
    pub fn accumulate<F>(&self, f: F) -> Scattered<T>
    where
        F: Fn(&T, T) -> T + Send + Sync + 'static,
    {
        self.chain(label::<F>("accumulate"), first_then(f))
    }

    /// A running fold on the pool from `start`, as [`Stream::accumulate_from`].
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(2).unwrap();
    /// let source = Stream::new();
    /// let out = source
    ///     .scatter(&pool)
    ///     .accumulate_from(String::new(), |a: &String, x: char| format!("{a}{x}"))
    ///     .gather()
    ///     .sink_to_vec();
    /// for c in "abc".chars() {
    ///     source.emit_blocking(c).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec!["a", "ab", "abc"]);
    /// ```
    pub fn accumulate_from<S, F>(&self, start: S, f: F) -> Scattered<S>
    where
        S: Scatterable,
        F: Fn(&S, T) -> S + Send + Sync + 'static,
    {
        self.chain(label::<F>("accumulate"), from_start(start, f))
    }

    /// The durable forms of the pool's folds, whose state checkpoints save (as
    /// [`Stream::durable`]'s): see [`DurableScattered`].
    pub fn durable(&self) -> DurableScattered<'_, T> {
        DurableScattered(self)
    }

    /// A fold whose step is `step(previous state, x)`, run on the pool in input order; its
    /// state cannot be saved by checkpoints (the node says so: `keeps_state`).
    fn chain<S, G>(&self, name: String, step: G) -> Scattered<S>
    where
        S: Scatterable,
        G: Fn(Option<&S>, T) -> S + Send + Sync + 'static,
    {
        let last = Arc::new(Mutex::new(Promise::done(None)));
        let (stream, stage) = self.fold(&name, step, last, None);
        // its state is on the pool, where checkpoints cannot save it
        self.with_stage(stream.keeps_state(), stage)
    }

    /// The node of a fold on the pool: `last` is the state after the latest element, as the
    /// pool will have it; `keep` is held by the node's function.
    fn fold<S, G>(
        &self,
        name: &str,
        step: G,
        last: Arc<Mutex<Arc<Promise<Option<S>>>>>,
        keep: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> (Stream<Remote<S>>, StageNode)
    where
        S: Scatterable,
        G: Fn(Option<&S>, T) -> S + Send + Sync + 'static,
    {
        let step = Arc::new(step);
        let pool = self.pool.clone();
        let node = StageNode::new(name);
        let stage = node.clone();
        let stream = self
            .stream
            .map(move |input: Remote<T>| {
                let _held = &keep;
                let output: Remote<S> = input.next();
                let done = output.outcome.clone();
                let next_state = Promise::new();
                let previous = {
                    let mut last = lock(&last);
                    std::mem::replace(&mut *last, next_state.clone())
                };
                let (step, pool, node) = (step.clone(), pool.clone(), node.clone());
                previous.when_set(move |state: Arc<Option<S>>| {
                    input
                        .outcome
                        .when_set(move |outcome: Arc<Outcome<T>>| match &*outcome {
                            Err(failure) => {
                                next_state.set((*state).clone());
                                done.set(Err(failure.clone()));
                            }
                            Ok(items) => {
                                let items = items.clone();
                                pool.run(move || {
                                    let mut current = (*state).clone();
                                    let result = run_job(&node, || {
                                        let mut states = Vec::new();
                                        let mut folded = current.clone();
                                        for x in items {
                                            let next = step(folded.as_ref(), x);
                                            states.push(next.clone());
                                            folded = Some(next);
                                        }
                                        current = folded;
                                        Ok(Items::Many(states))
                                    });
                                    // A failed step leaves the state as it was.
                                    if result.is_err() {
                                        current = (*state).clone();
                                    }
                                    next_state.set(current);
                                    done.set(result);
                                });
                            }
                        });
                });
                output
            })
            .named(name);
        (stream, stage)
    }

    /// Lets up to `n` elements be on the pool at once. `emit` returns as soon as an element
    /// is on its way, and waits only while `n` are; results still come out of
    /// [`gather`](Scattered::gather) in input order. Without a buffer, one element is on the
    /// pool at a time and `emit` waits for its result.
    ///
    /// # Panics
    ///
    /// If `n` is 0; and at [`gather`](Scattered::gather), if the graph has no executor (to
    /// run the gathering task: `Stream::with_executor(pool.clone())` will do).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_rayon::{Pool, ScatterExt};
    ///
    /// let pool = Pool::new(2).unwrap();
    /// let source = Stream::with_executor(pool.clone());
    /// let out = source.scatter(&pool).map(|x: u32| x * 10).buffer(8).gather().sink_to_vec();
    /// for x in 0..20 {
    ///     source.emit_blocking(x).unwrap(); // returns while fewer than 8 are on the pool
    /// }
    /// futures_executor::block_on(source.flush());
    /// assert_eq!(out.to_vec(), (0..20).map(|x| x * 10).collect::<Vec<_>>());
    /// ```
    pub fn buffer(&self, n: usize) -> Scattered<T> {
        assert!(n >= 1, "buffer: n must be at least 1");
        self.window.set_capacity(n);
        let mut buffered = self.with_stream(self.stream.map(|r| r).named("buffer"));
        buffered.buffered = true;
        buffered
    }

    /// Spaces the elements at least `interval` apart, as [`Stream::rate_limit`]; the work
    /// already started goes on meanwhile.
    ///
    /// # Panics
    ///
    /// If the graph has no executor, or `interval` is a string that is not a duration.
    pub fn rate_limit(&self, interval: impl IntoInterval) -> Scattered<T> {
        self.with_stream(self.stream.rate_limit(interval))
    }

    /// Delays every element by `interval`, as [`Stream::delay`].
    ///
    /// # Panics
    ///
    /// If the graph has no executor, or `interval` is a string that is not a duration.
    pub fn delay(&self, interval: impl IntoInterval) -> Scattered<T> {
        self.with_stream(self.stream.delay(interval))
    }

    /// Brings the results back to a local stream, in input order. A failure on the pool is
    /// an error for that element: from its `emit` when that waits for it (no buffer),
    /// otherwise on the graph's [error stream](Stream::errors).
    ///
    /// # Panics
    ///
    /// After a [`buffer`](Scattered::buffer), if the graph has no executor.
    pub fn gather(&self) -> Stream<T> {
        self.gather_in(true)
    }

    /// Brings the results back in the order they are ready: a quick element overtakes a slow
    /// one (the `as_completed` order the original's users asked for, its issue #163). Without
    /// a buffer there is only ever one element on the pool, so this is input order.
    ///
    /// # Panics
    ///
    /// After a [`buffer`](Scattered::buffer), if the graph has no executor.
    pub fn gather_unordered(&self) -> Stream<T> {
        self.gather_in(false)
    }

    fn gather_in(&self, ordered: bool) -> Stream<T> {
        let results: Stream<Items<T>> = if !self.buffered {
            self.stream.try_then(Remote::items)
        } else {
            // As many waits as the window lets elements be in flight.
            let parallelism = self.window.capacity();
            if ordered {
                self.stream.try_map_async(parallelism, Remote::items)
            } else {
                self.stream
                    .try_map_async_unordered(parallelism, Remote::items)
            }
        };
        results
            .named(if ordered {
                "gather"
            } else {
                "gather_unordered"
            })
            .flatten()
            .part_of_upstream()
    }

    /// Names the node this handle stands for.
    pub fn named(self, name: &str) -> Self {
        let stream = self.stream.clone().named(name);
        match self.stage.clone() {
            Some(stage) => self.with_stage(stream, stage),
            None => self.with_stream(stream),
        }
    }
}

/// Runs a pooled job, turning a panic or an `Err` into this element's failure at its stage.
fn run_job<U>(node: &StageNode, job: impl FnOnce() -> Result<Items<U>, BoxError>) -> Outcome<U> {
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(Ok(items)) => Ok(items),
        Ok(Err(e)) => {
            Err(StreamError::new(ErrorKind::Failed, Some(node.get()), e.to_string()).with_source(e))
        }
        Err(panic) => Err(StreamError::new(
            ErrorKind::Panic,
            Some(node.get()),
            panic_message(&*panic),
        )),
    }
}

/// The durable forms of the pool's folds: the same folds, whose state (`serde`'s
/// `Serialize` and `Deserialize`) checkpoints save, as those of [`Stream::durable`]. Made by
/// [`Scattered::durable`].
///
/// At a checkpoint the graph is still: every element's step has run on the pool, and the
/// state is the one after the last of them.
///
/// # Examples
///
/// ```
/// use streamz_core::Stream;
/// use streamz_rayon::{Pool, ScatterExt};
///
/// let pool = Pool::new(2).unwrap();
/// let source = Stream::with_executor(pool.clone());
/// let totals = source
///     .scatter(&pool)
///     .durable()
///     .accumulate_from(0u64, |total: &u64, x: u64| total + x)
///     .named("total")
///     .gather()
///     .sink_to_vec();
/// for x in 1..=3 {
///     source.emit_blocking(x).unwrap();
/// }
/// assert_eq!(totals.to_vec(), vec![1, 3, 6]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DurableScattered<'a, T>(&'a Scattered<T>);

impl<T: Scatterable> DurableScattered<'_, T> {
    /// [`Scattered::accumulate`], its state saved by checkpoints.
    pub fn accumulate<F>(&self, f: F) -> Scattered<T>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(&T, T) -> T + Send + Sync + 'static,
    {
        self.chain(label::<F>("accumulate"), first_then(f))
    }

    /// [`Scattered::accumulate_from`], its state saved by checkpoints.
    pub fn accumulate_from<S, F>(&self, start: S, f: F) -> Scattered<S>
    where
        S: Scatterable + Serialize + DeserializeOwned,
        F: Fn(&S, T) -> S + Send + Sync + 'static,
    {
        self.chain(label::<F>("accumulate"), from_start(start, f))
    }

    fn chain<S, G>(&self, name: String, step: G) -> Scattered<S>
    where
        S: Scatterable + Serialize + DeserializeOwned,
        G: Fn(Option<&S>, T) -> S + Send + Sync + 'static,
    {
        let last = Arc::new(Mutex::new(Promise::done(None)));
        let saved = SavedState::new(Fold { last: last.clone() });
        let keep: Arc<dyn std::any::Any + Send + Sync> = saved.clone();
        let (stream, stage) = self.0.fold(&name, step, last, Some(keep));
        self.0.with_stage(stream.saves_state(&saved), stage)
    }
}

/// A fold's state on the pool, for checkpoints.
struct Fold<S> {
    last: Arc<Mutex<Arc<Promise<Option<S>>>>>,
}

impl<S: Scatterable + Serialize + DeserializeOwned> NodeState for Fold<S> {
    type State = Option<S>;

    fn state(&self) -> Option<S> {
        // the graph is still, so the last step has run (its state is set before its result,
        // which the gather waits for); waiting is for a step that is ending
        let last = lock(&self.last).clone();
        (*last.wait()).clone()
    }

    fn restore(&self, state: Option<S>) {
        *lock(&self.last) = Promise::done(state);
    }
}

/// `accumulate`'s step: the first element is the first state, then `f(&state, x)`.
fn first_then<T, F: Fn(&T, T) -> T>(f: F) -> impl Fn(Option<&T>, T) -> T {
    move |state, x| match state {
        None => x,
        Some(state) => f(state, x),
    }
}

/// `accumulate_from`'s step: `f(&state, x)`, from `start`.
fn from_start<S, T, F: Fn(&S, T) -> S>(start: S, f: F) -> impl Fn(Option<&S>, T) -> S {
    move |state, x| f(state.unwrap_or(&start), x)
}
