//! At-least-once through NATS JetStream, shown with a real server (nats-server, JetStream on,
//! on 127.0.0.1): `streamz run 'from_nats in stream=IN durable=… | … | to_nats out
//! stream=OUT'` killed with SIGKILL at random moments and restarted with the same durable
//! consumer loses nothing, with at most `max_in_flight` repeated a kill; a server restarted
//! mid-run is reconnected to. Each test skips when there is no `nats-server`, unless
//! `STREAMZ_REQUIRE_NATS=1` (CI).

#![cfg(all(unix, feature = "nats", feature = "tokio"))]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamz_core::Stream;
use streamz_nats::testing::NatsServer;
use streamz_nats::{from_nats, to_nats};
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

/// Publishes `values` to `subject`, each stored by the JetStream stream `stream` (made if
/// missing).
fn publish(url: &str, subject: &str, stream: &str, values: impl IntoIterator<Item = String>) {
    runtime().block_on(async {
        let source = Stream::with_executor(TokioExecutor::current());
        let _ = to_nats(url, subject)
            .jetstream(stream)
            .create_stream(true)
            .max_in_flight(500)
            .attach(&source)
            .unwrap();
        for v in values {
            source.emit(v).await.unwrap();
        }
        source.close().await.unwrap();
    });
}

/// Reads the JetStream stream `stream` from its start on a thread of its own, counting each
/// payload.
struct Reader {
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn start(url: &str, subject: &str, stream: &str) -> Reader {
        let counts: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let (seen, url, subject, stream) = (
            counts.clone(),
            url.to_owned(),
            subject.to_owned(),
            stream.to_owned(),
        );
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let source = from_nats(url, [subject])
                    .jetstream(stream)
                    .create_stream(true)
                    .max_in_flight(1000)
                    .executor(TokioExecutor::current())
                    .build()
                    .unwrap();
                source.stream().sink(move |m| {
                    let v = m.payload_str().unwrap().to_owned();
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
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let (n, max_in_flight) = (10_000usize, 500);
    publish(&url, "out", "OUT", std::iter::empty());
    let reader = Reader::start(&url, "out", "OUT");
    publish(&url, "in", "IN", (0..n).map(|i| i.to_string()));
    let pipeline = format!(
        "from_nats in server={url} stream=IN durable=pipeline ack_wait=2s max_in_flight={max_in_flight} | rate_limit 1ms | map \"x\" | to_nats out server={url} stream=OUT"
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
                    "no progress to {target} (at {}); streamz said: {}\nthe server's log: {}",
                    reader.distinct(),
                    String::from_utf8_lossy(&out.stderr),
                    server.log()
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
        "`from_nats | map | to_nats` through JetStream: {n} messages, {} kills (out had {at:?} at each; STREAMZ_KILL_SEED={seed}), {duplicates} duplicates",
        at.len()
    );
    // a kill repeats at most what was delivered and not acknowledged: the consumer's
    // max_ack_pending, `max_in_flight`
    assert!(
        duplicates <= at.len() * max_in_flight,
        "{duplicates} duplicates over {} kills",
        at.len()
    );
}

#[test]
fn a_server_restarted_mid_run_is_reconnected_to() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    publish(&url, "out", "OUT", std::iter::empty());
    publish(&url, "in", "IN", std::iter::empty());
    let reader = Reader::start(&url, "out", "OUT");
    let child = spawn_run(
        &format!(
            "from_nats in server={url} stream=IN durable=pipeline | map \"x\" | to_nats out server={url} stream=OUT"
        ),
        &[],
    );
    publish(&url, "in", "IN", (0..1000).map(|i| i.to_string()));
    assert_eq!(reader.wait_for(1000, Duration::from_secs(30)), 1000);
    server.restart();
    publish(&url, "in", "IN", (1000..2000).map(|i| i.to_string()));
    assert_eq!(
        reader.wait_for(2000, Duration::from_secs(60)),
        2000,
        "what was published after the server came back is delivered"
    );
    let stderr = interrupt(child);
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn refusals_and_missing_streams_are_clear_errors() {
    let Some(server) = NatsServer::start_with_password("alice", "secret") else {
        return;
    };
    let url = server.url();
    let run = |pipeline: String| {
        let out = wait(spawn_run(&pipeline, &[]), Duration::from_secs(30));
        assert!(!out.status.success(), "`{pipeline}` failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = run(format!("from_nats in server={url} | sink null"));
    assert!(said.contains("refused the login"), "{said}");
    let said = run(format!(
        "from_nats in server={url} user=alice password=secret stream=NOPE | sink null"
    ));
    assert!(said.contains("no JetStream stream `NOPE`"), "{said}");
    let said = run(format!(
        "range 3 | to_nats out server={url} user=alice password=wrong"
    ));
    assert!(said.contains("refused the login"), "{said}");
    let said = run("from_nats in durable=d | sink null".to_owned());
    assert!(said.contains("give the stream too"), "{said}");
}

/// `--checkpoint` through JetStream: `from_nats → accumulate → partition → sliding_window →
/// to_nats`, SIGKILLed twenty times at random moments and started again with the same
/// command. What reaches `OUT` is exactly the output of a run never killed (each message
/// counted once, the count restored after each kill), every window at least once, the
/// repeats counted.
#[test]
fn sigkill_and_restart_with_checkpoints_count_each_message_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let n = 10_000usize;
    publish(&url, "out", "OUT", std::iter::empty());
    let reader = Reader::start(&url, "out", "OUT");
    publish(&url, "in", "IN", (0..n).map(|i| i.to_string()));
    let store = dir.path().join("state.db");
    let store = store.to_str().unwrap();
    let pipeline = format!(
        "from_nats in server={url} stream=IN durable=counted | rate_limit 200us \
         | accumulate \"acc + 1\" start=0 | partition 4 | sliding_window 2 \
         | to_nats out server={url} stream=OUT"
    );
    let args = ["--checkpoint", store, "--checkpoint-every", "100ms"];
    let seed = kill_seed();
    eprintln!("kill seed {seed} (STREAMZ_KILL_SEED={seed} repeats these moments)");
    let mut random = seed;
    let windows = n / 4;
    for kill in 0..20 {
        let mut child = spawn_run(&pipeline, &args);
        common::kill_at_progress(&mut child, kill, windows as u64, &mut random, || {
            reader.distinct() as u64
        });
        let out = wait(child, Duration::from_secs(10));
        assert!(!out.status.success(), "killed");
    }
    let child = spawn_run(&pipeline, &args);
    let got = reader.wait_for(windows, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    let stderr = interrupt(child);
    assert!(stderr.contains("resuming from checkpoint"), "{stderr}");
    assert_eq!(got, windows, "every window reached `OUT`");

    let counts = reader.counts.lock().unwrap().clone();
    let repeats = common::repeats_of_exactly(&common::windows_of_counts(n), &counts);
    eprintln!(
        "`from_nats | accumulate | partition | sliding_window | to_nats` with checkpoints: {n} messages, 20 kills (STREAMZ_KILL_SEED={seed}): {windows} windows, all there, {repeats} repeated"
    );
    assert!(
        repeats <= 20 * 500,
        "{repeats} windows repeated after 20 kills"
    );
}
