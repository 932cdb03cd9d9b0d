//! [`Scattered`]: the functions between `scatter` and `gather`, run on the cluster's workers.
//!
//! The steps of a scattered stream are not graph nodes: they compose into one function, and
//! `gather` registers a timely dataflow that runs it. In the local graph, `scatter` hands each
//! element to global worker 0 with a number, which the dataflow routes to a worker by; the
//! results are routed back to worker 0, which completes the element's ticket; `gather` waits
//! on the tickets.

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use async_lock::{Semaphore, SemaphoreGuardArc};
use futures_channel::oneshot;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use streamz_core::{
    ApplyTuple, BoxError, Element, ErrorKind, NodeRef, Stream, StreamError, label, lock,
    panic_message,
};
use timely::dataflow::InputHandle;
use timely::dataflow::channels::pact::Exchange as ExchangePact;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Exchange, Input};
use timely::worker::Worker;

use crate::cluster::Cluster;
use crate::error::ClusterError;
use crate::shared::{Feed, Pending, Plan, Shared};

/// Elements that may cross processes: sent with serde (timely encodes them with bincode).
pub trait Exchangeable: Element + Serialize + DeserializeOwned {}

impl<T: Element + Serialize + DeserializeOwned> Exchangeable for T {}

/// A step's failure on a worker, as it travels back to process 0.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Failed {
    process: usize,
    worker: usize,
    failure: StepFailure,
}

/// Which step failed (its place in the chain, the same in every process), how, and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StepFailure {
    /// `None`: outside any step's function.
    step: Option<usize>,
    panicked: bool,
    message: String,
}

type Outcome<T> = Result<Vec<T>, Failed>;

/// What one step gives on: each result to the next step (an `Err` is a step's failure).
type Out<'a, T> = &'a mut dyn FnMut(T) -> Result<(), StepFailure>;

/// The scattered steps from `S` to `T`, composed.
type Chain<S, T> = Arc<dyn Fn(S, Out<'_, T>) -> Result<(), StepFailure> + Send + Sync>;

/// Runs a user's function, turning a panic into the step's failure.
fn guarded<R>(step: usize, f: impl FnOnce() -> R) -> Result<R, StepFailure> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| StepFailure {
        step: Some(step),
        panicked: true,
        message: panic_message(&*panic),
    })
}

/// `scatter` for every [`Stream`] of [`Exchangeable`] elements.
pub trait ScatterExt<S> {
    /// Sends the elements to `cluster`: the functions of the returned [`Scattered`] stream's
    /// operators run on its workers, in every process, until
    /// [`gather`](Scattered::gather) brings the results back to this process.
    ///
    /// Without a [`buffer`](Scattered::buffer), one element is on the cluster at a time and
    /// `emit` waits for its result; with `buffer(n)`, up to `n` are, and `emit` waits only
    /// while `n` are. Only process 0 emits: on the others, the pipeline is built so that its
    /// functions exist there, and an `emit` into it fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_timely::{Cluster, ClusterConfig, ScatterExt};
    ///
    /// let cluster = Cluster::start(ClusterConfig::new())?;
    /// let source = Stream::new();
    /// let out = source.scatter(&cluster).map(|x: u32| x + 1).gather().sink_to_vec();
    /// source.emit_blocking(1)?; // waits for the result
    /// assert_eq!(out.to_vec(), vec![2]);
    /// cluster.finish()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn scatter(&self, cluster: &Cluster) -> Scattered<S, S>;
}

impl<S: Exchangeable> ScatterExt<S> for Stream<S> {
    fn scatter(&self, cluster: &Cluster) -> Scattered<S, S> {
        Scattered {
            upstream: self.clone(),
            cluster: cluster.clone(),
            chain: Arc::new(|x, out| out(x)),
            window: None,
            steps: Vec::new(),
        }
    }
}

/// A stream whose functions run on a timely [`Cluster`]'s workers: made by
/// [`scatter`](ScatterExt::scatter) from a stream of `S`, now of `T`; ended by
/// [`gather`](Scattered::gather) or [`gather_unordered`](Scattered::gather_unordered).
///
/// `map`, `try_map`, `filter`, `starmap` and `flatten` run their functions on the worker an
/// element is sent to, one after another, so only `S` (going out) and `T` (coming back) cross
/// processes. A panic or an `Err` in one of them fails that element with an error of that step
/// ([`ErrorKind::Panic`](streamz_core::ErrorKind::Panic) or
/// [`Failed`](streamz_core::ErrorKind::Failed), naming the step) whose message names the
/// element and the process; it comes out at `gather`, and the elements after it are not
/// affected. A failure of the cluster itself is an error at `gather`.
pub struct Scattered<S, T> {
    upstream: Stream<S>,
    cluster: Cluster,
    chain: Chain<S, T>,
    window: Option<usize>,
    /// The steps, in order, as their failures name them.
    steps: Vec<NodeRef>,
}

impl<S, T> Clone for Scattered<S, T> {
    fn clone(&self) -> Self {
        Scattered {
            upstream: self.upstream.clone(),
            cluster: self.cluster.clone(),
            chain: self.chain.clone(),
            window: self.window,
            steps: self.steps.clone(),
        }
    }
}

impl<S, T> fmt::Debug for Scattered<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scattered")
            .field("upstream", &self.upstream)
            .field("cluster", &self.cluster)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl<S: Exchangeable, T: Element> Scattered<S, T> {
    /// Adds a step named `label`: `step(me, x, out)` gives on what `x` becomes, `me` being
    /// the step's place in the chain (for its failures).
    fn step<U>(
        &self,
        label: String,
        step: impl Fn(usize, T, Out<'_, U>) -> Result<(), StepFailure> + Send + Sync + 'static,
    ) -> Scattered<S, U> {
        let before = self.chain.clone();
        let me = self.steps.len();
        let mut steps = self.steps.clone();
        steps.push(NodeRef::detached(label));
        Scattered {
            upstream: self.upstream.clone(),
            cluster: self.cluster.clone(),
            chain: Arc::new(move |x, out| before(x, &mut |t| step(me, t, &mut *out))),
            window: self.window,
            steps,
        }
    }

    /// Runs `f(x)` on a worker for each element.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_timely::{Cluster, ClusterConfig, ScatterExt};
    ///
    /// let cluster = Cluster::start(ClusterConfig::new())?;
    /// let source = Stream::new();
    /// let out = source.scatter(&cluster).map(|s: String| s.len()).gather().sink_to_vec();
    /// source.emit_blocking("four".to_owned())?;
    /// assert_eq!(out.to_vec(), vec![4]);
    /// cluster.finish()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<U, F>(&self, f: F) -> Scattered<S, U>
    where
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.step(label::<F>("map"), move |me, x, out| {
            out(guarded(me, || f(x))?)
        })
    }

    /// Runs `f(x)` on a worker for each element; an `Err` fails that element at this step (it
    /// comes out at `gather`).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{ErrorKind, Stream};
    /// use streamz_timely::{Cluster, ClusterConfig, ScatterExt};
    ///
    /// let cluster = Cluster::start(ClusterConfig::new())?;
    /// let source = Stream::new();
    /// let out = source
    ///     .scatter(&cluster)
    ///     .try_map(|s: String| s.parse::<u8>())
    ///     .gather()
    ///     .sink_to_vec();
    /// source.emit_blocking("8".to_owned())?;
    /// let err = source.emit_blocking("eight".to_owned()).unwrap_err();
    /// // failed at its own step, naming the element and the process it failed on
    /// assert_eq!((err.kind(), err.node().unwrap().name()), (ErrorKind::Failed, "map"));
    /// assert!(err.message().starts_with("element 1 on process 0"), "{err}");
    /// assert_eq!(out.to_vec(), vec![8]);
    /// cluster.finish()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_map<U, E, F>(&self, f: F) -> Scattered<S, U>
    where
        E: Into<BoxError>,
        F: Fn(T) -> Result<U, E> + Send + Sync + 'static,
    {
        self.step(label::<F>("map"), move |me, x, out| {
            match guarded(me, || f(x))? {
                Ok(y) => out(y),
                Err(e) => Err(StepFailure {
                    step: Some(me),
                    panicked: false,
                    message: e.into().to_string(),
                }),
            }
        })
    }

    /// Keeps the elements for which `predicate`, run on a worker, is true.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_timely::{Cluster, ClusterConfig, ScatterExt};
    ///
    /// let cluster = Cluster::start(ClusterConfig::new())?;
    /// let source = Stream::new();
    /// let out = source.scatter(&cluster).filter(|x: &u32| x % 2 == 1).gather().sink_to_vec();
    /// for x in 0..5 {
    ///     source.emit_blocking(x)?;
    /// }
    /// assert_eq!(out.to_vec(), vec![1, 3]);
    /// cluster.finish()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn filter<F>(&self, predicate: F) -> Scattered<S, T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.step(label::<F>("filter"), move |me, x, out| {
            if guarded(me, || predicate(&x))? {
                out(x)
            } else {
                Ok(())
            }
        })
    }

    /// For elements that are tuples, runs `f(a, b, …)` on a worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_timely::{Cluster, ClusterConfig, ScatterExt};
    ///
    /// let cluster = Cluster::start(ClusterConfig::new())?;
    /// let source = Stream::new();
    /// let out = source.scatter(&cluster).starmap(|a: u32, b: u32| a * b).gather().sink_to_vec();
    /// source.emit_blocking((6, 7))?;
    /// assert_eq!(out.to_vec(), vec![42]);
    /// cluster.finish()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn starmap<F>(&self, f: F) -> Scattered<S, F::Output>
    where
        F: ApplyTuple<T>,
    {
        self.step(label::<F>("starmap"), move |me, x, out| {
            out(guarded(me, || f.apply(x))?)
        })
    }

    /// For elements that are collections, their items, one by one.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_timely::{Cluster, ClusterConfig, ScatterExt};
    ///
    /// let cluster = Cluster::start(ClusterConfig::new())?;
    /// let source = Stream::new();
    /// let out = source.scatter(&cluster).flatten().gather().sink_to_vec();
    /// source.emit_blocking(vec![1, 2])?;
    /// source.emit_blocking(vec![])?;
    /// source.emit_blocking(vec![3])?;
    /// assert_eq!(out.to_vec(), vec![1, 2, 3]);
    /// cluster.finish()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flatten(&self) -> Scattered<S, T::Item>
    where
        T: IntoIterator,
    {
        self.step("flatten".to_owned(), |me, x: T, out| {
            for item in guarded(me, || x.into_iter().collect::<Vec<_>>())? {
                out(item)?;
            }
            Ok(())
        })
    }

    /// Lets up to `n` elements be on the cluster at once. `emit` returns as soon as an
    /// element is on its way, and waits only while `n` are; results still come out of
    /// [`gather`](Scattered::gather) in input order. This is the bound on what a fast source
    /// can put on the network.
    ///
    /// # Panics
    ///
    /// If `n` is 0; and at [`gather`](Scattered::gather), if the graph has no executor (to
    /// run the gathering task).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::Stream;
    /// use streamz_timely::{Cluster, ClusterConfig, ScatterExt};
    ///
    /// let cluster = Cluster::start(ClusterConfig::new().workers(2))?;
    /// let executor = streamz_tokio::TokioExecutor::background()?;
    /// let source = Stream::with_executor(executor.clone());
    /// let out = source.scatter(&cluster).map(|x: u32| x * 10).buffer(8).gather().sink_to_vec();
    /// for x in 0..20 {
    ///     source.emit_blocking(x)?; // returns while fewer than 8 are on the cluster
    /// }
    /// executor.block_on(source.flush());
    /// assert_eq!(out.to_vec(), (0..20).map(|x| x * 10).collect::<Vec<_>>());
    /// cluster.finish()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn buffer(&self, n: usize) -> Scattered<S, T> {
        assert!(n >= 1, "buffer: n must be at least 1");
        let mut buffered = self.clone();
        buffered.window = Some(n);
        buffered
    }
}

impl<S: Exchangeable, T: Exchangeable> Scattered<S, T> {
    /// Brings the results back to a local stream, in input order. A failure on the cluster
    /// is an error for that element: from its `emit` when that waits for it (no buffer),
    /// otherwise on the graph's [error stream](Stream::errors).
    ///
    /// Every process must build the same scattered pipelines in the same order: each
    /// `gather` is a dataflow on every worker.
    ///
    /// # Panics
    ///
    /// After a [`buffer`](Scattered::buffer), if the graph has no executor.
    pub fn gather(&self) -> Stream<T> {
        self.gather_in(true)
    }

    /// Brings the results back in the order they are ready: a quick element overtakes a slow
    /// one. Without a buffer there is only ever one element on the cluster, so this is input
    /// order.
    ///
    /// # Panics
    ///
    /// After a [`buffer`](Scattered::buffer), if the graph has no executor.
    pub fn gather_unordered(&self) -> Stream<T> {
        self.gather_in(false)
    }

    fn gather_in(&self, ordered: bool) -> Stream<T> {
        let shared = self.cluster.shared.clone();
        let table = Arc::new(Table::<T> {
            waiting: Mutex::new(HashMap::new()),
        });
        let (queue, elements) = mpsc::channel();
        let plan = Arc::new(Dataflow {
            chain: self.chain.clone(),
            elements: Mutex::new(Some(elements)),
            table: table.clone(),
            workers: self.cluster.workers(),
        });
        let pending: Arc<dyn Pending> = table.clone();
        shared.register(plan, Arc::downgrade(&pending));
        let gateway = Arc::new(Gateway {
            shared,
            steps: self.steps.clone().into(),
            table,
            queue,
            next: AtomicU64::new(0),
        });
        let permits = Arc::new(Semaphore::new(self.window.unwrap_or(1)));
        let tickets = self
            .upstream
            .try_then(move |x: S| {
                let (gateway, permits) = (gateway.clone(), permits.clone());
                async move {
                    let permit = permits.acquire_arc().await;
                    gateway.send(x, permit)
                }
            })
            .named("scatter");
        let results = match self.window {
            None => tickets.try_then(Ticket::result),
            Some(n) if ordered => tickets.try_map_async(n, Ticket::result),
            Some(n) => tickets.try_map_async_unordered(n, Ticket::result),
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
}

/// The elements on the cluster, by number, waiting for their outcome.
struct Table<T> {
    waiting: Mutex<HashMap<u64, oneshot::Sender<Outcome<T>>>>,
}

impl<T: Send> Table<T> {
    fn complete(&self, element: u64, outcome: Outcome<T>) {
        if let Some(done) = lock(&self.waiting).remove(&element) {
            let _ = done.send(outcome);
        }
    }
}

impl<T: Send> Pending for Table<T> {
    fn cancel(&self) {
        lock(&self.waiting).clear();
    }

    fn is_empty(&self) -> bool {
        lock(&self.waiting).is_empty()
    }
}

/// Where `scatter` hands elements to global worker 0.
struct Gateway<S, T> {
    shared: Arc<Shared>,
    /// The steps, as their failures name them.
    steps: Arc<[NodeRef]>,
    table: Arc<Table<T>>,
    queue: mpsc::Sender<(u64, S)>,
    next: AtomicU64,
}

impl<S: Send, T: Send> Gateway<S, T> {
    fn send(&self, x: S, permit: SemaphoreGuardArc) -> Result<Ticket<T>, ClusterError> {
        let shared = &self.shared;
        if !shared.is_leader() {
            return Err(ClusterError::not_leader(shared.process));
        }
        if let Some(failure) = shared.failure() {
            return Err(failure);
        }
        if shared.is_stopping() {
            return Err(ClusterError::stopped());
        }
        let element = self.next.fetch_add(1, Ordering::Relaxed);
        let (done, outcome) = oneshot::channel();
        lock(&self.table.waiting).insert(element, done);
        let refused = self.queue.send((element, x)).is_err();
        // the cluster may have failed meanwhile, and cancelled before this element was in
        if refused || shared.failure().is_some() {
            lock(&self.table.waiting).remove(&element);
            return Err(shared.failure().unwrap_or_else(ClusterError::stopped));
        }
        shared.wake_leader();
        Ok(Ticket(Arc::new(TicketInner {
            element,
            steps: self.steps.clone(),
            outcome: Mutex::new(Some(outcome)),
            shared: shared.clone(),
            _permit: permit,
        })))
    }
}

/// One element on the cluster: its outcome to come, and its place in the window.
struct Ticket<T>(Arc<TicketInner<T>>);

struct TicketInner<T> {
    element: u64,
    steps: Arc<[NodeRef]>,
    outcome: Mutex<Option<oneshot::Receiver<Outcome<T>>>>,
    shared: Arc<Shared>,
    _permit: SemaphoreGuardArc,
}

impl<T> Clone for Ticket<T> {
    fn clone(&self) -> Self {
        Ticket(self.0.clone())
    }
}

impl<T: Send> Ticket<T> {
    /// The element's results; a step's failure as a [`StreamError`] of that step (which
    /// `gather` passes on), the cluster's as a [`ClusterError`] (a failure at `gather`).
    async fn result(self) -> Result<Vec<T>, BoxError> {
        let element = self.0.element;
        let Some(outcome) = lock(&self.0.outcome).take() else {
            return Err(ClusterError::config(
                None,
                format!("element {element}'s result was taken twice"),
            )
            .into());
        };
        match outcome.await {
            Ok(Ok(items)) => Ok(items),
            Ok(Err(Failed {
                process,
                worker,
                failure,
            })) => {
                let message = format!(
                    "element {element} on process {process} (worker {worker}): {}",
                    failure.message
                );
                let cause = ClusterError::element(process, element, message.clone());
                let kind = if failure.panicked {
                    ErrorKind::Panic
                } else {
                    ErrorKind::Failed
                };
                let step = failure.step.and_then(|i| self.0.steps.get(i)).cloned();
                match step {
                    Some(step) => Err(StreamError::new(kind, Some(step), message)
                        .with_source(cause)
                        .into()),
                    None => Err(cause.into()),
                }
            }
            // cancelled: the cluster failed, or finished
            Err(oneshot::Canceled) => Err(self
                .0
                .shared
                .failure()
                .unwrap_or_else(ClusterError::stopped)
                .for_element(element)
                .into()),
        }
    }
}

/// The dataflow a `gather` registers: every worker builds it.
struct Dataflow<S, T> {
    chain: Chain<S, T>,
    elements: Mutex<Option<mpsc::Receiver<(u64, S)>>>,
    table: Arc<Table<T>>,
    workers: usize,
}

impl<S: Exchangeable, T: Exchangeable> Plan for Dataflow<S, T> {
    fn build(&self, worker: &mut Worker, feeds: bool) -> Option<Box<dyn Feed>> {
        let mut input = InputHandle::new();
        let chain = self.chain.clone();
        let table = self.table.clone();
        let index = worker.index();
        let process = index / self.workers;
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .container::<Vec<(u64, S)>>()
                .exchange(|(element, _)| *element)
                .map(move |(element, x)| (element, run(&chain, x, process, index)))
                .sink(
                    ExchangePact::new(|_: &(u64, Outcome<T>)| 0),
                    "gather",
                    move |(input, _)| {
                        input.for_each(|_, outcomes| {
                            for (element, outcome) in outcomes.drain(..) {
                                table.complete(element, outcome);
                            }
                        });
                    },
                );
        });
        if !feeds {
            return None;
        }
        let elements = lock(&self.elements).take()?;
        Some(Box::new(Feeder { input, elements }))
    }
}

/// Runs the composed steps on one element.
fn run<S, T>(chain: &Chain<S, T>, x: S, process: usize, worker: usize) -> Outcome<T> {
    let mut out = Vec::new();
    let ran = catch_unwind(AssertUnwindSafe(|| {
        chain(x, &mut |y| {
            out.push(y);
            Ok(())
        })
    }));
    let failure = match ran {
        Ok(Ok(())) => return Ok(out),
        Ok(Err(failure)) => failure,
        Err(panic) => StepFailure {
            step: None,
            panicked: true,
            message: panic_message(&*panic),
        },
    };
    Err(Failed {
        process,
        worker,
        failure,
    })
}

/// Global worker 0's end of a dataflow: the elements `scatter` handed over, into its input.
struct Feeder<S: Exchangeable> {
    input: InputHandle<u64, timely::container::CapacityContainerBuilder<Vec<(u64, S)>>>,
    elements: mpsc::Receiver<(u64, S)>,
}

impl<S: Exchangeable> Feed for Feeder<S> {
    fn pump(&mut self) -> bool {
        let mut moved = false;
        while let Ok(element) = self.elements.try_recv() {
            self.input.send(element);
            moved = true;
        }
        if moved {
            // one timestamp a batch: advancing it is what sends the batch on
            let next = *self.input.time() + 1;
            self.input.advance_to(next);
        }
        moved
    }
}
