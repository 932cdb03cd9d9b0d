//! Acknowledgements: a source learns when an element and everything derived from it is done,
//! through the nodes that pass elements on and the nodes that keep them.

use std::sync::mpsc;
use std::time::Duration;

use streamz_core::{Ack, Executor, Keep, Stream, VirtualExecutor};

/// Acknowledgements whose completions land in a channel: `(element, ok)`.
struct Acked {
    tx: mpsc::Sender<(i64, bool)>,
    rx: mpsc::Receiver<(i64, bool)>,
}

impl Acked {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Acked { tx, rx }
    }

    fn ack(&self, x: i64) -> Ack {
        let tx = self.tx.clone();
        Ack::new(move |result| {
            let _ = tx.send((x, result.is_ok()));
        })
    }

    /// The completions so far, in order.
    fn done(&self) -> Vec<(i64, bool)> {
        self.rx.try_iter().collect()
    }
}

#[test]
fn a_synchronous_chain_acknowledges_each_element_within_its_emit() {
    let acked = Acked::new();
    let source = Stream::new();
    let out = source
        .map(|x: i64| x * 2)
        .filter(|x| x % 4 == 0)
        .map(|x| vec![x, x + 1])
        .flatten()
        .sink_to_vec();
    for x in 0..4 {
        source.emit_acked(x, acked.ack(x)).wait().unwrap();
        // done before emit returns: nothing kept it
        assert_eq!(acked.done(), vec![(x, true)]);
    }
    assert_eq!(out.to_vec(), vec![0, 1, 4, 5]);
}

#[test]
fn a_failure_anywhere_fails_the_acknowledgement() {
    let acked = Acked::new();
    let source = Stream::new();
    let _ok = source.sink_to_vec();
    let _checked = source
        .try_map(|x: i64| if x == 1 { Err("one") } else { Ok(x) })
        .sink_to_vec();
    for x in 0..3 {
        let _ = source.emit_acked(x, acked.ack(x)).wait();
    }
    assert_eq!(acked.done(), vec![(0, true), (1, false), (2, true)]);
}

#[test]
fn kept_elements_are_acknowledged_when_they_leave() {
    let acked = Acked::new();
    let source = Stream::new();
    let pairs = source.partition(2).sink_to_vec();
    let windows = source.sliding_window(2, true).sink_to_vec();
    for x in 0..3 {
        source.emit_acked(x, acked.ack(x)).wait().unwrap();
    }
    // 0 left both (batch [0, 1] and windows [0], [0, 1]); 1 is still in the window [1, 2]
    // and 2 is in the window and the partition
    assert_eq!(acked.done(), vec![(0, true)]);
    source.close().wait().unwrap();
    // closing flushes [2]; the sliding window is dropped with the graph only
    assert_eq!(pairs.to_vec(), vec![vec![0, 1], vec![2]]);
    assert_eq!(windows.len(), 3);
    drop((source, pairs, windows));
    let mut rest = acked.done();
    rest.sort_unstable();
    assert_eq!(rest, vec![(1, true), (2, true)]);
}

#[test]
fn a_duplicate_partition_unique_ignores_is_done_at_once() {
    let acked = Acked::new();
    let source = Stream::new();
    let _batches = source.partition_unique(2, Keep::First).sink_to_vec();
    for x in [5, 5, 6] {
        source.emit_acked(x, acked.ack(x)).wait().unwrap();
    }
    // the second 5 was dropped by the operator's own semantics; [5, 6] went out
    assert_eq!(acked.done(), vec![(5, true), (5, true), (6, true)]);
}

#[test]
fn buffers_delays_and_async_functions_keep_the_acknowledgement() {
    let executor = VirtualExecutor::new();
    let acked = Acked::new();
    let source = Stream::with_executor(executor.clone());
    let clock = executor.clone();
    let out = source
        .buffer(4)
        .delay(Duration::from_millis(10))
        .map_async(2, move |x: i64| {
            let clock = clock.clone();
            async move {
                clock.clock().sleep(Duration::from_millis(5)).await;
                x
            }
        })
        .rate_limit(Duration::from_millis(1))
        .buffer(2)
        .sink_to_vec();
    executor.block_on(async {
        for x in 0..3 {
            // returns once queued: nothing is done yet
            drop(source.emit_acked(x, acked.ack(x)));
        }
    });
    assert_eq!(acked.done(), vec![]);
    executor.block_on(source.flush());
    assert_eq!(out.to_vec(), vec![0, 1, 2]);
    assert_eq!(acked.done(), vec![(0, true), (1, true), (2, true)]);
}

#[test]
fn latest_drops_a_superseded_value_as_done() {
    let executor = VirtualExecutor::new();
    let acked = Acked::new();
    let source = Stream::with_executor(executor.clone());
    let clock = executor.clone();
    let _out = source.latest().sink_async(move |_: i64| {
        let clock = clock.clone();
        async move { clock.clock().sleep(Duration::from_millis(10)).await }
    });
    executor.block_on(async {
        for x in 0..4 {
            drop(source.emit_acked(x, acked.ack(x)));
        }
    });
    executor.block_on(source.flush());
    let mut done = acked.done();
    done.sort_unstable();
    assert_eq!(done, vec![(0, true), (1, true), (2, true), (3, true)]);
}

#[test]
fn a_timed_window_acknowledges_its_elements_when_it_goes_out() {
    let executor = VirtualExecutor::new();
    let acked = Acked::new();
    let source = Stream::with_executor(executor.clone());
    let windows = source
        .timed_window(Duration::from_millis(100))
        .sink_to_vec();
    executor.block_on(async {
        for x in 0..3 {
            source.emit_acked(x, acked.ack(x)).await.unwrap();
        }
    });
    assert_eq!(acked.done(), vec![]);
    executor.advance(Duration::from_millis(100));
    assert_eq!(windows.to_vec(), vec![vec![0, 1, 2]]);
    let mut done = acked.done();
    done.sort_unstable();
    assert_eq!(done, vec![(0, true), (1, true), (2, true)]);
}

#[test]
fn an_element_after_close_fails_its_acknowledgement() {
    let acked = Acked::new();
    let source = Stream::new();
    source.close().wait().unwrap();
    assert!(source.emit_acked(1, acked.ack(1)).wait().is_err());
    assert_eq!(acked.done(), vec![(1, false)]);
}

#[test]
fn a_zip_tuple_carries_all_its_parts_and_unmatched_ones_fail_at_close() {
    let acked = Acked::new();
    let (a, b) = (Stream::new(), Stream::new());
    let pairs = a.zip(&b).sink_to_vec();
    a.emit_acked(1, acked.ack(1)).wait().unwrap();
    a.emit_acked(2, acked.ack(2)).wait().unwrap();
    assert_eq!(acked.done(), vec![], "both wait for a partner");
    b.emit_acked(10, acked.ack(10)).wait().unwrap();
    let mut done = acked.done();
    done.sort_unstable();
    assert_eq!(done, vec![(1, true), (10, true)]);
    assert_eq!(pairs.to_vec(), vec![(1, 10)]);
    a.close().wait().unwrap();
    let _ = b.close().wait(); // zip reports 2 as unmatched
    assert_eq!(acked.done(), vec![(2, false)]);
}

#[test]
fn combine_latest_is_done_with_a_value_once_it_is_replaced() {
    let acked = Acked::new();
    let (a, b) = (Stream::new(), Stream::new());
    let _out = a.combine_latest(&b).sink_to_vec();
    a.emit_acked(1, acked.ack(1)).wait().unwrap();
    b.emit_acked(10, acked.ack(10)).wait().unwrap();
    assert_eq!(
        acked.done(),
        vec![],
        "both are the latest values, part of what comes next"
    );
    a.emit_acked(2, acked.ack(2)).wait().unwrap();
    assert_eq!(acked.done(), vec![(1, true)]);
    a.close().wait().unwrap();
    b.close().wait().unwrap();
    let mut done = acked.done();
    done.sort_unstable();
    assert_eq!(done, vec![(2, true), (10, true)]);
}

#[test]
fn collect_holds_the_acknowledgements_until_its_flush() {
    let acked = Acked::new();
    let source = Stream::new();
    let collector = source.collect();
    let batches = collector.sink_to_vec();
    for x in 0..2 {
        source.emit_acked(x, acked.ack(x)).wait().unwrap();
    }
    assert_eq!(acked.done(), vec![]);
    collector.flush().wait().unwrap();
    assert_eq!(acked.done(), vec![(0, true), (1, true)]);
    assert_eq!(batches.to_vec(), vec![vec![0, 1]]);
}
