//! A checkpointed Kafka source against a real broker (tansu on 127.0.0.1): runs stopped
//! without their last checkpoint (as a crash leaves them) and started again from the store
//! end with the state of one uninterrupted run, the group committed only what checkpoints
//! held. Skips when there is no `tansu`, unless `STREAMZ_REQUIRE_KAFKA=1` (as in CI).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamz_core::{Checkpoints, Stream};
use streamz_kafka::testing::Broker;
use streamz_kafka::{KafkaCheckpoint, Record, from_kafka};
use streamz_store::RedbStore;
use streamz_tokio::TokioExecutor;
use tokio::sync::Notify;

/// The count and the sum of what was read, and each partition's next offset.
type Total = (u64, u64);

fn value(record: &Record) -> u64 {
    record.value_str().unwrap().parse().unwrap()
}

/// One run: from the store's checkpoint, until `stop_after` records were emitted or all `n`
/// are counted (or `within` has passed); then, if `finish`, a last checkpoint. Returns the last total, what
/// the run restored, its summary's skipped count and the checkpoints taken.
async fn run(
    broker: &Broker,
    store: &std::path::Path,
    n: u64,
    batched: bool,
    stop_after: usize,
    within: Duration,
    finish: bool,
) -> (Option<Total>, Vec<(String, i32, i64)>, u64, u64) {
    let executor = TokioExecutor::current();
    let config = broker.consumer_config("totals");
    let mut builder =
        Checkpoints::builder(RedbStore::open(store).unwrap()).every(Duration::from_millis(25));
    let (count, notify) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let tick = {
        let (count, notify) = (count.clone(), notify.clone());
        move |n: usize| {
            if count.fetch_add(n, Ordering::SeqCst) + n >= stop_after {
                notify.notify_one();
            }
        }
    };
    let (totals, checkpoint, summary) = if batched {
        let stream: Stream<Vec<Record>> = Stream::with_executor(executor).named("batches");
        let checkpoint = KafkaCheckpoint::register(&mut builder, &stream);
        let source = from_kafka(["in"], config)
            .checkpoint(checkpoint.clone())
            .batched(97, Duration::from_millis(20))
            .build_into(&stream, |batch: Vec<Record>| Ok::<_, String>(batch))
            .unwrap();
        let totals = stream
            .map(move |batch: Vec<Record>| {
                slowly(batch.len());
                tick(batch.len());
                (batch.len() as u64, batch.iter().map(value).sum::<u64>())
            })
            .durable()
            .accumulate_from((0, 0), |acc: &Total, (n, s)| (acc.0 + n, acc.1 + s));
        let totals = last_of(&totals, n, &notify);
        let checkpoints = builder.start().unwrap();
        let summary = source.run_until(stop(notify, within)).await.unwrap();
        (totals, (checkpoint, checkpoints), summary)
    } else {
        let mut source = from_kafka(["in"], config)
            .executor(executor)
            .max_in_flight(300)
            .build()
            .unwrap();
        let totals = source
            .stream()
            .map(move |record| {
                slowly(1);
                tick(1);
                (1, value(&record))
            })
            .durable()
            .accumulate_from((0, 0), |acc: &Total, (n, s): Total| (acc.0 + n, acc.1 + s));
        let totals = last_of(&totals, n, &notify);
        let checkpoint = source.checkpointed(&mut builder);
        let checkpoints = builder.start().unwrap();
        let summary = source.run_until(stop(notify, within)).await.unwrap();
        (totals, (checkpoint, checkpoints), summary)
    };
    let (checkpoint, checkpoints) = checkpoint;
    let taken = checkpoints.last().map_or(0, |c| c.id);
    if finish {
        checkpoints.finish().await.unwrap();
    } else {
        // as a crash: what came after the last checkpoint is lost
        drop(checkpoints);
    }
    checkpoint.leave_group();
    (
        *totals.lock().unwrap(),
        checkpoint.restored(),
        summary.skipped,
        taken,
    )
}

/// The last element of `stream`, as it comes; `notify` is told when the count is `n`.
fn last_of(stream: &Stream<Total>, n: u64, notify: &Arc<Notify>) -> Arc<Mutex<Option<Total>>> {
    let last = Arc::new(Mutex::new(None));
    let (into, notify) = (last.clone(), notify.clone());
    stream.sink(move |t: Total| {
        *into.lock().unwrap() = Some(t);
        if t.0 >= n {
            notify.notify_one();
        }
    });
    last
}

/// About 100 µs a record: the records come faster than checkpoints otherwise, and a run
/// would be over between two.
fn slowly(records: usize) {
    std::thread::sleep(Duration::from_micros(100) * records as u32);
}

async fn stop(notify: Arc<Notify>, within: Duration) {
    let _ = tokio::time::timeout(within, notify.notified()).await;
}

/// Four runs, the first three stopped early without a last checkpoint, each started from
/// the store: the last one ends with the count and the sum of the input, counted once, and
/// the group committed every record; between runs, the group's commits never passed what
/// the store's checkpoint held.
fn resumes_from_its_checkpoints(batched: bool) {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("in", 3);
    let n: u64 = 3000;
    broker.produce("in", (0..n).map(|i| i.to_string()));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut committed_before: Option<HashMap<i32, i64>> = None;
    let mut restores = 0;
    let mut skipped = 0;
    for (i, stop_after) in [700, 900, 1100, usize::MAX].into_iter().enumerate() {
        let last = stop_after == usize::MAX;
        let within = Duration::from_secs(30);
        let (total, restored, skips, taken) =
            rt.block_on(run(&broker, &store, n, batched, stop_after, within, last));
        skipped += skips;
        if !restored.is_empty() {
            restores += 1;
        }
        // what the broker had been committed before this run is at most what the
        // checkpoint it restored holds
        if let Some(before) = committed_before.take() {
            for (partition, offset) in before {
                let held = restored
                    .iter()
                    .find(|(t, p, _)| t == "in" && *p == partition)
                    .map(|&(_, _, o)| o);
                assert!(
                    held.is_some_and(|h| offset <= h),
                    "run {i}: partition {partition} committed {offset}, the checkpoint holds {held:?}"
                );
            }
        }
        committed_before = Some(broker.committed("totals", "in"));
        eprintln!(
            "run {i}: restored {restored:?}, skipped {skips}, {taken} checkpoints, total {total:?}"
        );
        if last {
            assert_eq!(
                total,
                Some((n, n * (n - 1) / 2)),
                "each record counted once"
            );
        }
    }
    assert!(
        restores >= 2,
        "the runs resumed from checkpoints ({restores})"
    );
    let committed = broker.committed("totals", "in");
    assert_eq!(committed.values().sum::<i64>(), n as i64, "{committed:?}");
    eprintln!("records read again and skipped, covered by a checkpoint: {skipped}");
}

#[test]
fn a_checkpointed_source_resumes_with_its_state_and_commits_what_checkpoints_hold() {
    resumes_from_its_checkpoints(false);
}

#[test]
fn a_checkpointed_batched_source_resumes_with_its_state() {
    resumes_from_its_checkpoints(true);
}
