//! Watermarks across the cluster: elements go to the workers and back, the watermark stays in
//! process 0's graph and waits behind them, so a window after `gather` closes when the
//! watermark passes, never before the cluster's results are in.

use streamz_core::{EventTime, Stream, Watermarks, Window};
use streamz_timely::{Cluster, ClusterConfig, ScatterExt};

#[test]
fn the_watermark_crosses_the_cluster_behind_its_elements() {
    let cluster = Cluster::start(ClusterConfig::new().workers(2)).unwrap();
    let executor = streamz_tokio::TokioExecutor::background().unwrap();
    let source: Stream<(u32, i64)> = Stream::with_executor(executor.clone());
    let at = |x: &(u32, i64)| EventTime::from_secs(x.1);
    let (windows, late) = source
        .watermarks(at, Watermarks::ascending())
        .scatter(&cluster)
        .map(|(k, t): (u32, i64)| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            (k * 10, t)
        })
        .buffer(8)
        .gather()
        .window(Window::tumbling("10s"), at)
        .fold(0u32, |sum, x| *sum += x.0);
    let sums = windows
        .map(|w| (w.start.as_millis() / 1000, w.value))
        .sink_to_vec();
    let late = late.sink_to_vec();
    for t in 0..40i64 {
        source.emit_blocking((1, t)).unwrap();
    }
    executor.block_on(source.flush());
    let before_close = sums.to_vec();
    executor.block_on(source.close()).unwrap();
    cluster.finish().unwrap();
    assert!(late.to_vec().is_empty(), "{:?}", late.to_vec());
    assert_eq!(before_close, vec![(0, 100), (10, 100), (20, 100)]);
    assert_eq!(sums.to_vec().len(), 4);
}
