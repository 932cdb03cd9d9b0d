//! The original's Dask example across two processes: `increment` runs on the workers of both,
//! up to five elements at a time, and process 0 writes the results, 1 to 10, in order.
//!
//! ```text
//! cargo run -p streamz-timely --example cluster -- -n 2 -p 0 &
//! cargo run -p streamz-timely --example cluster -- -n 2 -p 1
//! ```
//!
//! Without a hostfile (`-h FILE`, one `host:port` a line) the processes listen on
//! `localhost:2101` and `localhost:2102`. Each process reports on stderr which elements its
//! workers incremented.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use streamz_core::Stream;
use streamz_timely::{Cluster, ScatterExt};
use streamz_tokio::TokioExecutor;

/// How many elements this process's workers incremented.
static HERE: AtomicUsize = AtomicUsize::new(0);

/// A slow computation.
fn increment(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    HERE.fetch_add(1, Ordering::Relaxed);
    x + 1
}

/// A slow write that does not block a thread.
async fn write(x: u64) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    println!("{x}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::from_args(std::env::args())?;
    let executor = TokioExecutor::background()?;
    let source = Stream::with_executor(executor.clone());
    // every process builds the same pipeline, so that `increment` runs on all of them
    source
        .scatter(&cluster)
        .map(increment)
        .buffer(5)
        .gather()
        .sink_async(write);

    if cluster.is_leader() {
        for x in 0..10 {
            source.emit_blocking(x)?;
        }
        executor.block_on(source.flush());
    }
    let finished = cluster.finish();
    eprintln!(
        "process {} of {}: incremented {} elements",
        cluster.process(),
        cluster.processes(),
        HERE.load(Ordering::Relaxed)
    );
    Ok(finished?)
}
