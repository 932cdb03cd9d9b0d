//! The kit of the operators that own a task (time, buffer, partition and async operators):
//! the node's input queue, what the node holds, the task's timer, handing an element on, and
//! the state a node shares with its task. DESIGN.md ("Nodes with a task") says how they fit.
//!
//! What a node holds is counted in its `NodeInfo` (`hold`/`release`), which is what
//! `flush()` and `closed()` wait on. Here it is an [`InFlight`] guard that releases when it
//! is dropped, so a task cannot forget to: [`Inbox::recv`] hands each element out with the
//! guard [`TaskQueue::push`] took for it, and [`hand_on`] drops it once the element's
//! downstream work is done.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_channel::TrySendError;
use event_listener::{Event, EventListener};

use crate::ack::Acks;
use crate::emit::Cx;
use crate::error::{ErrorKind, StreamError};
use crate::executor::Executor;
use crate::node::{NodeArc, NodeInfo, Outlet, lock};
use crate::queue::{Receiver, Sender};

/// How many elements a node with a task queues before `emit` has to wait for room.
pub(crate) const QUEUE: usize = 1024;

/// Elements a node holds (counted in flight) until this is dropped, with their
/// acknowledgements, which go on with them when they are handed on (`hand_on`).
pub(crate) struct InFlight {
    node: NodeArc,
    n: usize,
    pub(crate) acks: Acks,
}

impl InFlight {
    /// Holds `n` more elements at `node`, without acknowledgements.
    pub(crate) fn hold(node: NodeArc, n: usize) -> Self {
        InFlight::hold_acked(node, n, Acks::default())
    }

    /// Holds `n` more elements at `node`, carrying `acks`.
    pub(crate) fn hold_acked(node: NodeArc, n: usize, acks: Acks) -> Self {
        node.hold(n);
        InFlight { node, n, acks }
    }
}

impl InFlight {
    /// Holds nothing yet, at `node`.
    pub(crate) fn none(node: NodeArc) -> Self {
        InFlight::hold(node, 0)
    }

    /// Holds `k` more (perhaps none), carrying `acks` too.
    pub(crate) fn add(&mut self, k: usize, acks: &Acks) {
        if k > 0 {
            self.node.hold(k);
            self.n += k;
        }
        self.acks.merge(acks);
    }

    /// What this holds, moved out: this then holds nothing.
    pub(crate) fn take(&mut self) -> InFlight {
        InFlight {
            node: self.node.clone(),
            n: std::mem::take(&mut self.n),
            acks: std::mem::take(&mut self.acks),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.n > 0 {
            self.node.release(self.n);
        }
    }
}

/// A node's input queue, bounded: the sending side, in the operator.
pub(crate) struct TaskQueue<I> {
    queue: Sender<(I, InFlight)>,
    node: NodeArc,
}

/// The receiving side, in the node's task.
pub(crate) struct Inbox<I> {
    queue: Receiver<(I, InFlight)>,
}

/// A queue of up to `capacity` elements (`QUEUE` for most nodes) into the task of `node`.
pub(crate) fn task_queue<I: Send + 'static>(
    node: &NodeArc,
    capacity: usize,
) -> (TaskQueue<I>, Inbox<I>) {
    let (queue, inbox) = crate::queue::bounded(capacity);
    (
        TaskQueue {
            queue,
            node: node.clone(),
        },
        Inbox { queue: inbox },
    )
}

impl<I: Send + 'static> TaskQueue<I> {
    /// Sends `item` to the task: at once when there is room, otherwise by waiting in the
    /// element's `Emit` (backpressure). From then on the node holds it, until the task is
    /// done with it.
    pub(crate) fn push(&self, item: I, cx: &mut Cx<'_>) {
        let held = InFlight::hold_acked(self.node.clone(), 1, cx.acks().clone());
        match self.queue.try_send((item, held)) {
            Ok(()) => {}
            Err(TrySendError::Full(item)) => {
                let (queue, node) = (self.queue.clone(), self.node.clone());
                cx.wait(async move {
                    match queue.send(item).await {
                        Ok(()) => Ok(()),
                        Err(_) => Err(closed_before_queued(&node)),
                    }
                });
            }
            Err(TrySendError::Closed(_)) => cx.fail(closed_before_queued(&self.node)),
        }
    }

    /// End of stream: the task drains what is queued, then ends.
    pub(crate) fn close(&self) {
        self.queue.close();
    }
}

impl<I> Inbox<I> {
    /// The next element and what holds it; `None` once the queue is closed and drained.
    pub(crate) async fn recv(&self) -> Option<(I, InFlight)> {
        self.queue.recv().await.ok()
    }

    /// The queue, for a task that polls it among other work (`map_async`).
    pub(crate) fn into_receiver(self) -> Receiver<(I, InFlight)> {
        self.queue
    }
}

/// An element reached a node whose queue had closed: end of stream passed the node first
/// (an `emit` racing `close()` from another thread) or the node is gone. It is not lost
/// silently: its `Emit` says so.
pub(crate) fn closed_before_queued(info: &NodeInfo) -> StreamError {
    StreamError::new(
        ErrorKind::Closed,
        Some(info.node_ref()),
        "the element arrived after end of stream had closed this node; it was not delivered",
    )
}

/// Sleeps until `deadline` on `executor`'s clock; returns at once, without a timer, when it
/// has passed.
pub(crate) async fn sleep_until(executor: &dyn Executor, deadline: Instant) {
    if deadline > executor.clock().now() {
        executor.clock().sleep_until(deadline).await;
    }
}

/// Hands `x` on from the node's task: a push of its own, with the acknowledgements it
/// carries, awaited, its failure reported to the error stream (no `emit` is waiting for it);
/// then what held it is released.
pub(crate) async fn hand_on<T: Clone + Send + 'static>(out: &Outlet<T>, x: T, mut held: InFlight) {
    // the acknowledgements go on with `x`; the count is released once it is through
    let acks = std::mem::take(&mut held.acks);
    if let Err(e) = out.emit_acked(x, acks).await {
        out.info.graph.report(e);
    }
    drop(held);
}

/// The state a node shares with its task, and the event that says it changed.
pub(crate) struct NodeState<S> {
    state: Mutex<S>,
    changed: Event,
}

impl<S> NodeState<S> {
    pub(crate) fn new(state: S) -> Arc<Self> {
        Arc::new(NodeState {
            state: Mutex::new(state),
            changed: Event::new(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        lock(&self.state)
    }

    /// Wakes the task (and anyone else listening).
    pub(crate) fn notify(&self) {
        self.changed.notify(usize::MAX);
    }

    /// Wakes one listener: the task, when only it listens.
    pub(crate) fn notify_one(&self) {
        self.changed.notify(1);
    }

    /// A listener for the next change: take it before looking at the state, so a change in
    /// between is not missed.
    pub(crate) fn listen(&self) -> EventListener {
        self.changed.listen()
    }

    /// Changes the state and wakes the task.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let r = f(&mut self.lock());
        self.notify();
        r
    }
}
