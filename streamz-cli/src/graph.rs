//! A built graph, and what it runs on: what `build` makes and `run` runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use serde_json::Value;
use streamz_core::{Executor, Stream};

use crate::source::Source;

/// A source stream, what feeds it, and the stage that made it (for messages).
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) stream: Stream<Value>,
    pub(crate) source: Source,
    pub(crate) name: String,
}

/// A built graph, ready to run.
#[derive(Debug)]
pub(crate) struct Graph {
    pub(crate) feeds: Vec<Feed>,
    /// `count` sinks' counters, printed at the end.
    pub(crate) counts: Vec<Arc<AtomicU64>>,
    /// The user's stages, for `--stats` (which reads the core's metrics of their nodes).
    pub(crate) stages: Vec<StageStats>,
    /// Set when stdout is gone (a closed pipe): the sources stop.
    pub(crate) stdout_closed: Arc<AtomicBool>,
    /// Whether a sink writes somewhere other than stdout (a file), so a closed stdout still
    /// leaves something to drain into.
    pub(crate) file_sinks: bool,
    /// Resuming from a checkpoint (`Runtime::resuming`).
    pub(crate) resuming: bool,
}

/// One stage the user wrote, for `--stats`: where its elements in and out are counted.
/// Sources have no input, sinks no output, and the stages between `scatter` and `gather`
/// count as one.
#[derive(Debug, Clone)]
pub(crate) struct StageStats {
    pub(crate) name: String,
    pub(crate) input: Option<Figure>,
    pub(crate) output: Option<Figure>,
}

/// A count the core keeps for a node ([`streamz_core::NodeSnapshot`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Figure {
    /// The elements into the node (the stage shown under this id, conversions included).
    In(u64),
    /// The elements out of it.
    Out(u64),
}

impl StageStats {
    pub(crate) fn node(name: &str, id: u64) -> Self {
        StageStats {
            name: name.to_owned(),
            input: Some(Figure::In(id)),
            output: Some(Figure::Out(id)),
        }
    }
}

/// What the graph runs on.
pub(crate) struct Runtime {
    pub(crate) executor: Arc<dyn Executor>,
    #[cfg(feature = "rayon")]
    pub(crate) pool: Option<streamz_rayon::Pool>,
    pub(crate) json_input: bool,
    /// The broker sources' partitions, for `--stats` and the dashboard.
    pub(crate) partitions: Partitions,
    /// A checkpointed run resumes from a checkpoint: sinks into files append to what the
    /// run before wrote.
    pub(crate) resuming: bool,
}

/// One partition of a broker's source: its committed position, high watermark and lag.
pub(crate) type PartitionFigures = streamz_dashboard::PartitionFigures;

type PartitionsFn = Arc<dyn Fn() -> Vec<PartitionFigures> + Send + Sync>;

/// Where the running broker sources show their partitions.
#[derive(Clone, Default)]
pub(crate) struct Partitions(Arc<std::sync::Mutex<Vec<PartitionsFn>>>);

impl std::fmt::Debug for Partitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partitions").finish_non_exhaustive()
    }
}

impl Partitions {
    /// Adds a source's partitions, read whenever the figures are shown.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn add(&self, figures: PartitionsFn) {
        streamz_core::lock(&self.0).push(figures);
    }

    /// Every source's partitions now.
    pub(crate) fn now(&self) -> Vec<PartitionFigures> {
        let all: Vec<PartitionsFn> = streamz_core::lock(&self.0).clone();
        all.iter().flat_map(|f| f()).collect()
    }
}

#[cfg(test)]
impl Runtime {
    /// A runtime to build graphs with in tests: nothing is run on it.
    pub(crate) fn for_tests() -> Self {
        #[cfg(feature = "rayon")]
        static POOL: std::sync::LazyLock<streamz_rayon::Pool> =
            std::sync::LazyLock::new(|| streamz_rayon::Pool::new(1).expect("a pool"));
        Runtime {
            executor: Arc::new(streamz_core::VirtualExecutor::new()),
            #[cfg(feature = "rayon")]
            pool: Some(POOL.clone()),
            json_input: false,
            partitions: Partitions::default(),
            resuming: false,
        }
    }
}
