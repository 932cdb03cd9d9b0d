//! A worker thread's loop: build the registered dataflows, and on global worker 0 feed them,
//! until the cluster stops.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use streamz_core::{lock, panic_message};
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Probe};
use timely::worker::Worker;

use crate::error::ClusterError;
use crate::shared::{Feed, PARK, Plan, Shared};

/// A worker thread's life: build the registered dataflows, feed them (global worker 0),
/// until the cluster stops.
pub(crate) fn run_worker(worker: &mut Worker, shared: &Arc<Shared>) {
    lock(&shared.threads).push(std::thread::current());
    let feeds = worker.index() == 0;
    if feeds {
        let _ = shared.leader.set(std::thread::current());
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| serve(worker, shared, feeds)));
    if let Err(panic) = outcome {
        // timely's queues panic once a connection is gone; the hook has usually named the
        // process already
        shared.fail(ClusterError::lost(
            None,
            format!(
                "process {}: a worker stopped: {}",
                shared.process,
                panic_message(&*panic)
            ),
        ));
        let _ = catch_unwind(AssertUnwindSafe(|| {
            for id in worker.installed_dataflows() {
                worker.drop_dataflow(id);
            }
        }));
    }
    shared.running.fetch_sub(1, Ordering::AcqRel);
    shared.notify();
}

fn serve(worker: &mut Worker, shared: &Shared, feeds: bool) {
    let mut control = InputHandle::new();
    let probe = worker.dataflow::<u64, _, _>(|scope| {
        scope
            .input_from(&mut control)
            .container::<Vec<()>>()
            .probe()
            .0
    });
    let mut control = feeds.then_some(control);
    let mut built = 0;
    let mut inputs: Vec<Box<dyn Feed>> = Vec::new();
    loop {
        let plans: Vec<Arc<dyn Plan>> = lock(&shared.plans)[built..].to_vec();
        for plan in plans {
            inputs.extend(plan.build(worker, feeds));
            built += 1;
        }
        let mut moved = false;
        for input in &mut inputs {
            moved |= input.pump();
        }
        if feeds && !moved {
            shared.leader_idle.store(true, Ordering::SeqCst);
            for input in &mut inputs {
                moved |= input.pump();
            }
        }
        if shared.failure.get().is_some() {
            break;
        }
        if feeds {
            if shared.is_stopping() && !moved {
                break;
            }
        } else if probe.done() {
            shared.stopping.store(true, Ordering::Release);
            break;
        }
        worker.step_or_park(Some(if moved { Duration::ZERO } else { PARK }));
        shared.leader_idle.store(false, Ordering::SeqCst);
    }
    // Closing the inputs completes every dataflow, on every worker.
    drop(inputs);
    control.take();
    while worker.has_dataflows() && shared.failure.get().is_none() {
        worker.step_or_park(Some(PARK));
    }
}
