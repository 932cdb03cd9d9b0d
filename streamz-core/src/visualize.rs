//! Graphviz DOT output for [`Stream::visualize`](crate::Stream::visualize).

use std::fmt::Write;

use crate::node::{NodeArc, NodeInfo, Shape};
use crate::topology::{Direction, reachable};

/// The graph around `start` as DOT text: one statement per node, then one per edge.
pub(crate) fn to_dot(start: &NodeArc) -> String {
    let mut nodes = reachable(start, Direction::Both);
    nodes.sort_by_key(|n| n.id);
    let mut dot = String::from("digraph {\n  graph [rankdir=LR]\n");
    for node in &nodes {
        let shape = node.kind.shape;
        let orientation = if shape == Shape::Triangle { 270 } else { 0 };
        let _ = writeln!(
            dot,
            "  n{} [label=\"{}\" shape={} orientation={} style=\"rounded,filled\" fillcolor=white]",
            node.id,
            label(node),
            shape.dot(),
            orientation,
        );
    }
    for node in &nodes {
        let downs = node.downstreams();
        let numbered = downs.len() > 1;
        for (i, down) in downs.iter().enumerate() {
            if numbered {
                let _ = writeln!(dot, "  n{} -> n{} [label={i}]", node.id, down.id);
            } else {
                let _ = writeln!(dot, "  n{} -> n{}", node.id, down.id);
            }
        }
    }
    dot.push_str("}\n");
    dot
}

/// The node's label, escaped for a DOT string: its name over its operator for a named node,
/// `op: func` or `op` otherwise.
fn label(node: &NodeInfo) -> String {
    let op = node.kind.op;
    match (node.given_name(), node.func()) {
        (Some(name), _) if name.as_ref() != op => format!("{}\\n{op}", escape(&name)),
        (Some(name), _) => escape(&name),
        (None, Some(func)) => format!("{op}: {}", escape(func)),
        (None, None) => op.to_owned(),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}
