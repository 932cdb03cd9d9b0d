//! scatter → … → gather on a rayon pool: order, completion order, the in-flight bound,
//! errors, panics, thread counts, chunks per pool job, and agreement with the serial
//! pipeline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use proptest::prelude::*;
use streamz_core::{ErrorKind, Stream};
use streamz_rayon::{Pool, ScatterExt};

fn flush<T: Clone + Send + 'static>(source: &Stream<T>) {
    futures_executor::block_on(source.flush());
}

#[test]
fn gather_keeps_input_order() {
    let pool = Pool::new(4).unwrap();
    let source = Stream::with_executor(pool.clone());
    let out = source
        .scatter(&pool)
        .map(|x: u64| {
            // later elements finish first
            std::thread::sleep(Duration::from_millis(20 - x));
            x
        })
        .buffer(8)
        .gather()
        .sink_to_vec();
    for x in 0..16 {
        source.emit_blocking(x).unwrap();
    }
    flush(&source);
    assert_eq!(out.to_vec(), (0..16).collect::<Vec<_>>());
}

#[test]
fn gather_unordered_emits_in_completion_order() {
    let pool = Pool::new(2).unwrap();
    let source = Stream::with_executor(pool.clone());
    // element 0 finishes only once element 1 has come out of gather_unordered
    let (one_out, wait_for_one) = mpsc::channel::<()>();
    let wait_for_one = Mutex::new(wait_for_one);
    let out = source
        .scatter(&pool)
        .map(move |x: u32| {
            if x == 0 {
                wait_for_one.lock().unwrap().recv().unwrap();
            }
            x
        })
        .buffer(2)
        .gather_unordered()
        .map(move |x| {
            if x == 1 {
                one_out.send(()).unwrap();
            }
            x
        })
        .sink_to_vec();
    source.emit_blocking(0).unwrap();
    source.emit_blocking(1).unwrap();
    flush(&source);
    assert_eq!(out.to_vec(), vec![1, 0]);
}

#[test]
fn at_most_n_elements_are_in_flight() {
    let pool = Pool::new(4).unwrap();
    let source = Stream::with_executor(pool.clone());
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, max) = (running.clone(), most.clone());
    let out = source
        .scatter(&pool)
        .map(move |x: u32| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            now.fetch_sub(1, Ordering::SeqCst);
            x
        })
        .buffer(3)
        .gather()
        .sink_to_vec();
    for x in 0..30 {
        source.emit_blocking(x).unwrap(); // waits while 3 are in flight
    }
    flush(&source);
    assert_eq!(out.len(), 30);
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} elements ran at once with buffer(3)");
    assert!(most >= 2, "the pool ran elements in parallel ({most})");
}

/// A gate the pool's first elements wait at, so that the next ones queue up behind them.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, opened) = &*self.0;
        let (open, timeout) = opened
            .wait_timeout_while(open.lock().unwrap(), Duration::from_secs(20), |open| !*open)
            .unwrap();
        assert!(*open && !timeout.timed_out(), "the gate opened");
    }

    fn open(&self) {
        let (open, opened) = &*self.0;
        *open.lock().unwrap() = true;
        opened.notify_all();
    }
}

#[test]
fn elements_that_queue_up_go_to_the_pool_several_to_a_job() {
    let pool = Pool::new(2).unwrap();
    let source = Stream::with_executor(pool.clone());
    let (gate, waiting) = (Gate::default(), Arc::new(AtomicUsize::new(0)));
    let (at_gate, arrived) = (gate.clone(), waiting.clone());
    let out = source
        .scatter(&pool)
        .try_map(move |x: u32| {
            if x < 2 {
                // both of the pool's threads wait here while the rest queue up
                arrived.fetch_add(1, Ordering::SeqCst);
                at_gate.wait();
            }
            if x == 30 {
                return Err("thirty is refused");
            }
            Ok(x * 10)
        })
        .buffer(64)
        .gather()
        .sink_to_vec();
    let errors = source.errors().sink_to_vec();
    let jobs_before = pool.snapshot().completed;
    for x in 0..50 {
        source.emit_blocking(x).unwrap(); // 50 < 64: none waits
    }
    while waiting.load(Ordering::SeqCst) < 2 {
        std::thread::sleep(Duration::from_millis(1));
    }
    gate.open();
    flush(&source);
    let want: Vec<u32> = (0..50).filter(|x| *x != 30).map(|x| x * 10).collect();
    assert_eq!(out.to_vec(), want, "every element, in input order");
    let errors = errors.to_vec();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].to_string().contains("thirty is refused"));
    // the two jobs waiting at the gate took the 48 queued behind them: no job per element
    let jobs = pool.snapshot().completed - jobs_before;
    assert_eq!(jobs, 2, "50 elements went to the pool in {jobs} jobs");
}

#[test]
fn a_slow_element_does_not_hold_back_those_a_free_thread_can_run() {
    let pool = Pool::new(2).unwrap();
    let source = Stream::with_executor(pool.clone());
    let gate = Gate::default();
    let (at_gate, ran) = (gate.clone(), Arc::new(AtomicUsize::new(0)));
    let count = ran.clone();
    let out = source
        .scatter(&pool)
        .map(move |x: u32| {
            if x == 0 {
                at_gate.wait();
            }
            count.fetch_add(1, Ordering::SeqCst);
            x + 1
        })
        .buffer(16)
        .gather()
        .sink_to_vec();
    for x in 0..12 {
        source.emit_blocking(x).unwrap();
    }
    // element 0 waits at the gate; the other thread runs the 11 queued after it
    let start = std::time::Instant::now();
    while ran.load(Ordering::SeqCst) < 11 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "only {} of the 11 ran while the first waited",
            ran.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(out.is_empty(), "gather waits for the first, in input order");
    gate.open();
    flush(&source);
    assert_eq!(out.to_vec(), (1..=12).collect::<Vec<_>>());
}

#[test]
fn without_a_buffer_emit_waits_for_each_result() {
    let pool = Pool::new(4).unwrap();
    let source = Stream::new(); // no executor needed without a buffer
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, max) = (running.clone(), most.clone());
    let out = source
        .scatter(&pool)
        .map(move |x: u32| {
            max.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
            now.fetch_sub(1, Ordering::SeqCst);
            x * 2
        })
        .gather()
        .sink_to_vec();
    for x in 0..10 {
        source.emit_blocking(x).unwrap();
        assert_eq!(
            out.len(),
            x as usize + 1,
            "the result is in when emit returns"
        );
    }
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[test]
fn an_error_is_that_elements_and_later_ones_go_on() {
    let pool = Pool::new(2).unwrap();
    // unbuffered: the emitter gets the error
    let source = Stream::new();
    let out = source
        .scatter(&pool)
        .try_map(|x: i32| if x == 2 { Err("two is refused") } else { Ok(x) })
        .gather()
        .sink_to_vec();
    for x in 0..5 {
        let result = source.emit_blocking(x);
        if x == 2 {
            let err = result.unwrap_err();
            // failed at its own stage, not at `gather`
            assert_eq!(err.kind(), ErrorKind::Failed);
            assert_eq!(err.node().unwrap().name(), "map");
            assert_eq!(err.message(), "two is refused");
        } else {
            result.unwrap();
        }
    }
    assert_eq!(out.to_vec(), vec![0, 1, 3, 4]);

    // buffered: the error goes to the error stream; nothing is lost or duplicated
    let source = Stream::with_executor(pool.clone());
    let errors = source.errors().sink_to_vec();
    let out = source
        .scatter(&pool)
        .try_map(|x: i32| {
            if x % 5 == 2 {
                Err(format!("{x} is refused"))
            } else {
                Ok(x)
            }
        })
        .buffer(4)
        .gather()
        .sink_to_vec();
    for x in 0..20 {
        source.emit_blocking(x).unwrap();
    }
    flush(&source);
    let expected: Vec<i32> = (0..20).filter(|x| x % 5 != 2).collect();
    assert_eq!(out.to_vec(), expected);
    assert_eq!(errors.len(), 4);
}

#[test]
fn a_panic_on_the_pool_is_caught() {
    let pool = Pool::new(2).unwrap();
    let source = Stream::with_executor(pool.clone());
    let errors = source.errors().sink_to_vec();
    fn invert(x: i32) -> i32 {
        100 / x
    }
    let out = source
        .scatter(&pool)
        .map(invert)
        .buffer(2)
        .gather()
        .sink_to_vec();
    for x in [5, 0, 10] {
        source.emit_blocking(x).unwrap();
    }
    flush(&source);
    assert_eq!(out.to_vec(), vec![20, 10]);
    let errors = errors.to_vec();
    assert_eq!(errors.len(), 1);
    // a panic at its own stage, as it would be in the local graph
    assert_eq!(errors[0].kind(), ErrorKind::Panic);
    assert_eq!(errors[0].node().unwrap().name(), "map: invert");
    assert!(
        errors[0].to_string().contains("'map: invert'")
            && errors[0].message().contains("divide by zero"),
        "{}",
        errors[0]
    );
    // and the pool still works
    source.emit_blocking(4).unwrap();
    flush(&source);
    assert_eq!(out.to_vec(), vec![20, 10, 25]);
}

#[test]
fn a_pooled_failure_names_its_stage_even_renamed() {
    let pool = Pool::new(2).unwrap();
    let source = Stream::new();
    let _out = source
        .scatter(&pool)
        .map(|x: i32| x + 1)
        .accumulate(|acc: &i32, x| {
            assert!(*acc < 3, "the total passed 3");
            acc + x
        })
        .named("total")
        .filter(|x: &i32| 10 / (x - 6) > 0)
        .gather()
        .sink_to_vec();
    source.emit_blocking(0).unwrap(); // 1
    source.emit_blocking(1).unwrap(); // 3
    let err = source.emit_blocking(2).unwrap_err(); // 1 + ... panics in accumulate
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert_eq!(err.node().unwrap().name(), "total");
    assert_eq!(err.message(), "the total passed 3");
    // the next stage's failure names that stage
    let source = Stream::new();
    let _out = source
        .scatter(&pool)
        .filter(|x: &i32| 10 / x > 0)
        .gather()
        .sink_to_vec();
    let err = source.emit_blocking(0).unwrap_err();
    assert_eq!(
        (err.kind(), err.node().unwrap().name()),
        (ErrorKind::Panic, "filter")
    );
}

#[test]
fn works_from_async_code() {
    let pool = Pool::new(2).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let out = runtime.block_on(async {
        let source = Stream::with_executor(streamz_tokio::TokioExecutor::current());
        let out = source
            .scatter(&pool)
            .map(|x: u8| x + 1)
            .buffer(3)
            .gather()
            .sink_to_vec();
        for x in 0..6 {
            source.emit(x).await.unwrap();
        }
        source.flush().await;
        out.to_vec()
    });
    assert_eq!(out, vec![1, 2, 3, 4, 5, 6]);
}

/// The same random pipeline, serial and on the pool.
fn both_ways(input: &[i64], threads: usize, buffer: Option<usize>) -> (Vec<i64>, Vec<i64>) {
    let f = |x: i64| x.wrapping_mul(3) - 7;
    let keep = |x: &i64| x % 3 != 0;
    let serial = {
        let source = Stream::new();
        let out = source
            .map(f)
            .filter(keep)
            .map(|x| vec![x, x / 2])
            .flatten()
            .accumulate(|a: &i64, x| a.wrapping_add(x))
            .sink_to_vec();
        for &x in input {
            source.emit_blocking(x).unwrap();
        }
        out.to_vec()
    };
    let pool = Pool::new(threads).unwrap();
    let source = Stream::with_executor(pool.clone());
    let scattered = source
        .scatter(&pool)
        .map(f)
        .filter(keep)
        .map(|x| vec![x, x / 2])
        .flatten()
        .accumulate(|a: &i64, x| a.wrapping_add(x));
    let scattered = match buffer {
        Some(n) => scattered.buffer(n),
        None => scattered,
    };
    let out = scattered.gather().sink_to_vec();
    for &x in input {
        source.emit_blocking(x).unwrap();
    }
    flush(&source);
    (serial, out.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_pool_gives_what_the_serial_pipeline_gives(
        input in prop::collection::vec(-1000i64..1000, 0..60),
        threads in 1usize..5,
        buffer in prop::option::of(1usize..9),
    ) {
        let (serial, pooled) = both_ways(&input, threads, buffer);
        prop_assert_eq!(serial, pooled);
    }
}

#[test]
fn an_acknowledgement_waits_for_the_pool() {
    let pool = Pool::new(2).unwrap();
    let source = Stream::with_executor(pool.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let out = source
        .scatter(&pool)
        .map(|x: i32| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            x * 2
        })
        .buffer(4)
        .gather()
        .sink_to_vec();
    for x in 0..8 {
        let tx = tx.clone();
        let ack = streamz_core::Ack::new(move |r| tx.send((x, r.is_ok())).unwrap());
        source.emit_acked(x, ack).wait().unwrap();
    }
    // the last element is still sleeping on the pool: its emit returned, it is not done
    let early: Vec<_> = rx.try_iter().collect();
    assert!(!early.contains(&(7, true)), "{early:?}");
    flush(&source);
    let mut done: Vec<_> = early.into_iter().chain(rx.try_iter()).collect();
    done.sort_unstable();
    assert_eq!(done, (0..8).map(|x| (x, true)).collect::<Vec<_>>());
    assert_eq!(out.to_vec(), (0..8).map(|x| x * 2).collect::<Vec<_>>());
}
