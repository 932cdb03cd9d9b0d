//! The offset tracker's bound and rebalances (its positions are held to a model in
//! `streamz-tests`' `models`).

use std::sync::Arc;
use std::time::Duration;

use streamz_core::OffsetTracker;

#[test]
fn begin_waits_for_room_and_a_completion_makes_it() {
    let offsets = Arc::new(OffsetTracker::new(2));
    futures_executor::block_on(offsets.begin(0, 0));
    futures_executor::block_on(offsets.begin(0, 1));
    assert!(!offsets.try_begin(1, 0), "the bound is across partitions");
    let waiting = {
        let offsets = offsets.clone();
        std::thread::spawn(move || futures_executor::block_on(offsets.begin(1, 0)))
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !waiting.is_finished(),
        "begin must wait while two are outstanding"
    );
    assert_eq!(offsets.complete(&0, 1), None);
    waiting.join().unwrap();
    assert_eq!(offsets.outstanding(), 2);
}

#[test]
fn a_revoked_partition_frees_its_room_and_says_where_it_stood() {
    let offsets = OffsetTracker::new(3);
    for o in 5..8 {
        assert!(offsets.try_begin("a", o));
    }
    assert_eq!(offsets.complete(&"a", 5), Some(6));
    assert_eq!(offsets.revoke(&"a"), Some(6));
    assert_eq!(offsets.outstanding(), 0);
    // completions of its records after the revoke do nothing
    assert_eq!(offsets.complete(&"a", 6), None);
    assert!(
        offsets.try_begin("a", 100),
        "assigned again, it starts afresh"
    );
    assert_eq!(offsets.complete(&"a", 100), Some(101));
}

#[test]
#[should_panic(expected = "a partition is read in order")]
fn offsets_go_forward_within_a_partition() {
    let offsets = OffsetTracker::new(4);
    assert!(offsets.try_begin(0, 3));
    offsets.try_begin(0, 2);
}
