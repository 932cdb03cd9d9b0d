//! Graphs can be shared between threads.

use std::sync::Arc;

use streamz_core::{Collector, Emit, Sink, Stream, StreamError, VecSink, VirtualExecutor};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<Stream<u8>>();
    assert_send_sync::<Stream<String>>();
    assert_send_sync::<Stream<std::cell::Cell<u8>>>(); // Send but not Sync elements
    assert_send_sync::<Sink>();
    assert_send_sync::<VecSink<u8>>();
    assert_send_sync::<Collector<u8>>();
    assert_send_sync::<StreamError>();
    assert_send_sync::<VirtualExecutor>();
    assert_send::<Emit>();
}

#[test]
fn several_threads_emit_into_one_graph() {
    let source = Stream::<u64>::new();
    let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sum = total.clone();
    let counts = source
        .map(|x| x * 2)
        .accumulate(|a: &u64, x| a + x)
        .sink_to_vec();
    source.sink(move |x| {
        sum.fetch_add(x, std::sync::atomic::Ordering::Relaxed);
    });
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let source = source.clone();
            scope.spawn(move || {
                for x in 0..1000 {
                    source.emit_blocking(t * 1000 + x).unwrap();
                }
            });
        }
    });
    let n: u64 = 4000;
    assert_eq!(
        total.load(std::sync::atomic::Ordering::Relaxed),
        n * (n - 1) / 2
    );
    let counts = counts.to_vec();
    assert_eq!(counts.len(), 4000);
    assert_eq!(*counts.iter().max().unwrap(), n * (n - 1));
}
