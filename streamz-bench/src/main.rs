//! `streamz-bench`: the benchmark scenarios, one JSON line each, in the shapes of the original
//! streamz's own benchmarks (`bench/python`), so that `bench/compare.sh` can set them side by
//! side.
//!
//! ```text
//! cargo run --release -p streamz-bench -- SCENARIO [--n N] [--json]
//! cargo run --release -p streamz-bench -- all --json
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use streamz_bench as pipelines;
use streamz_core::Stream;
use streamz_rayon::{Pool, ScatterExt};
use streamz_tokio::TokioExecutor;

mod alloc_count;
mod event_window;
mod kafka;
mod peers;

/// Runs one benchmark scenario (or all) and prints its figures.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The scenario to run.
    scenario: Scenario,
    /// How many elements (each scenario has its own default, the original's).
    #[arg(long)]
    n: Option<u64>,
    /// One JSON line per scenario instead of text.
    #[arg(long)]
    json: bool,
    /// For `kafka`: the Python (with streamz 0.6.6 and confluent-kafka) that runs the
    /// original's pipeline beside this one.
    #[arg(long)]
    python: Option<std::path::PathBuf>,
    /// For `peers`: how many interleaved rounds (the figures are their medians).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// For `peers`: also write the rows as JSON lines to this file.
    #[arg(long)]
    raw: Option<std::path::PathBuf>,
    /// For `event-window-part`: which variant this process runs.
    #[arg(long, hide = true)]
    variant: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// A source straight into the counting sink: what an `emit` costs with no stage.
    Map0,
    Map1,
    Map10,
    AccumulateFilter,
    AsyncEmit,
    RateLimit,
    TimedWindow,
    Buffer,
    RayonOffload,
    MemoryChain,
    Limit,
    /// map10 with per-node metrics off and on: what counting costs.
    Metrics,
    /// A keyed count over 100,000 keys without checkpoints and with one every second into a
    /// redb file (fed by `Feed::run`, and by `Feed::emit`), in the same run: throughput, each
    /// checkpoint's pause and write, the state's size and the store's.
    Checkpoint,
    /// `from_kafka → map → to_kafka` through a tansu broker it starts (needs `tansu` on
    /// PATH): records per second and end-to-end latency, beside the original's with `--python`.
    Kafka,
    /// A keyed tumbling window on event time over 1,000,000 out-of-order events and 10,000
    /// keys, beside a hand-written loop over a `HashMap` (plain, and as a tokio task fed by a
    /// channel), each in a process of its own: events per second and peak memory.
    EventWindow,
    /// This library beside its Rust peers (futures, rxRust, tokio channels, spawn_blocking,
    /// rayon, governor) on the same work, in interleaved rounds: a Markdown table with
    /// ratios, or one JSON line a row with `--json`. `--n` sizes the synchronous rows.
    Peers,
    /// One variant of `event-window`, in this process (run by `event-window`).
    #[value(hide = true)]
    EventWindowPart,
    /// Every scenario but memory_chain and kafka, which needs a process of its own.
    All,
}

const EVERY: [Scenario; 10] = [
    Scenario::Map1,
    Scenario::Map10,
    Scenario::AccumulateFilter,
    Scenario::AsyncEmit,
    Scenario::Limit,
    Scenario::RateLimit,
    Scenario::TimedWindow,
    Scenario::Buffer,
    Scenario::RayonOffload,
    Scenario::Metrics,
];

fn main() {
    let args = Args::parse();
    let scenarios: Vec<Scenario> = match args.scenario {
        Scenario::All => EVERY.to_vec(),
        one => vec![one],
    };
    if args.scenario == Scenario::Peers {
        let rows = peers::peers(args.n.unwrap_or(1_000_000), args.rounds.max(1));
        let lines: String = rows.iter().map(|row| format!("{row}\n")).collect();
        if let Some(path) = &args.raw
            && let Err(e) = std::fs::write(path, &lines)
        {
            eprintln!("streamz-bench: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        if args.json {
            print!("{lines}");
        } else {
            print!("{}", peers::table(&rows));
        }
        return;
    }
    for scenario in scenarios {
        let figures = match scenario {
            Scenario::Kafka => kafka::kafka(args.n.unwrap_or(20_000), args.python.as_deref()),
            Scenario::EventWindowPart => event_window::part(
                args.variant.as_deref().unwrap_or("streamz"),
                args.n.unwrap_or(1_000_000),
            ),
            other => run(other, args.n),
        };
        if args.json {
            println!("{figures}");
        } else {
            println!("{}", text(&figures));
        }
    }
}

fn text(figures: &Value) -> String {
    let mut line = String::new();
    if let Value::Object(map) = figures {
        for (k, v) in map {
            if !line.is_empty() {
                line.push_str("  ");
            }
            line.push_str(&format!("{k}={v}"));
        }
    }
    line
}

fn run(scenario: Scenario, n: Option<u64>) -> Value {
    match scenario {
        Scenario::Map0 => map_chain("map0", 0, n.unwrap_or(1_000_000)),
        Scenario::Map1 => map_chain("map1", 1, n.unwrap_or(1_000_000)),
        Scenario::Map10 => map_chain("map10", 10, n.unwrap_or(1_000_000)),
        Scenario::AccumulateFilter => accumulate_filter(n.unwrap_or(1_000_000)),
        Scenario::AsyncEmit => async_emit(n.unwrap_or(200_000)),
        Scenario::RateLimit => rate_limit(n.unwrap_or(100)),
        Scenario::TimedWindow => timed_window(n.unwrap_or(1000)),
        Scenario::Buffer => buffer(n.unwrap_or(100)),
        Scenario::RayonOffload => rayon_offload(n.unwrap_or(2000)),
        Scenario::MemoryChain => memory_chain(n.unwrap_or(100_000)),
        Scenario::Limit => limit(n.unwrap_or(1_000_000)),
        Scenario::Metrics => metrics(n.unwrap_or(1_000_000)),
        Scenario::Checkpoint => checkpoint(n.unwrap_or(60_000_000)),
        Scenario::EventWindow => event_window::event_window(n.unwrap_or(1_000_000)),
        Scenario::Kafka | Scenario::EventWindowPart | Scenario::Peers | Scenario::All => {
            unreachable!("run in main")
        }
    }
}

/// The best of three runs of `f`, in nanoseconds per element.
fn best_ns(n: u64, mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

fn map_chain(name: &str, maps: usize, n: u64) -> Value {
    let (source, total) = pipelines::map_chain(maps);
    let ns = best_ns(n, || pipelines::emit_all(&source, n));
    let fed = best_ns(n, || pipelines::feed_all(&source, n));
    black_box(total.load(Ordering::Relaxed));
    json!({
        "scenario": name,
        "n": n,
        "ns_per_element": round(ns, 2),
        "ns_per_stage": round(ns / maps.max(1) as f64, 2),
        "emit_iter_ns_per_element": round(fed, 2),
    })
}

/// map10 without and with metrics; the source, ten maps and the sink are 12 metered nodes.
fn metrics(n: u64) -> Value {
    let (plain, total) = pipelines::map_chain(10);
    let off = best_ns(n, || pipelines::emit_all(&plain, n));
    let (metered, total2) = pipelines::map_chain(10);
    metered.enable_metrics();
    let on = best_ns(n, || pipelines::emit_all(&metered, n));
    black_box(total.load(Ordering::Relaxed) + total2.load(Ordering::Relaxed));
    json!({
        "scenario": "metrics",
        "n": n,
        "off_ns_per_element": round(off, 2),
        "on_ns_per_element": round(on, 2),
        "ns_per_node": round((on - off) / 12.0, 2),
    })
}

/// How many keys `checkpoint` counts over.
const KEYS: u64 = 100_000;

/// How `keyed_count` feeds its source.
#[derive(Clone, Copy, PartialEq)]
enum Feeding {
    /// `Stream::emit`, no checkpoints.
    Plain,
    /// `Feed::emit`, element by element, with checkpoints.
    Emit,
    /// `Feed::run` over an iterator, with checkpoints.
    Run,
}

/// `n` elements through a durable keyed count (`x % KEYS`), fed as `feeding` says, with a
/// checkpoint every second into a redb file in the temporary directory unless `Plain`;
/// elements per second, the checkpoints taken, the store's size.
fn keyed_count(n: u64, feeding: Feeding) -> (f64, Vec<streamz_core::CheckpointInfo>, u64) {
    let every = (feeding != Feeding::Plain).then_some(Duration::from_secs(1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let path = std::env::temp_dir().join(format!("streamz-bench-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let store_path = path.clone();
    let result = runtime.block_on(async {
        let source = Stream::with_executor(TokioExecutor::current());
        let total = Arc::new(AtomicU64::new(0));
        let sum = total.clone();
        source
            .durable()
            .scan(
                std::collections::HashMap::<u64, u64>::new(),
                |counts, x: u64| {
                    let n = counts.entry(x % KEYS).or_insert(0);
                    *n += 1;
                    *n
                },
            )
            .sink(move |c| {
                sum.fetch_add(c, Ordering::Relaxed);
            });
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut infos = Vec::new();
            match every {
                None => {
                    for x in 0..n {
                        source.emit(x).await.expect("nothing fails");
                    }
                }
                Some(every) => {
                    let store = streamz_store::RedbStore::open(&store_path).expect("a store");
                    let (checkpoints, feed) =
                        source.checkpoint::<u64>(store, every).expect("checkpoints");
                    // each checkpoint's figures, read as they come
                    let checkpoints = Arc::new(checkpoints);
                    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let watcher = {
                        let (checkpoints, done) = (checkpoints.clone(), done.clone());
                        tokio::spawn(async move {
                            let mut seen = Vec::new();
                            while !done.load(Ordering::Relaxed) {
                                if let Some(info) = checkpoints.last()
                                    && seen.last().is_none_or(|l: &streamz_core::CheckpointInfo| {
                                        l.id != info.id
                                    })
                                {
                                    seen.push(info);
                                }
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            seen
                        })
                    };
                    if feeding == Feeding::Run {
                        let input = futures_util::stream::iter((0..n).map(|x| (x, x + 1)));
                        feed.run(input).await.expect("nothing fails");
                    } else {
                        for x in 0..n {
                            feed.emit(x, x + 1).await.expect("nothing fails");
                        }
                    }
                    done.store(true, Ordering::Relaxed);
                    infos = watcher.await.expect("the watcher");
                }
            }
            (n as f64 / start.elapsed().as_secs_f64(), infos)
        });
        let (rate, infos) = task.await.expect("the run");
        black_box(total.load(Ordering::Relaxed));
        (rate, infos)
    });
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    (result.0, result.1, size)
}

/// A keyed count with and without checkpoints every second, interleaved, in one run.
fn checkpoint(n: u64) -> Value {
    let mut plain = Vec::new();
    let mut checked = Vec::new();
    let mut emitted = Vec::new();
    let mut infos = Vec::new();
    let mut size = 0;
    for _ in 0..3 {
        plain.push(keyed_count(n, Feeding::Plain).0);
        let (rate, taken, bytes) = keyed_count(n, Feeding::Run);
        checked.push(rate);
        infos.extend(taken);
        size = size.max(bytes);
        emitted.push(keyed_count(n, Feeding::Emit).0);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (plain, checked, emitted) = (best(&plain), best(&checked), best(&emitted));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pauses: Vec<f64> = infos.iter().map(|i| ms(i.pause)).collect();
    let writes: Vec<f64> = infos.iter().map(|i| ms(i.write)).collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let state = infos.iter().map(|i| i.size).max().unwrap_or(0);
    json!({
        "scenario": "checkpoint",
        "n": n,
        "keys": KEYS,
        "plain_per_s": round(plain, 0),
        "checkpointed_per_s": round(checked, 0),
        "ratio": round(checked / plain, 3),
        "feed_emit_per_s": round(emitted, 0),
        "feed_emit_ratio": round(emitted / plain, 3),
        "checkpoints": infos.len(),
        "pause_ms_mean": round(mean(&pauses), 2),
        "pause_ms_max": round(pauses.iter().copied().fold(0.0, f64::max), 2),
        "write_ms_mean": round(mean(&writes), 2),
        "state_bytes": state,
        "store_bytes": size,
    })
}

fn accumulate_filter(n: u64) -> Value {
    let (source, total) = pipelines::accumulate_filter();
    let ns = best_ns(n, || pipelines::emit_all(&source, n));
    black_box(total.load(Ordering::Relaxed));
    // three nodes: accumulate, filter, sink
    json!({"scenario": "accumulate_filter", "n": n, "ns_per_element": round(ns, 2), "ns_per_stage": round(ns / 3.0, 2)})
}

fn async_emit(n: u64) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let ns = runtime.block_on(async {
        let source = Stream::with_executor(TokioExecutor::current());
        let total = Arc::new(AtomicU64::new(0));
        let sum = total.clone();
        source.map(|x: u64| x + 1).sink_async(move |x| {
            let sum = sum.clone();
            async move {
                sum.fetch_add(x, Ordering::Relaxed);
            }
        });
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = Instant::now();
            for x in 0..n {
                source.emit(x).await.expect("nothing fails");
            }
            best = best.min(start.elapsed().as_nanos() as f64 / n as f64);
        }
        black_box(total.load(Ordering::Relaxed));
        best
    });
    // two nodes: map, async sink
    json!({"scenario": "async_emit", "n": n, "ns_per_element": round(ns, 2), "ns_per_stage": round(ns / 2.0, 2)})
}

fn rate_limit(n: u64) -> Value {
    let interval = Duration::from_millis(10);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let arrivals = pipelines::rate_limited_arrivals(&runtime, n, interval);
    let gaps: Vec<f64> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    let below = gaps.iter().filter(|g| **g < 10.0).count();
    let mean = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
    json!({
        "scenario": "rate_limit", "n": n, "interval_ms": 10, "received": arrivals.len(),
        "gaps_below_interval": below,
        "min_gap_ms": round(gaps.iter().copied().fold(f64::INFINITY, f64::min), 3),
        "max_gap_ms": round(gaps.iter().copied().fold(0.0, f64::max), 3),
        "mean_gap_ms": round(mean, 3),
    })
}

fn timed_window(n: u64) -> Value {
    let window = Duration::from_millis(50);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (closes, sizes, start) = runtime.block_on(async {
        let start = Instant::now();
        let source = Stream::with_executor(TokioExecutor::current());
        let closes = source
            .timed_window(window)
            .map(|w: Vec<u64>| (Instant::now(), w.len()))
            .sink_to_vec();
        let mut ticks = tokio::time::interval(Duration::from_millis(1));
        for x in 0..n {
            ticks.tick().await;
            source.emit(x).await.expect("nothing fails");
        }
        source.close().await.expect("nothing fails");
        source.closed().await;
        let closes = closes.to_vec();
        (
            closes.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            closes.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            start,
        )
    });
    // the windows closed by the schedule (the last one is the flush at close)
    let scheduled = &closes[..closes.len().saturating_sub(1)];
    let offsets: Vec<f64> = scheduled
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let expected = window.as_secs_f64() * (k + 1) as f64;
            ((*t - start).as_secs_f64() - expected) * 1000.0
        })
        .collect();
    let periods: Vec<f64> = scheduled
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    let drift = match (offsets.first(), offsets.last()) {
        (Some(first), Some(last)) => last - first,
        _ => 0.0,
    };
    json!({
        "scenario": "timed_window", "n": n, "window_ms": 50, "windows": closes.len(),
        "received": sizes.iter().sum::<usize>(), "window_sizes": sizes,
        "period_mean_ms": round(periods.iter().sum::<f64>() / periods.len().max(1) as f64, 3),
        "period_min_ms": round(periods.iter().copied().fold(f64::INFINITY, f64::min), 3),
        "period_max_ms": round(periods.iter().copied().fold(0.0, f64::max), 3),
        "drift_ms": round(drift, 3),
    })
}

fn buffer(n: u64) -> Value {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (latencies, emit_loop, all_done) = runtime.block_on(async {
        let source = Stream::with_executor(TokioExecutor::current());
        let processed = Arc::new(AtomicU64::new(0));
        let count = processed.clone();
        source.buffer(10).sink_async(move |_: u64| {
            let count = count.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        let start = Instant::now();
        let mut latencies = Vec::new();
        for x in 0..n {
            let t = Instant::now();
            source.emit(x).await.expect("nothing fails");
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let emit_loop = start.elapsed();
        source.flush().await;
        assert_eq!(processed.load(Ordering::Relaxed), n);
        (latencies, emit_loop, start.elapsed())
    });
    let first_blocking = latencies.iter().position(|l| *l >= 1.0);
    json!({
        "scenario": "buffer", "n": n, "buffer": 10, "sink_sleep_ms": 10,
        "first_blocking_emit_index": first_blocking,
        "emit_loop_ms": round(emit_loop.as_secs_f64() * 1000.0, 2),
        "all_processed_ms": round(all_done.as_secs_f64() * 1000.0, 2),
    })
}

fn rayon_offload(n: u64) -> Value {
    let pool = Pool::new(2).expect("a pool");
    let time = |source: &Stream<u64>, count: u64| {
        let start = Instant::now();
        for x in 0..count {
            source.emit_blocking(x).expect("nothing fails");
        }
        futures_executor::block_on(source.flush());
        start.elapsed().as_secs_f64()
    };
    let serial = |f: fn(u64) -> u64| {
        let source = Stream::new();
        source.map(f).sink(|x| {
            black_box(x);
        });
        source
    };
    let offloaded = |f: fn(u64) -> u64| {
        let source = Stream::with_executor(pool.clone());
        source.scatter(&pool).map(f).buffer(8).gather().sink(|x| {
            black_box(x);
        });
        source
    };
    let busy_n = n.min(1000);
    let serial_busy = busy_n as f64 / time(&serial(pipelines::busy), busy_n);
    let offload_busy = busy_n as f64 / time(&offloaded(pipelines::busy), busy_n);
    let trivial = |x: u64| x + 1;
    let trivial_n = n * 10;
    let serial_trivial = time(&serial(trivial), trivial_n);
    let offload_trivial = time(&offloaded(trivial), trivial_n);
    json!({
        "scenario": "rayon_offload", "threads": 2, "buffer": 8,
        "busy_1ms_serial_per_s": round(serial_busy, 1),
        "busy_1ms_offloaded_per_s": round(offload_busy, 1),
        "speedup_vs_serial": round(offload_busy / serial_busy, 3),
        "overhead_us_per_element": round((offload_trivial - serial_trivial) / trivial_n as f64 * 1e6, 3),
    })
}

/// Resident memory figures from `/proc/self/status`, in bytes: (now, peak).
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn memory_chain(n: u64) -> Value {
    const NODES: usize = 1000;
    let (before, _) = rss();
    let (source, total) = pipelines::map_chain(NODES);
    let (after_build, _) = rss();
    let start = Instant::now();
    for x in 0..n {
        source.emit(x).wait().expect("nothing fails");
    }
    let elapsed = start.elapsed();
    black_box(total.load(Ordering::Relaxed));
    let (_, peak) = rss();
    json!({
        "scenario": "memory_chain", "nodes": NODES, "n": n,
        "peak_rss_bytes": peak,
        "bytes_per_node": (after_build.saturating_sub(before)) / NODES as u64,
        "ns_per_element_per_node": round(elapsed.as_nanos() as f64 / n as f64 / NODES as f64, 2),
    })
}

fn limit(n: u64) -> Value {
    let closure = best_ns(n, || {
        black_box(pipelines::closure_chain(n));
    });
    let futures = best_ns(n, || {
        use futures_util::StreamExt;
        let sum = futures_executor::block_on(
            streamz_bench::ten_maps!(futures_util::stream::iter(0..n))
                .fold(0u64, |acc, x| async move { acc.wrapping_add(x) }),
        );
        black_box(sum);
    });
    json!({
        "scenario": "limit", "n": n, "stages": 10,
        "closure_ns_per_element": round(closure, 2),
        "futures_ns_per_element": round(futures, 2),
    })
}
