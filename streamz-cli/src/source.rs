//! [`Source`]: what feeds a line's first stream, as every source entry of the operator table
//! builds it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use streamz_core::Stream;

use crate::run::Control;

type Feeding = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// What feeds a line's first stream: run as a task until it ends, or until the run stops
/// (`Control`); an `Err` is the source's failure, which fails the run.
pub(crate) struct Source {
    /// How many elements it will emit, when that is known in advance (`--stats`' bar).
    pub(crate) len: Option<u64>,
    feed: Box<dyn FnOnce(Stream<Value>, Control) -> Feeding + Send>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// A source that `feed(stream, control)` runs.
    pub(crate) fn new<F, Fut>(len: Option<u64>, feed: F) -> Self
    where
        F: FnOnce(Stream<Value>, Control) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Source {
            len,
            feed: Box::new(move |stream, control| Box::pin(feed(stream, control))),
        }
    }

    /// Feeds `stream` until the source ends or the run stops.
    pub(crate) async fn feed(self, stream: Stream<Value>, control: Control) -> Result<(), String> {
        (self.feed)(stream, control).await
    }
}
