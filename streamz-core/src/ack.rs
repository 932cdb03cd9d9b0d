//! Acknowledgements: a source learns when an element, and everything made from it, is done.
//!
//! A source emits an element with an [`Ack`] ([`Stream::emit_acked`](crate::Stream::emit_acked)).
//! The push carries the element's acknowledgements in its context ([`Cx`](crate::emit::Cx)),
//! so every element derived from it during the push carries them too, at no cost to the
//! nodes that pass elements straight on. A node that keeps an element past the push keeps its
//! acknowledgements with it (the task kit's `InFlight` does so for every node with a task) and
//! hands them on with what it emits later. The acknowledgement is done when the last of these
//! references goes: the element was handled everywhere, or dropped by an operator's own
//! semantics (a filter, a superseded `latest` value). A failure anywhere marks it failed.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::StreamError;
use crate::sync::lock;

type Done = Box<dyn FnOnce(Result<(), StreamError>) + Send>;

/// A source's handle on one element's completion: `done` is called, exactly once, when the
/// element and everything derived from it is done, with the first failure if any part failed.
///
/// It is called on the thread that finished the last part (a sink's push, a node's task), so
/// it should be quick: send on a channel, store an offset, mark an
/// [`OffsetTracker`](crate::OffsetTracker). Clones are the same acknowledgement.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use streamz_core::{Ack, Stream};
///
/// let done = Arc::new(Mutex::new(Vec::new()));
/// let source = Stream::new();
/// let _out = source.filter(|x: &i32| x % 2 == 0).map(|x| x * 10).sink_to_vec();
/// for x in 0..3 {
///     let done = done.clone();
///     let ack = Ack::new(move |result| done.lock().unwrap().push((x, result.is_ok())));
///     source.emit_acked(x, ack).wait().unwrap();
/// }
/// // each is done once it has been handled, or dropped by the filter
/// assert_eq!(*done.lock().unwrap(), vec![(0, true), (1, true), (2, true)]);
/// ```
#[derive(Clone)]
pub struct Ack(Arc<Inner>);

struct Inner {
    failure: OnceLock<StreamError>,
    done: Mutex<Option<Done>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let done = self
            .done
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(done) = done {
            done(match self.failure.take() {
                Some(e) => Err(e),
                None => Ok(()),
            });
        }
    }
}

impl Ack {
    /// An acknowledgement that calls `done` when its element is done.
    pub fn new(done: impl FnOnce(Result<(), StreamError>) + Send + 'static) -> Self {
        Ack(Arc::new(Inner {
            failure: OnceLock::new(),
            done: Mutex::new(Some(Box::new(done))),
        }))
    }

    /// Marks the element failed (the first failure is the one reported).
    pub(crate) fn fail(&self, err: &StreamError) {
        let _ = self.0.failure.set(err.clone());
    }

    /// Whether `done` has not run yet and may still (for `Debug`).
    fn pending(&self) -> bool {
        lock(&self.0.done).is_some()
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ack")
            .field("pending", &self.pending())
            .field("failed", &self.0.failure.get().is_some())
            .finish()
    }
}

/// The acknowledgements an element carries: none at all for a source that does not use them
/// (the common case: one pointer, `None`, which the push path only ever tests), one from a
/// source, several when a node combines elements (a window, a batch). Cloning shares them.
#[derive(Clone, Default)]
pub(crate) struct Acks(Option<Arc<Vec<Ack>>>);

impl Acks {
    pub(crate) fn one(ack: Ack) -> Self {
        Acks(Some(Arc::new(vec![ack])))
    }

    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Adds `other`'s acknowledgements to these.
    pub(crate) fn merge(&mut self, other: &Acks) {
        let Some(theirs) = &other.0 else {
            return;
        };
        match &mut self.0 {
            None => self.0 = Some(theirs.clone()),
            Some(ours) if Arc::ptr_eq(ours, theirs) => {}
            Some(ours) => Arc::make_mut(ours).extend(theirs.iter().cloned()),
        }
    }

    /// `self` and `other` together, as a new set.
    pub(crate) fn with(&self, other: &Acks) -> Acks {
        let mut both = self.clone();
        both.merge(other);
        both
    }

    /// Marks every one failed.
    pub(crate) fn fail(&self, err: &StreamError) {
        for ack in self.0.iter().flat_map(|acks| acks.iter()) {
            ack.fail(err);
        }
    }
}

/// What an acknowledging source does when one of its elements fails in the pipeline (an
/// error or a panic in an operator, a failed delivery to a sink): the policy of the broker
/// sources (`streamz-kafka`, `streamz-mqtt`, `streamz-nats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// The source stops reading and its run returns the error, after the elements already
    /// read have drained. The failed element is not acknowledged to the broker (not
    /// committed, not PUBACKed), nor anything after it that the broker orders after it: a
    /// restart reads it again. The default: nothing is skipped unless the user says so.
    #[default]
    Stop,
    /// The failed element counts as done: acknowledged to the broker as if it had
    /// succeeded (the error is still on the graph's [`errors()`](crate::Stream::errors)
    /// stream, or returned by the `emit` of the node it failed in).
    Skip,
}
