//! map, try_map, filter, try_filter, remove, starmap, flatten, pluck.

mod common;

use common::feed;

use std::collections::{BTreeMap, HashMap};

use serde_json::json;
use streamz_core::{ErrorKind, Idx, Stream};

#[test]
fn map_and_branches_in_creation_order() {
    // the original's test_basic
    let s = Stream::new();
    let b1 = s.map(|x: i64| x + 1);
    let b2 = s.map(|x: i64| x * 2);
    let c = b1.accumulate(|a: &i64, x| a + x);
    let lc = c.sink_to_vec();
    let lb = b2.sink_to_vec();
    feed(&s, 0..4);
    assert_eq!(lc.to_vec(), vec![1, 3, 6, 10]);
    assert_eq!(lb.to_vec(), vec![0, 2, 4, 6]);
}

#[test]
fn map_may_emit_unit_and_options() {
    let s = Stream::new();
    let out = s.map(|x: i32| (x > 1).then_some(x)).sink_to_vec();
    feed(&s, [1, 2]);
    assert_eq!(out.to_vec(), vec![None, Some(2)]);
}

#[test]
fn delivery_is_depth_first() {
    use std::sync::{Arc, Mutex};
    let log = Arc::new(Mutex::new(Vec::new()));
    let s = Stream::new();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let first = s.map(|x: i32| x);
    first.sink(move |x| l1.lock().unwrap().push(format!("first-a {x}")));
    first.sink(move |x| l2.lock().unwrap().push(format!("first-b {x}")));
    s.sink(move |x| l3.lock().unwrap().push(format!("second {x}")));
    s.emit_blocking(1).unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        vec!["first-a 1", "first-b 1", "second 1"]
    );
}

#[test]
fn filter_and_remove() {
    let s = Stream::new();
    let even = s.filter(|x: &i32| x % 2 == 0).sink_to_vec();
    let odd = s.remove(|x: &i32| x % 2 == 0).sink_to_vec();
    feed(&s, 0..10);
    assert_eq!(even.to_vec(), vec![0, 2, 4, 6, 8]);
    assert_eq!(odd.to_vec(), vec![1, 3, 5, 7, 9]);
}

#[test]
fn filter_on_truthiness_as_in_filter_none() {
    // the original's filter(None) over i % 3: keep the truthy ones
    let s = Stream::new();
    let out = s.filter(|x: &i32| *x != 0).sink_to_vec();
    feed(&s, (0..10).map(|i| i % 3));
    assert_eq!(out.to_vec(), vec![1, 2, 1, 2, 1, 2]);
}

#[test]
fn try_map_and_try_filter_report_errors_and_go_on() {
    let s = Stream::<&str>::new();
    let parsed = s.try_map(|x| x.parse::<i32>()).named("parse").sink_to_vec();
    let positive = s
        .try_filter(|x| x.parse::<i32>().map(|n| n > 0))
        .sink_to_vec();
    feed(&s, ["1", "-2"]);
    let err = s.emit_blocking("x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.node().unwrap().name(), "parse");
    // both fallible nodes failed on "x": the second failure is kept too
    assert_eq!(err.others().len(), 1);
    feed(&s, ["3"]);
    assert_eq!(parsed.to_vec(), vec![1, -2, 3]);
    assert_eq!(positive.to_vec(), vec!["1", "3"]);
}

#[test]
fn starmap_spreads_tuples() {
    let s = Stream::new();
    let two = s.starmap(|a: i32, b: i32| a + b).sink_to_vec();
    s.emit_blocking((1, 10)).unwrap();
    assert_eq!(two.to_vec(), vec![11]);

    let s3 = Stream::new();
    let three = s3
        .starmap(|a: i32, b: &str, c: bool| format!("{a}{b}{c}"))
        .sink_to_vec();
    s3.emit_blocking((1, "-", true)).unwrap();
    assert_eq!(three.to_vec(), vec!["1-true"]);
}

#[test]
fn flatten_one_level_and_empty() {
    let s = Stream::new();
    let out = s.flatten().sink_to_vec();
    feed(&s, [vec![1, 2, 3], vec![4, 5], vec![], vec![6, 7, 8]]);
    assert_eq!(out.to_vec(), (1..=8).collect::<Vec<_>>());

    let nested = Stream::new();
    let one_level = nested.flatten().sink_to_vec();
    nested.emit_blocking(vec![vec![1], vec![2, 3]]).unwrap();
    assert_eq!(one_level.to_vec(), vec![vec![1], vec![2, 3]]);

    let words = Stream::new();
    let chars = words
        .map(|s: &str| s.chars().collect::<Vec<_>>())
        .flatten()
        .sink_to_vec();
    words.emit_blocking("ab").unwrap();
    assert_eq!(chars.to_vec(), vec!['a', 'b']);
}

#[test]
fn pluck_index_and_list_with_missing_index() {
    // the original's test_pluck and test_pluck_list
    let s = Stream::new();
    let one = s.pluck(1).sink_to_vec();
    let pair = s.pluck(vec![0, 2]).named("pick").sink_to_vec();
    s.emit_blocking(vec![1, 2, 3]).unwrap();
    s.emit_blocking(vec![4, 5, 6, 7, 8, 9]).unwrap();
    let err = s.emit_blocking(vec![1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MissingKey);
    assert_eq!(err.node().unwrap().name(), "pluck");
    assert!(err.to_string().contains("no 1"), "{err}");
    assert_eq!(err.others()[0].node().unwrap().name(), "pick");
    assert_eq!(one.to_vec(), vec![2, 5]);
    assert_eq!(pair.to_vec(), vec![vec![1, 3], vec![4, 6]]);
}

#[test]
fn pluck_tuples_arrays_and_maps() {
    let s = Stream::new();
    let first = s.pluck(Idx::<0>).sink_to_vec();
    let third = s.pluck(Idx::<2>).sink_to_vec();
    s.emit_blocking((1, "a", 'x')).unwrap();
    assert_eq!((first.to_vec(), third.to_vec()), (vec![1], vec!['x']));

    let arrays = Stream::new();
    let mid = arrays.pluck(1).sink_to_vec();
    arrays.emit_blocking([7, 8, 9]).unwrap();
    assert_eq!(mid.to_vec(), vec![8]);

    let maps = Stream::<HashMap<String, i32>>::new();
    let xs = maps.pluck("x").sink_to_vec();
    maps.emit_blocking(HashMap::from([("x".to_owned(), 1), ("y".to_owned(), 2)]))
        .unwrap();
    let err = maps.emit_blocking(HashMap::new()).unwrap_err();
    assert!(err.to_string().contains("\"x\""), "{err}");
    assert_eq!(xs.to_vec(), vec![1]);

    let ordered = Stream::<BTreeMap<u8, char>>::new();
    let v = ordered.pluck(2u8).sink_to_vec();
    ordered.emit_blocking(BTreeMap::from([(2, 'b')])).unwrap();
    assert_eq!(v.to_vec(), vec!['b']);
}

#[test]
fn pluck_json_values() {
    let s = Stream::new();
    let x = s.pluck("x").sink_to_vec();
    let by_value = s.pluck(json!(["x", "y"])).sink_to_vec();
    s.emit_blocking(json!({"x": 1, "y": [2]})).unwrap();
    assert_eq!(x.to_vec(), vec![json!(1)]);
    assert_eq!(by_value.to_vec(), vec![json!([1, [2]])]);

    let arrays = Stream::new();
    let second = arrays.pluck(1usize).sink_to_vec();
    let by_number = arrays.pluck(json!(0)).sink_to_vec();
    arrays.emit_blocking(json!(["a", "b"])).unwrap();
    assert!(arrays.emit_blocking(json!({"a": 1})).is_err());
    assert_eq!(second.to_vec(), vec![json!("b")]);
    assert_eq!(by_number.to_vec(), vec![json!("a")]);
}

#[test]
fn function_names_show_in_node_names() {
    fn double(x: i32) -> i32 {
        x * 2
    }
    let s = Stream::new();
    assert_eq!(s.map(double).name(), "map: double");
    assert_eq!(s.map(|x: i32| x).name(), "map");
    assert_eq!(
        s.filter(|_: &i32| true).named("keep all").name(),
        "keep all"
    );
}
