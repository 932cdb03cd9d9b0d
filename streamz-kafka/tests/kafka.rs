//! streamz-kafka against a real Kafka-protocol broker (tansu, started per test on 127.0.0.1).
//! Each test skips when there is no `tansu`, unless `STREAMZ_REQUIRE_KAFKA=1` (as in CI).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use streamz_core::ErrorKind;
use streamz_kafka::testing::Broker;
use streamz_kafka::{OnFailure, from_kafka, from_kafka_batched, to_kafka};
use streamz_tokio::TokioExecutor;
use tokio::sync::Notify;

/// A stop signal fired when `count` reaches `n`.
fn stop_at(
    count: &Arc<AtomicUsize>,
    n: usize,
    notify: &Arc<Notify>,
) -> impl Fn() + Send + Sync + 'static {
    let (count, notify) = (count.clone(), notify.clone());
    move || {
        if count.fetch_add(1, Ordering::SeqCst) + 1 >= n {
            notify.notify_one();
        }
    }
}

async fn bounded(notify: Arc<Notify>, within: Duration) {
    let _ = tokio::time::timeout(within, notify.notified()).await;
}

fn values(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("v{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_kafka_to_kafka_commits_each_record_after_its_delivery() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("in", 2);
    broker.create_topic("out", 1);
    let n = 2000;
    broker.produce("in", values(n));

    let source = from_kafka(["in"], broker.consumer_config("upper"))
        .executor(TokioExecutor::current())
        .max_in_flight(300)
        .build()
        .unwrap();
    let upper = source
        .stream()
        .map(|r| r.value_str().unwrap().to_uppercase());
    let delivered = to_kafka("out", broker.producer_config())
        .max_in_flight(100)
        .attach(&upper)
        .unwrap();
    let (count, notify) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let tick = stop_at(&count, n, &notify);
    delivered.sink(move |_| tick());
    let summary = source
        .run_until(bounded(notify, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(summary.records, n as u64);
    assert_eq!(summary.failed, 0);
    assert!(summary.commits >= 1);

    let out = broker.read_all("out", n, Duration::from_secs(10));
    let got: HashSet<String> = out
        .iter()
        .map(|r| r.value_str().unwrap().to_owned())
        .collect();
    let want: HashSet<String> = values(n).iter().map(|v| v.to_uppercase()).collect();
    assert_eq!(out.len(), n, "each record delivered once");
    assert_eq!(got, want);
    // every input record is committed: the two partitions' commits add up to n
    let committed = broker.committed("upper", "in");
    assert_eq!(committed.values().sum::<i64>(), n as i64, "{committed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_held_by_a_window_is_committed_only_when_the_window_lets_it_go() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("in", 1);
    broker.produce("in", values(5));
    let source = from_kafka(["in"], broker.consumer_config("held"))
        .executor(TokioExecutor::current())
        .build()
        .unwrap();
    let stats = source.stats();
    // batches of 2: the fifth record waits in the partition until the stream closes
    let batches = source.stream().partition(2).sink_to_vec();
    let notify = Arc::new(Notify::new());
    let watcher = {
        let (stats, notify) = (stats.clone(), notify.clone());
        tokio::spawn(async move {
            for _ in 0..400 {
                if stats.partitions().first().and_then(|p| p.committed) == Some(4) {
                    // 0..4 are done and committed; the fifth is held
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let committed = stats.partitions()[0].committed;
                    notify.notify_one();
                    return committed;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            notify.notify_one();
            None
        })
    };
    source
        .run_until(bounded(notify, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        watcher.await.unwrap(),
        Some(4),
        "the held record is not committed while held"
    );
    assert_eq!(batches.to_vec().len(), 3);
    // closing the stream let the fifth go, and the final commit covers it
    assert_eq!(broker.committed("held", "in").get(&0), Some(&5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_per_partition_and_bounded() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("in", 2);
    let n = 1000;
    broker.produce("in", values(n));
    let source = from_kafka_batched(["in"], broker.consumer_config("batches"))
        .executor(TokioExecutor::current())
        .max_batch_size(64)
        .poll_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let (count, notify) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (count, notify, seen) = (count.clone(), notify.clone(), seen.clone());
        source.stream().sink(move |batch| {
            assert!(!batch.is_empty() && batch.len() <= 64, "{}", batch.len());
            let partition = batch[0].partition;
            assert!(
                batch.iter().all(|r| r.partition == partition),
                "one partition a batch"
            );
            assert!(batch.windows(2).all(|w| w[0].offset < w[1].offset));
            seen.lock()
                .unwrap()
                .extend(batch.iter().map(|r| r.value_str().unwrap().to_owned()));
            if count.fetch_add(batch.len(), Ordering::SeqCst) + batch.len() >= n {
                notify.notify_one();
            }
        });
    }
    source
        .run_until(bounded(notify, Duration::from_secs(60)))
        .await
        .unwrap();
    let seen: HashSet<String> = seen.lock().unwrap().iter().cloned().collect();
    assert_eq!(seen, values(n).into_iter().collect::<HashSet<_>>());
    assert_eq!(
        broker.committed("batches", "in").values().sum::<i64>(),
        n as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_stops_the_source_uncommitted_or_is_skipped_and_committed() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("in", 1);
    let mut input = values(10);
    input[6] = "poison".into();
    broker.produce("in", &input);

    let run = |policy: OnFailure, group: &'static str| {
        let broker_config = broker.consumer_config(group);
        async move {
            let errors = Arc::new(AtomicUsize::new(0));
            let seen = errors.clone();
            let source = from_kafka(["in"], broker_config)
                .executor(TokioExecutor::current())
                .on_failure(policy)
                .on_error(move |_| {
                    seen.fetch_add(1, Ordering::SeqCst);
                })
                .build()
                .unwrap();
            let (count, notify) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
            let tick = stop_at(&count, 9, &notify);
            source
                .stream()
                .try_map(|r| match r.value_str() {
                    Some("poison") => Err("cannot digest poison"),
                    _ => Ok(r),
                })
                .sink(move |_| tick());
            let result = source
                .run_until(bounded(notify, Duration::from_secs(30)))
                .await;
            (result, errors.load(Ordering::SeqCst))
        }
    };

    let (result, errors) = run(OnFailure::Stop, "strict").await;
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert!(e.message().contains("offset 6 of in/0"), "{e}");
    assert!(e.to_string().contains("cannot digest poison"), "{e}");
    assert_eq!(errors, 1);
    // the poison record and what follows it are not committed: a restart reads them again
    assert_eq!(broker.committed("strict", "in").get(&0), Some(&6));

    let (result, errors) = run(OnFailure::Skip, "lenient").await;
    let summary = result.unwrap();
    assert_eq!((summary.records, summary.failed, errors), (10, 1, 1));
    assert_eq!(broker.committed("lenient", "in").get(&0), Some(&10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_group_reads_what_was_not_committed() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("in", 2);
    let n = 3000;
    broker.produce("in", values(n));
    let max_in_flight = 200;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    // three runs of the same group, each stopped early; then one to the end
    for stop_after in [700, 900, 1100, usize::MAX] {
        let source = from_kafka(["in"], broker.consumer_config("resume"))
            .executor(TokioExecutor::current())
            .max_in_flight(max_in_flight)
            .build()
            .unwrap();
        let got = source
            .stream()
            .map(|r| r.value_str().unwrap().to_owned())
            .sink_to_vec();
        let (count, notify) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let tick = stop_at(&count, stop_after, &notify);
        source.stream().sink(move |_| tick());
        let within = if stop_after == usize::MAX { 8 } else { 30 };

        source
            .run_until(bounded(notify, Duration::from_secs(within)))
            .await
            .unwrap();
        let got = got.to_vec();
        for v in got {
            *seen.entry(v).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), n, "every record read at least once");
    let duplicates: usize = seen.values().map(|&k| k - 1).sum();
    // a clean stop commits everything it read, so there are none here
    assert_eq!(duplicates, 0);
    assert_eq!(
        broker.committed("resume", "in").values().sum::<i64>(),
        n as i64
    );
}

#[test]
fn a_missing_topic_and_an_unreachable_broker_are_clear_errors() {
    if let Some(broker) = Broker::start() {
        let e = from_kafka(["nope"], broker.consumer_config("g"))
            .build()
            .unwrap_err();
        assert!(e.message().contains("there is no topic `nope`"), "{e}");
        assert!(e.message().contains(&broker.address()), "{e}");
        assert_eq!(e.node().unwrap().name(), "from_kafka");
        let source = streamz_core::Stream::<String>::new();
        let e = to_kafka("nope", broker.producer_config())
            .attach(&source)
            .unwrap_err();
        assert!(e.message().contains("there is no topic `nope`"), "{e}");
        let mut no_group = broker.consumer_config("g");
        no_group.remove("group.id");
        let e = from_kafka(["nope"], no_group).build().unwrap_err();
        assert!(e.message().contains("group.id"), "{e}");
    }
    // nothing listens on this port
    let port = streamz_kafka::testing::free_port();
    let mut config = streamz_kafka::ClientConfig::new();
    config
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("group.id", "g");
    let e = from_kafka(["in"], config)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_err();
    assert!(
        e.message().contains(&format!(
            "the Kafka broker at 127.0.0.1:{port} did not answer within 2s"
        )),
        "{e}"
    );
}

/// A second member joins the group mid-run: the first's partitions are revoked (committing
/// what is done) and shared out, and between them the two read every record, the records
/// read twice no more than what was in flight at the revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_mid_run_takes_partitions_and_nothing_is_lost() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let (n, partitions, max_in_flight) = (4000, 4, 100);
    broker.create_topic("in", partitions);
    broker.produce("in", values(n));

    let seen: Arc<std::sync::Mutex<BTreeMap<String, usize>>> = Arc::default();
    let all = Arc::new(Notify::new());
    let member = |name: &'static str| {
        let source = from_kafka(["in"], broker.consumer_config("sharing"))
            .executor(TokioExecutor::current())
            .max_in_flight(max_in_flight)
            .build()
            .unwrap();
        let (seen, done) = (seen.clone(), all.clone());
        let read = Arc::new(AtomicUsize::new(0));
        let counted = read.clone();
        source
            .stream()
            // slow enough that the second member joins long before the first is through
            .map_async(1, |r| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                r
            })
            .sink(move |r| {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut seen = seen.lock().unwrap();
                *seen.entry(r.value_str().unwrap().to_owned()).or_default() += 1;
                if seen.len() == n {
                    done.notify_waiters();
                }
            });
        let stats = source.stats();
        let all = all.clone();
        let run = tokio::spawn(async move {
            source
                .run_until(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(60), all.notified()).await;
                })
                .await
        });
        eprintln!("{name} started");
        (run, stats, read)
    };
    let (first, first_stats, first_read) = member("first");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while first_read.load(Ordering::SeqCst) < 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first member reads"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(first_stats.partitions().len(), partitions as usize);
    let (second, _, second_read) = member("second");
    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), n, "every record read at least once");
    let duplicates: usize = seen.values().map(|&k| k - 1).sum();
    let (a, b) = (
        first_read.load(Ordering::SeqCst),
        second_read.load(Ordering::SeqCst),
    );
    eprintln!("first read {a}, second {b}, {duplicates} read twice, {first:?} {second:?}");
    assert!(b > 0, "the second member got partitions");
    assert!(a < n, "the first gave some up");
    assert!(
        duplicates <= max_in_flight,
        "{duplicates} read twice, more than the {max_in_flight} in flight"
    );
    assert_eq!(
        broker.committed("sharing", "in").values().sum::<i64>(),
        n as i64,
        "everything committed at the end"
    );
}
