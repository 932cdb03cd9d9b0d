//! End of stream: close, closed, flush.

use streamz_core::Stream;

#[test]
fn close_reaches_every_sink() {
    let source = Stream::<i32>::new();
    let a = source.map(|x| x + 1).sink_to_vec();
    let b = source.filter(|x| *x > 0).partition(2).sink_to_vec();
    let sink = source.sink(|_| {});
    assert!(!a.is_closed() && !b.is_closed() && !sink.is_closed());
    source.emit_blocking(1).unwrap();
    source.close().wait().unwrap();
    assert!(source.is_closed());
    assert!(a.is_closed() && b.is_closed() && sink.is_closed());
    assert_eq!(b.to_vec(), vec![vec![1]]);
}

#[test]
fn closed_and_flush_resolve_once_drained() {
    futures_executor::block_on(async {
        let source = Stream::<i32>::new();
        let out = source.partition(2).sink_to_vec();
        source.emit(1).await.unwrap();
        source.flush().await; // nothing in flight in a synchronous graph
        source.close().await.unwrap();
        source.closed().await;
        out.closed().await;
        assert_eq!(out.to_vec(), vec![vec![1]]);
    });
}

#[test]
fn closed_waits_for_completion() {
    let (a, b) = (Stream::<i32>::new(), Stream::<i32>::new());
    let joined = a.union([&b]);
    let out = joined.sink_to_vec();
    a.close().wait().unwrap();
    let mut closed = Box::pin(a.closed());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(closed.as_mut().poll(&mut cx).is_pending());
    b.close().wait().unwrap();
    assert!(closed.as_mut().poll(&mut cx).is_ready());
    assert!(out.is_closed());
}

#[test]
fn a_dropped_vec_sink_stops_keeping_elements() {
    let source = Stream::new();
    let out = source.sink_to_vec();
    source.emit_blocking(1).unwrap();
    let kept = out.clone();
    drop(out);
    source.emit_blocking(2).unwrap();
    assert_eq!(kept.to_vec(), vec![1, 2]);
    drop(kept);
    source.emit_blocking(3).unwrap(); // goes nowhere, grows nothing
}

use std::future::Future;
