//! The figures as JSON: what `GET /api/graph` and the live page's events carry.

use serde_json::{Value, json};

use crate::Dashboard;

impl Dashboard {
    /// Everything the dashboard shows, as the JSON that `GET /api/graph` serves: `time_ms`
    /// (since the dashboard was made), `nodes` (`id`, `name`, `operator`, `shape`, `in`,
    /// `out`, `errors`, `in_flight`, `latency_ms`, `closed`), `edges` (`from`, `to`),
    /// `pools` (`name`, `threads`, `in_flight`, `running`, `completed`) and `partitions`
    /// (`source`, `topic`, `partition`, `committed`, `high_watermark`, `lag`), and
    /// `checkpoint` (`id`, `age_s`, `size`, `entries`, `pause_ms`, `write_ms`; null before
    /// the first, or without checkpoints).
    pub fn figures(&self) -> Value {
        let snapshot = self.snapshot();
        let nodes: Vec<Value> = snapshot
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "id": n.id,
                    "name": n.name,
                    "operator": n.operator,
                    "shape": n.shape,
                    "metered": n.metered,
                    "in": n.elements_in,
                    "out": n.elements_out,
                    "errors": n.errors,
                    "late": n.late,
                    "in_flight": n.in_flight,
                    "latency_ms": n.latency.map(|d| d.as_secs_f64() * 1e3),
                    "closed": n.closed,
                })
            })
            .collect();
        let edges: Vec<Value> = snapshot
            .edges
            .iter()
            .map(|e| json!({"from": e.from, "to": e.to}))
            .collect();
        json!({
            "time_ms": self.started.elapsed().as_secs_f64() * 1e3,
            "nodes": nodes,
            "edges": edges,
            "pools": self.pools_json(),
            "partitions": self.partition_figures().iter().map(|p| json!({
                "source": p.source,
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "high_watermark": p.high_watermark,
                "lag": p.lag,
            })).collect::<Vec<Value>>(),
            "checkpoint": self.checkpoint_figures().map(|c| json!({
                "id": c.id,
                "age_s": std::time::SystemTime::now()
                    .duration_since(c.taken_at)
                    .unwrap_or_default()
                    .as_secs_f64(),
                "size": c.size,
                "entries": c.entries,
                "pause_ms": c.pause.as_secs_f64() * 1e3,
                "write_ms": c.write.as_secs_f64() * 1e3,
            })),
        })
    }

    #[cfg(feature = "rayon")]
    fn pools_json(&self) -> Vec<Value> {
        self.pools
            .iter()
            .map(|(name, pool)| {
                let now = pool.snapshot();
                json!({
                    "name": name,
                    "threads": now.threads,
                    "in_flight": now.in_flight,
                    "running": now.running,
                    "completed": now.completed,
                })
            })
            .collect()
    }

    #[cfg(not(feature = "rayon"))]
    fn pools_json(&self) -> Vec<Value> {
        Vec::new()
    }
}
