//! Acknowledgements through a cluster: an element is done only once its result is back from
//! the workers and handled.

use std::sync::mpsc;
use std::time::Duration;

use streamz_core::{Ack, Stream};
use streamz_timely::{Cluster, ClusterConfig, ScatterExt};
use streamz_tokio::TokioExecutor;

#[test]
fn an_acknowledgement_waits_for_the_cluster() {
    let cluster = Cluster::start(ClusterConfig::new().workers(2)).unwrap();
    let executor = TokioExecutor::background().unwrap();
    let source = Stream::with_executor(executor.clone());
    let out = source
        .scatter(&cluster)
        .map(|x: u32| {
            std::thread::sleep(Duration::from_millis(5));
            x * 10
        })
        .buffer(4)
        .gather()
        .sink_to_vec();
    let (tx, rx) = mpsc::channel();
    for x in 0..8u32 {
        let tx = tx.clone();
        let ack = Ack::new(move |r| tx.send((x, r.is_ok())).unwrap());
        source.emit_acked(x, ack).wait().unwrap();
    }
    // the last element is still on a worker: its emit returned, it is not done
    let early: Vec<_> = rx.try_iter().collect();
    assert!(!early.contains(&(7, true)), "{early:?}");
    executor.block_on(source.flush());
    let mut done: Vec<_> = early.into_iter().chain(rx.try_iter()).collect();
    done.sort_unstable();
    assert_eq!(done, (0..8).map(|x| (x, true)).collect::<Vec<_>>());
    assert_eq!(out.to_vec(), (0..8).map(|x| x * 10).collect::<Vec<_>>());
    cluster.finish().unwrap();
}
