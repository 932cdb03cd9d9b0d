//! No operator depends on a lucky schedule: async user functions that yield at random points
//! give the same output, at the same virtual times, as ones that never yield.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use streamz_tests::harness::{AsyncStd, Harness, Smol, Virtual};
use streamz_tests::interleave::Interleaved;

#[derive(Debug, Clone)]
struct Case {
    input: Vec<(u64, i64)>,
    parallelism: usize,
    buffer: usize,
    waits: [u64; 3],
    seed: u64,
    percent: u8,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(((0u64..6).prop_map(|k| 4 * k), -20i64..20), 0..16),
        1usize..4,
        1usize..4,
        [0u64..4, 0u64..4, 0u64..4],
        any::<u64>(),
        0u8..90,
    )
        .prop_map(|(input, parallelism, buffer, waits, seed, percent)| Case {
            input,
            parallelism,
            buffer,
            waits: waits.map(|k| 4 * k),
            seed,
            percent,
        })
}

/// The pipeline: `then`, `map_async`, `buffer`, `sink_async`, each async function
/// waiting on the clock, and yielding at random points when `percent` is above zero.
fn run<H: Harness>(case: &Case, percent: u8) -> Vec<(u64, i64)> {
    let case = case.clone();
    H::run(move |rt| async move {
        let seeds = Arc::new(AtomicU64::new(case.seed));
        let wrap = move |wait: u64, rt: streamz_tests::harness::Runtime, seeds: Arc<AtomicU64>| {
            move |x: i64| {
                let nap = rt.sleep_ms(wait);
                let seed = seeds.fetch_add(1, Ordering::Relaxed);
                Interleaved::new(
                    Interleaved::new(
                        async move {
                            nap.await;
                            x
                        },
                        seed,
                        percent,
                    ),
                    seed ^ 0x9e37_79b9,
                    percent,
                )
            }
        };
        let source = rt.source();
        let written = Arc::new(Mutex::new(Vec::new()));
        let log = written.clone();
        let now = rt.clock_ms();
        let write = wrap(case.waits[2], rt.clone(), seeds.clone());
        source
            .then(wrap(case.waits[0], rt.clone(), seeds.clone()))
            .map(|x| x * 2)
            .map_async(
                case.parallelism,
                wrap(case.waits[1], rt.clone(), seeds.clone()),
            )
            .buffer(case.buffer)
            .sink_async(move |x| {
                let (log, now, work) = (log.clone(), now.clone(), write(x));
                async move {
                    let x = work.await;
                    log.lock().unwrap().push((now(), x));
                }
            });
        rt.sleep_ms(1).await;
        for (wait, x) in case.input {
            rt.sleep_ms(wait).await;
            source.emit(x).await.expect("nothing here fails");
        }
        source.close().await.expect("closing fails nowhere");
        source.closed().await;
        written.lock().unwrap().clone()
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn yielding_at_random_points_changes_nothing(case in case()) {
        let calm = run::<Virtual>(&case, 0);
        prop_assert_eq!(calm.len(), case.input.len());
        prop_assert_eq!(&run::<Virtual>(&case, case.percent), &calm, "virtual");
        prop_assert_eq!(&run::<Smol>(&case, case.percent), &calm, "smol");
        prop_assert_eq!(&run::<AsyncStd>(&case, case.percent), &calm, "async-std");
    }
}
