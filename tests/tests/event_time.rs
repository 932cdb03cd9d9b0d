//! Event-time windows against the plain model (`streamz_tests::model::EventWindows`), on
//! random out-of-order inputs, keys, window shapes, lateness and early firings.

use proptest::prelude::*;
use streamz_core::{EventTime, Firing, Stream, Watermarks, Window};
use streamz_tests::harness::Harness;
use streamz_tests::model::EventWindows;
use streamz_tests::on_every_executor;

thread_local! {
    /// Results by firing (early, on time, late) and late elements, over the cases run.
    static STATS: std::cell::RefCell<[usize; 4]> = const { std::cell::RefCell::new([0; 4]) };
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

type Element = (u8, i64, i32);
type Result = (u8, i64, i64, Vec<i32>, u8);

/// A case's window and watermark: its shape, the watermark's delay and skew, the lateness and
/// the early firings, in ns.
#[derive(Debug, Clone, Copy)]
struct Rules {
    shape: Shape,
    delay: i64,
    skew: Option<i64>,
    lateness: i64,
    early: Option<i64>,
}

/// The window shape: tumbling (size), sliding (size, slide) or session (gap), in ns.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        (1i64..30).prop_map(Shape::Tumbling),
        (1i64..10, 1i64..4).prop_map(|(k, slide)| Shape::Sliding(slide * k, slide)),
        (1i64..30, 1i64..30).prop_filter_map("slide ≤ size", |(size, slide)| (slide <= size)
            .then_some(Shape::Sliding(size, slide))),
        (1i64..20).prop_map(Shape::Session),
    ]
}

fn ns(n: i64) -> std::time::Duration {
    std::time::Duration::from_nanos(n as u64)
}

/// The same through the library: a `watermarks` node and a window, per key.
fn run(xs: &[Element], case: Rules) -> (Vec<Result>, Vec<Element>) {
    let source: Stream<Element> = Stream::new();
    let (out, late) = build(&source, case);
    for &x in xs {
        source.emit_blocking(x).unwrap();
    }
    source.close().wait().unwrap();
    (out.to_vec(), late.to_vec())
}

/// The case's graph on `source`: its results and its late elements.
fn build(
    source: &Stream<Element>,
    case: Rules,
) -> (
    streamz_core::VecSink<Result>,
    streamz_core::VecSink<Element>,
) {
    let Rules {
        shape,
        delay,
        skew,
        lateness,
        early,
    } = case;
    let mut rules = Watermarks::bounded(ns(delay));
    if let Some(skew) = skew {
        rules = rules.max_skew(ns(skew));
    }
    let window = match shape {
        Shape::Tumbling(size) => Window::tumbling(ns(size)),
        Shape::Sliding(size, slide) => Window::sliding(ns(size), ns(slide)),
        Shape::Session(gap) => Window::session(ns(gap)),
    };
    let mut builder = source
        .watermarks(|x| EventTime::from_nanos(x.1), rules)
        .window(window, |x| EventTime::from_nanos(x.1))
        .key(|x| x.0)
        .lateness(ns(lateness));
    if let Some(every) = early {
        builder = builder.early_every(ns(every));
    }
    let (windows, late) = builder.fold(Vec::new(), |acc: &mut Vec<i32>, x| acc.push(x.2));
    let firing = |f: Firing| match f {
        Firing::Early => 0,
        Firing::OnTime => 1,
        Firing::Late => 2,
    };
    let out = windows
        .map(move |w| {
            (
                w.key,
                w.start.as_nanos(),
                w.end.as_nanos(),
                w.value,
                firing(w.firing),
            )
        })
        .sink_to_vec();
    (out, late.sink_to_vec())
}

fn model(xs: &[Element], case: Rules) -> (Vec<Result>, Vec<Element>) {
    let Rules {
        shape,
        delay,
        skew,
        lateness,
        early,
    } = case;
    let (aligned, gap) = match shape {
        Shape::Tumbling(size) => (Some((size, size)), 0),
        Shape::Sliding(size, slide) => (Some((size, slide)), 0),
        Shape::Session(gap) => (None, gap),
    };
    let mut m = EventWindows::new(aligned, gap, lateness, early);
    let mut watermark = i64::MIN;
    for &(key, t, v) in xs {
        m.element(key, t, v);
        // the bounded rule, with its skew
        let candidate = t - delay;
        if candidate > watermark {
            watermark = match skew {
                Some(skew) if watermark > i64::MIN => candidate.min(watermark + skew),
                _ => candidate,
            };
            m.advance(watermark);
        }
    }
    m.finish();
    (m.out, m.late)
}

/// Times that mostly go forward, with some out of order by up to `jitter`.
fn elements() -> impl Strategy<Value = Vec<Element>> {
    (
        prop::collection::vec((0u8..3, 0i64..12, -20i64..4, any::<i32>()), 0..80),
        0i64..3,
    )
        .prop_map(|(steps, _)| {
            let mut now = 0i64;
            steps
                .into_iter()
                .map(|(key, step, jitter, v)| {
                    now += step;
                    (key, (now + jitter).max(-5), v % 1000)
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn windows_match_the_model(
        xs in elements(),
        shape in shape(),
        delay in 0i64..15,
        skew in prop::option::of(1i64..20),
        lateness in prop_oneof![Just(0i64), 1i64..25],
        early in prop::option::of(1i64..8),
    ) {
        let case = Rules { shape, delay, skew, lateness, early };
        let got = run(&xs, case);
        let want = model(&xs, case);
        prop_assert_eq!(&got.0, &want.0, "results");
        prop_assert_eq!(&got.1, &want.1, "late elements");
        // nothing lost: in tumbling windows, each element is in the last result of its
        // window, or late
        if let Shape::Tumbling(_) = shape {
            let mut last = std::collections::HashMap::new();
            for r in got.0.iter().filter(|r| r.4 != 0) {
                last.insert((r.0, r.1), r.3.len());
            }
            prop_assert_eq!(last.values().sum::<usize>() + got.1.len(), xs.len());
        }
        STATS.with(|s| {
            let mut s = s.borrow_mut();
            for r in &got.0 {
                s[usize::from(r.4)] += 1;
            }
            s[3] += got.1.len();
        });
    }
}

/// The random inputs reach every case: early, on-time and late results, and late elements.
#[test]
fn the_inputs_reach_every_kind_of_result() {
    windows_match_the_model();
    let stats = STATS.with(|s| *s.borrow());
    eprintln!("results early/on time/late, late elements: {stats:?}");
    assert!(stats.iter().all(|&n| n > 0), "{stats:?}");
}

/// A case of the model test: its input and its rules.
fn case() -> impl Strategy<Value = (Vec<Element>, Rules)> {
    (
        elements(),
        shape(),
        0i64..15,
        prop::option::of(1i64..20),
        prop_oneof![Just(0i64), 1i64..25],
        prop::option::of(1i64..8),
    )
        .prop_map(|(xs, shape, delay, skew, lateness, early)| {
            let rules = Rules {
                shape,
                delay,
                skew,
                lateness,
                early,
            };
            (xs, rules)
        })
}

/// The model test on an executor: the graph on its source, every element awaited there (a
/// `buffer` before the window, so that elements and watermarks cross a task), the same results
/// as the model.
fn model_on<H: Harness>() {
    let config = ProptestConfig {
        cases: cases() / 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&case(), |(xs, case)| {
            let want = model(&xs, case);
            let got = H::run(|rt| {
                let xs = xs.clone();
                async move {
                    let source: Stream<Element> = rt.source();
                    let buffered = source.buffer(4);
                    let (out, late) = build(&buffered, case);
                    for x in xs {
                        source.emit(x).await.unwrap();
                    }
                    source.close().await.unwrap();
                    (out.to_vec(), late.to_vec())
                }
            });
            prop_assert_eq!(&got.0, &want.0, "results on {}", H::NAME);
            prop_assert_eq!(&got.1, &want.1, "late elements on {}", H::NAME);
            Ok(())
        })
        .unwrap();
}

on_every_executor!(model_on);
