//! The synchronous scenarios under criterion (`cargo bench -p streamz-bench`); the runner
//! binary measures the same pipelines, and the time-based and offloading ones.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamz_bench::{accumulate_filter, busy, closure_chain, emit_all, map_chain};
use streamz_core::Stream;
use streamz_rayon::{Pool, ScatterExt};

fn scenarios(c: &mut Criterion) {
    const N: u64 = 10_000;
    let mut group = c.benchmark_group("push");
    group.throughput(Throughput::Elements(N));
    for maps in [1, 10] {
        let (source, _total) = map_chain(maps);
        group.bench_function(format!("map{maps}"), |b| b.iter(|| emit_all(&source, N)));
    }
    let (source, _total) = accumulate_filter();
    group.bench_function("accumulate_filter", |b| b.iter(|| emit_all(&source, N)));
    group.bench_function("limit_closure_map10", |b| b.iter(|| closure_chain(N)));
    let (source, _total) = map_chain(1000);
    group.bench_function("map1000", |b| b.iter(|| emit_all(&source, N / 100)));
    group.finish();
}

/// A 1 ms CPU-bound function, serial and through `scatter → map → buffer(8) → gather` on a
/// 2-thread pool.
fn offload(c: &mut Criterion) {
    const N: u64 = 100;
    let pool = Pool::new(2).expect("a pool");
    let mut group = c.benchmark_group("busy_1ms");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    let serial = Stream::new();
    serial.map(busy).sink(|x| {
        std::hint::black_box(x);
    });
    group.bench_function("serial", |b| b.iter(|| emit_all(&serial, N)));
    let offloaded = Stream::with_executor(pool.clone());
    offloaded
        .scatter(&pool)
        .map(busy)
        .buffer(8)
        .gather()
        .sink(|x| {
            std::hint::black_box(x);
        });
    group.bench_function("scatter_buffer8_gather", |b| {
        b.iter(|| {
            for x in 0..N {
                offloaded.emit_blocking(x).expect("nothing fails");
            }
            futures_executor::block_on(offloaded.flush());
        })
    });
    group.finish();
}

criterion_group!(benches, scenarios, offload);
criterion_main!(benches);
