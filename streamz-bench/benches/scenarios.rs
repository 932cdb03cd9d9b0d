//! The synchronous scenarios under criterion (`cargo bench -p streamz-bench`); the runner
//! binary measures the same pipelines, and the time-based and offloading ones.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamz_bench::{accumulate_filter, closure_chain, emit_all, map_chain};

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

criterion_group!(benches, scenarios);
criterion_main!(benches);
