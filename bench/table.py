#!/usr/bin/env python3
"""Prints the comparison table from the figures bench/compare.sh collected in a directory."""

import json
import os
import sys


def load(out):
    rust = {}
    with open(os.path.join(out, "rust.jsonl")) as f:
        for line in f:
            if line.strip():
                figures = json.loads(line)
                rust[figures["scenario"]] = figures
    py = {}
    for name in os.listdir(os.path.join(out, "python")):
        if name.endswith(".json"):
            try:
                with open(os.path.join(out, "python", name)) as f:
                    py[name[:-5]] = json.loads(f.read().strip().splitlines()[-1])
            except (ValueError, IndexError):
                pass
    return rust, py


def get(d, *path):
    for key in path:
        if isinstance(d, list):
            d = next((x for x in d if x.get("variant") == key or x.get("buffer") == key), None)
        elif isinstance(d, dict):
            d = d.get(key)
        if d is None:
            return None
    return d


def fmt(x, unit=""):
    if x is None:
        return "n/a"
    if isinstance(x, float):
        x = f"{x:,.2f}" if abs(x) < 100 else f"{x:,.0f}"
    return f"{x}{unit}"


def ratio(a, b):
    return f"{a / b:,.0f}×" if a and b else "n/a"


def main(out):
    rust, py = load(out)
    rows = []
    r, p = get(rust, "map1", "ns_per_element"), get(py, "a_sync_map_throughput", "chain_map_x1", "ns_per_event_best")
    rows.append(("emit → map → sink, ns per element", fmt(p), fmt(r), ratio(p, r)))
    r, p = get(rust, "map10", "ns_per_element"), get(py, "a_sync_map_throughput", "chain_map_x10", "ns_per_event_best")
    rows.append(("emit → 10 maps → sink, ns per element", fmt(p), fmt(r), ratio(p, r)))
    r, p = get(rust, "map10", "ns_per_stage"), get(py, "a_sync_map_throughput", "chain_map_x10", "ns_per_event_per_map_best")
    rows.append(("… per map stage, ns", fmt(p), fmt(r), ratio(p, r)))
    closure = get(rust, "limit", "closure_ns_per_element")
    rows.append(("the same 10 steps as a plain Rust closure, ns", "", fmt(closure),
                 f"streamz {get(rust, 'map10', 'ns_per_element') / closure:,.0f}× the closure" if closure else "n/a"))
    rows.append(("… as a futures::Stream chain, ns", "", fmt(get(rust, "limit", "futures_ns_per_element")), ""))
    r, p = get(rust, "accumulate_filter", "ns_per_element"), get(py, "b_accumulate_filter", "accumulate_add_filter_sink", "ns_per_event_best")
    rows.append(("accumulate → filter → sink, ns per element", fmt(p), fmt(r), ratio(p, r)))
    r = get(rust, "async_emit", "ns_per_element")
    p = get(py, "c_async_tornado", "results", "map1_coroutine_sink", "us_per_event")
    p = p * 1000 if p else None
    rows.append(("`await emit` → map → async sink, ns per element", fmt(p), fmt(r), ratio(p, r)))
    rows.append(("rate_limit(10 ms): gaps below 10 ms, of 99",
                 fmt(get(py, "d_rate_limit", "async_await_each", "count_below_interval")),
                 fmt(get(rust, "rate_limit", "gaps_below_interval")), ""))
    rows.append(("rate_limit(10 ms): min / max gap, ms",
                 f"{fmt(get(py, 'd_rate_limit', 'async_await_each', 'inter_arrival_min_ms'))} / {fmt(get(py, 'd_rate_limit', 'async_await_each', 'inter_arrival_max_ms'))}",
                 f"{fmt(get(rust, 'rate_limit', 'min_gap_ms'))} / {fmt(get(rust, 'rate_limit', 'max_gap_ms'))}", ""))
    rows.append(("timed_window(50 ms) for 1 s: cumulative drift, ms",
                 fmt(get(py, "e_timed_window", "async_ioloop", "cumulative_drift_ms")),
                 fmt(get(rust, "timed_window", "drift_ms")), ""))
    rows.append(("buffer(10) before a 10 ms sink: first emit that waits",
                 fmt(get(py, "f_buffer_backpressure", "results", 10, "first_blocking_emit_index")),
                 fmt(get(rust, "buffer", "first_blocking_emit_index")), ""))
    serial = get(py, "g_dask", "serial_streamz_map", "f_busy_1ms", "events_per_s")
    dask = get(py, "g_dask", "dask_processes_false", "f_busy_1ms", "events_per_s")
    rows.append(("1 ms CPU-bound map offloaded, speed-up over serial",
                 f"{dask / serial:.2f}×" if dask and serial else "n/a",
                 f"{get(rust, 'rayon_offload', 'speedup_vs_serial'):.2f}×", ""))
    trivial = get(py, "g_dask", "dask_processes_false", "f_trivial", "events_per_s")
    p = 1e6 / trivial if trivial else None
    r = get(rust, "rayon_offload", "overhead_us_per_element")
    rows.append(("offloading overhead per element, µs", fmt(p), fmt(r), ratio(p, r)))
    p = get(py, "h_memory_chain", "maxrss_kib_final")
    p = p / 1024 if p else None
    r = get(rust, "memory_chain", "peak_rss_bytes")
    r = r / 1024 / 1024 if r else None
    rows.append(("1,000-map chain: peak RSS of the process, MiB", fmt(p), fmt(r), ratio(p, r)))
    rows.append(("… graph memory per node, bytes", fmt(get(py, "h_memory_chain", "graph_bytes_per_node_approx")),
                 fmt(get(rust, "memory_chain", "bytes_per_node")), ""))

    kafka = rust.get("kafka")
    if kafka and "rust" in kafka:
        r = get(kafka, "rust", "throughput", "records_per_s")
        p = get(kafka, "python_record", "throughput", "records_per_s")
        b = get(kafka, "python_batched", "throughput", "records_per_s")
        rows.append(("Kafka from_kafka → map → to_kafka, records per second", fmt(p), fmt(r), ratio(r, p)))
        rows.append(("… the original's from_kafka_batched → flatten → map → to_kafka", fmt(b), "", ratio(r, b)))
        r = get(kafka, "rust", "latency", "median_ms")
        p = get(kafka, "python_record", "latency", "median_ms")
        b = get(kafka, "python_batched", "latency", "median_ms")
        rows.append(("Kafka end-to-end latency, median ms (batched)", f"{fmt(p)} ({fmt(b)})", fmt(r), ratio(p, r)))

    print("| measure | Python streamz 0.6.6 | streamz for Rust | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
