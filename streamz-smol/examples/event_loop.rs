//! Within the event loop, on smol: `source.emit(x).await` inside the executor waits until
//! the pipeline is ready for the next element.
//!
//! ```text
//! cargo run -p streamz-smol --example event_loop
//! ```
//!
//! Prints 1 to 10, one per line, about 500 ms apart (the rate limit), in about 4.8 s.

use std::time::{Duration, Instant};

use streamz_core::{Stream, StreamError};
use streamz_smol::SmolExecutor;

/// A slow, blocking computation.
fn increment(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    x + 1
}

/// A slow write that does not block: it waits without holding the thread.
async fn write(x: u64) {
    async_io::Timer::after(Duration::from_millis(200)).await;
    println!("{x}");
}

fn main() -> Result<(), StreamError> {
    let start = Instant::now();
    let executor = SmolExecutor::new();
    let source = Stream::with_executor(executor.clone());
    source.map(increment).rate_limit("500ms").sink_async(write);

    executor.run(async {
        for x in 0..10 {
            source.emit(x).await?;
        }
        Ok::<(), StreamError>(())
    })?;
    eprintln!("took {:.2?}", start.elapsed());
    Ok(())
}
