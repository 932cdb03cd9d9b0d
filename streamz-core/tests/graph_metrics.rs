//! Per-node metrics and graph snapshots.

use std::time::Duration;

use streamz_core::{Executor, GraphNode, Stream, VirtualExecutor};

fn node(snapshot: &streamz_core::GraphSnapshot, id: u64) -> &streamz_core::NodeSnapshot {
    snapshot
        .nodes
        .iter()
        .find(|n| n.id == id)
        .expect("the node is in the graph")
}

#[test]
fn counts_elements_in_and_out_of_every_node() {
    let source = Stream::new();
    let doubled = source.map(|x: u64| x * 2);
    let kept = doubled.filter(|x| x % 3 == 0);
    let sink = kept.sink_to_vec();
    source.enable_metrics();
    for x in 0..10 {
        source.emit_blocking(x).unwrap();
    }
    let snapshot = source.graph().snapshot();
    let figures = |id| {
        let n = node(&snapshot, id);
        (n.operator, n.elements_in, n.elements_out, n.metered)
    };
    assert_eq!(figures(source.node_id()), ("stream", 10, 10, true));
    assert_eq!(figures(doubled.node_id()), ("map", 10, 10, true));
    assert_eq!(figures(kept.node_id()), ("filter", 10, 4, true));
    assert_eq!(snapshot.nodes.len(), 4);
    assert_eq!(sink.to_vec(), vec![0, 6, 12, 18]);
    // the edges, as built
    let edges: Vec<(u64, u64)> = snapshot.edges.iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(
        edges[..2],
        [
            (source.node_id(), doubled.node_id()),
            (doubled.node_id(), kept.node_id())
        ]
    );
}

#[test]
fn metrics_are_off_until_enabled_and_cover_nodes_built_later() {
    let source = Stream::new();
    let a = source.map(|x: u32| x + 1);
    source.emit_blocking(1).unwrap();
    let before = a.graph().snapshot();
    assert!(!node(&before, a.node_id()).metered);
    assert_eq!(node(&before, a.node_id()).elements_in, 0);

    a.enable_metrics(); // from any node of the graph
    let b = a.map(|x| x * 2); // built after
    source.emit_blocking(2).unwrap();
    let after = b.graph().snapshot();
    assert_eq!(node(&after, source.node_id()).elements_in, 1);
    assert_eq!(node(&after, a.node_id()).elements_out, 1);
    assert_eq!(node(&after, b.node_id()).elements_in, 1);
    assert!(node(&after, b.node_id()).metered);
}

#[test]
fn a_join_counts_what_comes_in_from_each_side() {
    let (left, right) = (Stream::new(), Stream::new());
    left.enable_metrics();
    right.enable_metrics();
    let zipped = left.zip(&right);
    let _out = zipped.sink_to_vec();
    for x in 0..3u8 {
        left.emit_blocking(x).unwrap();
    }
    right.emit_blocking('a').unwrap();
    let snapshot = zipped.graph().snapshot();
    let zip = node(&snapshot, zipped.node_id());
    assert_eq!((zip.elements_in, zip.elements_out), (4, 1));
    assert_eq!(snapshot.nodes.len(), 4, "both sources, zip and the sink");
}

#[test]
fn errors_are_counted_at_the_failing_node_even_without_metrics() {
    let source = Stream::new();
    let divided = source.map(|x: i32| 10 / x);
    let _out = divided.sink_to_vec();
    for x in [1, 0, 2, 0] {
        let _ = source.emit_blocking(x);
    }
    let snapshot = source.graph().snapshot();
    assert_eq!(node(&snapshot, divided.node_id()).errors, 2);
    assert_eq!(node(&snapshot, source.node_id()).errors, 0);
}

#[test]
fn buffered_and_async_nodes_show_what_they_hold_and_how_long_calls_take() {
    let executor = VirtualExecutor::new();
    let source = Stream::with_executor(executor.clone());
    source.enable_metrics();
    let clock = executor.clone();
    let slow = source.buffer(4).map_async(1, move |x: u64| {
        let clock = clock.clone();
        async move {
            clock.clock().sleep(Duration::from_millis(10)).await;
            x
        }
    });
    let _out = slow.sink_to_vec();
    let buffered = slow.graph().snapshot().nodes[1].id;
    executor.block_on(async {
        for x in 0..4 {
            drop(source.emit(x)); // queued; the Emit detaches
        }
    });
    executor.run_until_stalled();
    let snapshot = source.graph().snapshot();
    let held: usize = snapshot.nodes.iter().map(|n| n.in_flight).sum();
    assert!(
        held >= 3,
        "elements wait in the buffer and the call: {snapshot:#?}"
    );
    assert_eq!(node(&snapshot, buffered).operator, "buffer");
    executor.advance(Duration::from_millis(100));
    let snapshot = source.graph().snapshot();
    assert_eq!(snapshot.nodes.iter().map(|n| n.in_flight).sum::<usize>(), 0);
    let call = node(&snapshot, slow.node_id());
    assert_eq!((call.elements_in, call.elements_out), (4, 4));
    assert!(call.latency.is_some(), "{call:?}");
    assert!(node(&snapshot, source.node_id()).latency.is_none());
}

#[test]
fn conversions_are_shown_as_part_of_their_stage() {
    let source = Stream::new();
    // a stage the user wrote, then two conversions a library added
    let window = source.partition(2);
    let sums = window
        .map(|w: Vec<u64>| w.iter().sum::<u64>())
        .part_of_upstream()
        .map(|x| x * 10)
        .part_of_upstream()
        .named("partition 2");
    let sink = sums.sink_to_vec();
    // a conversion whose upstream has another downstream is shown as a node of its own
    let shared = source.map(|x: u64| x + 1);
    let first = shared.map(|x| x * 2).part_of_upstream();
    let _second = shared.sink_to_vec();
    source.enable_metrics();
    for x in 0..5 {
        source.emit_blocking(x).unwrap();
    }
    let snapshot = source.graph().snapshot();
    let stage = node(&snapshot, sums.node_id());
    assert_eq!(
        (
            stage.name.as_str(),
            stage.operator,
            stage.elements_in,
            stage.elements_out
        ),
        ("partition 2", "partition", 5, 2)
    );
    assert!(!snapshot.nodes.iter().any(|n| n.id == window.node_id()));
    assert!(snapshot.nodes.iter().any(|n| n.id == first.node_id()));
    // source, the stage, its sink, `shared`, `first`, `shared`'s sink
    assert_eq!(snapshot.nodes.len(), 6);
    let edges: Vec<(u64, u64)> = snapshot.edges.iter().map(|e| (e.from, e.to)).collect();
    assert!(edges.contains(&(source.node_id(), sums.node_id())));
    assert!(edges.contains(&(sums.node_id(), sink.node_id())));
    assert!(edges.contains(&(shared.node_id(), first.node_id())));
    assert_eq!(sink.to_vec(), vec![10, 50]);
}
