//! Random pipelines, random inputs, random emit timings: every executor gives the same output,
//! element by element, at the same virtual times.
//!
//! `PROPTEST_CASES=10000 cargo test -p streamz-tests --release --test prop_executors` for a
//! long run. A failure shrinks to a short pipeline, printed as a list of `Op`s.
//!
//! Every executor runs on a `ManualClock`, which fires timers one at a time, in deadline order,
//! ties in the order they were set, and lets everything settle in between. That is what makes
//! two events at the same instant (a `latest` consumer freeing up just as a new element
//! arrives, say) come out the same everywhere; tokio's own paused clock orders such ties its
//! own way, so tokio runs here on the manual clock, and its paused time is covered by
//! `time_operators.rs`, whose timings have no ties.
//!
//! Times are also kept apart where an operator's output depends on which of two events at one
//! instant comes first, which no runtime promises (on a multi-threaded executor not even the
//! manual clock's tie order is fixed): the source emits at 1 ms past a multiple of 4 ms, every
//! interval, delay and wait is a multiple of 4 ms (so elements stay 1 ms past the grid),
//! windows close on the grid, a partition timeout is 1 ms past a multiple of 4 ms (so it fires
//! 2 ms past it), and the stage behind `latest` takes a multiple of 4 ms plus 1 µs (so it frees
//! up off the millisecond grid, where no element arrives). A chain has at most one timed window,
//! and at most one `latest` or partition timeout. `latest` comes first in its chain, and in a
//! case with one the source never emits twice at one instant: on a multi-threaded executor,
//! whether `latest` hands on the first of two same-instant elements or only the second is a
//! race by nature.

use std::time::Duration;

use proptest::prelude::*;
use streamz_core::Stream;
use streamz_tests::harness::{AsyncStd, Harness, Rayon, Runtime, Smol, TokioManual, Virtual};

#[derive(Debug, Clone)]
enum Op {
    Add(i64),
    KeepNotMultipleOf(i64),
    RunningSum,
    Unique(Option<usize>),
    WindowSum(usize, bool),
    PartitionSum(usize),
    RateLimit(u64),
    Delay(u64),
    TimedWindowSum(u64),
    PartitionTimeoutSum(usize, u64),
    /// `buffer(n)` in front of a stage that takes `ms` per element.
    BufferSlow(usize, u64),
    /// `latest()` in front of a stage that takes `ms` per element.
    LatestSlow(u64),
    MapAsync(usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let ms = |max: u64| (1..=max).prop_map(|k| 4 * k);
    prop_oneof![
        (-5i64..5).prop_map(Op::Add),
        (2i64..5).prop_map(Op::KeepNotMultipleOf),
        Just(Op::RunningSum),
        prop::option::of(1usize..4).prop_map(Op::Unique),
        (1usize..4, any::<bool>()).prop_map(|(n, p)| Op::WindowSum(n, p)),
        (1usize..4).prop_map(Op::PartitionSum),
        ms(5).prop_map(Op::RateLimit),
        ms(5).prop_map(Op::Delay),
        ms(6).prop_map(Op::TimedWindowSum),
        (2usize..5, ms(5)).prop_map(|(n, t)| Op::PartitionTimeoutSum(n, t + 1)),
        (1usize..4, ms(4)).prop_map(|(n, d)| Op::BufferSlow(n, d)),
        ms(4).prop_map(Op::LatestSlow),
        (1usize..4, ms(4)).prop_map(|(p, d)| Op::MapAsync(p, d)),
    ]
}

/// A chain of ops with at most one timed window, and at most one `latest` or partition
/// timeout (see above).
fn chain(max: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..=max).prop_map(|ops| {
        let (mut windows, mut tie_sensitive) = (0, 0);
        ops.into_iter()
            .enumerate()
            .map(|(i, op)| match op {
                Op::LatestSlow(_) if i > 0 => Op::Add(3),
                Op::TimedWindowSum(_) if windows > 0 => Op::Add(1),
                Op::TimedWindowSum(t) => {
                    windows += 1;
                    Op::TimedWindowSum(t)
                }
                Op::PartitionTimeoutSum(..) | Op::LatestSlow(_) if tie_sensitive > 0 => Op::Add(2),
                op @ (Op::PartitionTimeoutSum(..) | Op::LatestSlow(_)) => {
                    tie_sensitive += 1;
                    op
                }
                other => other,
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
struct Case {
    main: Vec<Op>,
    /// A second branch from the source, joined with `union` just before the sink.
    branch: Option<Vec<Op>>,
    /// Wait (ms, a multiple of 4), then emit the value.
    input: Vec<(u64, i64)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        chain(4).prop_filter("a pipeline", |ops| !ops.is_empty()),
        prop::option::of(chain(3)),
        prop::collection::vec(((0u64..10).prop_map(|k| 4 * k), -20i64..20), 0..12),
    )
        .prop_map(|(main, branch, mut input)| {
            let has_latest = main
                .iter()
                .chain(branch.iter().flatten())
                .any(|op| matches!(op, Op::LatestSlow(_)));
            if has_latest {
                for (wait, _) in &mut input {
                    *wait = (*wait).max(4);
                }
            }
            Case {
                main,
                branch,
                input,
            }
        })
}

fn sum(items: Vec<i64>) -> i64 {
    items.into_iter().fold(0, i64::wrapping_add)
}

fn build(rt: &Runtime, from: &Stream<i64>, ops: &[Op]) -> Stream<i64> {
    let mut s = from.clone();
    for op in ops {
        let slow_for = |wait: Duration| {
            let rt = rt.clone();
            move |x: i64| {
                let nap = rt.executor().clock().sleep(wait);
                async move {
                    nap.await;
                    x
                }
            }
        };
        let slow = |ms: u64| slow_for(Duration::from_millis(ms));
        s = match op.clone() {
            Op::Add(k) => s.map(move |x| x.wrapping_add(k)),
            Op::KeepNotMultipleOf(m) => s.filter(move |x| x % m != 0),
            Op::RunningSum => s.accumulate(|a: &i64, x| a.wrapping_add(x)),
            Op::Unique(maxsize) => s.unique(maxsize),
            Op::WindowSum(n, partial) => s.sliding_window(n, partial).map(sum),
            Op::PartitionSum(n) => s.partition(n).map(sum),
            Op::RateLimit(ms) => s.rate_limit(Duration::from_millis(ms)),
            Op::Delay(ms) => s.delay(Duration::from_millis(ms)),
            Op::TimedWindowSum(ms) => s.timed_window(Duration::from_millis(ms)).map(sum),
            Op::PartitionTimeoutSum(n, ms) => {
                s.partition_timeout(n, Duration::from_millis(ms)).map(sum)
            }
            Op::BufferSlow(n, ms) => s.buffer(n).then(slow(ms)),
            Op::LatestSlow(ms) => s.latest().then(slow_for(
                Duration::from_millis(ms) + Duration::from_micros(1),
            )),
            Op::MapAsync(p, ms) => s.map_async(p, slow(ms)),
        };
    }
    s
}

/// The sink's `(ms, value)` pairs, and when everything had drained.
fn run<H: Harness>(case: &Case) -> (Vec<(u64, i64)>, u64) {
    let case = case.clone();
    H::run(move |rt| async move {
        // Far past the end of any case here: reached only if the pipeline never drains.
        let deadline = rt.sleep_ms(1_000_000);
        let work = std::pin::pin!(drain(rt, case));
        match futures_util::future::select(work, deadline).await {
            futures_util::future::Either::Left((out, _)) => out,
            futures_util::future::Either::Right(_) => {
                panic!("the pipeline never drained after close()")
            }
        }
    })
}

async fn drain(rt: Runtime, case: Case) -> (Vec<(u64, i64)>, u64) {
    {
        let source = rt.source();
        let main = build(&rt, &source, &case.main);
        let out = match &case.branch {
            Some(ops) => main.union([&build(&rt, &source, ops)]),
            None => main,
        };
        let now = rt.clock_ms();
        let seen = out.map(move |x| (now(), x)).sink_to_vec();
        rt.sleep_ms(1).await;
        for (wait, x) in case.input {
            rt.sleep_ms(wait).await;
            source
                .emit(x)
                .await
                .expect("nothing in these pipelines fails");
        }
        source.close().await.expect("closing fails nowhere");
        source.closed().await;
        let mut seen = seen.to_vec();
        if case.branch.is_some() {
            // Two branches meeting at the same instant may do so in either order.
            seen.sort();
        }
        (seen, rt.now_ms())
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn every_executor_gives_the_same_output_at_the_same_times(case in case()) {
        let expected = run::<Virtual>(&case);
        prop_assert_eq!(&run::<TokioManual>(&case), &expected, "tokio");
        prop_assert_eq!(&run::<Smol>(&case), &expected, "smol");
        prop_assert_eq!(&run::<AsyncStd>(&case), &expected, "async-std");
        prop_assert_eq!(&run::<Rayon>(&case), &expected, "rayon");
    }
}

#[test]
fn the_executors_agree_on_a_busy_pipeline() {
    // A fixed, readable case of everything at once, as a smoke test for the property; it keeps
    // to the same rules as the generated cases.
    let case = Case {
        main: vec![
            Op::RateLimit(8),
            Op::PartitionTimeoutSum(2, 13),
            Op::BufferSlow(2, 4),
            Op::TimedWindowSum(12),
        ],
        // `latest` first in its chain, and no two emits at one instant (see the top).
        branch: Some(vec![Op::LatestSlow(8), Op::Delay(20), Op::MapAsync(2, 4)]),
        input: (0..8).map(|i| (4 * (1 + i % 3), i as i64)).collect(),
    };
    let expected = run::<Virtual>(&case);
    assert!(!expected.0.is_empty());
    assert_eq!(run::<TokioManual>(&case), expected);
    assert_eq!(run::<AsyncStd>(&case), expected);
    assert_eq!(run::<Rayon>(&case), expected);
}
