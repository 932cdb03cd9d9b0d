//! Offloading to the pool against the serial pipeline: a 1 ms CPU-bound function with
//! `buffer(8)`, and the overhead per element of a trivial one.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamz_core::Stream;
use streamz_rayon::{Pool, ScatterExt};

/// About 1 ms of CPU work (spinning, not sleeping).
fn busy(x: u64) -> u64 {
    let start = Instant::now();
    let mut acc = x;
    while start.elapsed() < Duration::from_millis(1) {
        acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    acc
}

fn trivial(x: u64) -> u64 {
    x + 1
}

fn serial(f: fn(u64) -> u64) -> Stream<u64> {
    let source = Stream::new();
    source.map(f).sink(|x| {
        black_box(x);
    });
    source
}

fn offloaded(pool: &Pool, f: fn(u64) -> u64, buffer: usize) -> Stream<u64> {
    let source = Stream::with_executor(pool.clone());
    source
        .scatter(pool)
        .map(f)
        .buffer(buffer)
        .gather()
        .sink(|x| {
            black_box(x);
        });
    source
}

fn run(source: &Stream<u64>, n: u64) {
    for x in 0..n {
        source.emit_blocking(x).unwrap();
    }
    futures_executor::block_on(source.flush());
}

fn offload(c: &mut Criterion) {
    let pool = Pool::new(2).unwrap();

    let mut busy_group = c.benchmark_group("busy_1ms");
    const N: u64 = 100;
    busy_group.throughput(Throughput::Elements(N));
    busy_group.sample_size(10);
    let source = serial(busy);
    busy_group.bench_function("serial", |b| b.iter(|| run(&source, N)));
    let source = offloaded(&pool, busy, 8);
    busy_group.bench_function("scatter_buffer8_gather", |b| b.iter(|| run(&source, N)));
    busy_group.finish();

    let mut trivial_group = c.benchmark_group("trivial");
    const M: u64 = 2_000;
    trivial_group.throughput(Throughput::Elements(M));
    trivial_group.sample_size(20);
    let source = serial(trivial);
    trivial_group.bench_function("serial", |b| b.iter(|| run(&source, M)));
    let source = offloaded(&pool, trivial, 8);
    trivial_group.bench_function("scatter_buffer8_gather", |b| b.iter(|| run(&source, M)));
    trivial_group.finish();
}

criterion_group!(benches, offload);
criterion_main!(benches);
