//! [`Dashboard`]: which graphs and pools a dashboard shows, and how often its page updates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use streamz_core::{CheckpointInfo, Element, Graph, GraphSnapshot, Stream};

type PartitionsFn = Arc<dyn Fn() -> Vec<PartitionFigures> + Send + Sync>;
type CheckpointFn = Arc<dyn Fn() -> Option<CheckpointInfo> + Send + Sync>;

/// One partition of a broker's source, as a dashboard shows it: see
/// [`Dashboard::partitions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFigures {
    /// The source's name.
    pub source: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The position the broker has acknowledged as committed, if any.
    pub committed: Option<i64>,
    /// The partition's high watermark (one past its newest record), if known.
    pub high_watermark: Option<i64>,
    /// Records between the two.
    pub lag: Option<i64>,
}

/// The graphs and pools a dashboard shows, and how often its page updates.
///
/// # Examples
///
/// ```
/// use streamz_core::Stream;
/// use streamz_dashboard::Dashboard;
///
/// let source = Stream::new();
/// let _out = source.map(|x: u32| x + 1).named("increment").sink_to_vec();
/// let dashboard = Dashboard::new().watch(&source);
/// source.emit_blocking(1).unwrap();
/// let figures = dashboard.figures();
/// assert_eq!(figures["nodes"][1]["name"], "increment");
/// assert_eq!(figures["nodes"][1]["out"], 1);
/// assert!(dashboard.prometheus().contains("streamz_node_elements_out_total"));
/// ```
#[derive(Clone)]
pub struct Dashboard {
    pub(crate) graphs: Vec<Graph>,
    #[cfg(feature = "rayon")]
    pub(crate) pools: Vec<(String, streamz_rayon::Pool)>,
    pub(crate) partitions: Vec<PartitionsFn>,
    pub(crate) checkpoint: Option<CheckpointFn>,
    pub(crate) every: Duration,
    pub(crate) started: Instant,
    /// Host names besides the bound address and localhost that requests may name.
    pub(crate) hosts: Vec<String>,
    /// Turns true when the server stops: open event streams end, so shutdown is prompt.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("graphs", &self.graphs.len())
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Default for Dashboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Dashboard {
    /// A dashboard that shows nothing yet, updating twice a second.
    pub fn new() -> Self {
        Dashboard {
            graphs: Vec::new(),
            #[cfg(feature = "rayon")]
            pools: Vec::new(),
            partitions: Vec::new(),
            checkpoint: None,
            every: Duration::from_millis(500),
            started: Instant::now(),
            hosts: Vec::new(),
            stopping: tokio::sync::watch::channel(false).1,
        }
    }

    /// Also answers requests whose `Host` is `name` (with or without a port), as when the
    /// dashboard is reached through a proxy or by a machine's name. By default a served
    /// dashboard answers only requests naming its bound address, `localhost`, `127.0.0.1` or
    /// `[::1]`, and refuses others with 421: a web page of another site that resolves its
    /// own name to 127.0.0.1 (DNS rebinding) cannot read the pipeline's figures.
    pub fn allow_host(mut self, name: &str) -> Self {
        self.hosts.push(name.to_ascii_lowercase());
        self
    }

    /// Shows the graph `stream` belongs to (turning its metrics on). Several graphs may be
    /// watched; a graph watched twice is shown once.
    pub fn watch<T: Element>(self, stream: &Stream<T>) -> Self {
        self.watch_graph(stream.graph())
    }

    /// Shows `graph` (turning its metrics on).
    pub fn watch_graph(mut self, graph: Graph) -> Self {
        graph.enable_metrics();
        self.graphs.push(graph);
        self
    }

    /// Shows a thread pool's threads and calls in flight, under `name`.
    #[cfg(feature = "rayon")]
    pub fn pool(mut self, name: &str, pool: &streamz_rayon::Pool) -> Self {
        self.pools.push((name.to_owned(), pool.clone()));
        self
    }

    /// Also shows the partitions of a broker's source, as `f` reports them each time the
    /// figures are read: each one's committed position, high watermark and lag (a table on
    /// the page, `partitions` in `/api/graph`, `streamz_partition_*` in `/metrics`).
    ///
    /// ```
    /// use streamz_dashboard::{Dashboard, PartitionFigures};
    ///
    /// let dashboard = Dashboard::new().partitions(|| {
    ///     vec![PartitionFigures {
    ///         source: "from_kafka".into(),
    ///         topic: "events".into(),
    ///         partition: 0,
    ///         committed: Some(90),
    ///         high_watermark: Some(100),
    ///         lag: Some(10),
    ///     }]
    /// });
    /// assert!(dashboard.prometheus().contains(
    ///     "streamz_partition_lag{source=\"from_kafka\",topic=\"events\",partition=\"0\"} 10"
    /// ));
    /// ```
    pub fn partitions(
        mut self,
        f: impl Fn() -> Vec<PartitionFigures> + Send + Sync + 'static,
    ) -> Self {
        self.partitions.push(Arc::new(f));
        self
    }

    /// Also shows the graph's last checkpoint, as `f` reports it each time the figures are
    /// read (`streamz_core::Checkpoints::last`): its number, age, size, pause and write (a
    /// line on the page, `checkpoint` in `/api/graph`, `streamz_checkpoint_*` in `/metrics`).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use streamz_core::CheckpointInfo;
    /// use streamz_dashboard::Dashboard;
    ///
    /// let dashboard = Dashboard::new().checkpoints(|| {
    ///     Some(CheckpointInfo {
    ///         id: 7,
    ///         taken_at: SystemTime::now(),
    ///         size: 4096,
    ///         entries: 3,
    ///         pause: Duration::from_micros(1500),
    ///         write: Duration::from_millis(6),
    ///     })
    /// });
    /// assert!(dashboard.prometheus().contains("streamz_checkpoint_id 7"));
    /// assert_eq!(dashboard.figures()["checkpoint"]["size"], 4096);
    /// ```
    pub fn checkpoints(
        mut self,
        f: impl Fn() -> Option<CheckpointInfo> + Send + Sync + 'static,
    ) -> Self {
        self.checkpoint = Some(Arc::new(f));
        self
    }

    /// The last checkpoint, if checkpoints are shown and one was taken.
    pub(crate) fn checkpoint_figures(&self) -> Option<CheckpointInfo> {
        self.checkpoint.as_ref().and_then(|f| f())
    }

    /// Every source's partitions now.
    pub(crate) fn partition_figures(&self) -> Vec<PartitionFigures> {
        self.partitions.iter().flat_map(|f| f()).collect()
    }

    /// How often the page gets new figures (default 500 ms).
    pub fn update_every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(10));
        self
    }

    /// The watched graphs, merged into one (a node in two watched graphs appears once).
    pub(crate) fn snapshot(&self) -> GraphSnapshot {
        let mut merged: Option<GraphSnapshot> = None;
        for graph in &self.graphs {
            let next = graph.snapshot();
            match &mut merged {
                None => merged = Some(next),
                Some(all) => {
                    for node in next.nodes {
                        if !all.nodes.iter().any(|n| n.id == node.id) {
                            all.nodes.push(node);
                        }
                    }
                    for edge in next.edges {
                        if !all.edges.contains(&edge) {
                            all.edges.push(edge);
                        }
                    }
                }
            }
        }
        let mut all = merged.unwrap_or_default();
        all.nodes.sort_by_key(|n| n.id);
        all
    }
}
