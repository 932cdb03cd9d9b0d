//! `streamz-bench peers`: this library beside the Rust crates a user would pick instead, on
//! the same work, in one run: futures (a boxed stream per stage, and statically chained),
//! rxRust (`Shared` and `Local`, type-erased per stage and static), tokio channels, futures
//! fan-out, `spawn_blocking` + `buffered`, rayon's `par_iter` and governor.
//!
//! Every figure is the median of interleaved rounds (each round runs every variant of a
//! scenario once, so a noisy moment hurts them alike). The peers' code lives here only.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, future, stream};
use rxrust::prelude::*;
use serde_json::{Value, json};
use streamz_bench as pipelines;
use streamz_core::Stream;
use streamz_rayon::{Pool, ScatterExt};
use streamz_tokio::TokioExecutor;

use crate::alloc_count::{counting, holding};

/// How each variant did: its label, its kind, and its figure in each round.
struct Row {
    scenario: &'static str,
    unit: &'static str,
    variants: Vec<Variant>,
    /// A line on how to read the row, printed under the table.
    note: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    /// This library.
    Streamz,
    /// A peer that builds its pipeline at run time, type-erased per stage.
    Erased,
    /// A peer whose pipeline the compiler sees whole and fuses.
    Static,
    /// A run-time peer that loses elements under load: shown, but not a target.
    Lossy,
}

struct Variant {
    label: String,
    side: Side,
    rounds: Vec<f64>,
}

impl Variant {
    fn median(&self) -> f64 {
        let mut v = self.rounds.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

type Run<'a> = Box<dyn FnMut() -> f64 + 'a>;

/// Runs every variant once per round, `rounds` times, interleaved.
fn interleaved(rounds: usize, variants: Vec<(&str, Side, Run<'_>)>) -> Vec<Variant> {
    let mut out: Vec<Variant> = variants
        .iter()
        .map(|(label, side, _)| Variant {
            label: (*label).to_owned(),
            side: *side,
            rounds: Vec::new(),
        })
        .collect();
    let mut runs: Vec<Run<'_>> = variants.into_iter().map(|(_, _, f)| f).collect();
    for _ in 0..rounds {
        for (variant, run) in out.iter_mut().zip(runs.iter_mut()) {
            variant.rounds.push(run());
        }
    }
    out
}

fn ns_per(n: u64, f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_nanos() as f64 / n as f64
}

/// [`ns_per`] for `work` run on `runtime`.
fn ns_per_async(runtime: &tokio::runtime::Runtime, n: u64, work: impl Future<Output = ()>) -> f64 {
    runtime.block_on(async {
        let start = Instant::now();
        work.await;
        start.elapsed().as_nanos() as f64 / n as f64
    })
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

// ------------------------------------------------------------------------------- map chains

/// `stages` maps over `0..n` as futures streams, each stage boxed.
fn futures_boxed(stages: usize, n: u64) -> u64 {
    let mut s = stream::iter(0..n).boxed();
    for _ in 0..stages {
        s = s.map(|x| black_box(x + 1)).boxed();
    }
    futures_executor::block_on(s.fold(0u64, |a, x| future::ready(a.wrapping_add(x))))
}

/// `stages` maps behind an rxRust `Shared` subject, each stage boxed; `n` elements fed.
fn rx_shared_boxed(stages: usize, n: u64) -> u64 {
    let total = Arc::new(AtomicU64::new(0));
    let mut subject = Shared::subject::<u64, Infallible>();
    let mut tail = subject.clone().box_it();
    for _ in 0..stages {
        tail = tail.map(|x: u64| black_box(x + 1)).box_it();
    }
    let sum = total.clone();
    let _subscription = tail.subscribe(move |x| {
        sum.fetch_add(x, Ordering::Relaxed);
    });
    for x in 0..n {
        subject.next(black_box(x));
    }
    total.load(Ordering::Relaxed)
}

/// The same on rxRust's single-threaded `Local` context.
fn rx_local_boxed(stages: usize, n: u64) -> u64 {
    let total = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let mut subject = Local::subject::<u64, Infallible>();
    let mut tail = subject.clone().box_it();
    for _ in 0..stages {
        tail = tail.map(|x: u64| black_box(x + 1)).box_it();
    }
    let sum = total.clone();
    let _subscription = tail.subscribe(move |x| sum.set(sum.get().wrapping_add(x)));
    for x in 0..n {
        subject.next(black_box(x));
    }
    total.get()
}

/// This library's two ways of feeding a synchronous pipeline: `emit` per element on
/// `emitted`, one `emit_iter` on `fed` (a pipeline of the same shape).
fn fed_and_emitted<'a>(
    n: u64,
    emitted: &'a Stream<u64>,
    fed: &'a Stream<u64>,
) -> Vec<(&'static str, Side, Run<'a>)> {
    vec![
        (
            "emit(x).wait() per element",
            Side::Streamz,
            Box::new(move || ns_per(n, || pipelines::emit_all(emitted, n))),
        ),
        (
            "emit_iter(0..n)",
            Side::Streamz,
            Box::new(move || ns_per(n, || pipelines::feed_all(fed, n))),
        ),
    ]
}

/// What a futures stream adds up to, run on this thread.
fn futures_sum(s: impl futures_util::Stream<Item = u64>) -> u64 {
    futures_executor::block_on(s.fold(0u64, |a, x| future::ready(a.wrapping_add(x))))
}

/// A total for an rxRust `Local` pipeline, and the subscriber that adds to it.
fn local_sum() -> (std::rc::Rc<std::cell::Cell<u64>>, impl FnMut(u64)) {
    let sum = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let s = sum.clone();
    (sum, move |x: u64| s.set(s.get().wrapping_add(x)))
}

/// A variant that times `f` over `n` elements.
fn timed<'a>(
    n: u64,
    label: &'static str,
    side: Side,
    mut f: impl FnMut() + 'a,
) -> (&'static str, Side, Run<'a>) {
    (label, side, Box::new(move || ns_per(n, &mut f)))
}

/// A run-time peer's ten-stage chain over `n` elements, `chain(10, n)`.
fn erased(
    n: u64,
    label: &'static str,
    chain: fn(usize, u64) -> u64,
) -> (&'static str, Side, Run<'static>) {
    timed(n, label, Side::Erased, move || {
        black_box(chain(10, n));
    })
}

fn map10(n: u64, rounds: usize) -> Row {
    let (source, total) = pipelines::map_chain(10);
    let (fed, fed_total) = pipelines::map_chain(10);
    let variants = interleaved(
        rounds,
        [
            fed_and_emitted(n, &source, &fed),
            vec![
                erased(n, "futures BoxStream per stage", futures_boxed),
                erased(n, "rxRust Shared, boxed per stage", rx_shared_boxed),
                erased(n, "rxRust Local, boxed per stage", rx_local_boxed),
                timed(n, "futures, chained", Side::Static, move || {
                    let s = streamz_bench::ten_maps!(stream::iter(0..n));
                    black_box(futures_sum(s));
                }),
                timed(n, "rxRust Local, chained", Side::Static, move || {
                    let (sum, add) = local_sum();
                    streamz_bench::ten_maps!(Local::from_iter(0..n)).subscribe(add);
                    black_box(sum.get());
                }),
                timed(n, "iterator", Side::Static, move || {
                    black_box(streamz_bench::ten_maps!(0..n).fold(0u64, u64::wrapping_add));
                }),
            ],
        ]
        .into_iter()
        .flatten()
        .collect(),
    );
    black_box(total.load(Ordering::Relaxed) + fed_total.load(Ordering::Relaxed));
    Row {
        scenario: "emit → 10 × map → sink",
        unit: "ns",
        variants,
        note: None,
    }
}

fn accumulate_filter(n: u64, rounds: usize) -> Row {
    let (source, total) = pipelines::accumulate_filter();
    let (fed, fed_total) = pipelines::accumulate_filter();
    let scan = |acc: &mut u64, x: u64| {
        *acc = acc.wrapping_add(x);
        future::ready(Some(*acc))
    };
    let variants = interleaved(
        rounds,
        [
            fed_and_emitted(n, &source, &fed),
            vec![
                timed(n, "futures BoxStream per stage", Side::Erased, move || {
                    let s = stream::iter(0..n).boxed().scan(0u64, scan).boxed();
                    let s = s.filter(|x| future::ready(x.is_multiple_of(2))).boxed();
                    black_box(futures_sum(s));
                }),
                timed(
                    n,
                    "rxRust Shared, boxed per stage",
                    Side::Erased,
                    move || {
                        let total = Arc::new(AtomicU64::new(0));
                        let mut subject = Shared::subject::<u64, Infallible>();
                        let sum = total.clone();
                        let _subscription = subject
                            .clone()
                            .box_it()
                            .scan(0u64, |acc: u64, x: u64| acc.wrapping_add(x))
                            .box_it()
                            .filter(|x: &u64| x.is_multiple_of(2))
                            .box_it()
                            .subscribe(move |x| {
                                sum.fetch_add(x, Ordering::Relaxed);
                            });
                        for x in 0..n {
                            subject.next(black_box(x));
                        }
                        black_box(total.load(Ordering::Relaxed));
                    },
                ),
                timed(n, "futures, chained", Side::Static, move || {
                    let s = stream::iter(0..n)
                        .scan(0u64, scan)
                        .filter(|x| future::ready(x.is_multiple_of(2)));
                    black_box(futures_sum(s));
                }),
                timed(n, "rxRust Local, chained", Side::Static, move || {
                    let (sum, add) = local_sum();
                    Local::from_iter(0..n)
                        .scan(0u64, |acc: u64, x: u64| acc.wrapping_add(x))
                        .filter(|x: &u64| x.is_multiple_of(2))
                        .subscribe(add);
                    black_box(sum.get());
                }),
            ],
        ]
        .into_iter()
        .flatten()
        .collect(),
    );
    black_box(total.load(Ordering::Relaxed) + fed_total.load(Ordering::Relaxed));
    Row {
        scenario: "emit → accumulate → filter → sink",
        unit: "ns",
        variants,
        note: None,
    }
}

// ----------------------------------------------------------------------------------- fan-out

fn fan_out(n: u64, rounds: usize) -> Row {
    let source = Stream::new();
    let a = pipelines::counting_sink(&source.map(|x: u64| black_box(x + 1)));
    let b = pipelines::counting_sink(&source.map(|x: u64| black_box(x + 2)));
    let dropped = std::cell::Cell::new(0u64);
    let variants = interleaved(
        rounds,
        vec![
            (
                "emit(x).wait() per element",
                Side::Streamz,
                Box::new(|| ns_per(n, || pipelines::emit_all(&source, n))),
            ),
            timed(
                n,
                "futures fanout over two channels(64)",
                Side::Erased,
                move || {
                    let (tx1, rx1) = futures_channel::mpsc::channel::<u64>(64);
                    let (tx2, rx2) = futures_channel::mpsc::channel::<u64>(64);
                    let send = stream::iter(0..n).map(Ok).forward(tx1.fanout(tx2));
                    let one = rx1
                        .map(|x| black_box(x + 1))
                        .fold(0u64, |a, x| future::ready(a.wrapping_add(x)));
                    let two = rx2
                        .map(|x| black_box(x + 2))
                        .fold(0u64, |a, x| future::ready(a.wrapping_add(x)));
                    let (sent, one, two) =
                        futures_executor::block_on(future::join3(send, one, two));
                    sent.expect("receivers live");
                    black_box(one + two);
                },
            ),
            (
                "tokio broadcast(1024), two tasks (loses elements)",
                Side::Lossy,
                Box::new(|| {
                    let runtime = current_thread();
                    let (ns, lost) = runtime.block_on(async {
                        let (tx, _) = tokio::sync::broadcast::channel::<u64>(1024);
                        let consumer = |mut rx: tokio::sync::broadcast::Receiver<u64>, k: u64| {
                            tokio::spawn(async move {
                                let (mut sum, mut lost) = (0u64, 0u64);
                                loop {
                                    match rx.recv().await {
                                        Ok(x) => sum = sum.wrapping_add(black_box(x + k)),
                                        Err(tokio::sync::broadcast::error::RecvError::Lagged(
                                            k,
                                        )) => lost += k,
                                        Err(_) => break,
                                    }
                                }
                                (sum, lost)
                            })
                        };
                        let one = consumer(tx.subscribe(), 1);
                        let two = consumer(tx.subscribe(), 2);
                        let start = Instant::now();
                        for x in 0..n {
                            let _ = tx.send(x);
                            if x % 512 == 511 {
                                tokio::task::yield_now().await;
                            }
                        }
                        drop(tx);
                        let (one, two) = (one.await.expect("ran"), two.await.expect("ran"));
                        black_box(one.0 + two.0);
                        (start.elapsed().as_nanos() as f64 / n as f64, one.1 + two.1)
                    });
                    dropped.set(dropped.get().max(lost));
                    ns
                }),
            ),
            timed(
                n,
                "rxRust Shared subject, two subscribers",
                Side::Static,
                move || {
                    let total = Arc::new(AtomicU64::new(0));
                    let mut subject = Shared::subject::<u64, Infallible>();
                    for k in 1..=2u64 {
                        let sum = total.clone();
                        let _subscription = subject
                            .clone()
                            .map(move |x: u64| black_box(x + k))
                            .subscribe(move |x| {
                                sum.fetch_add(x, Ordering::Relaxed);
                            });
                    }
                    for x in 0..n {
                        subject.next(black_box(x));
                    }
                    black_box(total.load(Ordering::Relaxed));
                },
            ),
        ],
    );
    black_box(a.load(Ordering::Relaxed) + b.load(Ordering::Relaxed));
    let lost = dropped.get();
    Row {
        scenario: "one source → two maps → two sinks",
        unit: "ns",
        variants,
        note: (lost > 0).then(|| {
            format!(
                "tokio broadcast lost up to {lost} of {} elements in a round (its receivers lag; \
                 the others lose none)",
                2 * n
            )
        }),
    }
}

// ------------------------------------------------------------------------------------ async

/// `emit(x).await → map → async sink` beside a tokio mpsc(64) pipeline and futures'
/// `for_each`, with the sink's future ready at once, or suspending once (`suspend`).
fn async_sink(n: u64, rounds: usize, suspend: bool) -> Row {
    async fn write(sum: Arc<AtomicU64>, x: u64, suspend: bool) {
        if suspend {
            tokio::task::yield_now().await;
        }
        sum.fetch_add(x, Ordering::Relaxed);
    }
    let runtime = current_thread();
    let total = Arc::new(AtomicU64::new(0));
    let source = {
        let _enter = runtime.enter();
        let source = Stream::with_executor(TokioExecutor::current());
        let sum = total.clone();
        source
            .map(|x: u64| x + 1)
            .sink_async(move |x| write(sum.clone(), x, suspend));
        source
    };
    let variants = interleaved(
        rounds,
        vec![
            (
                "emit(x).await per element",
                Side::Streamz,
                Box::new(|| {
                    ns_per_async(&runtime, n, async {
                        for x in 0..n {
                            source.emit(x).await.expect("nothing fails");
                        }
                    })
                }),
            ),
            (
                "tokio mpsc(64) between two tasks",
                Side::Erased,
                Box::new(|| {
                    let sum = total.clone();
                    ns_per_async(&runtime, n, async move {
                        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(64);
                        let consumer = tokio::spawn(async move {
                            while let Some(x) = rx.recv().await {
                                write(sum.clone(), x + 1, suspend).await;
                            }
                        });
                        for x in 0..n {
                            tx.send(x).await.expect("the consumer lives");
                        }
                        drop(tx);
                        consumer.await.expect("ran");
                    })
                }),
            ),
            (
                "futures map → for_each",
                Side::Static,
                Box::new(|| {
                    let sum = total.clone();
                    ns_per_async(
                        &runtime,
                        n,
                        stream::iter(0..n)
                            .map(|x| x + 1)
                            .for_each(move |x| write(sum.clone(), x, suspend)),
                    )
                }),
            ),
        ],
    );
    black_box(total.load(Ordering::Relaxed));
    // what one element allocates on this library's path
    let allocs = counting(|| {
        runtime.block_on(async {
            for x in 0..1000 {
                source.emit(x).await.expect("nothing fails");
            }
        })
    });
    Row {
        scenario: if suspend {
            "emit(x).await → map → async sink, the sink suspends"
        } else {
            "emit(x).await → map → async sink, its future ready"
        },
        unit: "ns",
        variants,
        note: Some(format!(
            "streamz allocates {:.2} times per element here",
            allocs.0 as f64 / 1000.0
        )),
    }
}

// ---------------------------------------------------------------------------------- offload

/// What offloading a cheap function costs per element above running it in line.
fn offload(n: u64, rounds: usize) -> Row {
    let pool = Pool::new(2).expect("a pool");
    let trivial = |x: u64| black_box(x + 1);
    let serial = {
        let source = Stream::new();
        source.map(trivial).sink(|x| {
            black_box(x);
        });
        source
    };
    let offloaded = {
        let source = Stream::with_executor(pool.clone());
        source
            .scatter(&pool)
            .map(trivial)
            .buffer(8)
            .gather()
            .sink(|x| {
                black_box(x);
            });
        source
    };
    let time = |source: &Stream<u64>, count: u64| {
        ns_per(count, || {
            for x in 0..count {
                source.emit_blocking(x).expect("nothing fails");
            }
            futures_executor::block_on(source.flush());
        })
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool");
    let big = n * 100;
    let variants = interleaved(
        rounds,
        vec![
            (
                "scatter → map → buffer(8) → gather, on a Pool(2)",
                Side::Streamz,
                Box::new(|| (time(&offloaded, n) - time(&serial, n)).max(0.0)),
            ),
            (
                "tokio spawn_blocking + buffered(8)",
                Side::Erased,
                Box::new(|| {
                    tokio.block_on(async {
                        let inline = ns_per(n, || {
                            black_box((0..n).map(trivial).fold(0u64, u64::wrapping_add));
                        });
                        let start = Instant::now();
                        let sum = stream::iter(0..n)
                            .map(|x| tokio::task::spawn_blocking(move || trivial(x)))
                            .buffered(8)
                            .fold(0u64, |a, x| future::ready(a.wrapping_add(x.expect("ran"))))
                            .await;
                        black_box(sum);
                        (start.elapsed().as_nanos() as f64 / n as f64 - inline).max(0.0)
                    })
                }),
            ),
            (
                "rayon par_iter over a batch, Pool(2)",
                Side::Static,
                Box::new(|| {
                    use rayon::prelude::*;
                    let inline = ns_per(big, || {
                        black_box((0..big).map(trivial).fold(0u64, u64::wrapping_add));
                    });
                    let par = ns_per(big, || {
                        black_box(rayon.install(|| {
                            (0..big)
                                .into_par_iter()
                                .map(trivial)
                                .reduce(|| 0, u64::wrapping_add)
                        }));
                    });
                    // the batch is split over two threads: the overhead is what is left
                    // above the in-line time once that is halved
                    (par - inline / 2.0).max(0.0)
                }),
            ),
        ],
    );
    Row {
        scenario: "a cheap function offloaded to a pool, overhead per element",
        unit: "ns",
        variants,
        note: None,
    }
}

// --------------------------------------------------------------------------- rate limiting

/// 100 elements at one per 10 ms: the mean gap between arrivals and the shortest.
fn rate_limit(rounds: usize) -> (Row, Row) {
    let n = 100u64;
    let interval = Duration::from_millis(10);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let gaps = |arrivals: &[Instant]| -> (f64, f64) {
        let gaps: Vec<f64> = arrivals
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
        (mean, gaps.iter().copied().fold(f64::INFINITY, f64::min))
    };
    let min_gaps = std::cell::RefCell::new(vec![Vec::new(), Vec::new()]);
    let variants = interleaved(
        rounds,
        vec![
            (
                "rate_limit(10 ms)",
                Side::Streamz,
                Box::new(|| {
                    let arrivals = pipelines::rate_limited_arrivals(&runtime, n, interval);
                    let (mean, min) = gaps(&arrivals);
                    min_gaps.borrow_mut()[0].push(min);
                    mean
                }),
            ),
            (
                "governor, until_ready() per element",
                Side::Static,
                Box::new(|| {
                    let arrivals = runtime.block_on(async {
                        let quota = governor::Quota::with_period(interval).expect("not zero");
                        let limiter = governor::RateLimiter::direct(quota);
                        let mut arrivals = Vec::new();
                        for x in 0..n {
                            limiter.until_ready().await;
                            black_box(x);
                            arrivals.push(Instant::now());
                        }
                        arrivals
                    });
                    let (mean, min) = gaps(&arrivals);
                    min_gaps.borrow_mut()[1].push(min);
                    mean
                }),
            ),
        ],
    );
    let mins = min_gaps.into_inner();
    let min_row = Row {
        scenario: "the same, shortest gap",
        unit: "ms",
        variants: variants
            .iter()
            .zip(mins)
            .map(|(v, rounds)| Variant {
                label: v.label.clone(),
                side: v.side,
                rounds,
            })
            .collect(),
        note: None,
    };
    (
        Row {
            scenario: "100 elements at one per 10 ms, mean gap",
            unit: "ms",
            variants,
            note: None,
        },
        min_row,
    )
}

// ------------------------------------------------------------------------------------ nodes

/// Heap per map stage (1000-stage pipelines, built and connected), and what the push of one
/// element allocates in `map10`.
fn heap(rows: &mut Vec<Row>) {
    const STAGES: u64 = 1000;
    // what a pipeline of `stages` maps holds once built, per stage (a pipeline of none
    // taken off)
    fn measure<R>(f: impl Fn(usize) -> R) -> (f64, f64) {
        let (base, kept) = holding(|| f(0));
        drop(kept);
        let (full, kept) = holding(|| f(STAGES as usize));
        drop(kept);
        (
            full.1.saturating_sub(base.1) as f64 / STAGES as f64,
            full.0.saturating_sub(base.0) as f64 / STAGES as f64,
        )
    }
    let streamz = measure(pipelines::map_chain);
    let futures = measure(|stages| {
        let mut s = stream::iter(0..1u64).boxed();
        for _ in 0..stages {
            s = s.map(|x| black_box(x + 1)).boxed();
        }
        s
    });
    let rx = measure(|stages| {
        let subject = Shared::subject::<u64, Infallible>();
        let mut tail = subject.clone().box_it();
        for _ in 0..stages {
            tail = tail.map(|x: u64| black_box(x + 1)).box_it();
        }
        let subscription = tail.subscribe(|x| {
            black_box(x);
        });
        (subject, subscription)
    });
    let one = |label: &str, side, x: f64| Variant {
        label: label.to_owned(),
        side,
        rounds: vec![x],
    };
    // (bytes, allocations) of each, one row per measure
    let measures = [
        ("heap per map stage, bytes", "B"),
        ("heap per map stage, allocations", ""),
    ];
    for (i, (scenario, unit)) in measures.into_iter().enumerate() {
        let pick = |m: (f64, f64)| [m.0, m.1][i];
        rows.push(Row {
            scenario,
            unit,
            variants: vec![
                one("map", Side::Streamz, pick(streamz)),
                one("futures BoxStream", Side::Erased, pick(futures)),
                one("rxRust Shared, boxed, subscribed", Side::Erased, pick(rx)),
            ],
            note: None,
        });
    }
    let (source, _total) = pipelines::map_chain(10);
    let allocs = counting(|| pipelines::emit_all(&source, 10_000));
    let (fed, _fed_total) = pipelines::map_chain(10);
    let fed_allocs = counting(|| pipelines::feed_all(&fed, 10_000));
    rows.push(Row {
        scenario: "allocations per element in map10",
        unit: "",
        variants: vec![
            one("emit(x).wait()", Side::Streamz, allocs.0 as f64 / 10_000.0),
            one("emit_iter", Side::Streamz, fed_allocs.0 as f64 / 10_000.0),
        ],
        note: None,
    });
}

/// The cost per stage of a 10,000-stage chain beside a 10-stage one's.
fn long_chain(rounds: usize) -> Row {
    const LONG: usize = 10_000;
    let n_long = 2_000u64;
    let n_short = 1_000_000u64;
    let (short, _) = pipelines::map_chain(10);
    let (long, _) = pipelines::map_chain(LONG);
    let per_stage = |ns: f64, stages: usize| ns / stages as f64;
    let variants = interleaved(
        rounds,
        vec![
            (
                "map × 10, per stage",
                Side::Streamz,
                Box::new(|| {
                    per_stage(ns_per(n_short, || pipelines::emit_all(&short, n_short)), 10)
                }),
            ),
            (
                "map × 10,000, per stage",
                Side::Streamz,
                Box::new(|| per_stage(ns_per(n_long, || pipelines::emit_all(&long, n_long)), LONG)),
            ),
            (
                "futures BoxStream × 10, per stage",
                Side::Erased,
                Box::new(|| {
                    per_stage(
                        ns_per(n_short, || {
                            black_box(futures_boxed(10, n_short));
                        }),
                        10,
                    )
                }),
            ),
            (
                "futures BoxStream × 10,000, per stage",
                Side::Erased,
                Box::new(|| {
                    per_stage(
                        ns_per(n_long, || {
                            black_box(futures_boxed(LONG, n_long));
                        }),
                        LONG,
                    )
                }),
            ),
            (
                "rxRust Shared × 10,000, per stage",
                Side::Erased,
                Box::new(|| {
                    per_stage(
                        ns_per(n_long, || {
                            black_box(rx_shared_boxed(LONG, n_long));
                        }),
                        LONG,
                    )
                }),
            ),
        ],
    );
    Row {
        scenario: "a long chain, per stage",
        unit: "ns",
        variants,
        note: None,
    }
}

// ------------------------------------------------------------------------------------ table

/// Runs every comparison; `n` elements for the synchronous ones.
pub(crate) fn peers(n: u64, rounds: usize) -> Vec<Value> {
    // Deep chains recurse once per stage in the peers too: give them room.
    std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(move || {
            let mut rows = vec![
                map10(n, rounds),
                accumulate_filter(n, rounds),
                fan_out(n, rounds),
                async_sink(n / 5, rounds, false),
                async_sink(n / 5, rounds, true),
                offload((n / 50).max(1000), rounds),
            ];
            heap(&mut rows);
            rows.push(long_chain(rounds));
            let (mean, min) = rate_limit(rounds.min(3));
            rows.push(mean);
            rows.push(min);
            rows.iter().map(row_json).collect()
        })
        .expect("a thread")
        .join()
        .expect("the comparison ran")
}

fn row_json(row: &Row) -> Value {
    let fastest_erased = row
        .variants
        .iter()
        .filter(|v| v.side == Side::Erased)
        .map(Variant::median)
        .fold(f64::INFINITY, f64::min);
    json!({
        "scenario": "peers",
        "row": row.scenario,
        "unit": row.unit,
        "note": row.note,
        "variants": row.variants.iter().map(|v| json!({
            "label": v.label,
            "side": match v.side {
                Side::Streamz => "streamz",
                Side::Erased | Side::Lossy => "erased",
                Side::Static => "static",
            },
            "lossy": v.side == Side::Lossy,
            "median": crate::round(v.median(), 2),
            "rounds": v.rounds.iter().map(|x| crate::round(*x, 2)).collect::<Vec<_>>(),
            "vs_fastest_erased": (fastest_erased.is_finite() && v.side == Side::Streamz)
                .then(|| crate::round(v.median() / fastest_erased, 2)),
        })).collect::<Vec<_>>(),
    })
}

/// The rows as a Markdown table: streamz, the type-erased peers, the static ones, and
/// streamz's ratio to the fastest type-erased peer.
pub(crate) fn table(rows: &[Value]) -> String {
    let mut out = String::from(
        "| scenario | streamz | peers built at run time (type-erased per stage) | static, fused by the compiler | streamz ÷ fastest run-time peer that loses nothing |\n|---|---|---|---|---|\n",
    );
    let mut notes = Vec::new();
    for row in rows {
        let unit = row["unit"].as_str().unwrap_or("");
        let variants = row["variants"].as_array().cloned().unwrap_or_default();
        let cell = |side: &str| {
            variants
                .iter()
                .filter(|v| v["side"] == side)
                .map(|v| {
                    format!(
                        "{} {}{}",
                        v["label"].as_str().unwrap_or(""),
                        fmt(v["median"].as_f64().unwrap_or(f64::NAN)),
                        if unit.is_empty() {
                            String::new()
                        } else {
                            format!(" {unit}")
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let ratios = variants
            .iter()
            .filter_map(|v| v["vs_fastest_erased"].as_f64())
            .map(|r| format!("{r:.2}×"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row["row"].as_str().unwrap_or(""),
            cell("streamz"),
            or_dash(cell("erased")),
            or_dash(cell("static")),
            or_dash(ratios)
        ));
        if let Some(note) = row["note"].as_str() {
            notes.push(format!("- {}: {note}", row["row"].as_str().unwrap_or("")));
        }
    }
    for note in notes {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

fn or_dash(s: String) -> String {
    if s.is_empty() { "—".to_owned() } else { s }
}

fn fmt(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}
