//! The one error type of this crate, [`StreamError`].

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A boxed error from a user function, as returned by `try_map`, `try_filter`, ….
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, as returned by [`StreamError::kind`].
///
/// # Examples
///
/// ```
/// use streamz_core::{ErrorKind, Stream};
///
/// let source = Stream::new();
/// source.pluck(3);
/// let err = source.emit_blocking(vec![1, 2]).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::MissingKey);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A user function panicked; the panic was caught at the node.
    Panic,
    /// A user function returned `Err` (`try_map`, `try_filter`, `try_sink`, …).
    Failed,
    /// `pluck` found no such index or key in the element.
    MissingKey,
    /// An element was emitted into a stream after [`close`](crate::Stream::close).
    Closed,
    /// A node could not take an element without waiting on a producer that can only be the
    /// caller itself (for example `zip` with a full buffer under `emit_blocking`), so it
    /// refused the element instead of deadlocking.
    WouldDeadlock,
    /// A node reached end of stream while still holding elements it cannot emit
    /// (for example `zip` with unmatched elements).
    Unflushed,
    /// An element's pending work was dropped unfinished: its `Emit` was dropped in a graph
    /// without an executor to finish it.
    Abandoned,
    /// A checkpoint could not be taken or saved ([`Checkpoints`](crate::Checkpoints)); the
    /// one before it stands.
    Checkpoint,
    /// An element came after the watermark had passed every event-time window it belongs
    /// to, and nothing was connected to the window's late stream
    /// ([`Stream::window`](crate::Stream::window)).
    Late,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id: for a node, or for a [`NodeRef::detached`] stage.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The node an error happened at: its id and its name, as shown by `visualize`.
///
/// # Examples
///
/// ```
/// let source = streamz_core::Stream::new();
/// let check = source.map(|x: i32| assert!(x > 0)).named("check");
/// let err = source.emit_blocking(-1).unwrap_err();
/// let node = err.node().unwrap();
/// assert_eq!((node.id(), node.name()), (check.id(), "check"));
/// assert_eq!(node.to_string(), format!("'check' (#{})", check.id()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
}

impl NodeRef {
    /// A reference to a stage that is not a node of a graph in this process, such as a step
    /// that runs on a cluster: it gets an id of its own, that no node has.
    ///
    /// For a stage that is a node, [`Stream::node`](crate::Stream::node) gives its reference.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::NodeRef;
    ///
    /// let (a, b) = (NodeRef::detached("map: parse"), NodeRef::detached("map: parse"));
    /// assert_eq!(a.name(), "map: parse");
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn detached(name: impl Into<Arc<str>>) -> Self {
        NodeRef {
            id: next_id(),
            name: name.into(),
        }
    }

    /// The node's id, unique in this process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The node's name: the one given with `named`, or the operator's (`map`, `zip`, …).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' (#{})", self.name, self.id)
    }
}

/// An error from a stream graph: which node failed, what kind of failure, and why.
///
/// Errors are values: a panic or an `Err` in a user function never unwinds through
/// [`emit`](crate::Stream::emit); it comes back as a `StreamError` from the `Emit` of that
/// element, and the graph keeps working for the next one. When one element fails at several
/// nodes (on different branches), the first failure is returned and the later ones are in
/// [`others`](StreamError::others).
///
/// # Examples
///
/// ```
/// use streamz_core::{ErrorKind, Stream};
///
/// let source = Stream::<i32>::new();
/// let out = source.try_map(|x| 100i32.checked_div(x).ok_or("division by zero"))
///     .named("divide")
///     .sink_to_vec();
///
/// let err = source.emit_blocking(0).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Failed);
/// assert_eq!(err.node().unwrap().name(), "divide");
/// assert!(err.to_string().contains("division by zero"));
///
/// source.emit_blocking(5).unwrap(); // the graph still works
/// assert_eq!(out.to_vec(), vec![20]);
/// ```
///
/// Cloning is cheap (the error is shared), so errors can travel through a stream themselves:
/// see [`Stream::errors`](crate::Stream::errors).
#[derive(Clone)]
pub struct StreamError {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    node: Option<NodeRef>,
    message: String,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
    others: Vec<StreamError>,
}

impl StreamError {
    /// An error of `kind` at `node`: for crates that run a stage's functions somewhere else
    /// (a thread pool, a cluster) and report the stage's failure as the stage's own.
    ///
    /// Returned as the error of a `try_*` step (`try_map`, `try_then`, `try_map_async`, …), a
    /// `StreamError` passes through unchanged: it already says where and how it failed, so
    /// the element fails with it, not with a [`Failed`](ErrorKind::Failed) at that step.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{ErrorKind, NodeRef, Stream, StreamError};
    ///
    /// let remote = NodeRef::detached("map: parse");
    /// let source = Stream::<i32>::new();
    /// source.try_map(move |x: i32| {
    ///     // what a pool reports for the stage that panicked there
    ///     Err::<i32, _>(StreamError::new(ErrorKind::Panic, Some(remote.clone()), format!("{x} is odd")))
    /// });
    /// let err = source.emit_blocking(3).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Panic);
    /// assert_eq!(err.node().unwrap().name(), "map: parse");
    /// assert_eq!(err.message(), "3 is odd");
    /// ```
    pub fn new(kind: ErrorKind, node: Option<NodeRef>, message: impl Into<String>) -> Self {
        StreamError {
            inner: Arc::new(Inner {
                kind,
                node,
                message: message.into(),
                source: None,
                others: Vec::new(),
            }),
        }
    }

    /// The same error, with `source` as its [`source`](StdError::source): the underlying
    /// error, for those who want to look at it.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        Arc::make_mut(&mut self.inner).source = Some(Arc::from(source.into()));
        self
    }

    /// A user function's error at `node`; a `StreamError` passes through unchanged (see
    /// [`new`](StreamError::new)).
    pub(crate) fn from_user(node: NodeRef, err: BoxError) -> Self {
        let err = match err.downcast::<StreamError>() {
            Ok(relayed) => return *relayed,
            Err(err) => err,
        };
        let mut e = StreamError::new(ErrorKind::Failed, Some(node), err.to_string());
        Arc::make_mut(&mut e.inner).source = Some(Arc::from(err));
        e
    }

    pub(crate) fn from_panic(node: NodeRef, payload: Box<dyn Any + Send>) -> Self {
        StreamError::new(ErrorKind::Panic, Some(node), panic_message(&*payload))
    }

    /// Adds a later failure of the same element; see [`others`](StreamError::others).
    pub(crate) fn push_other(&mut self, other: StreamError) {
        Arc::make_mut(&mut self.inner).others.push(other);
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The node that failed, when the failure belongs to one.
    pub fn node(&self) -> Option<&NodeRef> {
        self.inner.node.as_ref()
    }

    /// The failure's own message: the panic message, the user error's `Display`, or ours.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Further failures of the same element at other nodes, in the order they happened.
    pub fn others(&self) -> &[StreamError] {
        &self.inner.others
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.inner.kind {
            ErrorKind::Panic => "panicked",
            ErrorKind::Failed => "failed",
            ErrorKind::MissingKey => "could not pluck",
            ErrorKind::Closed => "is closed",
            ErrorKind::WouldDeadlock => "refused an element",
            ErrorKind::Unflushed => "closed with elements it could not emit",
            ErrorKind::Abandoned => "abandoned work",
            ErrorKind::Checkpoint => "could not checkpoint",
            ErrorKind::Late => "got a late element",
        };
        match &self.inner.node {
            Some(node) => write!(f, "node {node} {what}: {}", self.inner.message)?,
            None => write!(f, "{what}: {}", self.inner.message)?,
        }
        if !self.inner.others.is_empty() {
            write!(f, " (and {} more failure", self.inner.others.len())?;
            if self.inner.others.len() > 1 {
                f.write_str("s")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Debug for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("StreamError");
        d.field("kind", &self.inner.kind)
            .field("node", &self.inner.node)
            .field("message", &self.inner.message);
        if !self.inner.others.is_empty() {
            d.field("others", &self.inner.others);
        }
        d.finish()
    }
}

impl StdError for StreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// The text of a panic's payload, as this crate's errors give it: for crates that run users'
/// functions elsewhere (a thread pool, a cluster) and report their panics.
///
/// # Examples
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("at {}", 3)).unwrap_err();
/// assert_eq!(streamz_core::panic_message(&*payload), "at 3");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
