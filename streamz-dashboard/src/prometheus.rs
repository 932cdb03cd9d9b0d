//! The figures in Prometheus' text exposition format: what `GET /metrics` serves.

use std::fmt::Write as _;

use crate::Dashboard;

impl Dashboard {
    /// The figures in Prometheus' text exposition format, as `GET /metrics` serves them.
    pub fn prometheus(&self) -> String {
        let snapshot = self.snapshot();
        let mut out = String::new();
        let families: [Family<streamz_core::NodeSnapshot>; 7] = [
            (
                "streamz_node_elements_in_total",
                "counter",
                "Elements that arrived at a node.",
                |n| n.elements_in as f64,
            ),
            (
                "streamz_node_elements_out_total",
                "counter",
                "Elements a node handed on.",
                |n| n.elements_out as f64,
            ),
            (
                "streamz_node_errors_total",
                "counter",
                "Elements a node failed on.",
                |n| n.errors as f64,
            ),
            (
                "streamz_node_late_total",
                "counter",
                "Elements that came too late for every event-time window they belong to.",
                |n| n.late as f64,
            ),
            (
                "streamz_node_in_flight",
                "gauge",
                "Elements a node holds: queued, waiting on a timer, or in an asynchronous call.",
                |n| n.in_flight as f64,
            ),
            (
                "streamz_node_latency_seconds",
                "gauge",
                "Moving average of a node's asynchronous calls' duration (0: none).",
                |n| n.latency.map_or(0.0, |d| d.as_secs_f64()),
            ),
            (
                "streamz_node_closed",
                "gauge",
                "1 once a node has reached end of stream.",
                |n| f64::from(u8::from(n.closed)),
            ),
        ];
        let rows: Vec<_> = snapshot
            .nodes
            .iter()
            .map(|n| {
                let labels = format!(
                    "node=\"{}\",name=\"{}\",operator=\"{}\"",
                    n.id,
                    label(&n.name),
                    label(n.operator)
                );
                (labels, n)
            })
            .collect();
        write_families(&mut out, &families, &rows);
        #[cfg(feature = "rayon")]
        if !self.pools.is_empty() {
            let pools: Vec<_> = self
                .pools
                .iter()
                .map(|(name, pool)| (format!("pool=\"{}\"", label(name)), pool.snapshot()))
                .collect();
            let rows: Vec<_> = pools
                .iter()
                .map(|(labels, now)| (labels.clone(), now))
                .collect();
            let families: [Family<streamz_rayon::PoolSnapshot>; 4] = [
                ("streamz_pool_threads", "gauge", "Threads of a pool.", |p| {
                    p.threads as f64
                }),
                (
                    "streamz_pool_in_flight",
                    "gauge",
                    "Calls submitted to a pool and not finished.",
                    |p| p.in_flight as f64,
                ),
                (
                    "streamz_pool_running",
                    "gauge",
                    "Calls running on a pool's threads.",
                    |p| p.running as f64,
                ),
                (
                    "streamz_pool_completed_total",
                    "counter",
                    "Calls a pool has finished.",
                    |p| p.completed as f64,
                ),
            ];
            write_families(&mut out, &families, &rows);
        }
        let partitions = self.partition_figures();
        if !partitions.is_empty() {
            let rows: Vec<_> = partitions
                .iter()
                .map(|p| {
                    let labels = format!(
                        "source=\"{}\",topic=\"{}\",partition=\"{}\"",
                        label(&p.source),
                        label(&p.topic),
                        p.partition
                    );
                    (labels, p)
                })
                .collect();
            // a figure not known yet has no sample (Prometheus has no null)
            let families: [OptFamily<crate::PartitionFigures>; 3] = [
                (
                    "streamz_partition_committed_offset",
                    "gauge",
                    "The position a source has committed in a partition: every record before it is done.",
                    |p| p.committed,
                ),
                (
                    "streamz_partition_high_watermark",
                    "gauge",
                    "One past the newest record of a partition, as the source last saw it.",
                    |p| p.high_watermark,
                ),
                (
                    "streamz_partition_lag",
                    "gauge",
                    "Records of a partition not yet committed by its source.",
                    |p| p.lag,
                ),
            ];
            for (name, kind, help, value) in families {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (labels, row) in &rows {
                    if let Some(v) = value(row) {
                        let _ = writeln!(out, "{name}{{{labels}}} {v}");
                    }
                }
            }
        }
        if let Some(c) = self.checkpoint_figures() {
            let taken = c
                .taken_at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let samples: [(&str, &str, &str, f64); 5] = [
                (
                    "streamz_checkpoint_id",
                    "gauge",
                    "The number of the last checkpoint saved.",
                    c.id as f64,
                ),
                (
                    "streamz_checkpoint_timestamp_seconds",
                    "gauge",
                    "When the last checkpoint was taken, in seconds since 1970.",
                    taken,
                ),
                (
                    "streamz_checkpoint_size_bytes",
                    "gauge",
                    "The bytes of the last checkpoint's states.",
                    c.size as f64,
                ),
                (
                    "streamz_checkpoint_pause_seconds",
                    "gauge",
                    "How long the last checkpoint held the graph still.",
                    c.pause.as_secs_f64(),
                ),
                (
                    "streamz_checkpoint_write_seconds",
                    "gauge",
                    "How long the store took to write the last checkpoint.",
                    c.write.as_secs_f64(),
                ),
            ];
            for (name, kind, help, v) in samples {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
                );
            }
        }
        out
    }
}

/// A Prometheus metric family: name, type, help, and how to read it off a snapshot.
type Family<S> = (&'static str, &'static str, &'static str, fn(&S) -> f64);

/// A family whose figure may be unknown.
type OptFamily<S> = (
    &'static str,
    &'static str,
    &'static str,
    fn(&S) -> Option<i64>,
);

/// Writes each family's HELP and TYPE lines and one sample per row (its labels, rendered).
fn write_families<S>(out: &mut String, families: &[Family<S>], rows: &[(String, &S)]) {
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, row) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(row));
        }
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}
