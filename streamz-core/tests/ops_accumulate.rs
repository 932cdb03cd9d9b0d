//! accumulate in all its forms, and frequencies.

mod common;

use common::feed;

use std::collections::HashMap;

use streamz_core::{ErrorKind, Stream};

#[test]
fn without_start_the_first_element_passes_unchanged() {
    let s = Stream::new();
    let out = s.accumulate(|a: &i32, x| a + x).sink_to_vec();
    feed(&s, 0..5);
    assert_eq!(out.to_vec(), vec![0, 1, 3, 6, 10]);

    let called = Stream::new();
    let firsts = called
        .accumulate(|_: &i32, _| panic!("not on the first element"))
        .sink_to_vec();
    called.emit_blocking(7).unwrap();
    assert_eq!(firsts.to_vec(), vec![7]);
}

#[test]
fn with_start_the_function_runs_on_the_first_element() {
    let s = Stream::new();
    let out = s.accumulate_from(0, |a: &i32, x: i32| a + x).sink_to_vec();
    feed(&s, 1..5);
    assert_eq!(out.to_vec(), vec![1, 3, 6, 10]);

    // the state may be of another type
    let words = Stream::new();
    let text = words
        .accumulate_from(String::new(), |acc: &String, w: &str| format!("{acc}{w}"))
        .sink_to_vec();
    feed(&words, ["a", "b"]);
    assert_eq!(text.to_vec(), vec!["a", "ab"]);
}

#[test]
fn returns_state() {
    let s = Stream::new();
    let out = s
        .accumulate_returns_state(Some(0), |a: &i32, x: i32| (a + x, a * x))
        .sink_to_vec();
    feed(&s, 1..4);
    assert_eq!(out.to_vec(), vec![0, 2, 9]);

    // without start, the first element is emitted raw (the original's verified [1, -2, -3])
    let raw = Stream::new();
    let out = raw
        .accumulate_returns_state(None, |a: &i32, x: i32| (a + x, -x))
        .sink_to_vec();
    feed(&raw, 1..4);
    assert_eq!(out.to_vec(), vec![1, -2, -3]);

    // the original's test_scan: f(acc, i) = (acc + i, acc + i) over 0..2 gives [0, 1, 3]
    let scan = Stream::new();
    let out = scan
        .accumulate_returns_state(None, |a: &i32, x: i32| (a + x, a + x))
        .sink_to_vec();
    feed(&scan, 0..3);
    assert_eq!(out.to_vec(), vec![0, 1, 3]);
}

#[test]
fn with_state() {
    let s = Stream::new();
    let out = s
        .accumulate_with_state(None, |a: &i32, x: i32| {
            let n = a + x;
            (n, n)
        })
        .sink_to_vec();
    feed(&s, 1..5);
    assert_eq!(out.to_vec(), vec![(1, 1), (3, 3), (6, 6), (10, 10)]);

    let from = Stream::new();
    let out = from
        .accumulate_with_state(Some(100), |a: &i32, x: i32| (a + x, a + x))
        .sink_to_vec();
    feed(&from, 1..4);
    assert_eq!(out.to_vec(), vec![(101, 101), (103, 103), (106, 106)]);

    let both = Stream::new();
    let out = both
        .accumulate_with_state(Some(0), |a: &i32, x: i32| (a + x, a * x))
        .sink_to_vec();
    feed(&both, 1..4);
    assert_eq!(out.to_vec(), vec![(1, 0), (3, 2), (6, 9)]);
}

#[test]
fn a_failure_leaves_the_state_unchanged() {
    // the original's test_accumulate_errors_raises: x / y with a zero
    let s = Stream::new();
    let out = s
        .accumulate(|a: &i32, x: i32| a.checked_div(x).expect("division by zero"))
        .named("divide")
        .sink_to_vec();
    s.emit_blocking(100).unwrap();
    let err = s.emit_blocking(0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert!(err.to_string().contains("division by zero"), "{err}");
    assert!(err.to_string().contains("'divide'"), "{err}");
    s.emit_blocking(5).unwrap();
    assert_eq!(out.to_vec(), vec![100, 20]);
}

#[test]
fn frequencies_emit_a_fresh_map_each_time() {
    let s = Stream::new();
    let out = s.frequencies().sink_to_vec();
    feed(&s, "abca".chars());
    let counts = out.to_vec();
    assert_eq!(counts.len(), 4);
    assert_eq!(counts[0], HashMap::from([('a', 1)]));
    assert_eq!(counts[2], HashMap::from([('a', 1), ('b', 1), ('c', 1)]));
    assert_eq!(counts[3], HashMap::from([('a', 2), ('b', 1), ('c', 1)]));
}
