//! Every numeric parameter at its extremes: it works (memory for what is held, not for the
//! number; a wait far in the future is just that) or is refused when the graph is built.

use std::time::Duration;

use streamz_core::{Keep, Stream, VirtualExecutor};

/// Builds `op` on a fresh graph, emits 0, 1, 2 and closes: what reached the sink.
fn run<U: Clone + Send + 'static>(op: impl FnOnce(&Stream<u64>) -> Stream<U>) -> Vec<U> {
    let ex = VirtualExecutor::new();
    let source = Stream::with_executor(ex.clone());
    let out = op(&source).sink_to_vec();
    ex.block_on(async {
        for x in 0..3 {
            // not awaited: a wait of a thousand years must not hold the test
            drop(source.emit(x));
        }
        drop(source.close());
    });
    ex.run_until_stalled();
    out.to_vec()
}

#[test]
fn sizes_at_usize_max_cost_only_what_is_held() {
    let max = usize::MAX;
    assert_eq!(run(|s| s.buffer(max)), vec![0, 1, 2]);
    assert_eq!(run(|s| s.partition(max)), vec![vec![0, 1, 2]]);
    assert_eq!(run(|s| s.sliding_window(max, true)).len(), 3);
    assert_eq!(run(|s| s.unique(Some(max))), vec![0, 1, 2]);
    assert_eq!(
        run(|s| s.partition_unique(max, Keep::First)),
        vec![vec![0, 1, 2]]
    );
    assert_eq!(
        run(|s| s.map_async(max, |x| async move { x })),
        vec![0, 1, 2]
    );
    assert_eq!(run(|s| s.partition_timeout(max, "1s")), vec![vec![0, 1, 2]]);
}

#[test]
fn durations_at_their_maximum_wait_rather_than_overflow() {
    let forever = Duration::MAX;
    // the first element of a rate limit goes at once; the rest wait for ever, held
    assert_eq!(run(|s| s.rate_limit(forever)), vec![0]);
    assert!(run(|s| s.delay(forever)).is_empty());
    // windows and partitions flush what they hold at end of stream
    assert_eq!(run(|s| s.timed_window(forever)), vec![vec![0, 1, 2]]);
    assert_eq!(
        run(|s| s.partition_timeout(2, forever)),
        vec![vec![0, 1], vec![2]]
    );
}
