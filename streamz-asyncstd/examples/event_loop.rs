//! Within the event loop, on async-std: `source.emit(x).await` inside async-std waits until
//! the pipeline is ready for the next element.
//!
//! ```text
//! cargo run -p streamz-asyncstd --example event_loop
//! ```
//!
//! Prints 1 to 10, one per line, about 500 ms apart (the rate limit), in about 4.8 s.

use std::time::{Duration, Instant};

use streamz_asyncstd::AsyncStdExecutor;
use streamz_core::{Stream, StreamError};

/// A slow, blocking computation.
fn increment(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    x + 1
}

/// A slow write that does not block: it waits without holding the thread.
async fn write(x: u64) {
    async_std::task::sleep(Duration::from_millis(200)).await;
    println!("{x}");
}

#[async_std::main]
async fn main() -> Result<(), StreamError> {
    let start = Instant::now();
    let source = Stream::with_executor(AsyncStdExecutor::new());
    source.map(increment).rate_limit("500ms").sink_async(write);

    for x in 0..10 {
        source.emit(x).await?;
    }
    eprintln!("took {:.2?}", start.elapsed());
    Ok(())
}
