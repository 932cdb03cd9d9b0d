//! [`Source`]: what feeds a line's first stream, as every source entry of the operator table
//! builds it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use streamz_core::{CheckpointsBuilder, Feed, Stream, StreamError};

use crate::run::Control;

type Feeding = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// How a source that keeps its own position (a broker's offsets) joins a run's checkpoints:
/// it registers with the builder, and returns what to do once the last checkpoint is saved.
pub(crate) type Register =
    Box<dyn FnOnce(&mut CheckpointsBuilder, &Stream<Value>) -> Box<dyn FnOnce() + Send> + Send>;

/// What a source feeds: the line's first stream and, in a checkpointed run (`--checkpoint`),
/// its checkpoints' feed, which resumable sources emit through with their position
/// (`Control::emit_at`) and resume from (`resume`). Derefs to the stream, for the sources
/// that cannot resume.
#[derive(Clone)]
pub(crate) struct Input {
    stream: Stream<Value>,
    feed: Option<Feed<Value, Value>>,
}

impl Input {
    pub(crate) fn new(stream: Stream<Value>, feed: Option<Feed<Value, Value>>) -> Self {
        Input { stream, feed }
    }

    /// Where the last checkpoint left this source, in a restored run.
    pub(crate) fn resume(&self) -> Option<Value> {
        self.feed.as_ref().and_then(Feed::position)
    }

    /// Emits `x`, the source then standing at `position()` (through the checkpoints' feed
    /// in a checkpointed run; otherwise the position is not made).
    pub(crate) async fn emit_at(
        &self,
        x: Value,
        position: impl FnOnce() -> Value,
    ) -> Result<(), StreamError> {
        match &self.feed {
            Some(feed) => feed.emit(x, position()).await,
            None => self.stream.emit(x).await,
        }
    }
}

impl std::ops::Deref for Input {
    type Target = Stream<Value>;

    fn deref(&self) -> &Stream<Value> {
        &self.stream
    }
}

/// What feeds a line's first stream: run as a task until it ends, or until the run stops
/// (`Control`); an `Err` is the source's failure, which fails the run.
pub(crate) struct Source {
    /// How many elements it will emit, when that is known in advance (`--stats`' bar).
    pub(crate) len: Option<u64>,
    /// Whether it resumes from a checkpoint's position (`Input::resume`), so that it can
    /// feed a checkpointed run.
    pub(crate) resumable: bool,
    /// For a source that keeps its own position in a checkpointed run, instead of emitting
    /// through the checkpoints' feed: taken by `checkpoint::start`.
    pub(crate) register: Option<Register>,
    feed: Box<dyn FnOnce(Input, Control) -> Feeding + Send>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("len", &self.len)
            .field("resumable", &self.resumable)
            .field("register", &self.register.is_some())
            .finish_non_exhaustive()
    }
}

impl Source {
    /// A source that `feed(stream, control)` runs.
    pub(crate) fn new<F, Fut>(len: Option<u64>, feed: F) -> Self
    where
        F: FnOnce(Input, Control) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Source {
            len,
            resumable: false,
            register: None,
            feed: Box::new(move |input, control| Box::pin(feed(input, control))),
        }
    }

    /// A source that emits with its position (`Control::emit_at`) and resumes from the one
    /// its `Input` was restored with.
    pub(crate) fn resumable<F, Fut>(len: Option<u64>, feed: F) -> Self
    where
        F: FnOnce(Input, Control) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Source {
            resumable: true,
            ..Source::new(len, feed)
        }
    }

    /// A source that keeps its own position: in a checkpointed run, `register` joins it to
    /// the checkpoints (and it emits through the plain stream).
    #[cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]
    pub(crate) fn keeps_position(mut self, register: Register) -> Self {
        self.resumable = true;
        self.register = Some(register);
        self
    }

    /// Feeds `input` until the source ends or the run stops.
    pub(crate) async fn feed(self, input: Input, control: Control) -> Result<(), String> {
        (self.feed)(input, control).await
    }
}
