//! The event loop on a separate thread: the runtime runs on a thread of its own, and plain
//! code feeds the graph with `emit_blocking`, which blocks until the pipeline is ready.
//!
//! ```text
//! cargo run -p streamz-tokio --example separate_thread
//! ```
//!
//! Prints 1 to 10, one per line, about 500 ms apart (the rate limit), in about 4.8 s.

use std::time::{Duration, Instant};

use streamz_core::Stream;
use streamz_tokio::TokioExecutor;

/// A slow, blocking computation.
fn increment(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    x + 1
}

/// A slow write that does not block: it waits without holding the thread.
async fn write(x: u64) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("{x}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let executor = TokioExecutor::background()?;
    let source = Stream::with_executor(executor);
    source.map(increment).rate_limit("500ms").sink_async(write);

    for x in 0..10 {
        source.emit_blocking(x)?;
    }
    eprintln!("took {:.2?}", start.elapsed());
    Ok(())
}
