//! Errors are values: a failing user function gives an `Err` from `emit`, naming the node, and
//! the graph keeps working.

use std::sync::{Arc, Mutex};

use streamz_core::{ErrorKind, Stream};

#[test]
fn a_panicking_map_gives_err_naming_the_node_and_the_next_emit_works() {
    let source = Stream::new();
    let out = source
        .map(|x: i32| {
            assert!(x != 0, "cannot invert zero");
            100 / x
        })
        .named("invert")
        .sink_to_vec();

    let err = source.emit_blocking(0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    let node = err.node().expect("the error names its node");
    assert_eq!(node.name(), "invert");
    assert!(err.to_string().contains("'invert'"), "{err}");
    assert!(err.message().contains("cannot invert zero"), "{err:?}");

    source.emit_blocking(4).unwrap();
    assert_eq!(out.to_vec(), vec![25]);
}

#[test]
fn every_branch_receives_the_element_when_one_fails() {
    let source = Stream::new();
    let before = source.map(|x: i32| x * 10).sink_to_vec();
    source.map(|x: i32| 1 / x).named("fails").sink(|_| {});
    let after = source.map(|x: i32| x + 1).sink_to_vec();
    assert!(source.emit_blocking(0).is_err());
    assert_eq!(before.to_vec(), vec![0]);
    assert_eq!(after.to_vec(), vec![1]);
}

#[test]
fn a_panicking_sink_and_filter_are_errors_too() {
    let source = Stream::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    source.filter(|x: &i32| 10 / x > 1).sink(move |x| {
        assert!(x != 5, "five is bad");
        log.lock().unwrap().push(x);
    });
    assert_eq!(
        source.emit_blocking(0).unwrap_err().node().unwrap().name(),
        "filter"
    );
    assert_eq!(
        source.emit_blocking(5).unwrap_err().node().unwrap().name(),
        "sink"
    );
    source.emit_blocking(2).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![2]);
}

#[test]
fn failures_on_several_branches_are_all_reported() {
    let source = Stream::new();
    source.map(|x: i32| 1 / x).named("first");
    source.map(|x: i32| 2 / x).named("second");
    let err = source.emit_blocking(0).unwrap_err();
    assert_eq!(err.node().unwrap().name(), "first");
    assert_eq!(err.others().len(), 1);
    assert_eq!(err.others()[0].node().unwrap().name(), "second");
    assert!(err.to_string().contains("and 1 more failure"), "{err}");
}

#[test]
fn emit_after_close_is_an_error() {
    let source = Stream::<i32>::new().named("numbers");
    let out = source.sink_to_vec();
    source.close().wait().unwrap();
    let err = source.emit_blocking(1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(err.node().unwrap().name(), "numbers");
    assert!(out.is_empty());
}

#[test]
fn errors_come_through_the_emit_future_too() {
    let source = Stream::new();
    source.try_map(|x: i32| if x < 0 { Err("negative") } else { Ok(x) });
    let result = futures_executor::block_on(source.emit(-1));
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Failed);
}
