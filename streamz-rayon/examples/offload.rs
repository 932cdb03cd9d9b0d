//! Offloaded, from plain code: `increment` runs on the thread pool, up to five elements at
//! a time, while `emit_blocking` feeds the pipeline (the original's Dask example).
//!
//! ```text
//! cargo run -p streamz-rayon --example offload
//! ```
//!
//! Prints 1 to 10, in order, in about 2.1 s: the writes are the bottleneck, and the
//! increments overlap them.

use std::time::{Duration, Instant};

use streamz_core::Stream;
use streamz_rayon::{Pool, ScatterExt};

/// A slow, blocking computation.
fn increment(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    x + 1
}

/// A slow write that does not block: it waits without holding the thread.
async fn write(x: u64) {
    futures_timer::Delay::new(Duration::from_millis(200)).await;
    println!("{x}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let pool = Pool::new(0)?; // a thread per core
    let source = Stream::with_executor(pool.clone());
    source
        .scatter(&pool)
        .map(increment)
        .buffer(5)
        .gather()
        .sink_async(write);

    for x in 0..10 {
        source.emit_blocking(x)?;
    }
    futures_executor::block_on(source.flush()); // wait for the last writes
    eprintln!("took {:.2?}", start.elapsed());
    Ok(())
}
