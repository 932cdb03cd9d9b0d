//! Decoupling a producer from a slow consumer: `buffer` and `latest`.

use std::sync::Arc;

use crate::emit::Cx;
use crate::node::{Finish, Kind, Operator, Outlet, Port, Shape};
use crate::stream::{Element, Stream};
use crate::task::{InFlight, Inbox, NodeState, TaskQueue, hand_on, task_queue};

const BUFFER: Kind = Kind::new("buffer", Shape::Diamond);
const LATEST: Kind = Kind::new("latest", Shape::Octagon);

struct Buffer<T> {
    queue: TaskQueue<T>,
}

impl<T: Element> Operator<T> for Buffer<T> {
    type Out = T;

    fn push(&self, _: Port, x: T, _out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        self.queue.push(x, cx);
    }

    fn finish(&self, _out: &Arc<Outlet<T>>, _cx: &mut Cx<'_>) -> Finish {
        self.queue.close();
        Finish::Later
    }
}

/// Hands queued elements on one at a time, in order, each after the previous one's
/// downstream work is done. A failure downstream is reported, and the next element goes on.
async fn buffer_task<T: Element>(queue: Inbox<T>, out: Arc<Outlet<T>>) {
    while let Some((x, held)) = queue.recv().await {
        hand_on(&out, x, held).await;
    }
    out.close_from_task().await;
}

/// `latest`'s slot: the newest element (held while it waits), and whether the stream ended.
struct Slot<T> {
    value: Option<(T, InFlight)>,
    closed: bool,
}

struct Latest<T> {
    shared: Arc<NodeState<Slot<T>>>,
}

impl<T: Element> Operator<T> for Latest<T> {
    type Out = T;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        // the newer element is held (with its acknowledgements) before the older one, dropped
        // by `latest`'s own semantics, is let go: the count never passes through zero
        let held = InFlight::hold_acked(out.node(), 1, cx.acks().clone());
        let older = self.shared.lock().value.replace((x, held));
        self.shared.notify_one();
        drop(older);
    }

    fn finish(&self, _out: &Arc<Outlet<T>>, _cx: &mut Cx<'_>) -> Finish {
        self.shared.update(|slot| slot.closed = true);
        Finish::Later
    }
}

impl<T> Drop for Latest<T> {
    fn drop(&mut self) {
        self.shared.update(|slot| slot.closed = true);
    }
}

async fn latest_task<T: Element>(shared: Arc<NodeState<Slot<T>>>, out: Arc<Outlet<T>>) {
    loop {
        let listener = shared.listen();
        let (value, closed) = {
            let mut slot = shared.lock();
            (slot.value.take(), slot.closed)
        };
        match value {
            Some((x, held)) => hand_on(&out, x, held).await,
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
        let executor = self.graph_shared().require_executor("buffer");
        self.attach_with(&BUFFER, None, |out| {
            let (queue, inbox) = task_queue(&out.node(), n);
            executor.spawn(Box::pin(buffer_task(inbox, out.clone())));
            Buffer { queue }
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
        let executor = self.graph_shared().require_executor("latest");
        self.attach_with(&LATEST, None, |out| {
            let shared = NodeState::new(Slot {
                value: None,
                closed: false,
            });
            executor.spawn(Box::pin(latest_task(shared.clone(), out.clone())));
            Latest { shared }
        })
    }
}
