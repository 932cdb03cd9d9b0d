//! The benchmark pipelines, shared by the `streamz-bench` runner and the criterion benches.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use streamz_core::Stream;

/// A sink that adds up what reaches it, so no stage can be optimised away.
pub fn counting_sink(stream: &Stream<u64>) -> Arc<AtomicU64> {
    let total = Arc::new(AtomicU64::new(0));
    let sum = total.clone();
    stream.sink(move |x| {
        sum.fetch_add(x, Ordering::Relaxed);
    });
    total
}

/// `source → map × maps → sink`, each map `x + 1`.
pub fn map_chain(maps: usize) -> (Stream<u64>, Arc<AtomicU64>) {
    let source = Stream::new();
    let mut tail = source.clone();
    for _ in 0..maps {
        tail = tail.map(|x: u64| black_box(x + 1));
    }
    let total = counting_sink(&tail);
    (source, total)
}

/// `source → accumulate(add, start=0) → filter(even) → sink`.
pub fn accumulate_filter() -> (Stream<u64>, Arc<AtomicU64>) {
    let source = Stream::new();
    let total = counting_sink(
        &source
            .accumulate_from(0u64, |acc: &u64, x: u64| acc.wrapping_add(x))
            .filter(|x| x % 2 == 0),
    );
    (source, total)
}

/// Emits `0..n` into `source`, each element completely.
pub fn emit_all(source: &Stream<u64>, n: u64) {
    for x in 0..n {
        source.emit(black_box(x)).wait().expect("nothing fails");
    }
}

/// Emits `0..n` into `source` with one [`Stream::emit_iter_blocking`].
pub fn feed_all(source: &Stream<u64>, n: u64) {
    source
        .emit_iter_blocking((0..n).map(black_box))
        .expect("nothing fails");
}

/// The same work as ten `map`s and the counting sink, as a plain Rust closure chain (adding
/// up in a local: no atomic, no lock).
pub fn closure_chain(n: u64) -> u64 {
    let mut total = 0u64;
    for x in 0..n {
        let mut y = black_box(x);
        for _ in 0..10 {
            y = black_box(y + 1);
        }
        total = total.wrapping_add(y);
    }
    total
}

/// About 1 ms of CPU work (spinning, not sleeping): the original's `f_busy`.
pub fn busy(x: u64) -> u64 {
    let start = Instant::now();
    let mut acc = x;
    while start.elapsed() < Duration::from_millis(1) {
        acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    acc
}

/// `n` elements emitted at once into `rate_limit(interval)` on `runtime`: when each came out.
pub fn rate_limited_arrivals(
    runtime: &tokio::runtime::Runtime,
    n: u64,
    interval: Duration,
) -> Vec<Instant> {
    runtime.block_on(async {
        let source = Stream::with_executor(streamz_tokio::TokioExecutor::current());
        let arrivals = source
            .rate_limit(interval)
            .map(|_: u64| Instant::now())
            .sink_to_vec();
        for x in 0..n {
            source.emit(x).await.expect("nothing fails");
        }
        arrivals.to_vec()
    })
}

/// Ten `map(|x| black_box(x + 1))` stages on an iterator, a futures stream or an rxRust
/// observable: the peers' `map10`.
#[macro_export]
macro_rules! ten_maps {
    ($s:expr) => {
        $s.map(|x| ::std::hint::black_box(x + 1))
            .map(|x| ::std::hint::black_box(x + 1))
            .map(|x| ::std::hint::black_box(x + 1))
            .map(|x| ::std::hint::black_box(x + 1))
            .map(|x| ::std::hint::black_box(x + 1))
            .map(|x| ::std::hint::black_box(x + 1))
            .map(|x| ::std::hint::black_box(x + 1))
            .map(|x| ::std::hint::black_box(x + 1))
            .map(|x| ::std::hint::black_box(x + 1))
            .map(|x| ::std::hint::black_box(x + 1))
    };
}
