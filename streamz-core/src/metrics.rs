//! Per-node metrics: elements in and out, errors, elements held, and the latency of
//! asynchronous work; and [`Graph`], a type-erased handle to read them with the graph's
//! structure ([`Graph::snapshot`]).
//!
//! Counting is off until [`Stream::enable_metrics`](crate::Stream::enable_metrics): a node
//! then pays two relaxed atomic increments per element (see DESIGN.md for the measured cost);
//! before, one predictable branch.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::node::{NodeArc, NodeInfo};
use crate::topology::{Direction, reachable};

/// A handle on the graph around a stream, for reading its structure and metrics from code that
/// does not know the streams' element types (a dashboard, a metrics exporter). It does not
/// keep the graph alive.
///
/// # Examples
///
/// ```
/// use streamz_core::Stream;
///
/// let source = Stream::new();
/// let doubled = source.map(|x: u64| x * 2).named("double");
/// let _out = doubled.filter(|x| x % 3 == 0).sink_to_vec();
/// source.enable_metrics();
/// for x in 0..10 {
///     source.emit_blocking(x).unwrap();
/// }
/// let snapshot = source.graph().snapshot();
/// let double = snapshot.nodes.iter().find(|n| n.name == "double").unwrap();
/// assert_eq!((double.elements_in, double.elements_out), (10, 10));
/// let filter = snapshot.nodes.iter().find(|n| n.operator == "filter").unwrap();
/// assert_eq!((filter.elements_in, filter.elements_out), (10, 4));
/// assert_eq!(snapshot.edges.len(), 3);
/// ```
#[derive(Clone)]
pub struct Graph {
    start: NodeArc,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("node", &self.start.id)
            .finish_non_exhaustive()
    }
}

impl Graph {
    pub(crate) fn new(start: NodeArc) -> Self {
        Graph { start }
    }

    /// Turns metrics on for every node of the graph, and for nodes built later in it.
    pub fn enable_metrics(&self) {
        for node in reachable(&self.start, Direction::Both) {
            node.meter.turn_on();
            node.graph.enable_metrics();
        }
    }

    /// The graph's nodes (in order of id, which is the order they were built) with their
    /// figures at this moment, and its edges.
    pub fn snapshot(&self) -> GraphSnapshot {
        let mut nodes = reachable(&self.start, Direction::Both);
        nodes.sort_by_key(|n| n.id);
        // A node shown as part of its upstream (`Stream::part_of_upstream`): the upstream it
        // merges into, while it is that upstream's only downstream and has no other upstream.
        let mut into: HashMap<u64, u64> = HashMap::new();
        for node in &nodes {
            if node.part_of_upstream.load(Ordering::Relaxed)
                && let [up] = node.upstreams().as_slice()
                && up.downstreams().len() == 1
            {
                into.insert(node.id, up.id);
            }
        }
        // Each stage is shown under its last node's id; `shown[id]` is the id a node is shown as.
        let mut shown: HashMap<u64, u64> = nodes.iter().map(|n| (n.id, n.id)).collect();
        for node in &nodes {
            let mut head = node.id;
            while let Some(&up) = into.get(&head) {
                head = up;
            }
            // the chain from `head` to `node`: all shown as the chain's last node
            let last = shown[&head].max(node.id);
            let mut at = node.id;
            loop {
                shown.insert(at, last);
                match into.get(&at) {
                    Some(&up) => at = up,
                    None => break,
                }
            }
        }
        let mut snapshots: Vec<NodeSnapshot> = Vec::new();
        let mut index: HashMap<u64, usize> = HashMap::new();
        for node in &nodes {
            let now = NodeSnapshot::of(node);
            match index.get(&shown[&node.id]) {
                None => {
                    index.insert(shown[&node.id], snapshots.len());
                    snapshots.push(NodeSnapshot {
                        id: shown[&node.id],
                        ..now
                    });
                }
                // a later part of a stage: its output, name and state are the stage's
                Some(&i) => {
                    let stage = &mut snapshots[i];
                    if node.given_name().is_some() {
                        stage.name = now.name;
                    }
                    stage.elements_out = now.elements_out;
                    stage.errors += now.errors;
                    stage.late += now.late;
                    stage.in_flight += now.in_flight;
                    stage.latency = stage.latency.max(now.latency);
                    stage.closed = now.closed;
                }
            }
        }
        let mut edges = Vec::new();
        for node in &nodes {
            for down in node.downstreams() {
                let (from, to) = (shown[&node.id], shown[&down.id]);
                if from != to {
                    edges.push(EdgeSnapshot { from, to });
                }
            }
        }
        GraphSnapshot {
            nodes: snapshots,
            edges,
        }
    }
}

/// A graph's structure and figures at one moment: see [`Graph::snapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphSnapshot {
    /// The nodes, in the order they were built.
    pub nodes: Vec<NodeSnapshot>,
    /// Each connection, from upstream to downstream, in connection order.
    pub edges: Vec<EdgeSnapshot>,
}

/// One connection of a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct EdgeSnapshot {
    /// The upstream node's id.
    pub from: u64,
    /// The downstream node's id.
    pub to: u64,
}

/// One node's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeSnapshot {
    /// Unique in the process ([`GraphNode::node_id`](crate::GraphNode::node_id)).
    pub id: u64,
    /// Its name: the one given with `named`, else the operator and function (`map: inc`).
    pub name: String,
    /// The operator (`map`, `buffer`, `stream` for a source, …).
    pub operator: &'static str,
    /// Its shape in [`visualize`](crate::Stream::visualize)'s drawing (a Graphviz shape).
    pub shape: &'static str,
    /// Whether the node counts elements (see [`Stream::enable_metrics`](crate::Stream::enable_metrics)).
    pub metered: bool,
    /// Elements that arrived (for a source: that were emitted into it).
    pub elements_in: u64,
    /// Elements it handed on.
    pub elements_out: u64,
    /// Elements it failed on (a user function's panic or `Err`), counted whether metered or
    /// not.
    pub errors: u64,
    /// Elements that came too late for every event-time window they belong to
    /// ([`Stream::window`](crate::Stream::window)), counted whether metered or not: they went
    /// to the window's late stream (or, with nothing connected to it, to the error stream).
    pub late: u64,
    /// Elements it holds now: queued in a buffer, waiting on a timer, in an asynchronous call.
    pub in_flight: usize,
    /// A moving average of how long its asynchronous calls take, for `map_async`, `then`,
    /// `sink_async` and the stages a thread pool runs; `None` for other nodes.
    pub latency: Option<Duration>,
    /// Whether it has reached end of stream.
    pub closed: bool,
}

impl NodeSnapshot {
    fn of(node: &NodeInfo) -> Self {
        let m = node.meter.counts();
        let latency = m.latency_ns.load(Ordering::Relaxed);
        NodeSnapshot {
            id: node.id,
            name: node.display_name().to_string(),
            operator: node.kind.op,
            shape: node.kind.shape.dot(),
            metered: node.meter.is_on(),
            elements_in: m.input.load(Ordering::Relaxed),
            elements_out: m.output.load(Ordering::Relaxed),
            errors: m.errors.load(Ordering::Relaxed),
            late: m.late.load(Ordering::Relaxed),
            in_flight: node.in_flight(),
            latency: (latency > 0).then(|| Duration::from_nanos(latency)),
            closed: node.is_closed(),
        }
    }
}
