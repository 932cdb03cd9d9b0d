//! The synchronous push path: what one element costs per node.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use streamz_core::Stream;

fn counting_sink(stream: &Stream<u64>) -> Arc<AtomicU64> {
    let total = Arc::new(AtomicU64::new(0));
    let sum = total.clone();
    stream.sink(move |x| {
        sum.fetch_add(x, Ordering::Relaxed);
    });
    total
}

fn chain(maps: usize) -> (Stream<u64>, Arc<AtomicU64>) {
    let source = Stream::new();
    let mut tail = source.clone();
    for _ in 0..maps {
        tail = tail.map(|x| black_box(x + 1));
    }
    let total = counting_sink(&tail);
    (source, total)
}

fn push(c: &mut Criterion) {
    const N: u64 = 10_000;
    let mut group = c.benchmark_group("push");
    group.throughput(Throughput::Elements(N));

    for maps in [1, 10] {
        let (source, total) = chain(maps);
        group.bench_function(format!("map{maps}"), |b| {
            b.iter(|| {
                for x in 0..N {
                    source.emit(black_box(x)).wait().unwrap();
                }
            })
        });
        black_box(total.load(Ordering::Relaxed));
    }

    let source = Stream::new();
    let total = counting_sink(
        &source
            .accumulate_from(0u64, |acc: &u64, x: u64| acc + x)
            .filter(|x| x % 2 == 0),
    );
    group.bench_function("accumulate_filter", |b| {
        b.iter(|| {
            for x in 0..N {
                source.emit(black_box(x)).wait().unwrap();
            }
        })
    });
    black_box(total.load(Ordering::Relaxed));

    group.bench_function("emit_blocking_map1", |b| {
        let (source, _) = chain(1);
        b.iter(|| {
            for x in 0..N {
                source.emit_blocking(black_box(x)).unwrap();
            }
        })
    });

    group.bench_function("build_1000_chain", |b| {
        b.iter_batched(|| (), |()| chain(1000), BatchSize::SmallInput)
    });
    group.finish();
}

criterion_group!(benches, push);
criterion_main!(benches);
