//! The asynchronous contract: dropped `Emit`s, the error stream, futures interop and
//! build-time checks (logging is in `logging.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use streamz_core::{ErrorKind, Executor, Stream, VirtualExecutor, ZipInput};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_dropped_emit_finishes_its_work_in_the_background() {
    let ex = VirtualExecutor::new();
    let source = Stream::with_executor(ex.clone());
    let written = Arc::new(Mutex::new(Vec::new()));
    let (log, clock) = (written.clone(), ex.clone());
    source.sink_async(move |x: u32| {
        let (log, clock) = (log.clone(), clock.clone());
        async move {
            clock.clock().sleep(ms(10)).await;
            log.lock().unwrap().push(x);
        }
    });
    drop(source.emit(1)); // not awaited: the write still happens
    drop(source.emit(2));
    assert!(written.lock().unwrap().is_empty());
    ex.advance(ms(10));
    assert_eq!(*written.lock().unwrap(), vec![1, 2]);
}

#[test]
fn errors_nobody_awaits_go_to_the_error_stream() {
    let ex = VirtualExecutor::new();
    let source = Stream::with_executor(ex.clone());
    let errors = source.errors().sink_to_vec();
    source
        .try_sink_async(|x: i32| async move { if x < 0 { Err("negative") } else { Ok(()) } })
        .named("writer");
    drop(source.emit(-1)); // the async sink fails after its Emit is gone
    ex.run_until_stalled();
    let seen = errors.to_vec();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].node().unwrap().name(), "writer");

    // an awaited error is returned, not also sent to the error stream
    let err = ex.block_on(source.emit(-2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(errors.len(), 1);

    // every node of the graph shares the one error stream
    assert_eq!(source.map(|x| x).errors().id(), source.errors().id());
}

#[test]
fn a_dropped_emit_without_an_executor_is_reported_as_abandoned() {
    let (a, b) = (Stream::new(), Stream::<i32>::new());
    let errors = a.errors().sink_to_vec();
    let pairs = Stream::zip_all([ZipInput::from(&a), ZipInput::from(&b)], 1).sink_to_vec();
    a.emit(1).wait().unwrap();
    drop(a.emit(2)); // waits for room, and nothing can run it
    let seen = errors.to_vec();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].kind(), ErrorKind::Abandoned);
    b.emit(10).wait().unwrap();
    assert_eq!(pairs.to_vec(), vec![vec![1, 10]]);
}

#[test]
fn a_failure_downstream_of_a_buffer_does_not_stop_it() {
    // the original's buffer(2) then map(1/x) on 1, 0, 2, 4 gives [1.0] and then stalls
    let ex = VirtualExecutor::new();
    let source = Stream::with_executor(ex.clone());
    let errors = source.errors().sink_to_vec();
    let out = source.buffer(2).map(|x: i32| 4 / x).sink_to_vec();
    ex.block_on(async {
        for x in [1, 0, 2, 4] {
            source.emit(x).await.unwrap();
        }
        source.flush().await;
    });
    assert_eq!(out.to_vec(), vec![4, 2, 1]);
    assert_eq!(errors.len(), 1);
}

#[test]
fn emit_blocking_refuses_pending_work_on_the_virtual_executor() {
    let ex = VirtualExecutor::new();
    let source = Stream::with_executor(ex.clone());
    let out = source.rate_limit("10ms").sink_to_vec();
    source.emit_blocking(1).unwrap(); // nothing pending
    let err = source.emit_blocking(2).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldDeadlock);
    ex.advance(ms(10)); // the element itself was not lost
    assert_eq!(out.to_vec(), vec![1, 2]);
}

#[test]
fn feed_pulls_only_as_fast_as_the_graph_accepts() {
    let ex = VirtualExecutor::new();
    let source = Stream::with_executor(ex.clone());
    let pulled = Arc::new(Mutex::new(Vec::new()));
    let log = pulled.clone();
    let clock = ex.clone();
    let items = futures_util::stream::iter(0..4)
        .inspect(move |x| log.lock().unwrap().push((*x, clock.elapsed())));
    let out = source.rate_limit("100ms").sink_to_vec();
    ex.block_on(source.feed(items));
    assert_eq!(out.to_vec(), vec![0, 1, 2, 3]);
    // each item is pulled only once the previous one has been accepted
    assert_eq!(
        *pulled.lock().unwrap(),
        vec![(0, ms(0)), (1, ms(0)), (2, ms(100)), (3, ms(200))]
    );
}

#[test]
fn subscribe_is_bounded_and_ends_at_close() {
    let ex = VirtualExecutor::new();
    let source = Stream::with_executor(ex.clone());
    let mut output = source.map(|x: u32| x * 10).subscribe(2);
    let admitted = ex.block_on(async {
        let mut admitted = Vec::new();
        source.emit(1).await.unwrap();
        source.emit(2).await.unwrap();
        let third = source.emit(3); // the reader is 2 behind: this waits
        assert!(!third.is_ready());
        assert_eq!(output.next().await, Some(10));
        third.await.unwrap();
        admitted.push(3);
        source.close().await.unwrap();
        let rest: Vec<u32> = output.collect().await;
        (admitted, rest)
    });
    assert_eq!(admitted, (vec![3], vec![20, 30]));
}

#[test]
#[should_panic(expected = "invalid interval \"half a second\"")]
fn a_bad_interval_panics_naming_it() {
    let _ = Stream::<u8>::with_executor(VirtualExecutor::new()).rate_limit("half a second");
}

#[test]
#[should_panic(expected = "buffer(0) would be unbounded")]
fn buffer_zero_is_refused() {
    let _ = Stream::<u8>::with_executor(VirtualExecutor::new()).buffer(0);
}

#[test]
#[should_panic(expected = "timed_window needs an executor")]
fn time_based_operators_need_an_executor() {
    let _ = Stream::<u8>::new().timed_window("1s");
}
