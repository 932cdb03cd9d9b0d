//! What [`Stream::emit`](crate::Stream::emit) returns: the [`Emit`] completion future, and the
//! context ([`Cx`]) that one element's push carries through the graph.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crossbeam_epoch::Guard;
use futures_util::future::Either;
use smallvec::SmallVec;

use crate::ack::Acks;
use crate::error::{ErrorKind, StreamError};
use crate::shared::GraphShared;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Work that must finish before an element counts as done, boxed with the graph it belongs
/// to: an `Emit` whose element left only this behind holds it as it is, with no box of its own.
pub(crate) type Pending = Pin<Box<dyn Work>>;

/// A pending part of an element's work, and its graph (where it goes on if its `Emit` is
/// dropped, and where its error is reported then).
pub(crate) trait Work: Future<Output = Result<(), StreamError>> + Send {
    fn graph(&self) -> &Arc<GraphShared>;
}

pin_project_lite::pin_project! {
    /// A future of a graph's: what [`Cx::wait`] boxes.
    struct InGraph<F> {
        graph: Arc<GraphShared>,
        #[pin]
        work: F,
    }
}

impl<F: Future<Output = Result<(), StreamError>> + Send> Future for InGraph<F> {
    type Output = Result<(), StreamError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().work.poll(cx)
    }
}

impl<F: Future<Output = Result<(), StreamError>> + Send> Work for InGraph<F> {
    fn graph(&self) -> &Arc<GraphShared> {
        &self.graph
    }
}

/// The context of one push: the graph's context, the first failure, and the work still
/// pending downstream.
///
/// A synchronous push never allocates here: `pending` stays empty and `error` `None`.
pub(crate) struct Cx<'g> {
    /// Pinned once per push; keeps every node's downstream list readable without a lock.
    guard: &'g Guard,
    graph: &'g Arc<GraphShared>,
    error: Option<StreamError>,
    /// One pending item, the common case, is kept inline.
    pending: SmallVec<[Pending; 1]>,
    /// Below this stack address a push grows the stack before going deeper.
    stack_limit: usize,
    /// Set by `emit_blocking`: the calling thread will block on whatever is pending.
    blocking: bool,
    /// The graph's futures may be polled on this thread (see [`Cx::may_poll_here`]).
    poll_here: bool,
    /// The acknowledgements of the element being pushed (none unless its source uses them):
    /// everything pushed in this context derives from it.
    acks: Acks,
}

impl<'g> Cx<'g> {
    /// Runs one push (`f`) in a fresh context of graph `graph` and returns its completion. Under
    /// `blocking` (`emit_blocking`) the caller will block on whatever is left pending.
    pub(crate) fn run(
        graph: &Arc<GraphShared>,
        blocking: bool,
        f: impl FnOnce(&mut Cx<'_>),
    ) -> Emit {
        Cx::run_acked(graph, blocking, Acks::default(), f)
    }

    /// [`run`](Cx::run) for an element that carries `acks`: they are held until the push and
    /// the work it leaves pending are done, and marked failed by any failure.
    #[inline]
    pub(crate) fn run_acked(
        graph: &Arc<GraphShared>,
        blocking: bool,
        acks: Acks,
        f: impl FnOnce(&mut Cx<'_>),
    ) -> Emit {
        let guard = crossbeam_epoch::pin();
        let mut cx = Cx {
            guard: &guard,
            graph,
            error: None,
            pending: SmallVec::new(),
            stack_limit: stack_limit(),
            blocking,
            poll_here: !blocking
                || graph
                    .executor
                    .as_ref()
                    .is_none_or(|executor| executor.polls_anywhere()),
            acks,
        };
        f(&mut cx);
        cx.into_emit()
    }

    /// The acknowledgements of the element being pushed, for a node that keeps it past the
    /// push (it keeps a clone, and hands it on with what it emits later).
    #[inline(always)]
    pub(crate) fn acks(&self) -> &Acks {
        &self.acks
    }

    /// Runs `f` with `extra` acknowledgements added to the push's: for a node that emits,
    /// within this push, elements it kept from earlier ones (a window, a batch, a tuple).
    pub(crate) fn with_acks(&mut self, extra: &Acks, f: impl FnOnce(&mut Self)) {
        if extra.is_empty() {
            return f(self);
        }
        let both = self.acks.with(extra);
        let own = std::mem::replace(&mut self.acks, both);
        f(self);
        self.acks = own;
    }

    pub(crate) fn guard(&self) -> &'g Guard {
        self.guard
    }

    /// Records a failure; the push goes on along the other branches.
    #[cold]
    pub(crate) fn fail(&mut self, err: StreamError) {
        tracing::warn!(
            node = %err.node().map(|n| n.name()).unwrap_or_default(),
            error = %err,
            "element failed"
        );
        if !self.acks.is_empty() {
            self.acks.fail(&err);
        }
        match &mut self.error {
            None => self.error = Some(err),
            Some(first) => first.push_other(err),
        }
    }

    /// Adds work that the element's [`Emit`] must wait for.
    pub(crate) fn wait(
        &mut self,
        work: impl Future<Output = Result<(), StreamError>> + Send + 'static,
    ) {
        self.pending.push(Box::pin(InGraph {
            graph: self.graph.clone(),
            work,
        }));
    }

    /// True once the push has failed or left work pending: a context shared by several
    /// elements (`Stream::emit_iter`) hands this element's completion back before the next.
    #[inline(always)]
    pub(crate) fn must_stop(&self) -> bool {
        self.error.is_some() || !self.pending.is_empty()
    }

    /// How much work is pending so far: a mark for [`Cx::then_after`].
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Makes the work added since `mark` a prerequisite of `then`: it is replaced by one
    /// pending item that waits for that work, then runs `then` and waits for the `Emit` it
    /// returns. The close protocol: a node whose end-of-stream flush must wait downstream
    /// closes its outlet only once the flushed elements are in.
    pub(crate) fn then_after(&mut self, mark: usize, then: impl FnOnce() -> Emit + Send + 'static) {
        let before = Waiting {
            error: None,
            work: self.pending.drain(mark..).map(Some).collect(),
            acks: Acks::default(),
            graph: self.graph.clone(),
        };
        self.wait(async move {
            let first = before.await;
            let second = then().await;
            match (first, second) {
                (Ok(()), second) => second,
                (Err(e), Ok(())) => Err(e),
                (Err(mut e), Err(other)) => {
                    e.push_other(other);
                    Err(e)
                }
            }
        });
    }

    /// True under `emit_blocking`, where waiting on the caller's own thread would deadlock.
    pub(crate) fn is_blocking(&self) -> bool {
        self.blocking
    }

    /// True when a user's future may be polled on this thread: inside the runtime (`emit`),
    /// or under `emit_blocking` when the executor's futures run on any thread (or there is
    /// no executor, and `Emit::wait` polls the work on this thread anyway).
    pub(crate) fn may_poll_here(&self) -> bool {
        self.poll_here
    }

    /// Runs one step deeper into the graph. Deep graphs get more stack on demand, so a
    /// chain of thousands of nodes runs on an ordinary thread.
    ///
    /// The check is one comparison of the stack address against a limit taken once per push,
    /// and nothing runs after `f`, so a node's call to the next one can be a tail call.
    #[inline(always)]
    pub(crate) fn descend(&mut self, f: impl FnOnce(&mut Cx<'g>)) {
        if self.has_stack() {
            f(self);
        } else {
            self.descend_on_new_stack(f);
        }
    }

    /// True when there is stack enough to go one step deeper without growing it.
    #[inline(always)]
    pub(crate) fn has_stack(&self) -> bool {
        stack_address() >= self.stack_limit
    }

    #[cold]
    #[inline(never)]
    fn descend_on_new_stack(&mut self, f: impl FnOnce(&mut Cx<'g>)) {
        let outer = self.stack_limit;
        stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || {
            self.stack_limit = stack_limit();
            f(self);
        });
        self.stack_limit = outer;
    }

    fn into_emit(mut self) -> Emit {
        if self.pending.is_empty() {
            return match self.error {
                None => Emit::ready(Ok(())),
                Some(e) => Emit::failed(e, self.graph.clone()),
            };
        }
        // one part pending, nothing failed, nothing to acknowledge: the part is the `Emit`
        if self.pending.len() == 1
            && self.error.is_none()
            && self.acks.is_empty()
            && let Some(work) = self.pending.pop()
        {
            return Emit {
                state: State::One(work),
            };
        }
        Emit {
            state: State::Waiting(Box::new(Waiting {
                error: self.error,
                work: self.pending.into_iter().map(Some).collect(),
                acks: self.acks,
                graph: self.graph.clone(),
            })),
        }
    }
}

/// An address in the current stack frame.
#[inline(always)]
fn stack_address() -> usize {
    let marker = 0u8;
    std::ptr::addr_of!(marker) as usize
}

/// The stack address below which less than [`STACK_RED_ZONE`] is left on this thread's current
/// stack (0, never reached, where the platform does not say how much stack is left).
fn stack_limit() -> usize {
    match stacker::remaining_stack() {
        Some(left) => stack_address()
            .saturating_sub(left)
            .saturating_add(STACK_RED_ZONE),
        None => 0,
    }
}

/// Grow the stack when less than this is left at a check.
pub(crate) const STACK_RED_ZONE: usize = 256 * 1024;
/// The size of each extra stack segment.
pub(crate) const STACK_SEGMENT: usize = 2 * 1024 * 1024;

/// The completion of one element: the future returned by [`Stream::emit`](crate::Stream::emit),
/// [`Stream::close`](crate::Stream::close) and
/// [`Collector::flush`](crate::Collector::flush).
///
/// The element has already been pushed through every synchronous node when `emit` returns;
/// the `Emit` resolves once the work that element started downstream has finished: an async
/// sink's write, a free slot in a full buffer, a rate limit's turn. Awaiting it is the
/// backpressure. When nothing downstream is pending it is ready at once and was made without
/// allocating.
///
/// It resolves to `Err` when the element failed at some node (a panic or an `Err` from a user
/// function), naming that node; every other branch still received the element.
///
/// # Dropping an `Emit`
///
/// Dropping an `Emit` before it completes does not cancel the element: the work still pending
/// goes on in the background on the graph's executor, and an error it ends with, like the
/// error of a dropped failed `Emit`, goes to the graph's error stream
/// ([`Stream::errors`](crate::Stream::errors)) instead of vanishing. (A graph without an
/// executor has nowhere to run that work; it is dropped, and an
/// [`ErrorKind::Abandoned`](crate::ErrorKind::Abandoned) error says so.) Awaiting every `Emit`
/// is what keeps memory bounded: work detached this way is limited only by how fast you emit.
///
/// # Examples
///
/// ```
/// use streamz_core::Stream;
///
/// let source = Stream::new();
/// let out = source.map(|x: i32| x * 2).sink_to_vec();
/// let done = source.emit(21);
/// assert!(done.is_ready()); // a synchronous graph finishes inside `emit`
/// futures_executor::block_on(done).unwrap();
/// assert_eq!(out.to_vec(), vec![42]);
/// ```
#[must_use = "an Emit reports the element's errors and waits for its downstream work; await it, or call `wait()`"]
pub struct Emit {
    state: State,
}

/// Each state that can outlive its `Emit` (a failure nobody looked at, pending work) knows
/// its graph, where detached work runs and unobserved errors go. Kept to 24 bytes: the ready
/// path moves it around on every `emit`.
enum State {
    Ready(Result<(), StreamError>),
    /// A failure, reported to the graph's error stream if the `Emit` is dropped unread.
    Failed(StreamError, Arc<GraphShared>),
    /// One pending part, and nothing else to track (the common suspended write).
    One(Pending),
    Waiting(Box<Waiting>),
    Done,
}

/// Pending work of one element, the first error so far, and the element's acknowledgements,
/// held until the work is done.
struct Waiting {
    error: Option<StreamError>,
    work: SmallVec<[Option<Pending>; 1]>,
    acks: Acks,
    graph: Arc<GraphShared>,
}

impl State {
    /// The pending work of a `One` or `Waiting` state, as one future to run apart from its
    /// `Emit`; `None` for a state with nothing pending.
    fn into_parts(self) -> Option<Either<Pending, Box<Waiting>>> {
        match self {
            State::One(work) => Some(Either::Left(work)),
            State::Waiting(waiting) => Some(Either::Right(waiting)),
            State::Ready(_) | State::Failed(..) | State::Done => None,
        }
    }
}

impl Future for Waiting {
    type Output = Result<(), StreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut done = true;
        for slot in this.work.iter_mut() {
            if let Some(work) = slot {
                match work.as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        *slot = None;
                        if let Err(e) = result {
                            match &mut this.error {
                                None => this.error = Some(e),
                                Some(first) => first.push_other(e),
                            }
                        }
                    }
                    Poll::Pending => done = false,
                }
            }
        }
        if !done {
            return Poll::Pending;
        }
        let acks = std::mem::take(&mut this.acks);
        Poll::Ready(match this.error.take() {
            None => Ok(()),
            Some(e) => {
                acks.fail(&e);
                Err(e)
            }
        })
    }
}

impl Emit {
    pub(crate) fn ready(result: Result<(), StreamError>) -> Self {
        Emit {
            state: State::Ready(result),
        }
    }

    /// A failed element whose error, if nobody looks at it, goes to `graph`'s error stream.
    pub(crate) fn failed(err: StreamError, graph: Arc<GraphShared>) -> Self {
        Emit {
            state: State::Failed(err, graph),
        }
    }

    /// True when the element's work is already complete, so awaiting returns at once.
    pub fn is_ready(&self) -> bool {
        !matches!(self.state, State::Waiting(_) | State::One(_))
    }

    /// Blocks the current thread until the element's work is complete.
    ///
    /// Ready results return without touching any executor. Pending work runs on the graph's
    /// executor (so async functions find their runtime), while this thread waits for it. Do
    /// not call this from inside an async task: await the `Emit` there instead.
    ///
    /// # Errors
    ///
    /// The element's error, as for [`Stream::emit`](crate::Stream::emit). Called on one of the
    /// graph's own executor threads while work is pending, where blocking could deadlock, it
    /// returns an [`ErrorKind::WouldDeadlock`](crate::ErrorKind::WouldDeadlock) error at once
    /// and lets the work finish in the background. The element is not withdrawn (it has
    /// already gone through every synchronous node): it is delivered, possibly after elements
    /// emitted later, and [`Stream::flush`](crate::Stream::flush) and
    /// [`Stream::closed`](crate::Stream::closed) wait for it.
    pub fn wait(mut self) -> Result<(), StreamError> {
        let executor = match &self.state {
            State::Ready(_) | State::Failed(..) | State::Done => None,
            State::One(work) => work.graph().executor.clone(),
            State::Waiting(waiting) => waiting.graph.executor.clone(),
        };
        if executor
            .as_ref()
            .is_some_and(|executor| executor.is_worker_thread())
        {
            // detached when `self` drops
            return Err(StreamError::new(
                ErrorKind::WouldDeadlock,
                None,
                "emit_blocking (or Emit::wait) was called on a thread of the graph's own \
                 executor, which the pending work needs: await emit() there instead",
            ));
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Ready(result) => result,
            State::Failed(e, _) => Err(e),
            State::Done => Ok(()),
            State::One(work) => Emit::block_on_parts(executor, Either::Left(work)),
            State::Waiting(waiting) => Emit::block_on_parts(executor, Either::Right(waiting)),
        }
    }

    /// Runs an element's pending work to its end from a thread outside the runtime.
    fn block_on_parts(
        executor: Option<Arc<dyn crate::executor::Executor>>,
        waiting: Either<Pending, Box<Waiting>>,
    ) -> Result<(), StreamError> {
        match executor {
            Some(executor) if executor.polls_anywhere() => futures_executor::block_on(waiting),
            Some(executor) => {
                let (done, result) = futures_channel::oneshot::channel();
                executor.spawn(Box::pin(async move {
                    let _ = done.send(waiting.await);
                }));
                futures_executor::block_on(result).unwrap_or_else(|_| {
                    Err(StreamError::new(
                        ErrorKind::Abandoned,
                        None,
                        "the graph's executor dropped the element's pending work",
                    ))
                })
            }
            None => futures_executor::block_on(waiting),
        }
    }

    /// The result if ready; otherwise detaches the work and returns `Ok`.
    pub(crate) fn into_result_or_detach(mut self) -> Result<(), StreamError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Ready(result) => result,
            State::Failed(e, _) => Err(e),
            other => {
                self.state = other;
                Ok(())
            }
        }
    }
}

impl Future for Emit {
    type Output = Result<(), StreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = match &mut this.state {
            State::Ready(_) | State::Failed(..) => {
                match std::mem::replace(&mut this.state, State::Done) {
                    State::Ready(result) => result,
                    State::Failed(e, _) => Err(e),
                    _ => unreachable!("matched Ready or Failed just above"),
                }
            }
            State::One(work) => match work.as_mut().poll(cx) {
                Poll::Ready(result) => result,
                Poll::Pending => return Poll::Pending,
            },
            State::Waiting(waiting) => match Pin::new(&mut **waiting).poll(cx) {
                Poll::Ready(result) => result,
                Poll::Pending => return Poll::Pending,
            },
            State::Done => panic!("`Emit` polled after completion"),
        };
        this.state = State::Done;
        Poll::Ready(result)
    }
}

impl Drop for Emit {
    fn drop(&mut self) {
        // Only a failed or pending `Emit` knows its graph: the common, ready one is done here.
        let (graph, parts) = match &self.state {
            State::Done | State::Ready(_) => return,
            State::Failed(_, graph) => (graph.clone(), 0),
            State::One(work) => (work.graph().clone(), 1),
            State::Waiting(waiting) => (
                waiting.graph.clone(),
                waiting.work.iter().filter(|w| w.is_some()).count(),
            ),
        };
        let state = std::mem::replace(&mut self.state, State::Done);
        if let State::Failed(e, _) = state {
            graph.report(e);
            return;
        }
        match &graph.executor {
            Some(executor) => {
                let report = graph.clone();
                graph.detach_started();
                let Some(pending) = state.into_parts() else {
                    return;
                };
                executor.spawn(Box::pin(async move {
                    if let Err(e) = pending.await {
                        report.report(e);
                    }
                    report.detach_finished();
                }));
            }
            None => {
                drop(state);
                graph.report(StreamError::new(
                    ErrorKind::Abandoned,
                    None,
                    format!(
                        "an Emit was dropped with {parts} pending part(s) of its element's work, \
                         and the graph has no executor to finish them"
                    ),
                ));
            }
        }
    }
}

impl fmt::Debug for Emit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Ready(result) => f.debug_tuple("Emit::Ready").field(result).finish(),
            State::Failed(e, _) => f
                .debug_tuple("Emit::Ready")
                .field(&Err::<(), _>(e))
                .finish(),
            State::One(_) => f
                .debug_struct("Emit::Waiting")
                .field("error", &None::<StreamError>)
                .field("pending", &1)
                .finish(),
            State::Waiting(w) => f
                .debug_struct("Emit::Waiting")
                .field("error", &w.error)
                .field("pending", &w.work.iter().filter(|s| s.is_some()).count())
                .finish(),
            State::Done => f.write_str("Emit::Done"),
        }
    }
}
#[cfg(test)]
mod tests {
    /// Every `emit` builds and drops an `Emit`: it stays three words, the pending part kept
    /// without a box of its own included (DESIGN.md, "What `emit` returns").
    #[test]
    fn an_emit_stays_three_words() {
        assert!(std::mem::size_of::<super::Emit>() <= 3 * std::mem::size_of::<usize>());
    }
}
