//! streamz-mqtt against a real broker (mosquitto, started per test on 127.0.0.1). Each test
//! skips when there is no `mosquitto`, unless `STREAMZ_REQUIRE_MQTT=1` (as in CI).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use streamz_core::{ErrorKind, Stream};
use streamz_mqtt::testing::{Mosquitto, free_port};
use streamz_mqtt::{OnFailure, QoS, from_mqtt, to_mqtt};
use streamz_tokio::TokioExecutor;
use tokio::sync::Notify;

/// Publishes `values` to `topic` at QoS 1, waiting for every acknowledgement.
async fn publish(port: u16, topic: &str, values: impl IntoIterator<Item = String>) {
    let source = Stream::with_executor(TokioExecutor::current());
    let published = to_mqtt("127.0.0.1", port, topic)
        .attach(&source)
        .unwrap()
        .sink_to_vec();
    for v in values {
        source.emit(v).await.unwrap();
    }
    source.close().await.unwrap();
    assert!(!published.to_vec().is_empty());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_mqtt_to_mqtt_round_trip() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let port = broker.port();
    let n = 2000;
    // the reader of `out`, subscribed first
    let reader = from_mqtt("127.0.0.1", port, ["out"])
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

    let pipeline = from_mqtt("127.0.0.1", port, ["in"])
        .executor(TokioExecutor::current())
        .client_id("upper")
        .build()
        .unwrap();
    let upper = pipeline
        .stream()
        .map(|m| m.payload_str().unwrap().to_uppercase());
    to_mqtt("127.0.0.1", port, "out").attach(&upper).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pipeline.run_until(async {
        let _ = stopped.await;
    }));

    publish(port, "in", (0..n).map(|i| format!("m{i}"))).await;
    let summary = reading.await.unwrap().unwrap();
    assert_eq!(summary.messages, n as u64);
    let expected: Vec<String> = (0..n).map(|i| format!("M{i}")).collect();
    assert_eq!(got.to_vec(), expected, "every message, in order");
    let _ = stop.send(());
    let summary = running.await.unwrap().unwrap();
    assert_eq!((summary.messages, summary.failed), (n as u64, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_message_is_not_acknowledged_and_comes_again_unless_skipped() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let port = broker.port();
    // a persistent session, made before anything is published
    let make = |policy: OnFailure| {
        from_mqtt("127.0.0.1", port, ["in"])
            .executor(TokioExecutor::current())
            .client_id("strict")
            .on_failure(policy)
            .build()
            .unwrap()
    };
    make(OnFailure::Stop)
        .run_until(tokio::time::sleep(Duration::from_millis(100)))
        .await
        .unwrap();
    let mut values: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    values[6] = "poison".into();
    publish(port, "in", values).await;

    let run = |policy: OnFailure| async move {
        let source = make(policy);
        let got = source
            .stream()
            .try_map(|m| match m.payload_str() {
                Some("poison") => Err("cannot digest poison"),
                _ => Ok(m.payload_str().unwrap().to_owned()),
            })
            .sink_to_vec();
        let result = source
            .run_until(tokio::time::sleep(Duration::from_secs(2)))
            .await;
        (result, got.to_vec())
    };
    // stops at the poison message: it and those after it are not acknowledged
    let (result, got) = run(OnFailure::Stop).await;
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert!(e.message().contains("cannot digest poison"), "{e}");
    assert!(e.message().contains("not acknowledged"), "{e}");
    assert_eq!(got[..6], ["m0", "m1", "m2", "m3", "m4", "m5"]);
    // so the broker sends them again: poison first
    let (result, got) = run(OnFailure::Skip).await;
    let summary = result.unwrap();
    assert_eq!(got.first().map(String::as_str), Some("m7"), "{got:?}");
    assert!(
        got.ends_with(&["m7".into(), "m8".into(), "m9".into()]),
        "{got:?}"
    );
    assert_eq!(summary.failed, 1);
    // skipped, it was acknowledged: nothing comes again
    let (result, got) = run(OnFailure::Stop).await;
    assert!(result.is_ok());
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_persistent_session_missed_while_away_comes_when_it_is_back() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let port = broker.port();
    let make = || {
        from_mqtt("127.0.0.1", port, ["in"])
            .executor(TokioExecutor::current())
            .client_id("away")
            .build()
            .unwrap()
    };
    make()
        .run_until(tokio::time::sleep(Duration::from_millis(100)))
        .await
        .unwrap();
    publish(port, "in", (0..500).map(|i| format!("m{i}"))).await;
    let source = make();
    let got = source
        .stream()
        .map(|m| m.payload_str().unwrap().to_owned())
        .sink_to_vec();
    let (count, all) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let tick = at(&count, 500, &all);
    source.stream().sink(move |_| tick());
    source
        .run_until(within(all, Duration::from_secs(20)))
        .await
        .unwrap();
    let got = got.to_vec();
    let distinct: BTreeMap<&String, usize> = got.iter().fold(BTreeMap::new(), |mut m, v| {
        *m.entry(v).or_default() += 1;
        m
    });
    assert_eq!(distinct.len(), 500, "every message published while away");
}

#[test]
fn refusals_and_an_unreachable_broker_are_clear_errors() {
    if let Some(broker) = Mosquitto::start_with_password("alice", "secret") {
        let e = from_mqtt("127.0.0.1", broker.port(), ["in"])
            .credentials("alice", "wrong")
            .build()
            .unwrap_err();
        // mosquitto answers a wrong password with "not authorised"
        assert!(
            e.message()
                .contains("refused the connection: not authorised")
                || e.message()
                    .contains("refused the connection: bad user name or password"),
            "{e}"
        );
        assert!(
            e.message()
                .contains(&format!("127.0.0.1:{}", broker.port())),
            "{e}"
        );
        assert_eq!(e.node().unwrap().name(), "from_mqtt");
        let e = to_mqtt("127.0.0.1", broker.port(), "out")
            .attach(&Stream::<String>::new())
            .unwrap_err();
        assert!(e.message().contains("refused the connection"), "{e}");
        from_mqtt("127.0.0.1", broker.port(), ["in"])
            .credentials("alice", "secret")
            .qos(QoS::AtMostOnce)
            .build()
            .expect("the right password");
    }
    let port = free_port();
    let e = from_mqtt("127.0.0.1", port, ["in"])
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_err();
    assert!(
        e.message()
            .contains(&format!("cannot reach the MQTT broker at 127.0.0.1:{port}")),
        "{e}"
    );
    let e = to_mqtt("127.0.0.1", port, "a/+")
        .attach(&Stream::<String>::new())
        .unwrap_err();
    assert!(e.message().contains("is not a topic to publish to"), "{e}");
}
