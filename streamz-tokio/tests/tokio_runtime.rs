//! The tokio executor: both ways of running, paused time, and no deadlock from
//! `emit_blocking` on the runtime's own threads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamz_core::{ErrorKind, Executor, Stream};
use streamz_tokio::TokioExecutor;

#[tokio::test(start_paused = true)]
async fn within_the_event_loop_emit_waits_for_the_pipeline() {
    let start = tokio::time::Instant::now();
    let source = Stream::with_executor(TokioExecutor::current());
    let written = Arc::new(Mutex::new(Vec::new()));
    let log = written.clone();
    source.rate_limit("500ms").sink_async(move |x: u32| {
        let log = log.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            log.lock().unwrap().push((start.elapsed().as_millis(), x));
        }
    });
    for x in 0..3 {
        source.emit(x).await.unwrap();
    }
    assert_eq!(
        *written.lock().unwrap(),
        vec![(200, 0), (700, 1), (1200, 2)]
    );
}

#[test]
fn on_a_separate_thread_emit_blocking_waits_for_the_pipeline() {
    let executor = TokioExecutor::background().unwrap();
    let source = Stream::with_executor(executor);
    let written = Arc::new(Mutex::new(Vec::new()));
    let log = written.clone();
    source.sink_async(move |x: u32| {
        let log = log.clone();
        // tokio's timer: this future must run on the runtime, not on the caller's thread
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            log.lock().unwrap().push(x);
        }
    });
    for x in 0..3 {
        source.emit_blocking(x).unwrap();
        assert_eq!(
            written.lock().unwrap().len(),
            x as usize + 1,
            "emit_blocking waited"
        );
    }
}

#[test]
fn emit_blocking_on_the_background_runtime_is_an_error_not_a_deadlock() {
    let executor = TokioExecutor::background().unwrap();
    let source = Stream::with_executor(executor.clone());
    let out = source.delay("10ms").rate_limit("10ms").sink_to_vec();
    let slow = source.rate_limit("50ms");
    slow.sink(|_: u8| {});
    source.emit_blocking(1).unwrap(); // from plain code: fine
    // from a task on the runtime, with work pending: refused at once
    let (result, refused) = executor.block_on(async {
        let source = source.clone();
        tokio::spawn(async move {
            let refused = source.emit_blocking(2).unwrap_err();
            (source.emit(3).await, refused)
        })
        .await
        .unwrap()
    });
    assert_eq!(refused.kind(), ErrorKind::WouldDeadlock);
    assert!(refused.to_string().contains("await emit()"), "{refused}");
    result.unwrap();
    executor.block_on(source.flush());
    // the refused element's work was not lost: it finished in the background
    assert_eq!(out.to_vec(), vec![1, 2, 3]);
}

#[tokio::test]
async fn emit_blocking_inside_the_current_runtime_is_an_error_when_work_is_pending() {
    let source = Stream::with_executor(TokioExecutor::current());
    source.rate_limit("1h").sink(|_: u8| {});
    source.emit_blocking(1).unwrap(); // nothing owed: no work pending
    let err = source.emit_blocking(2).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldDeadlock);
}

#[tokio::test(start_paused = true)]
async fn zero_length_waits_take_no_time() {
    // tokio rounds every sleep up to a millisecond; a rate limit owed nothing must not sleep
    let source = Stream::with_executor(TokioExecutor::current());
    let out = source.rate_limit(Duration::from_micros(10)).sink_to_vec();
    let start = tokio::time::Instant::now();
    for x in 0..100u32 {
        source.emit(x).await.unwrap();
        tokio::time::advance(Duration::from_micros(10)).await;
    }
    assert_eq!(out.len(), 100);
    assert!(
        start.elapsed() < Duration::from_micros(1100),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn under_paused_time_sleeps_end_exactly_on_their_deadlines() {
    let executor = TokioExecutor::current();
    let clock = executor.clock();
    for micros in [1, 999, 1_000, 1_500, 10_000, 123_456] {
        let start = clock.now();
        clock.sleep(Duration::from_micros(micros)).await;
        // tokio's own timer moves in whole milliseconds: the sleep ends on the first tick at
        // or after the deadline, never before it, and the real-time race never ends it early
        let slept = clock.now() - start;
        assert!(
            slept >= Duration::from_micros(micros),
            "{micros} µs: {slept:?}"
        );
        assert!(
            slept < Duration::from_micros(micros) + Duration::from_millis(1),
            "{micros} µs: {slept:?}"
        );
    }
}

#[test]
fn in_real_time_sleeps_never_end_early() {
    // Lateness depends on the machine's load; earliness never may.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let executor = TokioExecutor::current();
        let clock = executor.clock();
        for _ in 0..20 {
            let deadline = clock.now() + Duration::from_micros(2_300);
            clock.sleep_until(deadline).await;
            assert!(std::time::Instant::now() >= deadline);
        }
    });
}

/// `emit_blocking` refused with `WouldDeadlock` on the runtime's own thread: the element's
/// work goes on in the background, and `flush()` waits for it (it used to return with `[0]`
/// while `[1, 2]` came 20 ms later).
#[tokio::test(start_paused = true)]
async fn flush_waits_for_the_work_of_refused_emit_blocking_calls() {
    let source = Stream::with_executor(TokioExecutor::current());
    let out = source.rate_limit(Duration::from_millis(10)).sink_to_vec();
    source.emit_blocking(0).unwrap(); // nothing owed
    for x in 1..3 {
        let err = source.emit_blocking(x).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldDeadlock);
    }
    assert_eq!(out.to_vec(), vec![0]);
    source.flush().await;
    let mut got = out.to_vec();
    got.sort();
    assert_eq!(got, vec![0, 1, 2]);
}
