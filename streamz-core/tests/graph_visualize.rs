//! visualize() gives valid DOT with the graph's structure.

use graphviz_rust::dot_structures::{Edge, EdgeTy, Graph, Id, Node, NodeId, Stmt, Vertex};
use streamz_core::{Stream, ZipInput};

fn id_text(id: &Id) -> String {
    match id {
        Id::Html(s) | Id::Escaped(s) | Id::Plain(s) | Id::Anonymous(s) => s.clone(),
    }
}

/// A node statement: its id and its attributes.
type DotNode = (String, Vec<(String, String)>);

fn parse(dot: &str) -> (Vec<DotNode>, Vec<(String, String)>) {
    let graph = graphviz_rust::parse(dot).unwrap_or_else(|e| panic!("invalid DOT: {e}\n{dot}"));
    let Graph::DiGraph { stmts, .. } = graph else {
        panic!("not a digraph: {dot}")
    };
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for stmt in stmts {
        match stmt {
            Stmt::Node(Node {
                id: NodeId(id, _),
                attributes,
            }) => nodes.push((
                id_text(&id),
                attributes
                    .iter()
                    .map(|a| (id_text(&a.0), id_text(&a.1)))
                    .collect(),
            )),
            Stmt::Edge(Edge {
                ty: EdgeTy::Pair(Vertex::N(NodeId(a, _)), Vertex::N(NodeId(b, _))),
                ..
            }) => edges.push((id_text(&a), id_text(&b))),
            _ => {}
        }
    }
    (nodes, edges)
}

fn attr<'a>(node: &'a DotNode, key: &str) -> &'a str {
    &node.1.iter().find(|(k, _)| k == key).unwrap().1
}

#[test]
fn the_dot_parses_and_has_every_node_and_edge() {
    let a = Stream::<i32>::new().named("source1");
    let b = Stream::<i32>::new().named("source \"two\"");
    let zipped = Stream::zip_all([(&a).into(), ZipInput::Value(0), (&b).into()], 10);
    let mapped = zipped.map(|v| v.iter().sum::<i32>());
    mapped.accumulate(|x: &i32, y| x + y).sink(|_| {});
    a.partition(2);

    // the same graph from any of its nodes
    let dot = mapped.visualize();
    assert_eq!(dot, b.visualize());

    let (nodes, edges) = parse(&dot);
    assert_eq!(nodes.len(), 7, "{dot}");
    assert_eq!(edges.len(), 6, "{dot}");
    let ids: Vec<&String> = nodes.iter().map(|n| &n.0).collect();
    for (from, to) in &edges {
        assert!(
            ids.contains(&from) && ids.contains(&to),
            "edge {from} -> {to} between declared nodes"
        );
    }
    let by_label = |needle: &str| {
        nodes
            .iter()
            .find(|n| attr(n, "label").contains(needle))
            .unwrap_or_else(|| panic!("no node labelled {needle}: {dot}"))
    };
    assert_eq!(attr(by_label("zip"), "shape"), "triangle");
    assert_eq!(attr(by_label("zip"), "orientation"), "270");
    assert_eq!(attr(by_label("accumulate"), "shape"), "box");
    assert_eq!(attr(by_label("partition"), "shape"), "diamond");
    assert_eq!(attr(by_label("sink"), "shape"), "trapezium");
    assert_eq!(attr(by_label("source1"), "shape"), "ellipse");
    assert!(dot.contains(r#"source \"two\""#), "quotes escaped: {dot}");
    // source1 has two downstreams: its edges are numbered
    assert!(
        dot.contains("[label=0]") && dot.contains("[label=1]"),
        "{dot}"
    );
}
