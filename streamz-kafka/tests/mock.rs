//! What tansu 0.6.0 cannot serve, against librdkafka's own mock cluster
//! (`rdkafka::mocking`): a group that resumes from a commit inside a record batch. tansu
//! returns no records to a fetch that starts inside a batch, so there the group would stall;
//! Apache Kafka returns the whole batch and the client skips the records before the fetch
//! offset, as the mock cluster does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use streamz_core::ErrorKind;
use streamz_kafka::{ClientConfig, OnFailure, from_kafka};
use streamz_tokio::TokioExecutor;
use tokio::sync::Notify;

const N: usize = 1000;
const POISON: usize = 437;

fn consumer_config(servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", servers)
        .set("group.id", "resume")
        .set("session.timeout.ms", "6000");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resumes_from_a_commit_inside_a_record_batch() {
    let cluster = MockCluster::new(1).expect("a mock cluster");
    cluster.create_topic("in", 1, 1).expect("a topic");
    let servers = cluster.bootstrap_servers();

    // every record queued at once and lingered over: a few batches of hundreds of records
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("linger.ms", "200")
        .create()
        .expect("a producer");
    for i in 0..N {
        let value = if i == POISON {
            "poison".to_owned()
        } else {
            format!("v{i}")
        };
        producer
            .send(BaseRecord::<(), _>::to("in").payload(&value))
            .map_err(|(e, _)| e)
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("delivered");

    // the first run fails at the poison record, mid-batch, and commits up to it
    let source = from_kafka(["in"], consumer_config(&servers))
        .executor(TokioExecutor::current())
        .on_failure(OnFailure::Stop)
        .build()
        .unwrap();
    source
        .stream()
        .try_map(|r| match r.value_str() {
            Some("poison") => Err("cannot digest poison"),
            _ => Ok(r),
        })
        .sink(|_| {});
    let e = source
        .run_until(tokio::time::sleep(Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert!(e.message().contains("offset 437 of in/0"), "{e}");

    // the second, with the same group, starts at the poison record and reads to the end
    let source = from_kafka(["in"], consumer_config(&servers))
        .executor(TokioExecutor::current())
        .build()
        .unwrap();
    let offsets = source.stream().map(|r| r.offset).sink_to_vec();
    let (count, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let (counting, notify) = (count.clone(), done.clone());
    source.stream().sink(move |_| {
        if counting.fetch_add(1, Ordering::SeqCst) + 1 == N - POISON {
            notify.notify_one();
        }
    });
    let summary = source
        .run_until(async {
            let _ = tokio::time::timeout(Duration::from_secs(30), done.notified()).await;
        })
        .await
        .unwrap();
    let offsets = offsets.to_vec();
    assert_eq!(
        offsets,
        (POISON as i64..N as i64).collect::<Vec<_>>(),
        "the records from the commit on, once each"
    );
    assert_eq!(summary.records, (N - POISON) as u64);
    assert_eq!(
        committed(&servers),
        Some(N as i64),
        "everything committed at the end"
    );
}

/// The group's committed offset in `in/0`.
fn committed(servers: &str) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = consumer_config(servers).create().expect("a consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("in", 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    match committed.elements()[0].offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}
