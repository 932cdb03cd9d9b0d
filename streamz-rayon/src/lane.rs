//! [`Lane`]: how a stateless pooled stage sends its elements to the pool, several to a job.
//!
//! An element whose input is ready joins its stage's queue. A stage has at most as many
//! jobs on the pool as the pool has threads; each job takes the oldest element from the
//! queue, runs the stage's function on it, sets its outcome, and goes back for the next until
//! the queue is empty. So when elements arrive faster than the pool starts jobs, one job
//! carries many of them, and when they arrive slowly, each still starts at once: a job never
//! waits for a chunk to fill, and a slow element never holds back others that a free thread
//! could run.
//!
//! Nothing else changes per element: each has its own outcome (its failure is its own),
//! `gather` restores input order from those outcomes, and the window of permits still
//! bounds how many are between `scatter` and `gather`, which bounds the queue.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use streamz_core::lock;

use crate::pool::Pool;
use crate::remote::{Items, Outcome, Promise};

type Run<T, U> = dyn Fn(Items<T>) -> Outcome<U> + Send + Sync;

/// An element waiting for its stage: its input, and the outcome its run will set.
type Queued<T, U> = (Items<T>, Arc<Promise<Outcome<U>>>);

/// The queue of one pooled stage, and its jobs.
pub(crate) struct Lane<T, U> {
    state: Mutex<LaneState<T, U>>,
    run: Box<Run<T, U>>,
    pool: Pool,
}

struct LaneState<T, U> {
    /// Elements whose input is ready, in the order they became ready, with the outcome each
    /// will set.
    queue: VecDeque<Queued<T, U>>,
    /// Jobs of this stage on the pool.
    jobs: usize,
}

impl<T: Send + 'static, U: Send + Sync + 'static> Lane<T, U> {
    /// A lane whose jobs call `run` for each element (`run` does not unwind: it turns a panic
    /// into the element's failure).
    pub(crate) fn new(
        pool: Pool,
        run: impl Fn(Items<T>) -> Outcome<U> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Lane {
            state: Mutex::new(LaneState {
                queue: VecDeque::new(),
                jobs: 0,
            }),
            run: Box::new(run),
            pool,
        })
    }

    /// Queues an element whose input is `items`; its result goes to `done`. Starts a job when
    /// the stage has fewer than the pool has threads.
    pub(crate) fn push(self: &Arc<Self>, items: Items<T>, done: Arc<Promise<Outcome<U>>>) {
        let start = {
            let mut state = lock(&self.state);
            state.queue.push_back((items, done));
            let start = state.jobs < self.pool.threads();
            if start {
                state.jobs += 1;
            }
            start
        };
        if start {
            let lane = self.clone();
            self.pool.run(move || lane.drain());
        }
    }

    /// One job: takes the queue's oldest element, runs it, and goes back for the next, until
    /// the queue is empty. One element at a time, so that a slow element never holds others
    /// back while another job is free to run them.
    fn drain(&self) {
        loop {
            let next = {
                let mut state = lock(&self.state);
                let next = state.queue.pop_front();
                if next.is_none() {
                    state.jobs -= 1;
                }
                next
            };
            let Some((items, done)) = next else {
                return;
            };
            done.set((self.run)(items));
        }
    }
}
