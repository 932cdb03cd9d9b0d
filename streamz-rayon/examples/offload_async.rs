//! Offloaded, from async code: inside a tokio runtime, `increment` runs on the thread pool
//! and `source.emit(x).await` waits for each element to be written (the original's
//! "asynchronous Dask" example).
//!
//! ```text
//! cargo run -p streamz-rayon --example offload_async
//! ```
//!
//! Prints 1 to 10, in order, about 500 ms apart (the rate limit), in about 4.8 s.

use std::time::{Duration, Instant};

use streamz_core::{Stream, StreamError};
use streamz_rayon::{Pool, ScatterExt};
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

#[tokio::main]
async fn main() -> Result<(), StreamError> {
    let start = Instant::now();
    let pool = Pool::new(0).expect("a thread pool");
    let source = Stream::with_executor(TokioExecutor::current());
    source
        .scatter(&pool)
        .map(increment)
        .rate_limit("500ms")
        .gather()
        .sink_async(write);

    for x in 0..10 {
        source.emit(x).await?;
    }
    eprintln!("took {:.2?}", start.elapsed());
    Ok(())
}
