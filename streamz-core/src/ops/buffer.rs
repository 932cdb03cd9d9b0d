//! Decoupling a producer from a slow consumer: `buffer` and `latest`.

use std::sync::{Arc, Mutex};

use crate::queue::{Receiver, Sender};
use event_listener::Event;

use crate::emit::Cx;
use crate::node::{Finish, Kind, NodeInfo, Operator, Outlet, Port, Shape, lock};
use crate::ops::time::enqueue;
use crate::stream::{Element, Stream};

const BUFFER: Kind = Kind::new("buffer", Shape::Diamond);
const LATEST: Kind = Kind::new("latest", Shape::Octagon);

struct Buffer<T> {
    info: Arc<NodeInfo>,
    queue: Sender<T>,
}

impl<T: Element> Operator<T> for Buffer<T> {
    type Out = T;

    fn push(&self, _: Port, x: T, _out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        enqueue(&self.queue, x, &self.info, cx);
    }

    fn finish(&self, _out: &Arc<Outlet<T>>, _cx: &mut Cx<'_>) -> Finish {
        self.queue.close();
        Finish::Later
    }
}

/// Hands queued elements on one at a time, in order, each after the previous one's
/// downstream work is done. A failure downstream is reported, and the next element goes on.
async fn buffer_task<T: Element>(queue: Receiver<T>, out: Arc<Outlet<T>>) {
    while let Ok(x) = queue.recv().await {
        if let Err(e) = out.emit(x).await {
            out.info.ctx.report(e);
        }
        out.info.release(1);
    }
    out.close_from_task().await;
}

struct LatestSlot<T> {
    value: Option<T>,
    closed: bool,
}

struct LatestShared<T> {
    slot: Mutex<LatestSlot<T>>,
    changed: Event,
}

impl<T> LatestShared<T> {
    fn close(&self) {
        lock(&self.slot).closed = true;
        self.changed.notify(usize::MAX);
    }
}

struct Latest<T> {
    shared: Arc<LatestShared<T>>,
}

impl<T: Element> Operator<T> for Latest<T> {
    type Out = T;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T>>, _cx: &mut Cx<'_>) {
        let replaced = lock(&self.shared.slot).value.replace(x);
        if replaced.is_none() {
            out.info.hold(1);
        }
        self.shared.changed.notify(1);
    }

    fn finish(&self, _out: &Arc<Outlet<T>>, _cx: &mut Cx<'_>) -> Finish {
        self.shared.close();
        Finish::Later
    }
}

impl<T> Drop for Latest<T> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

async fn latest_task<T: Element>(shared: Arc<LatestShared<T>>, out: Arc<Outlet<T>>) {
    loop {
        let listener = shared.changed.listen();
        let (value, closed) = {
            let mut slot = lock(&shared.slot);
            (slot.value.take(), slot.closed)
        };
        match value {
            Some(x) => {
                if let Err(e) = out.emit(x).await {
                    out.info.ctx.report(e);
                }
                out.info.release(1);
            }
            None if closed => break,
            None => listener.await,
        }
    }
    out.close_from_task().await;
}

impl<T: Element> Stream<T> {
    /// Queues up to `n` elements for a slower downstream, handing them on one at a time, in
    /// order. `emit` returns as soon as the element is queued; when the queue is full it
    /// waits for room. With the element being handled downstream, `n + 1` elements can be
    /// accepted before an `emit` waits, as in the original.
    ///
    /// Use [`flush`](Stream::flush) or [`closed`](Stream::closed) to wait until everything
    /// queued has been handled. A failure downstream goes to the
    /// [error stream](Stream::errors), and the next element is handed on (the original's
    /// buffer stops for good at the first failure).
    ///
    /// # Panics
    ///
    /// If `n` is 0 (the original treats 0 as unbounded; ask for a bound instead), or the
    /// graph has no executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Executor, Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let clock = executor.clone();
    /// let out = source
    ///     .buffer(2)
    ///     .sink_async(move |x: u32| {
    ///         let clock = clock.clone();
    ///         async move { clock.clock().sleep(Duration::from_millis(10)).await; }
    ///     });
    /// let admitted = executor.block_on(async {
    ///     let mut admitted = Vec::new();
    ///     for x in 0..5 {
    ///         source.emit(x).await.unwrap();
    ///         admitted.push(executor.elapsed().as_millis());
    ///     }
    ///     source.flush().await;
    ///     admitted
    /// });
    /// // three go in at once (two queued, one being written); then one per write
    /// assert_eq!(admitted, vec![0, 0, 0, 10, 20]);
    /// assert_eq!(executor.elapsed(), Duration::from_millis(50));
    /// # let _ = out;
    /// ```
    pub fn buffer(&self, n: usize) -> Stream<T> {
        assert!(
            n >= 1,
            "buffer: n must be at least 1 (buffer(0) would be unbounded)"
        );
        let executor = self.ctx().require_executor("buffer");
        self.attach_with(BUFFER, None, |out| {
            let (queue, rx) = crate::queue::bounded(n);
            executor.spawn(Box::pin(buffer_task(rx, out.clone())));
            Buffer {
                info: out.info.clone(),
                queue,
            }
        })
    }

    /// Hands on only the newest element whenever the downstream is free: elements that
    /// arrive while it is busy replace each other, and the newest is delivered as soon as it
    /// is free. `emit` never waits.
    ///
    /// Differs on purpose from the original, which can lose the newest value for good when
    /// it arrives while the downstream is busy.
    ///
    /// # Panics
    ///
    /// If the graph has no executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Executor, Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let clock = executor.clone();
    /// let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    /// let log = written.clone();
    /// source.latest().sink_async(move |x: u32| {
    ///     let (clock, log) = (clock.clone(), log.clone());
    ///     async move {
    ///         clock.clock().sleep(Duration::from_millis(50)).await; // a slow write
    ///         log.lock().unwrap().push(x);
    ///     }
    /// });
    /// executor.block_on(async {
    ///     source.emit(1).await.unwrap();
    ///     executor.clock().sleep(Duration::from_millis(10)).await;
    ///     for x in 2..=4 {
    ///         source.emit(x).await.unwrap(); // arrive while 1 is being written
    ///     }
    ///     source.flush().await;
    /// });
    /// assert_eq!(*written.lock().unwrap(), vec![1, 4]);
    /// ```
    pub fn latest(&self) -> Stream<T> {
        let executor = self.ctx().require_executor("latest");
        self.attach_with(LATEST, None, |out| {
            let shared = Arc::new(LatestShared {
                slot: Mutex::new(LatestSlot {
                    value: None,
                    closed: false,
                }),
                changed: Event::new(),
            });
            executor.spawn(Box::pin(latest_task(shared.clone(), out.clone())));
            Latest { shared }
        })
    }
}
