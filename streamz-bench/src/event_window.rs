//! `event_window`: a keyed tumbling window on event time over 1,000,000 out-of-order events
//! and 10,000 keys, through this library and through what a user would write instead (a loop
//! over a `HashMap`, plain and as a tokio task fed by a channel). Each runs in a process of
//! its own, so that its peak resident memory is its own; rounds interleave, medians count.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};
use streamz_core::{EventTime, Stream, Watermarks, Window};

/// (key, event time in ms, value)
type Event = (u32, i64, u64);

const KEYS: u64 = 10_000;
/// The window, how far out of order events come, and how far the watermark trails the newest
/// time (some events come later than that: late), all in ms.
const SIZE_MS: i64 = 10_000;
const JITTER_MS: i64 = 600;
const DELAY_MS: i64 = 500;

/// Events one millisecond apart, each up to `JITTER_MS` early, keys spread by a hash.
pub(crate) fn events(n: u64) -> Vec<Event> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let r = next();
            let jitter = (r % JITTER_MS as u64) as i64;
            let key = (next() % KEYS) as u32;
            (key, i as i64 - jitter, r % 100)
        })
        .collect()
}

/// What each variant reports: results, and a checksum of them, so all are seen to agree.
#[derive(Default)]
struct Seen {
    results: u64,
    checksum: u64,
    late: u64,
}

/// One result's part of the checksum, added in any order: the variants emit windows due
/// together in orders of their own.
fn mix(key: u32, start: i64, sum: u64) -> u64 {
    (u64::from(key) << 40 ^ (start as u64) ^ sum.rotate_left(17))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl Seen {
    fn add(&mut self, key: u32, start: i64, sum: u64) {
        self.results += 1;
        self.checksum = self.checksum.wrapping_add(mix(key, start, sum));
    }
}

fn streamz(events: &[Event]) -> Seen {
    let source: Stream<Event> = Stream::new();
    let (windows, late) = source
        .watermarks(
            |e: &Event| EventTime::from_millis(e.1),
            Watermarks::bounded(std::time::Duration::from_millis(DELAY_MS as u64)),
        )
        .window(
            Window::tumbling(std::time::Duration::from_millis(SIZE_MS as u64)),
            |e| EventTime::from_millis(e.1),
        )
        .key(|e| e.0)
        .fold(0u64, |sum, e| *sum += e.2);
    // counters the sinks add to (a mutex per result would cost more than the loop's own)
    let counts: std::sync::Arc<[AtomicU64; 3]> = std::sync::Arc::new(Default::default());
    let into = counts.clone();
    let _sink = windows.sink(move |w| {
        into[0].fetch_add(1, Ordering::Relaxed);
        into[1].fetch_add(mix(w.key, w.start.as_millis(), w.value), Ordering::Relaxed);
    });
    let into = counts.clone();
    let _late = late.sink(move |_| {
        into[2].fetch_add(1, Ordering::Relaxed);
    });
    for &e in events {
        source.emit(e).wait().expect("nothing fails");
    }
    source.close().wait().expect("nothing fails");
    Seen {
        results: counts[0].load(Ordering::Relaxed),
        checksum: counts[1].load(Ordering::Relaxed),
        late: counts[2].load(Ordering::Relaxed),
    }
}

/// The loop a user would write: windows by start, each a map of keys to sums; a watermark
/// trailing the newest time; windows emitted once it passes their end.
struct HandWritten {
    windows: BTreeMap<i64, HashMap<u32, u64>>,
    watermark: i64,
    seen: Seen,
}

impl HandWritten {
    fn new() -> Self {
        HandWritten {
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            seen: Seen::default(),
        }
    }

    fn event(&mut self, (key, t, v): Event) {
        let start = t.div_euclid(SIZE_MS) * SIZE_MS;
        if start + SIZE_MS <= self.watermark {
            self.seen.late += 1;
        } else {
            *self
                .windows
                .entry(start)
                .or_default()
                .entry(key)
                .or_default() += v;
        }
        let w = t - DELAY_MS;
        if w > self.watermark {
            self.watermark = w;
            while let Some(entry) = self.windows.first_entry() {
                if *entry.key() + SIZE_MS > w {
                    break;
                }
                let (start, keys) = entry.remove_entry();
                for (key, sum) in keys {
                    self.seen.add(key, start, sum);
                }
            }
        }
    }

    fn finish(mut self) -> Seen {
        for (start, keys) in std::mem::take(&mut self.windows) {
            for (key, sum) in keys {
                self.seen.add(key, start, sum);
            }
        }
        self.seen
    }
}

fn hashmap(events: &[Event]) -> Seen {
    let mut h = HandWritten::new();
    for &e in events {
        h.event(black_box(e));
    }
    h.finish()
}

fn tokio_channel(events: Vec<Event>) -> Seen {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Event>(1024);
        let consumer = tokio::spawn(async move {
            let mut h = HandWritten::new();
            while let Some(e) = rx.recv().await {
                h.event(e);
            }
            h.finish()
        });
        for e in events {
            tx.send(e).await.expect("the consumer runs");
        }
        drop(tx);
        consumer.await.expect("the consumer ends")
    })
}

/// One variant, in this process: its figures as JSON.
pub(crate) fn part(variant: &str, n: u64) -> Value {
    let events = events(n);
    let (base, _) = crate::rss();
    let start = Instant::now();
    let seen = match variant {
        "streamz" => streamz(&events),
        "hashmap" => hashmap(&events),
        "tokio" => tokio_channel(events),
        other => panic!("no variant {other}"),
    };
    let elapsed = start.elapsed();
    let (_, peak) = crate::rss();
    json!({
        "variant": variant,
        "ns_per_event": elapsed.as_nanos() as f64 / n as f64,
        "peak_rss_over_input_bytes": peak.saturating_sub(base),
        "results": seen.results, "checksum": seen.checksum, "late": seen.late,
    })
}

/// The scenario: each variant in a process of its own, `ROUNDS` interleaved rounds.
pub(crate) fn event_window(n: u64) -> Value {
    const ROUNDS: usize = 5;
    const VARIANTS: [&str; 3] = ["streamz", "hashmap", "tokio"];
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut runs: HashMap<&str, Vec<Value>> = HashMap::new();
    for _ in 0..ROUNDS {
        for variant in VARIANTS {
            let out = Command::new(&exe)
                .args([
                    "event-window-part",
                    "--json",
                    "--variant",
                    variant,
                    "--n",
                    &n.to_string(),
                ])
                .output()
                .expect("the benchmark runs itself");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let figures: Value =
                serde_json::from_slice(&out.stdout).expect("a part prints its figures");
            runs.entry(variant).or_default().push(figures);
        }
    }
    let median = |variant: &str, field: &str| {
        let mut v: Vec<f64> = runs[variant]
            .iter()
            .map(|r| r[field].as_f64().unwrap_or(f64::NAN))
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // every variant must have computed the same windows
    let agree = VARIANTS.iter().all(|v| {
        runs[v].iter().all(|r| {
            r["checksum"] == runs["hashmap"][0]["checksum"]
                && r["late"] == runs["hashmap"][0]["late"]
        })
    });
    assert!(agree, "the variants disagree: {runs:?}");
    let ns = |v: &str| median(v, "ns_per_event");
    let per_second = |v: &str| (1e9 / ns(v)).round();
    json!({
        "scenario": "event_window", "n": n, "keys": KEYS, "window_ms": SIZE_MS,
        "out_of_order_ms": JITTER_MS, "watermark_delay_ms": DELAY_MS, "rounds": ROUNDS,
        "results": runs["hashmap"][0]["results"], "late": runs["hashmap"][0]["late"],
        "streamz_events_per_s": per_second("streamz"),
        "hashmap_loop_events_per_s": per_second("hashmap"),
        "tokio_channel_loop_events_per_s": per_second("tokio"),
        "streamz_ns_per_event": crate::round(ns("streamz"), 1),
        "hashmap_loop_ns_per_event": crate::round(ns("hashmap"), 1),
        "tokio_channel_loop_ns_per_event": crate::round(ns("tokio"), 1),
        "streamz_peak_rss_mib": crate::round(median("streamz", "peak_rss_over_input_bytes") / 1048576.0, 1),
        "hashmap_loop_peak_rss_mib": crate::round(median("hashmap", "peak_rss_over_input_bytes") / 1048576.0, 1),
        "tokio_channel_loop_peak_rss_mib": crate::round(median("tokio", "peak_rss_over_input_bytes") / 1048576.0, 1),
    })
}
