//! Feedback loops: a sink or map that emits into a node upstream of itself, the original's
//! `sink(source.emit)`, runs to completion instead of deadlocking.

use std::sync::{Arc, Mutex};

use streamz_core::Stream;

fn collatz_step(n: u64) -> u64 {
    if n.is_multiple_of(2) {
        n / 2
    } else {
        3 * n + 1
    }
}

/// The Collatz sequence of 27 (111 steps to 1), made by feeding each step back into the
/// source from the sink.
#[test]
fn a_sink_that_emits_into_its_own_source_runs_a_collatz_sequence_to_the_end() {
    let source = Stream::<u64>::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (log, feedback) = (seen.clone(), source.clone());
    source.map(collatz_step).sink(move |n| {
        log.lock().unwrap().push(n);
        if n != 1 {
            feedback.emit_blocking(n).unwrap();
        }
    });
    source.emit_blocking(27).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 111);
    assert_eq!(seen[0], 82);
    assert_eq!(*seen.last().unwrap(), 1);
    assert_eq!(seen.iter().max(), Some(&9232));
}

/// The same loop through a `try_sink` and `emit` (awaited), with a branch that also sees
/// every element: each element reaches both sinks once, in order.
#[test]
fn a_feedback_loop_through_try_sink_delivers_each_element_once_in_order() {
    let source = Stream::<u64>::new();
    let all = source.sink_to_vec();
    let feedback = source.clone();
    source
        .filter(|n| *n != 1)
        .map(collatz_step)
        .try_sink(move |n| futures_executor::block_on(feedback.emit(n)).map_err(|e| e.to_string()));
    source.emit_blocking(6).unwrap();
    assert_eq!(all.to_vec(), vec![6, 3, 10, 5, 16, 8, 4, 2, 1]);
}

/// Another thread's elements still wait for the sink's function, as always.
#[test]
fn a_sink_called_from_two_threads_is_called_one_element_at_a_time() {
    let source = Stream::<u64>::new();
    let inside = Arc::new(Mutex::new((0u32, 0u32))); // (now, most at once)
    let count = inside.clone();
    let total = Arc::new(Mutex::new(0u64));
    let sum = total.clone();
    source.sink(move |n| {
        {
            let mut c = count.lock().unwrap();
            c.0 += 1;
            c.1 = c.1.max(c.0);
        }
        std::thread::yield_now();
        *sum.lock().unwrap() += n;
        count.lock().unwrap().0 -= 1;
    });
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for n in 0..1000 {
                    source.emit_blocking(n).unwrap();
                }
            });
        }
    });
    assert_eq!(*total.lock().unwrap(), 4 * 999 * 1000 / 2);
    assert_eq!(inside.lock().unwrap().1, 1);
}
