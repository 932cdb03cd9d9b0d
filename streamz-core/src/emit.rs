//! What [`Stream::emit`](crate::Stream::emit) returns: the [`Emit`] completion future, and the
//! context ([`Cx`]) that one element's push carries through the graph.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crossbeam_epoch::Guard;

use crate::error::StreamError;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Work that must finish before an element counts as done.
pub(crate) type Pending = BoxFuture<Result<(), StreamError>>;

/// The context of one push: the first failure, and the work still pending downstream.
///
/// A synchronous push never allocates here: `pending` stays an empty `Vec` and `error` `None`.
pub(crate) struct Cx<'g> {
    /// Pinned once per push; keeps every node's downstream list readable without a lock.
    guard: &'g Guard,
    error: Option<StreamError>,
    pending: Vec<Pending>,
    depth: u32,
    /// Set by `emit_blocking`: the calling thread will block on whatever is pending.
    blocking: bool,
}

impl<'g> Cx<'g> {
    /// Runs one push (`f`) in a fresh context and returns its completion. Under `blocking`
    /// (`emit_blocking`) the caller will block on whatever is left pending.
    pub(crate) fn run(blocking: bool, f: impl FnOnce(&mut Cx<'_>)) -> Emit {
        let guard = crossbeam_epoch::pin();
        let mut cx = Cx {
            guard: &guard,
            error: None,
            pending: Vec::new(),
            depth: 0,
            blocking,
        };
        f(&mut cx);
        cx.into_emit()
    }

    pub(crate) fn guard(&self) -> &'g Guard {
        self.guard
    }

    /// Records a failure; the push goes on along the other branches.
    #[cold]
    pub(crate) fn fail(&mut self, err: StreamError) {
        match &mut self.error {
            None => self.error = Some(err),
            Some(first) => first.push_other(err),
        }
    }

    /// Adds work that the element's [`Emit`] must wait for.
    #[allow(dead_code)] // used by the asynchronous operators
    pub(crate) fn wait(
        &mut self,
        work: impl Future<Output = Result<(), StreamError>> + Send + 'static,
    ) {
        self.pending.push(Box::pin(work));
    }

    /// True under `emit_blocking`, where waiting on the caller's own thread would deadlock.
    #[allow(dead_code)] // used by operators that can wait on another producer
    pub(crate) fn is_blocking(&self) -> bool {
        self.blocking
    }

    /// Runs one step deeper into the graph. Deep graphs get more stack on demand, so a
    /// chain of thousands of nodes runs on an ordinary thread.
    #[inline]
    pub(crate) fn descend(&mut self, f: impl FnOnce(&mut Cx<'_>)) {
        self.depth += 1;
        if self.depth.is_multiple_of(STACK_CHECK_EVERY) {
            stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || f(self));
        } else {
            f(self);
        }
        self.depth -= 1;
    }

    fn into_emit(self) -> Emit {
        if self.pending.is_empty() {
            Emit::ready(match self.error {
                None => Ok(()),
                Some(e) => Err(e),
            })
        } else {
            Emit {
                state: State::Waiting(Box::new(Waiting {
                    error: self.error,
                    work: self.pending.into_iter().map(Some).collect(),
                })),
            }
        }
    }
}

/// How many levels of a push may run between two checks of the remaining stack.
const STACK_CHECK_EVERY: u32 = 32;
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
/// # Cancel safety
///
/// Dropping an `Emit` that is not ready gives up the parts of the element's work that were
/// still waiting (for example the copy waiting for room in a full `zip` buffer); what the graph
/// had already accepted is unaffected.
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

enum State {
    Ready(Option<Result<(), StreamError>>),
    Waiting(Box<Waiting>),
}

struct Waiting {
    error: Option<StreamError>,
    work: Vec<Option<Pending>>,
}

impl Emit {
    pub(crate) fn ready(result: Result<(), StreamError>) -> Self {
        Emit {
            state: State::Ready(Some(result)),
        }
    }

    /// True when the element's work is already complete, so awaiting returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// source.sink(|_: i32| {});
    /// assert!(source.emit(1).is_ready());
    /// ```
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready(_))
    }

    /// Blocks the current thread until the element's work is complete.
    ///
    /// Ready results return without touching any executor. Do not call this from inside an
    /// async task: await the `Emit` there instead.
    ///
    /// # Errors
    ///
    /// The element's error, as for [`Stream::emit`](crate::Stream::emit).
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// source.map(|x: i32| 10 / x);
    /// assert!(source.emit(5).wait().is_ok());
    /// assert!(source.emit(0).wait().is_err());
    /// ```
    pub fn wait(self) -> Result<(), StreamError> {
        match self.state {
            State::Ready(result) => result.unwrap_or(Ok(())),
            State::Waiting(_) => futures_executor::block_on(self),
        }
    }
}

impl Future for Emit {
    type Output = Result<(), StreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Ready(result) => {
                Poll::Ready(result.take().expect("`Emit` polled after completion"))
            }
            State::Waiting(waiting) => {
                let mut done = true;
                for slot in waiting.work.iter_mut() {
                    if let Some(work) = slot {
                        match work.as_mut().poll(cx) {
                            Poll::Ready(result) => {
                                *slot = None;
                                if let Err(e) = result {
                                    match &mut waiting.error {
                                        None => waiting.error = Some(e),
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
                let result = match waiting.error.take() {
                    None => Ok(()),
                    Some(e) => Err(e),
                };
                self.state = State::Ready(None);
                Poll::Ready(result)
            }
        }
    }
}

impl fmt::Debug for Emit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Ready(result) => f.debug_tuple("Emit::Ready").field(result).finish(),
            State::Waiting(w) => f
                .debug_struct("Emit::Waiting")
                .field("error", &w.error)
                .field("pending", &w.work.iter().filter(|s| s.is_some()).count())
                .finish(),
        }
    }
}
