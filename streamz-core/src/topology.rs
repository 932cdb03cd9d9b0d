//! Walking a graph's topology: the nodes reachable from one, for `flush`, `closed`,
//! `visualize` and `Graph::snapshot`.

use crate::node::NodeArc;
use std::collections::HashSet;

/// Which links `reachable` follows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Downstream only.
    Down,
    /// Up and down: the whole connected graph.
    Both,
}

/// Every node reachable from `start` (itself included), in the order first seen.
pub(crate) fn reachable(start: &NodeArc, direction: Direction) -> Vec<NodeArc> {
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let mut todo = vec![start.clone()];
    while let Some(node) = todo.pop() {
        if !seen.insert(node.id) {
            continue;
        }
        todo.extend(node.downstreams().into_iter().rev());
        if direction == Direction::Both {
            todo.extend(node.upstreams());
        }
        order.push(node);
    }
    order
}
