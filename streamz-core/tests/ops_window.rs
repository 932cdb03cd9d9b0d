//! sliding_window, partition, partition_by, partition_unique, collect.

mod common;

use common::run;

use serde_json::json;
use streamz_core::{Keep, Stream};

#[test]
fn sliding_window_partial_then_full() {
    let windows = run(|s| s.sliding_window(2, true), 0..10);
    assert_eq!(windows[..3], [vec![0], vec![0, 1], vec![1, 2]]);
    assert_eq!(windows.last(), Some(&vec![8, 9]));
    assert_eq!(windows.len(), 10);

    assert_eq!(
        run(|s| s.sliding_window(3, true), 0..5),
        vec![
            vec![0],
            vec![0, 1],
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4]
        ]
    );
    let full = run(|s| s.sliding_window(2, false), 0..10);
    assert_eq!(full.first(), Some(&vec![0, 1]));
    assert_eq!(full.len(), 9);
    assert_eq!(
        run(|s| s.sliding_window(1, true), 0..3),
        vec![vec![0], vec![1], vec![2]]
    );
    assert_eq!(
        run(|s| s.sliding_window(5, false), 0..3),
        Vec::<Vec<i32>>::new()
    );
}

#[test]
fn partition_batches_and_flushes_the_rest_on_close() {
    let s = Stream::new();
    let out = s.partition(3).sink_to_vec();
    for x in 0..10 {
        s.emit_blocking(x).unwrap();
    }
    assert_eq!(
        out.to_vec(),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8]]
    );
    assert!(!out.is_closed());
    s.close().wait().unwrap();
    assert_eq!(out.to_vec().last(), Some(&vec![9]));
    assert!(out.is_closed());

    assert_eq!(run(|s| s.partition(2), 0..4), vec![vec![0, 1], vec![2, 3]]);
    assert_eq!(run(|s| s.partition(1), 0..2), vec![vec![0], vec![1]]);
}

#[test]
fn partition_by_key_emits_in_completion_order() {
    assert_eq!(
        run(|s| s.partition_by(2, |x: &i32| x % 2), 0..10),
        vec![vec![0, 2], vec![1, 3], vec![4, 6], vec![5, 7]]
    );
    // the original's test_partition_key: key=0 on (i % 2, i)
    assert_eq!(
        run(
            |s| s.partition_by(2, |x: &(i32, i32)| x.0),
            (0..4).map(|i| (i % 2, i))
        ),
        vec![vec![(0, 0), (0, 2)], vec![(1, 1), (1, 3)]]
    );

    // at close, each key's remainder, in the order the batches started
    let s = Stream::new();
    let out = s.partition_by(3, |x: &i32| x % 2).sink_to_vec();
    for x in [1, 0, 2, 3] {
        s.emit_blocking(x).unwrap();
    }
    s.close().wait().unwrap();
    assert_eq!(out.to_vec(), vec![vec![1, 3], vec![0, 2]]);
}

#[test]
fn partition_unique_first_and_last() {
    let input = [1, 2, 1, 3, 1, 3, 3, 2];
    assert_eq!(
        run(|s| s.partition_unique(3, Keep::First), input),
        vec![vec![1, 2, 3], vec![1, 3, 2]]
    );
    assert_eq!(
        run(|s| s.partition_unique(3, Keep::Last), input),
        vec![vec![2, 1, 3], vec![1, 3, 2]]
    );
    let words = ["f", "fo", "f", "foo", "f", "foo", "foo", "fo"];
    assert_eq!(
        run(
            |s| s.partition_unique_by(3, Keep::Last, |w: &&str| w.len()),
            words
        ),
        vec![vec!["fo", "f", "foo"], vec!["f", "foo", "fo"]]
    );
    let records = [
        json!({"id": 0, "foo": "bar"}),
        json!({"id": 0, "foo": "baz"}),
        json!({"id": 1, "foo": "bat"}),
    ];
    let by_id = |r: &serde_json::Value| r["id"].as_i64();
    assert_eq!(
        run(
            |s| s.partition_unique_by(2, Keep::First, by_id),
            records.clone()
        ),
        vec![vec![records[0].clone(), records[2].clone()]]
    );
    assert_eq!(
        run(
            |s| s.partition_unique_by(2, Keep::Last, by_id),
            records.clone()
        ),
        vec![vec![records[1].clone(), records[2].clone()]]
    );
}

#[test]
fn partition_unique_flushes_on_close() {
    let s = Stream::new();
    let out = s.partition_unique(3, Keep::First).sink_to_vec();
    for x in [1, 1, 2] {
        s.emit_blocking(x).unwrap();
    }
    assert!(out.is_empty());
    s.close().wait().unwrap();
    assert_eq!(out.to_vec(), vec![vec![1, 2]]);
}

#[test]
fn collect_flushes_on_demand_and_on_close() {
    // the original's test_collect
    let s1 = Stream::new();
    let s2 = Stream::<()>::new();
    let collector = s1.collect();
    let out = collector.sink_to_vec();
    let flusher = collector.clone();
    s2.sink(move |()| flusher.flush().wait().unwrap());

    s1.emit_blocking(1).unwrap();
    s1.emit_blocking(2).unwrap();
    assert!(out.is_empty());
    assert_eq!(collector.len(), 2);
    s2.emit_blocking(()).unwrap();
    assert_eq!(out.to_vec(), vec![vec![1, 2]]);
    s2.emit_blocking(()).unwrap();
    assert_eq!(out.to_vec(), vec![vec![1, 2], vec![]]);
    s1.emit_blocking(3).unwrap();
    s2.emit_blocking(()).unwrap();
    assert_eq!(out.to_vec(), vec![vec![1, 2], vec![], vec![3]]);

    s1.emit_blocking(4).unwrap();
    s1.close().wait().unwrap();
    assert_eq!(out.to_vec().last(), Some(&vec![4]));
    assert!(collector.is_empty());
}

#[test]
#[should_panic(expected = "n must be at least 1")]
fn partition_rejects_zero() {
    let _ = Stream::<i32>::new().partition(0);
}
