//! The [`AsyncRuntime`] rdkafka's futures run on: no particular executor's.
//!
//! rdkafka needs a timer (a producer's retry while librdkafka's queue is full) and one
//! background task per consumer (a wake-up at half of `max.poll.interval.ms`). Its own
//! runtimes are tokio's, or one that spawns a thread per timer. This one uses
//! `futures-timer` (one timer thread for the process) and a thread per consumer for the
//! wake-up task, so the crate works under every streamz executor.

use std::future::Future;
use std::time::Duration;

use rdkafka::util::AsyncRuntime;

/// See the module's documentation.
#[derive(Debug)]
pub(crate) struct Runtime;

impl AsyncRuntime for Runtime {
    type Delay = futures_timer::Delay;

    fn spawn<T>(task: T)
    where
        T: Future<Output = ()> + Send + 'static,
    {
        // Without a thread the consumer's wake-up loop would not run; a consumer without it
        // still works (it is woken by its messages), so a failure to spawn is not fatal.
        let _ = std::thread::Builder::new()
            .name("streamz-kafka".into())
            .spawn(move || futures_executor::block_on(task));
    }

    fn delay_for(duration: Duration) -> Self::Delay {
        futures_timer::Delay::new(duration)
    }
}
