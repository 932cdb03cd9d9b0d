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

mod close_protocol {
    //! The close protocol: a flush at end of stream into a downstream that must wait is
    //! delivered, and `close()` resolves once everything flushed has reached the sinks.

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use streamz_core::{Executor, Stream, VirtualExecutor};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `range 7 | partition 2 | buffer 1 | slow sink`: the remainder `[6]` is flushed into a
    /// full buffer at close; it used to be dropped when the buffer closed under it.
    #[test]
    fn a_partition_remainder_flushed_into_a_full_buffer_is_delivered() {
        let ex = VirtualExecutor::new();
        let source = Stream::with_executor(ex.clone());
        let clock = ex.clone();
        let out = source
            .partition(2)
            .buffer(1)
            .then(move |x: Vec<u32>| {
                let clock = clock.clone();
                async move {
                    clock.clock().sleep(ms(4)).await;
                    x
                }
            })
            .sink_to_vec();
        ex.block_on(async {
            for x in 0..7 {
                source.emit(x).await.unwrap();
            }
            source.close().await.unwrap();
            // close() resolved: everything flushed is at the sink, and the sink is closed
            assert_eq!(
                out.to_vec(),
                vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6]]
            );
            assert!(out.is_closed());
        });
    }

    #[test]
    fn a_flush_into_a_rate_limit_and_an_async_sink_is_delivered_before_close_resolves() {
        let ex = VirtualExecutor::new();
        let source = Stream::with_executor(ex.clone());
        let written = Arc::new(Mutex::new(Vec::new()));
        let (log, clock) = (written.clone(), ex.clone());
        let sink =
            source
                .partition(10)
                .buffer(5)
                .rate_limit(ms(1))
                .sink_async(move |x: Vec<u32>| {
                    let (log, clock) = (log.clone(), clock.clone());
                    async move {
                        clock.clock().sleep(ms(3)).await;
                        log.lock().unwrap().push(x.len());
                    }
                });
        ex.block_on(async {
            for x in 0..1001 {
                source.emit(x).await.unwrap();
            }
            source.close().await.unwrap();
            let written = written.lock().unwrap();
            assert_eq!(written.len(), 101);
            assert_eq!(written.iter().sum::<usize>(), 1001);
            assert!(sink.is_closed());
        });
    }

    #[test]
    fn close_waits_through_a_chain_of_tasks() {
        let ex = VirtualExecutor::new();
        let source = Stream::with_executor(ex.clone());
        let out = source
            .partition(2)
            .buffer(1)
            .delay(ms(5))
            .flatten()
            .timed_window(ms(7))
            .flatten()
            .buffer(1)
            .rate_limit(ms(2))
            .sink_to_vec();
        ex.block_on(async {
            for x in 0..9 {
                source.emit(x).await.unwrap();
            }
            source.close().await.unwrap();
            assert_eq!(out.to_vec(), (0..9).collect::<Vec<u32>>());
            assert!(out.is_closed());
        });
    }

    /// A node with an upstream still open does not complete, and `close()` of the other
    /// upstream does not wait for it.
    #[test]
    fn close_of_one_input_does_not_wait_for_the_other() {
        let ex = VirtualExecutor::new();
        let (a, b) = (
            Stream::with_executor(ex.clone()),
            Stream::with_executor(ex.clone()),
        );
        let out = a.buffer(1).union([&b.buffer(1)]).sink_to_vec();
        ex.block_on(async {
            a.emit(1).await.unwrap();
            b.emit(2).await.unwrap();
            a.close().await.unwrap();
            assert!(!out.is_closed());
            b.close().await.unwrap();
            assert!(out.is_closed());
            let mut got = out.to_vec();
            got.sort();
            assert_eq!(got, vec![1, 2]);
        });
    }
}
