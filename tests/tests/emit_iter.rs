//! `emit_iter` is `for x in items { emit(x).await? }`, element for element: the same outputs,
//! the same first error (and nothing emitted after it), the same backpressure, at the same
//! virtual times; and `emit_iter_blocking` is the `emit_blocking` loop.
//!
//! `PROPTEST_CASES=10000 cargo test -p streamz-tests --release --test emit_iter` for a long
//! run; failures are not persisted into the tree.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use streamz_core::{ErrorKind, Stream, StreamError};
use streamz_tokio::TokioExecutor;

/// The graph both feeds run through: a map that fails on multiples of `fail_every` (when set),
/// a branch of running sums, and a branch behind `buffer(room)` into a sink that takes
/// `sink_ms` of virtual time per element. What each branch got, with the virtual time.
#[derive(Debug, Clone)]
struct Case {
    input: Vec<i64>,
    fail_every: Option<i64>,
    room: usize,
    sink_ms: u64,
}

/// The running sums, the slow sink's (time, element)s, the feed's error, when it returned, and
/// when each element was taken from the input (the backpressure: the next is taken only once
/// the one before is in).
type Got = (Vec<i64>, Vec<(u64, i64)>, Option<String>, u64, Vec<u64>);

type Outputs = (Vec<i64>, Vec<(u64, i64)>);

fn build(
    source: &Stream<i64>,
    case: &Case,
    start: tokio::time::Instant,
) -> impl Fn() -> Outputs + use<> {
    let fail_every = case.fail_every;
    let checked = source.try_map(move |x: i64| match fail_every {
        Some(k) if x % k == 0 => Err(format!("{x} is a multiple of {k}")),
        _ => Ok(x),
    });
    let sums = checked.accumulate_from(0i64, |a, x| a + x).sink_to_vec();
    let slow = Arc::new(Mutex::new(Vec::new()));
    let got = slow.clone();
    let ms = case.sink_ms;
    checked.buffer(case.room).sink_async(move |x| {
        let got = got.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let at = start.elapsed().as_millis() as u64;
            got.lock().unwrap().push((at, x));
        }
    });
    move || (sums.to_vec(), slow.lock().unwrap().clone())
}

/// Feeds `case.input` with an `emit` loop (`iter` false) or `emit_iter`, on tokio's paused
/// clock; what came out, the error, and when the feed returned.
fn run(case: &Case, iter: bool) -> Got {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let start = tokio::time::Instant::now();
        let source = Stream::with_executor(TokioExecutor::current());
        let read = build(&source, case, start);
        let taken = Mutex::new(Vec::new());
        let input = case.input.iter().map(|&x| {
            taken
                .lock()
                .unwrap()
                .push(start.elapsed().as_millis() as u64);
            x
        });
        let fed: Result<(), StreamError> = if iter {
            source.emit_iter(input).await
        } else {
            async {
                for x in input {
                    source.emit(x).await?;
                }
                Ok(())
            }
            .await
        };
        let returned = start.elapsed().as_millis() as u64;
        source.flush().await;
        let (sums, slow) = read();
        let taken = taken.into_inner().unwrap();
        (
            sums,
            slow,
            fed.err().map(|e| without_id(&e)),
            returned,
            taken,
        )
    })
}

/// An error as text, without the node's id (each run builds a graph of its own).
fn without_id(err: &StreamError) -> String {
    let text = err.to_string();
    match (text.find("(#"), text.find(") ")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &text[..a], &text[b + 1..]),
        _ => text,
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(-50i64..50, 0..60),
        prop::option::of(3i64..20),
        1usize..5,
        0u64..4,
    )
        .prop_map(|(input, fail_every, room, sink_ms)| Case {
            input,
            fail_every,
            room,
            sink_ms,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn emit_iter_is_the_emit_loop(case in case()) {
        let looped = run(&case, false);
        let iterated = run(&case, true);
        prop_assert_eq!(iterated, looped);
    }
}

#[test]
fn the_first_error_stops_emit_iter() {
    let case = Case {
        input: (1..=10).collect(),
        fail_every: Some(4),
        room: 2,
        sink_ms: 1,
    };
    let (sums, slow, err, _, _) = run(&case, true);
    // 1, 2, 3 went through; 4 failed; nothing after it was emitted
    assert_eq!(sums, vec![1, 3, 6]);
    assert_eq!(
        slow.iter().map(|(_, x)| *x).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(err.unwrap().contains("4 is a multiple of 4"));
}

#[test]
fn emit_iter_waits_for_room_as_emit_does() {
    // ten elements into buffer(2) in front of a sink taking 10 ms each: the feed returns
    // once the last one has room, 70 ms in, as the emit loop does
    let case = Case {
        input: (1..=10).collect(),
        fail_every: None,
        room: 2,
        sink_ms: 10,
    };
    let (_, slow, err, returned, taken) = run(&case, true);
    assert_eq!(err, None);
    assert_eq!(returned, 70);
    assert_eq!(slow.len(), 10);
    // three go in at once (one in the sink, two in the buffer), then one every 10 ms
    assert_eq!(taken, vec![0, 0, 0, 0, 10, 20, 30, 40, 50, 60]);
    assert_eq!(run(&case, false).3, 70);
}

#[test]
fn emit_iter_blocking_is_the_emit_blocking_loop() {
    let source = Stream::new();
    let out = source
        .try_map(|x: i64| if x == 7 { Err("seven") } else { Ok(x * 2) })
        .sink_to_vec();
    let err = source.emit_iter_blocking(0..100).unwrap_err();
    assert!(err.to_string().contains("seven"), "{err}");
    assert_eq!(out.to_vec(), (0..7).map(|x| x * 2).collect::<Vec<_>>());
    // more than one run of elements (a run is 256)
    let source = Stream::new();
    let out = source.map(|x: u32| x + 1).sink_to_vec();
    source.emit_iter_blocking(0..1000).unwrap();
    assert_eq!(out.to_vec(), (1..=1000).collect::<Vec<_>>());
}

#[test]
fn emit_iter_into_a_closed_stream_fails() {
    let source = Stream::new();
    let out = source.sink_to_vec();
    source.close().wait().unwrap();
    let err = source.emit_iter_blocking([1, 2]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert!(out.to_vec().is_empty());
}
