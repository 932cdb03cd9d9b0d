//! The pool's durable fold in a graph's checkpoints: a run stopped after a checkpoint taken
//! while elements were on the pool, and one started from the store, end with the total of
//! one run never stopped; the fold without `durable` is reported as not durable.

use streamz_core::Stream;
use streamz_rayon::{Pool, ScatterExt};
use streamz_store::RedbStore;

/// Emits `from..to` (resuming at the feed's position), checkpointing every 7 elements; a
/// last checkpoint if `finish`. Returns the outputs.
fn run(path: &std::path::Path, to: u64, finish: bool) -> (Vec<u64>, Option<u64>) {
    let pool = Pool::new(2).unwrap();
    let source = Stream::<u64>::with_executor(pool.clone());
    let totals = source
        .scatter(&pool)
        .map(|x: u64| x * 2)
        .buffer(8)
        .durable()
        .accumulate_from(0u64, |total: &u64, x: u64| total + x)
        .named("total")
        .gather()
        .sink_to_vec();
    let (checkpoints, feed) = source
        .checkpoint::<u64>(RedbStore::open(path).unwrap(), "1h")
        .unwrap();
    assert!(checkpoints.not_durable().is_empty());
    let from = feed.position().unwrap_or(0);
    let restored = checkpoints.restored().map(|c| c.id);
    futures_executor::block_on(async move {
        for x in from..to {
            feed.emit(x, x + 1).await.unwrap();
            if x % 7 == 0 {
                // elements are on the pool now: the checkpoint waits for their steps
                checkpoints.checkpoint_now().await.unwrap();
            }
        }
        if finish {
            source.flush().await;
            checkpoints.finish().await.unwrap();
        }
    });
    (totals.to_vec(), restored)
}

#[test]
fn a_durable_fold_on_the_pool_resumes_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // stopped without a last checkpoint (and without waiting for the pool): the one after
    // 56 is the last, 0..=56 counted
    let (first, restored) = run(&path, 60, false);
    assert_eq!(restored, None);
    assert!(first.len() >= 57, "{}", first.len());
    let (second, restored) = run(&path, 100, true);
    assert!(restored.is_some());
    // it went on from the element after 56, with the total of 0..=56
    let total_upto = |x: u64| (0..=x).map(|v| v * 2).sum::<u64>();
    assert_eq!(first[56], total_upto(56));
    assert_eq!(second.first(), Some(&total_upto(57)));
    assert_eq!(second.last(), Some(&total_upto(99)));
    assert_eq!(second.len(), 43);
}

#[test]
fn the_plain_fold_on_the_pool_is_not_durable() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(1).unwrap();
    let source = Stream::<u64>::with_executor(pool.clone());
    let _ = source
        .scatter(&pool)
        .accumulate(|a: &u64, x: u64| a + x)
        .gather()
        .sink_to_vec();
    let (checkpoints, _feed) = source
        .checkpoint::<u64>(RedbStore::open(dir.path().join("s.db")).unwrap(), "1h")
        .unwrap();
    assert_eq!(checkpoints.not_durable().len(), 1);
}
