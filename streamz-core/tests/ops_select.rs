//! unique and slice.

mod common;

use common::run;

use streamz_core::Stream;

#[test]
fn unique_remembers_everything_without_maxsize() {
    assert_eq!(run(|s| s.unique(None), [1, 2, 1]), vec![1, 2]);
    assert_eq!(
        run(|s| s.unique(None), Vec::<i32>::new()),
        Vec::<i32>::new()
    );
}

#[test]
fn unique_with_key_and_maxsize_one_drops_consecutive_duplicates() {
    // the original's test_unique_key
    assert_eq!(
        run(|s| s.unique_by(Some(1), |x: &i32| x % 2), [1, 2, 4, 6, 3]),
        vec![1, 2, 3]
    );
    assert_eq!(
        run(|s| s.unique(Some(1)), [1, 1, 2, 2, 1, 3, 3]),
        vec![1, 2, 1, 3]
    );
}

#[test]
fn unique_history_is_least_recently_seen() {
    // the original's test_unique_history, step by step
    let s = Stream::new();
    let out = s.unique(Some(2)).sink_to_vec();
    let feed = |xs: &[i32]| {
        for &x in xs {
            s.emit_blocking(x).unwrap();
        }
    };
    feed(&[1, 2, 1, 2, 1, 2]);
    assert_eq!(out.to_vec(), vec![1, 2]);
    feed(&[3, 2]);
    assert_eq!(out.to_vec(), vec![1, 2, 3]);
    feed(&[1]);
    assert_eq!(out.to_vec(), vec![1, 2, 3, 1]);
    feed(&[2, 3, 2]);
    assert_eq!(out.to_vec(), vec![1, 2, 3, 1, 3]);
}

#[test]
#[should_panic(expected = "maxsize must be at least 1")]
fn unique_rejects_maxsize_zero() {
    let _ = Stream::<i32>::new().unique(Some(0));
}

#[test]
fn slice_follows_islice() {
    let all: Vec<usize> = (0..6).collect();
    assert_eq!(run(|s| s.slice(0, None, 1), all.clone()), all);
    assert_eq!(
        run(|s| s.slice(1, None, 1), all.clone()),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        run(|s| s.slice(0, Some(4), 1), all.clone()),
        vec![0, 1, 2, 3]
    );
    assert_eq!(run(|s| s.slice(0, Some(4), 2), all.clone()), vec![0, 2]);
    assert_eq!(
        run(|s| s.slice(3, Some(1), 1), all.clone()),
        Vec::<usize>::new()
    );
    // deliberate differences: the step counts from start, and stop=0 emits nothing
    assert_eq!(
        run(|s| s.slice(1, None, 2), (0..8).collect::<Vec<_>>()),
        vec![1, 3, 5, 7]
    );
    assert_eq!(
        run(|s| s.slice(0, Some(0), 1), all.clone()),
        Vec::<usize>::new()
    );
    assert_eq!(run(|s| s.slice(2, Some(100), 3), all), vec![2, 5]);
}

#[test]
#[should_panic(expected = "step must be at least 1")]
fn slice_rejects_step_zero() {
    let _ = Stream::<i32>::new().slice(0, None, 0);
}
