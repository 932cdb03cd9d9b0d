//! The async ecosystem: feeding a stream from a `futures::Stream`, and reading a stream's
//! output as one.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::TrySendError;

use crate::queue::{Receiver, Sender};
use futures_util::StreamExt;

use crate::emit::Cx;
use crate::node::{Finish, Kind, Operator, Outlet, Port, Shape};
use crate::stream::{Element, Stream};

const SUBSCRIBE: Kind = Kind::new("subscribe", Shape::Trapezium);

struct Subscribe<T>(Sender<T>);

impl<T: Element> Operator<T> for Subscribe<T> {
    type Out = ();

    fn push(&self, _: Port, x: T, _out: &Arc<Outlet<()>>, cx: &mut Cx<'_>) {
        match self.0.try_send(x) {
            Ok(()) => {}
            Err(TrySendError::Full(x)) => {
                let queue = self.0.clone();
                cx.wait(async move {
                    // A reader that went away takes nothing more; that is not an error.
                    let _ = queue.send(x).await;
                    Ok(())
                });
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }

    fn finish(&self, _out: &Arc<Outlet<()>>, _cx: &mut Cx<'_>) -> Finish {
        self.0.close();
        Finish::Now
    }
}

/// The output of a stream as a `futures::Stream`: returned by [`Stream::subscribe`].
///
/// It ends when the stream is closed.
#[must_use = "a Subscription receives nothing unless it is polled: keep it and read from it"]
pub struct Subscription<T> {
    items: Pin<Box<Receiver<T>>>,
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("queued", &self.items.len())
            .finish()
    }
}

impl<T> futures_core::Stream for Subscription<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.items.as_mut().poll_next(cx)
    }
}

impl<T: Element> Stream<T> {
    /// Emits every item of `items`, awaiting each element's `Emit` before pulling the next,
    /// so the `futures::Stream` is read only as fast as the graph accepts. Errors of single
    /// elements go to the [error stream](Stream::errors), and the next item is pulled.
    /// Returns when `items` ends; the stream stays open.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::stream;
    ///
    /// # futures_executor::block_on(async {
    /// let source = streamz_core::Stream::new();
    /// let out = source.map(|x: i32| x * x).sink_to_vec();
    /// source.feed(stream::iter(1..=3)).await;
    /// assert_eq!(out.to_vec(), vec![1, 4, 9]);
    /// # });
    /// ```
    pub async fn feed<S>(&self, items: S)
    where
        S: futures_core::Stream<Item = T>,
    {
        let mut items = std::pin::pin!(items);
        while let Some(x) = items.next().await {
            if let Err(e) = self.emit(x).await {
                self.graph_shared().report(e);
            }
        }
    }

    /// Reads this stream's output as a `futures::Stream`, through a queue of `capacity`
    /// elements: when the reader falls behind, `emit` waits (backpressure). The
    /// `Subscription` ends when this stream is closed; dropping it discards what comes after.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    ///
    /// # futures_executor::block_on(async {
    /// let source = streamz_core::Stream::new();
    /// let squares = source.map(|x: i32| x * x).subscribe(16);
    /// for x in 1..=3 {
    ///     source.emit(x).await.unwrap();
    /// }
    /// source.close().await.unwrap();
    /// assert_eq!(squares.collect::<Vec<_>>().await, vec![1, 4, 9]);
    /// # });
    /// ```
    pub fn subscribe(&self, capacity: usize) -> Subscription<T> {
        assert!(capacity >= 1, "subscribe: capacity must be at least 1");
        let (queue, items) = crate::queue::bounded(capacity);
        self.attach(&SUBSCRIBE, None, Subscribe(queue));
        Subscription {
            items: Box::pin(items),
        }
    }
}
