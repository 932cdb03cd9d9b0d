//! What a cluster's handle and its worker threads share: the registered dataflows, the
//! elements waiting on them, the threads to wake, and how the cluster stands (stopping,
//! failed, running).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::Duration;

use streamz_core::lock;
use timely::communication::WorkerGuards;
use timely::worker::Worker;

use crate::error::ClusterError;

/// How long an idle worker sleeps before it looks again for new dataflows, a stop, or a lost
/// connection (new elements wake worker 0 at once).
pub(crate) const PARK: Duration = Duration::from_millis(20);

/// A dataflow for every worker to build: registered by `gather`.
pub(crate) trait Plan: Send + Sync {
    /// Builds the dataflow on `worker`; on global worker 0, returns what feeds it.
    fn build(&self, worker: &mut Worker, feeds: bool) -> Option<Box<dyn Feed>>;
}

/// Moves a dataflow's waiting elements into it, on global worker 0.
pub(crate) trait Feed {
    /// Whether it moved any.
    fn pump(&mut self) -> bool;
}

/// The elements a dataflow is waiting on, to fail when the cluster does.
pub(crate) trait Pending: Send + Sync {
    fn cancel(&self);
    fn is_empty(&self) -> bool;
}

pub(crate) struct Shared {
    pub(crate) process: usize,
    pub(crate) processes: usize,
    pub(crate) workers: usize,
    pub(crate) args: Vec<String>,
    pub(crate) plans: Mutex<Vec<Arc<dyn Plan>>>,
    pub(crate) pending: Mutex<Vec<Weak<dyn Pending>>>,
    /// This process's worker threads, to wake.
    pub(crate) threads: Mutex<Vec<Thread>>,
    /// Global worker 0's thread (on process 0 only).
    pub(crate) leader: OnceLock<Thread>,
    /// Whether global worker 0 may be about to park: only then does a new element wake it.
    pub(crate) leader_idle: AtomicBool,
    pub(crate) stopping: AtomicBool,
    pub(crate) failure: OnceLock<ClusterError>,
    /// A peer lost while the cluster was stopping (not a failure then: the run may still
    /// end well), to name it if joining the network threads then fails.
    pub(crate) lost_while_stopping: OnceLock<ClusterError>,
    pub(crate) running: AtomicUsize,
    /// Signalled when a worker ends or the cluster fails; waiters also look again every
    /// `PARK` (an element completing does not signal, to keep that path free of it).
    pub(crate) changed: Condvar,
    pub(crate) changes: Mutex<()>,
    pub(crate) guards: Mutex<Option<WorkerGuards<()>>>,
}

impl Shared {
    pub(crate) fn is_leader(&self) -> bool {
        self.process == 0
    }

    pub(crate) fn failure(&self) -> Option<ClusterError> {
        self.failure.get().cloned()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The cluster cannot go on: every element waiting on it fails with `err`.
    pub(crate) fn fail(&self, err: ClusterError) {
        if self.failure.set(err).is_err() {
            return;
        }
        self.cancel_pending();
        self.notify();
    }

    /// Fails every element still waiting on the cluster (their tickets see a cancellation).
    pub(crate) fn cancel_pending(&self) {
        let pending: Vec<_> = lock(&self.pending)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for p in pending {
            p.cancel();
        }
    }

    pub(crate) fn notify(&self) {
        let _guard = lock(&self.changes);
        self.changed.notify_all();
        for thread in lock(&self.threads).iter() {
            thread.unpark();
        }
    }

    /// After an element is queued: wakes global worker 0 if it may be parking. (It marks
    /// itself idle before its last look at the queues, so either it sees the element or this
    /// sees the mark; an unpark before its park makes the park return at once.)
    pub(crate) fn wake_leader(&self) {
        if self.leader_idle.load(Ordering::SeqCst)
            && let Some(thread) = self.leader.get()
        {
            thread.unpark();
        }
    }

    pub(crate) fn register(&self, plan: Arc<dyn Plan>, pending: Weak<dyn Pending>) {
        lock(&self.plans).push(plan);
        lock(&self.pending).push(pending);
        self.notify();
    }

    pub(crate) fn all_pending_empty(&self) -> bool {
        lock(&self.pending)
            .iter()
            .filter_map(Weak::upgrade)
            .all(|p| p.is_empty())
    }

    /// Waits, a little at a time, until `done`.
    pub(crate) fn wait_until(&self, mut done: impl FnMut() -> bool) {
        let mut guard = lock(&self.changes);
        while !done() {
            guard = self
                .changed
                .wait_timeout(guard, PARK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Shared {
    /// Joins timely's worker and network threads, catching the panics with which timely's
    /// guards report a thread that panicked (as its network threads do when a peer is lost).
    /// `None` when they were joined already, or when called on one of those threads.
    pub(crate) fn join_threads(&self) -> Option<std::thread::Result<Vec<Result<(), String>>>> {
        let mut slot = lock(&self.guards);
        let me = std::thread::current().id();
        if slot
            .as_ref()?
            .guards()
            .iter()
            .any(|g| g.thread().id() == me)
        {
            return None; // a worker cannot join itself; the guards stay for another thread
        }
        let guards = slot.take()?;
        drop(slot);
        Some(catch_unwind(AssertUnwindSafe(|| guards.join())))
    }
}

impl Drop for Shared {
    /// The last handle gone without `finish`, or after it failed: timely's guards would
    /// join in their own destructors, where a lost peer's panic aborts the process.
    fn drop(&mut self) {
        if self.join_threads().is_none()
            && let Some(guards) = lock(&self.guards).take()
        {
            // dropped on a worker thread: its siblings end on their own
            std::mem::forget(guards);
        }
    }
}
