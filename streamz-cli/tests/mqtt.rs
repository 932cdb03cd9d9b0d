//! At-least-once through MQTT, shown with a real broker (mosquitto, on 127.0.0.1): `streamz
//! run 'from_mqtt in client_id=… | … | to_mqtt out'` killed with SIGKILL at random moments
//! and restarted with the same persistent session loses nothing; a broker restarted mid-run
//! is reconnected to. Each test skips when there is no `mosquitto`, unless
//! `STREAMZ_REQUIRE_MQTT=1` (CI).

#![cfg(all(unix, feature = "mqtt", feature = "tokio"))]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamz_core::Stream;
use streamz_mqtt::testing::Mosquitto;
use streamz_mqtt::{from_mqtt, to_mqtt};
use streamz_tokio::TokioExecutor;

mod common;

use common::{interrupt, kill_seed, next_random, signal, spawn_run, wait};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Makes the persistent session `client_id` subscribed to `topic`, so that the broker keeps
/// what is published to it from now on.
fn session(port: u16, topic: &str, client_id: &str) {
    runtime().block_on(async {
        from_mqtt("127.0.0.1", port, [topic])
            .client_id(client_id)
            .executor(TokioExecutor::current())
            .build()
            .unwrap()
            .run_until(tokio::time::sleep(Duration::from_millis(50)))
            .await
            .unwrap();
    });
}

/// Publishes `values` to `topic` at QoS 1, each acknowledged by the broker.
fn publish(port: u16, topic: &str, values: impl IntoIterator<Item = String>) {
    runtime().block_on(async {
        let source = Stream::with_executor(TokioExecutor::current());
        let _ = to_mqtt("127.0.0.1", port, topic)
            .max_in_flight(500)
            .attach(&source)
            .unwrap();
        for v in values {
            source.emit(v).await.unwrap();
        }
        source.close().await.unwrap();
    });
}

/// Reads `topic` on a thread of its own, counting each payload.
struct Reader {
    counts: Arc<Mutex<BTreeMap<i64, usize>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn start(port: u16, topic: &str) -> Reader {
        let counts: Arc<Mutex<BTreeMap<i64, usize>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let (seen, topic) = (counts.clone(), topic.to_owned());
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let source = from_mqtt("127.0.0.1", port, [topic])
                    .client_id("reader")
                    .max_in_flight(1000)
                    .executor(TokioExecutor::current())
                    .build()
                    .unwrap();
                source.stream().sink(move |m| {
                    let v: i64 = m.payload_str().unwrap().parse().unwrap();
                    *seen.lock().unwrap().entry(v).or_default() += 1;
                });
                ready.send(()).unwrap();
                source
                    .run_until(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        is_ready.recv().unwrap();
        Reader {
            counts,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn distinct(&self) -> usize {
        self.counts.lock().unwrap().len()
    }

    /// Waits until `n` distinct payloads arrived, or `limit` passed.
    fn wait_for(&self, n: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        while self.distinct() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.distinct()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn sigkill_and_restart_lose_nothing() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let port = broker.port();
    let (n, max_in_flight) = (10_000usize, 100);
    let reader = Reader::start(port, "out");
    session(port, "in", "pipeline");
    publish(port, "in", (0..n).map(|i| i.to_string()));
    let pipeline = format!(
        "from_mqtt in port={port} client_id=pipeline max_in_flight={max_in_flight} | rate_limit 500us | map \"x\" | to_mqtt out port={port}"
    );
    let seed = kill_seed();
    let mut random = seed;
    let mut at = Vec::new();
    for permille in [100, 300, 450, 600, 800] {
        let target = n * permille / 1000;
        let child = spawn_run(&pipeline, &[]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while reader.distinct() < target {
            if Instant::now() > deadline {
                signal(&child, "KILL");
                let out = wait(child, Duration::from_secs(10));
                panic!(
                    "no progress to {target} (at {}); streamz said: {}\nthe broker's log: {}",
                    reader.distinct(),
                    String::from_utf8_lossy(&out.stderr),
                    broker.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // then a random moment within the next 250 ms
        std::thread::sleep(Duration::from_millis(next_random(&mut random) % 250));
        signal(&child, "KILL");
        let out = wait(child, Duration::from_secs(10));
        assert!(!out.status.success(), "killed");
        at.push(reader.distinct());
    }
    assert!(
        at.iter().all(|&c| c < n),
        "every kill landed before the end: {at:?}"
    );
    let child = spawn_run(&pipeline, &[]);
    let got = reader.wait_for(n, Duration::from_secs(90));
    interrupt(child);
    assert_eq!(got, n, "every message reached `out`");
    std::thread::sleep(Duration::from_millis(300));
    let counts = reader.counts.lock().unwrap().clone();
    let duplicates: usize = counts.values().map(|&k| k - 1).sum();
    eprintln!(
        "`from_mqtt | map | to_mqtt`: {n} messages, {} kills (out had {at:?} at each; STREAMZ_KILL_SEED={seed}), {duplicates} duplicates",
        at.len()
    );
    // No bound on the duplicates here: mosquitto 2.0 (Debian's) sends a resumed session
    // every message queued for it at once, past the receive maximum (`max_in_flight`), so
    // a kill during that catch-up repeats what had been received and not yet acknowledged
    // (streamz-mqtt's README). With a broker that keeps to the receive maximum, at most
    // `max_in_flight` a kill.
}

#[test]
fn a_broker_restarted_mid_run_is_reconnected_to() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let port = broker.port();
    let reader = Reader::start(port, "out");
    let child = spawn_run(
        &format!(
            "from_mqtt in port={port} client_id=pipeline | map \"x\" | to_mqtt out port={port}"
        ),
        &[],
    );
    // the pipeline is subscribed once what it is sent comes out
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    while reader.distinct() == 0 {
        assert!(Instant::now() < deadline, "the pipeline never delivered");
        publish(port, "in", [format!("{}", 100_000 + i)]);
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = reader.distinct();
    publish(port, "in", (0..1000).map(|i| i.to_string()));
    assert_eq!(
        reader.wait_for(before + 1000, Duration::from_secs(30)),
        before + 1000
    );
    broker.restart();
    std::thread::sleep(Duration::from_millis(500));
    publish(port, "in", (1000..2000).map(|i| i.to_string()));
    assert_eq!(
        reader.wait_for(before + 2000, Duration::from_secs(30)),
        before + 2000,
        "what was published after the broker came back is delivered"
    );
    interrupt(child);
}
