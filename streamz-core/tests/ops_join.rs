//! union, zip, zip_all, combine_latest, zip_latest, connect and disconnect.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};

use streamz_core::{ErrorKind, Stream, ZipInput};

#[test]
fn union_in_arrival_order_and_same_stream_once() {
    let (a, b, c) = (Stream::new(), Stream::new(), Stream::new());
    let out = a.union([&b, &c]).sink_to_vec();
    a.emit_blocking(1).unwrap();
    assert_eq!(out.to_vec(), vec![1]);
    b.emit_blocking(2).unwrap();
    a.emit_blocking(3).unwrap();
    c.emit_blocking(4).unwrap();
    assert_eq!(out.to_vec(), vec![1, 2, 3, 4]);

    let same = a.union([&a]).sink_to_vec();
    a.emit_blocking(5).unwrap();
    assert_eq!(same.to_vec(), vec![5]);
}

#[test]
fn union_closes_when_every_input_has() {
    let (a, b) = (Stream::<i32>::new(), Stream::<i32>::new());
    let out = a.union([&b]).sink_to_vec();
    a.close().wait().unwrap();
    assert!(!out.is_closed());
    b.emit_blocking(1).unwrap();
    b.close().wait().unwrap();
    assert!(out.is_closed());
    assert_eq!(out.to_vec(), vec![1]);
}

#[test]
fn zip_pairs_in_order() {
    let (a, b) = (Stream::new(), Stream::new());
    let out = a.zip(&b).sink_to_vec();
    a.emit_blocking(1).unwrap();
    b.emit_blocking('a').unwrap();
    a.emit_blocking(2).unwrap();
    b.emit_blocking('b').unwrap();
    assert_eq!(out.to_vec(), vec![(1, 'a'), (2, 'b')]);

    let (x, y, z) = (Stream::new(), Stream::new(), Stream::new());
    let triples = Stream::zip_all([(&x).into(), (&y).into(), (&z).into()], 10).sink_to_vec();
    x.emit_blocking(1).unwrap();
    y.emit_blocking(2).unwrap();
    assert!(triples.is_empty());
    z.emit_blocking(3).unwrap();
    assert_eq!(triples.to_vec(), vec![vec![1, 2, 3]]);
}

#[test]
fn zip_splices_literals() {
    let (a, b) = (Stream::new(), Stream::new());
    let out = Stream::zip_all([(&a).into(), ZipInput::Value(123), (&b).into()], 10).sink_to_vec();
    for (sa, sb) in [(1, 2), (4, 5)] {
        a.emit_blocking(sa).unwrap();
        b.emit_blocking(sb).unwrap();
    }
    assert_eq!(out.to_vec(), vec![vec![1, 123, 2], vec![4, 123, 5]]);

    let trailing = Stream::zip_all(
        [
            (&a).into(),
            ZipInput::Value(0),
            (&b).into(),
            ZipInput::Value(99),
        ],
        10,
    )
    .sink_to_vec();
    a.emit_blocking(1).unwrap();
    b.emit_blocking(2).unwrap();
    assert_eq!(trailing.to_vec(), vec![vec![1, 0, 2, 99]]);
}

#[test]
fn zip_with_itself() {
    let a = Stream::new();
    let out = a.zip(&a).sink_to_vec();
    a.emit_blocking(1).unwrap();
    a.emit_blocking(2).unwrap();
    assert_eq!(out.to_vec(), vec![(1, 1), (2, 2)]);
}

#[test]
fn zip_maxsize_refuses_a_blocking_emit_that_would_deadlock() {
    let (a, b) = (Stream::new(), Stream::<char>::new());
    let zipped = a.zip(&b.map(|c| c as i32)).sink_to_vec();
    for x in 0..10 {
        a.emit_blocking(x).unwrap();
    }
    // the 11th would need b to catch up, and b is only fed from this thread
    let err = a.emit_blocking(10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldDeadlock);
    assert_eq!(err.node().unwrap().name(), "zip");
    b.emit_blocking('a').unwrap();
    assert_eq!(zipped.to_vec(), vec![(0, 97)]);
    a.emit_blocking(10).unwrap(); // room again
}

#[test]
fn zip_maxsize_waits_in_emit_until_a_tuple_leaves() {
    let (a, b) = (Stream::new(), Stream::new());
    let out = Stream::zip_all([(&a).into(), (&b).into()], 2).sink_to_vec();
    assert!(a.emit(1).is_ready());
    assert!(a.emit(2).is_ready());
    let mut third = a.emit(3);
    assert!(!third.is_ready());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut third).poll(&mut cx).is_pending());
    b.emit_blocking(10).unwrap();
    assert!(Pin::new(&mut third).poll(&mut cx).is_ready());
    b.emit_blocking(20).unwrap();
    b.emit_blocking(30).unwrap();
    assert_eq!(out.to_vec(), vec![vec![1, 10], vec![2, 20], vec![3, 30]]);
}

#[test]
fn zip_reports_unmatched_elements_at_close() {
    let (a, b) = (Stream::new(), Stream::<i32>::new());
    let _out = a.zip(&b).sink_to_vec();
    a.emit_blocking(1).unwrap();
    a.close().wait().unwrap();
    let err = b.close().wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unflushed);
    assert!(err.to_string().contains("1 unmatched"), "{err}");
}

#[test]
fn combine_latest_waits_for_every_input() {
    let (a, b) = (Stream::new(), Stream::new());
    let out = a.combine_latest(&b).sink_to_vec();
    let all = Stream::combine_latest_all(
        &[
            &a.map(|x: i32| x.to_string()),
            &b.map(|c: char| c.to_string()),
        ],
        Some(&[0, 1]),
    )
    .sink_to_vec();
    a.emit_blocking(1).unwrap();
    a.emit_blocking(2).unwrap();
    b.emit_blocking('a').unwrap();
    a.emit_blocking(3).unwrap();
    b.emit_blocking('b').unwrap();
    assert_eq!(out.to_vec(), vec![(2, 'a'), (3, 'a'), (3, 'b')]);
    assert_eq!(
        all.to_vec(),
        vec![vec!["2", "a"], vec!["3", "a"], vec!["3", "b"]]
    );
}

#[test]
fn combine_latest_emit_on() {
    let (a, b) = (Stream::new(), Stream::new());
    let out = Stream::combine_latest_all(&[&a, &b], Some(&[0])).sink_to_vec();
    for (side, x) in [(0, 1), (1, 10), (0, 2), (0, 3), (1, 20), (0, 4)] {
        [&a, &b][side].emit_blocking(x).unwrap();
    }
    assert_eq!(out.to_vec(), vec![vec![2, 10], vec![3, 10], vec![4, 20]]);

    let (x, y, z) = (Stream::new(), Stream::new(), Stream::new());
    let out = Stream::combine_latest_all(&[&x, &y, &z], Some(&[1])).sink_to_vec();
    for (side, v) in [(0, 1), (1, 2), (2, 3), (1, 4), (0, 5), (2, 6), (1, 7)] {
        [&x, &y, &z][side].emit_blocking(v).unwrap();
    }
    assert_eq!(out.to_vec(), vec![vec![1, 4, 3], vec![5, 7, 6]]);
}

#[test]
fn execution_order_decides_combine_latest() {
    // the original's test_execution_order: which pluck was created first matters
    fn run(b_first: bool) -> Vec<(i32, &'static str)> {
        let s = Stream::new();
        let (a, b) = if b_first {
            let b = s.pluck(streamz_core::Idx::<1>);
            (s.pluck(streamz_core::Idx::<0>), b)
        } else {
            let a = s.pluck(streamz_core::Idx::<0>);
            (a, s.pluck(streamz_core::Idx::<1>))
        };
        let out =
            Stream::combine_latest_all(&[&a.map(|x| (x, "")), &b.map(|c| (0, c))], Some(&[0]))
                .map(|v| (v[0].0, v[1].1))
                .sink_to_vec();
        for item in [(1, "red"), (2, "blue"), (3, "green")] {
            s.emit_blocking(item).unwrap();
        }
        out.to_vec()
    }
    assert_eq!(run(true), vec![(1, "red"), (2, "blue"), (3, "green")]);
    assert_eq!(run(false), vec![(2, "red"), (3, "blue")]);
}

#[test]
fn zip_latest_is_lossless_on_the_first_input() {
    let (a, b) = (Stream::new(), Stream::new());
    let out = a.zip_latest(&b).sink_to_vec();
    a.emit_blocking(1).unwrap();
    a.emit_blocking(2).unwrap();
    b.emit_blocking('a').unwrap();
    b.emit_blocking('b').unwrap();
    a.emit_blocking(3).unwrap();
    assert_eq!(out.to_vec(), vec![(1, 'a'), (2, 'a'), (3, 'b')]);

    let (a, b) = (Stream::new(), Stream::new());
    let out = a.zip_latest(&b).sink_to_vec();
    b.emit_blocking('a').unwrap();
    for x in 1..4 {
        a.emit_blocking(x).unwrap();
    }
    b.emit_blocking('b').unwrap();
    a.emit_blocking(4).unwrap();
    assert_eq!(out.to_vec(), vec![(1, 'a'), (2, 'a'), (3, 'a'), (4, 'b')]);
}

#[test]
fn triple_zip_latest() {
    let (s1, s2, s3) = (Stream::new(), Stream::new(), Stream::new());
    let out = Stream::zip_latest_all(&s1, &[&s2, &s3]).sink_to_vec();
    for (side, v) in [
        (0, "1"),
        (1, "I"),
        (1, "II"),
        (0, "2"),
        (1, "III"),
        (2, "a"),
        (2, "b"),
        (0, "3"),
    ] {
        [&s1, &s2, &s3][side].emit_blocking(v).unwrap();
    }
    assert_eq!(
        out.to_vec(),
        vec![
            vec!["1", "III", "a"],
            vec!["2", "III", "a"],
            vec!["3", "III", "b"]
        ]
    );
}

#[test]
fn connect_and_disconnect() {
    // test_connect
    let up = Stream::new();
    let down = Stream::new();
    let out = down.map(|x: i32| x + 1).sink_to_vec();
    up.connect(&down);
    up.emit_blocking(2).unwrap();
    up.emit_blocking(4).unwrap();
    assert_eq!(out.to_vec(), vec![3, 5]);

    // test_multi_connect
    let (s0, s1) = (Stream::new(), Stream::new());
    let joined = s0.union([&s1]);
    let out = joined.map(|x: i32| x + 1).sink_to_vec();
    let up = Stream::new();
    up.connect(&joined);
    up.emit_blocking(2).unwrap();
    assert_eq!(out.to_vec(), vec![3]);

    // test_disconnect
    let up = Stream::new();
    let down = Stream::<i32>::new();
    let out = down.sink_to_vec();
    up.emit_blocking(1).unwrap();
    up.connect(&down);
    up.connect(&down); // a second connect changes nothing
    up.emit_blocking(2).unwrap();
    up.emit_blocking(3).unwrap();
    assert!(up.disconnect(&down));
    assert!(!up.disconnect(&down));
    up.emit_blocking(4).unwrap();
    assert_eq!(out.to_vec(), vec![2, 3]);

    // test_destroy: disconnect a node built on the stream
    let s = Stream::new();
    let m = s.map(|x: i32| x + 1);
    let out = m.sink_to_vec();
    s.emit_blocking(1).unwrap();
    s.disconnect(&m);
    s.emit_blocking(2).unwrap();
    assert_eq!(out.to_vec(), vec![2]);
}

#[test]
fn connect_and_disconnect_zip_inputs() {
    let (a, b, c) = (Stream::new(), Stream::new(), Stream::new());
    let x = Stream::zip_all([(&a).into(), (&b).into()], 10);
    let out = x.sink_to_vec();
    c.connect(&x);
    a.emit_blocking(1).unwrap();
    b.emit_blocking(1).unwrap();
    assert!(out.is_empty());
    c.emit_blocking(1).unwrap();
    assert_eq!(out.to_vec(), vec![vec![1, 1, 1]]);

    let (a, b, c) = (Stream::new(), Stream::new(), Stream::new());
    let x = Stream::zip_all([(&a).into(), (&b).into(), (&c).into()], 10);
    let out = x.sink_to_vec();
    b.disconnect(&x);
    a.emit_blocking(1).unwrap();
    b.emit_blocking(1).unwrap();
    assert!(out.is_empty());
    c.emit_blocking(1).unwrap();
    assert_eq!(out.to_vec(), vec![vec![1, 1]]);
}

#[test]
fn connect_and_disconnect_combine_latest_inputs() {
    let (a, b, c) = (Stream::new(), Stream::new(), Stream::new());
    let x = Stream::combine_latest_all(&[&a, &b], Some(&[0]));
    let out = x.sink_to_vec();
    c.connect(&x);
    b.emit_blocking(1).unwrap();
    c.emit_blocking(1).unwrap();
    a.emit_blocking(1).unwrap();
    assert_eq!(out.to_vec(), vec![vec![1, 1, 1]]);

    let (a, b, c) = (Stream::new(), Stream::new(), Stream::new());
    let x = Stream::combine_latest_all(&[&a, &b, &c], Some(&[0]));
    let out = x.sink_to_vec();
    c.disconnect(&x);
    b.emit_blocking(1).unwrap();
    c.emit_blocking(1).unwrap();
    a.emit_blocking(1).unwrap();
    assert_eq!(out.to_vec(), vec![vec![1, 1]]);
}

#[test]
#[should_panic(expected = "does not accept connections")]
fn connect_to_an_operator_is_refused() {
    let a = Stream::<i32>::new();
    let m = Stream::<i32>::new().map(|x| x);
    a.connect(&m);
}
