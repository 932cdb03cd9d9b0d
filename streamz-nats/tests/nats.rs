//! streamz-nats against a real server (nats-server with JetStream, started per test on
//! 127.0.0.1). Each test skips when there is no `nats-server`, unless
//! `STREAMZ_REQUIRE_NATS=1` (as in CI).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use streamz_core::Stream;
use streamz_nats::testing::{NatsServer, free_port};
use streamz_nats::{OnFailure, from_nats, to_nats};
use streamz_tokio::TokioExecutor;
use tokio::sync::Notify;

/// Publishes `values` to `subject`, through JetStream's stream `stream` if there is one.
async fn publish(
    url: &str,
    subject: &str,
    stream: Option<&str>,
    values: impl IntoIterator<Item = String>,
) {
    let source = Stream::with_executor(TokioExecutor::current());
    let mut sink = to_nats(url, subject);
    if let Some(stream) = stream {
        sink = sink.jetstream(stream).create_stream(true);
    }
    let published = sink.attach(&source).unwrap().sink_to_vec();
    let mut n = 0;
    for v in values {
        source.emit(v).await.unwrap();
        n += 1;
    }
    source.close().await.unwrap();
    assert_eq!(published.to_vec().len(), n, "every publication done");
}

/// A signal when `count` reaches `n`.
fn at(
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

async fn within(notify: Arc<Notify>, limit: Duration) {
    let _ = tokio::time::timeout(limit, notify.notified()).await;
}

/// The consumer's count of messages delivered and not acknowledged, and of those not yet
/// delivered, as the server says.
async fn pending(url: &str, stream: &str, durable: &str) -> (usize, u64) {
    let client = async_nats::connect(url).await.unwrap();
    let context = async_nats::jetstream::new(client);
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = context
        .get_stream(stream)
        .await
        .unwrap()
        .get_consumer(durable)
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    (info.num_ack_pending, info.num_pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_subjects_in_and_out() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let n = 2000;
    let reader = from_nats(&url, ["out"])
        .executor(TokioExecutor::current())
        .build()
        .unwrap();
    let got = reader
        .stream()
        .map(|m| m.payload_str().unwrap().to_owned())
        .sink_to_vec();
    let (count, all) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let tick = at(&count, n, &all);
    reader.stream().sink(move |_| tick());
    let reading = tokio::spawn(reader.run_until(within(all, Duration::from_secs(30))));

    let pipeline = from_nats(&url, ["in.*"])
        .executor(TokioExecutor::current())
        .build()
        .unwrap();
    let upper = pipeline
        .stream()
        .map(|m| m.payload_str().unwrap().to_uppercase());
    to_nats(&url, "out").attach(&upper).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pipeline.run_until(async {
        let _ = stopped.await;
    }));

    publish(&url, "in.a", None, (0..n).map(|i| format!("m{i}"))).await;
    let summary = reading.await.unwrap().unwrap();
    assert_eq!(summary.messages, n as u64);
    let expected: Vec<String> = (0..n).map(|i| format!("M{i}")).collect();
    assert_eq!(got.to_vec(), expected, "every message, in order");
    let _ = stop.send(());
    let summary = running.await.unwrap().unwrap();
    assert_eq!((summary.messages, summary.dropped), (n as u64, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_messages_are_acknowledged_once_done_and_a_durable_consumer_resumes() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let n = 3000;
    publish(
        &url,
        "orders.new",
        Some("ORDERS"),
        (0..n).map(|i| format!("o{i}")),
    )
    .await;

    // the first run stops half way, at a moment of its choosing
    let run = |stop_after: usize| {
        let url = url.clone();
        async move {
            let source = from_nats(&url, ["orders.*"])
                .executor(TokioExecutor::current())
                .jetstream("ORDERS")
                .durable("shipping")
                .max_in_flight(50)
                .build()
                .unwrap();
            let got = source
                .stream()
                .map(|m| (m.sequence.unwrap(), m.payload_str().unwrap().to_owned()))
                .sink_to_vec();
            let (count, enough) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
            let tick = at(&count, stop_after, &enough);
            source.stream().sink(move |_| tick());
            let summary = source
                .run_until(within(enough, Duration::from_secs(30)))
                .await
                .unwrap();
            (summary, got.to_vec())
        }
    };
    let (first, got1) = run(1000).await;
    assert!(first.messages >= 1000, "{first:?}");
    // acknowledged: exactly what the first run took (what it pulled and did not emit was
    // given back, and waits for the next run with what was never sent)
    let (given_back, not_sent) = pending(&url, "ORDERS", "shipping").await;
    assert_eq!(given_back as u64 + not_sent, (n - got1.len()) as u64);
    let started = std::time::Instant::now();
    let (second, got2) = run(n - got1.len()).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "what was given back came at once, not after its ack wait of 30 s"
    );
    assert_eq!(first.failed + second.failed, 0);
    let mut all: Vec<String> = got1.into_iter().chain(got2).map(|(_, v)| v).collect();
    assert_eq!(
        all.len(),
        n,
        "each once: acknowledged messages are not sent again"
    );
    all.sort_by_key(|v| v[1..].parse::<usize>().unwrap());
    assert_eq!(all, (0..n).map(|i| format!("o{i}")).collect::<Vec<_>>());
    assert_eq!(pending(&url, "ORDERS", "shipping").await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_message_is_given_back_and_comes_again_unless_skipped() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let mut values: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    values[6] = "poison".into();
    publish(&url, "jobs", Some("JOBS"), values).await;

    let run = |policy: OnFailure| {
        let url = url.clone();
        async move {
            let stop_url = url.clone();
            let source = from_nats(&url, ["jobs"])
                .executor(TokioExecutor::current())
                .jetstream("JOBS")
                .durable("worker")
                .on_failure(policy)
                .build()
                .unwrap();
            let got = source
                .stream()
                .try_map(|m| match m.payload_str() {
                    Some("poison") => Err("cannot digest poison"),
                    other => Ok(other.unwrap().to_owned()),
                })
                .sink_to_vec();
            // until the poison failed (Stop), or nothing is left (Skip); at most 20 s
            let result = source
                .run_until(async move {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                    while tokio::time::Instant::now() < deadline
                        && (policy == OnFailure::Stop
                            || pending(&stop_url, "JOBS", "worker").await != (0, 0))
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                })
                .await;
            (result, got.to_vec())
        }
    };
    let (stopped, got) = run(OnFailure::Stop).await;
    let e = stopped.unwrap_err();
    assert!(e.message().contains("given back"), "{e}");
    assert!(got.len() <= 9, "{got:?}");
    // given back (not left to its ack wait of 30 s): the next run has it at once
    let (skipped, again) = run(OnFailure::Skip).await;
    let summary = skipped.unwrap();
    assert_eq!(summary.failed, 1, "the poison came again, and was skipped");
    assert!(!again.contains(&"poison".to_owned()));
    assert_eq!(pending(&url, "JOBS", "worker").await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_reconnected_to_and_nothing_is_lost() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let n = 2000;
    // the stream, made before the pipeline reads it
    publish(&url, "in", Some("IN"), std::iter::empty()).await;
    let source = from_nats(&url, ["in"])
        .executor(TokioExecutor::current())
        .jetstream("IN")
        .durable("pipeline")
        // what the server sent as it went down comes again soon
        .ack_wait(Duration::from_secs(3))
        .build()
        .unwrap();
    let got = source
        .stream()
        .map(|m| m.payload_str().unwrap().to_owned())
        .sink_to_vec();
    // distinct messages: one the server sent as it went down comes again
    let (count, all) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let tick = at(&count, n, &all);
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    source.stream().sink(move |m| {
        if seen.lock().unwrap().insert(m.payload) {
            tick();
        }
    });
    let running = tokio::spawn(source.run_until(within(all, Duration::from_secs(60))));

    publish(&url, "in", Some("IN"), (0..n / 2).map(|i| format!("m{i}"))).await;
    server.restart();
    publish(&url, "in", Some("IN"), (n / 2..n).map(|i| format!("m{i}"))).await;
    let summary = running.await.unwrap().unwrap();
    assert!(summary.reconnections >= 1, "{summary:?}");
    let mut got = got.to_vec();
    got.sort_by_key(|v| v[1..].parse::<usize>().unwrap());
    got.dedup();
    let missing: Vec<String> = (0..n)
        .map(|i| format!("m{i}"))
        .filter(|m| {
            got.binary_search_by_key(&m[1..].parse::<usize>().unwrap(), |v| {
                v[1..].parse().unwrap()
            })
            .is_err()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} missing ({summary:?}): {missing:?}; the server's log: {}",
        missing.len(),
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_refusals_and_missing_streams_are_clear_errors() {
    let Some(server) = NatsServer::start_with_password("alice", "secret") else {
        return;
    };
    let url = server.url();
    let nobody = format!("nats://127.0.0.1:{}", free_port());
    let e = from_nats(&nobody, ["x"])
        .connection_timeout(Duration::from_secs(2))
        .build()
        .unwrap_err();
    assert!(e.message().contains("cannot reach the NATS server"), "{e}");

    let e = from_nats(&url, ["x"]).build().unwrap_err();
    assert!(e.message().contains("refused the login"), "{e}");
    let e = to_nats(&url, "x")
        .user_and_password("alice", "wrong")
        .attach(&Stream::<String>::with_executor(TokioExecutor::current()))
        .unwrap_err();
    assert!(e.message().contains("refused the login"), "{e}");

    let e = from_nats(&url, ["x"])
        .user_and_password("alice", "secret")
        .jetstream("NOPE")
        .build()
        .unwrap_err();
    assert!(e.message().contains("no JetStream stream `NOPE`"), "{e}");
    let e = to_nats(&url, "x")
        .user_and_password("alice", "secret")
        .jetstream("NOPE")
        .attach(&Stream::<String>::with_executor(TokioExecutor::current()))
        .unwrap_err();
    assert!(e.message().contains("no JetStream stream `NOPE`"), "{e}");
    // a stream that does not capture the subject
    to_nats(&url, "a")
        .user_and_password("alice", "secret")
        .jetstream("A")
        .create_stream(true)
        .attach(&Stream::<String>::with_executor(TokioExecutor::current()))
        .unwrap();
    let e = to_nats(&url, "b")
        .user_and_password("alice", "secret")
        .jetstream("A")
        .attach(&Stream::<String>::with_executor(TokioExecutor::current()))
        .unwrap_err();
    assert!(e.message().contains("does not capture `b`"), "{e}");
    let e = to_nats(&url, "a.*")
        .attach(&Stream::<String>::with_executor(TokioExecutor::current()))
        .unwrap_err();
    assert!(e.message().contains("not a subject to publish to"), "{e}");
    let e = from_nats(&url, Vec::<String>::new()).build().unwrap_err();
    assert!(e.message().contains("no subject"), "{e}");
}
