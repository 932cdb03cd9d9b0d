//! `rate_limit` never lets a gap fall below its interval, even when timers fire late: the
//! original schedules on a fixed grid, so a late wake-up is followed by a short gap.

use std::time::{Duration, Instant};

use streamz_core::{BoxFuture, Clock, Emit, Executor, Stream, VirtualExecutor};

/// The virtual executor, with every timer firing `LATE` after its deadline.
#[derive(Debug, Clone)]
struct LateTimers(VirtualExecutor);

const LATE: Duration = Duration::from_millis(3);

impl Clock for LateTimers {
    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        self.0.sleep_until(deadline + LATE)
    }
}

impl Executor for LateTimers {
    fn spawn(&self, task: BoxFuture<()>) {
        self.0.spawn(task);
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        self.0.spawn_blocking(work);
    }

    fn clock(&self) -> &dyn Clock {
        self
    }
}

#[test]
fn late_timers_never_shorten_a_gap() {
    let ex = VirtualExecutor::new();
    let source = Stream::with_executor(LateTimers(ex.clone()));
    let clock = ex.clone();
    let times = source
        .rate_limit("10ms")
        .map(move |_: u8| clock.elapsed().as_millis())
        .sink_to_vec();
    ex.block_on(async {
        let emits: Vec<Emit> = (0..4).map(|x| source.emit(x)).collect();
        for emit in emits {
            emit.await.unwrap();
        }
    });
    let times = times.to_vec();
    // each wait ends 3 ms late, and the next slot is counted from when the element went
    assert_eq!(times, vec![0, 13, 26, 39]);
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 10));
}
