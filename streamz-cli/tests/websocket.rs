//! `streamz run` with websockets on 127.0.0.1: a relay from clients of one server to
//! clients of another, a client source and sink of a server the test runs, what a stop
//! delivers, and bad addresses.

#![cfg(all(unix, feature = "websocket", feature = "tokio"))]

use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamz_core::Stream;
use streamz_tokio::TokioExecutor;
use streamz_websocket::{from_websocket, from_websocket_url, to_websocket};

mod common;

use common::{interrupt, spawn_announcing, spawn_run, wait};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `values` to the websocket server at `url`, each written before it returns.
fn send(url: &str, values: impl IntoIterator<Item = String>) {
    runtime().block_on(async {
        let source = Stream::with_executor(TokioExecutor::current());
        let _ = to_websocket(url).attach(&source).unwrap();
        for v in values {
            source.emit(v).await.unwrap();
        }
        source.close().await.unwrap();
    });
}

/// A client of `url` on a thread of its own, keeping the texts it is sent.
struct Reader {
    got: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn start(url: &str) -> Reader {
        let got: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let (seen, url) = (got.clone(), url.to_owned());
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let source = from_websocket_url(url)
                    .executor(TokioExecutor::current())
                    .build()
                    .unwrap();
                source.stream().sink(move |m| {
                    seen.lock()
                        .unwrap()
                        .push(m.payload_str().unwrap().to_owned())
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
            got,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn wait_for(&self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        while self.got.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.got.lock().unwrap().clone()
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
fn a_relay_from_one_servers_clients_to_anothers() {
    // the sink's server listens as the graph is built, the source's as the run starts
    let (child, outbound, mut stderr) = spawn_announcing(
        &[
            "run",
            "from_websocket 0 | map \"x.to_upper()\" | to_websocket 0 slow=wait",
        ],
        "to_websocket: listening on ",
    );
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let inbound = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let readers: Vec<Reader> = (0..5)
        .map(|_| Reader::start(&format!("ws://{outbound}/")))
        .collect();
    // senders, several at once
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let url = format!("ws://{inbound}/");
            std::thread::spawn(move || send(&url, (0..250).map(|i| format!("s{s}m{i}"))))
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    for reader in &readers {
        let got = reader.wait_for(1000, Duration::from_secs(30));
        assert_eq!(got.len(), 1000, "every reader, every message");
        for s in 0..4 {
            let mine: Vec<&String> = got
                .iter()
                .filter(|m| m.starts_with(&format!("S{s}M")))
                .collect();
            let expected: Vec<String> = (0..250).map(|i| format!("S{s}M{i}")).collect();
            assert!(mine.iter().zip(&expected).all(|(a, b)| *a == b), "in order");
        }
    }
    drop(stderr);
    interrupt(child);
}

#[test]
fn a_stopped_server_source_delivers_what_it_read() {
    let (child, inbound, _stderr) = spawn_announcing(
        &["run", "from_websocket 0 | rate_limit 1ms | count"],
        "listening on ",
    );
    let url = format!("ws://{inbound}/");
    // a sender that goes on until the server goes away
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = sent.clone();
    let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ended = over.clone();
    let sender = std::thread::spawn(move || {
        runtime().block_on(async move {
            let source = Stream::with_executor(TokioExecutor::current());
            let _ = to_websocket(&url)
                .timeout(Duration::from_secs(1))
                .attach(&source)
                .unwrap()
                .sink(move |_| {
                    counted.fetch_add(1, Ordering::SeqCst);
                });
            for i in 0..100_000 {
                if ended.load(Ordering::SeqCst) || source.emit(i.to_string()).await.is_err() {
                    break;
                }
            }
            let _ = source.close().await;
        });
    });
    std::thread::sleep(Duration::from_millis(700));
    common::signal(&child, "INT");
    let out = wait(child, Duration::from_secs(30));
    over.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(count > 100, "{count}");
    // each one read was counted: the sender's written ones, less those the socket held
    // when the server closed it
    assert!(count <= sent.load(Ordering::SeqCst), "{count}");
}

#[test]
fn a_client_source_and_sink_of_a_server() {
    let rt = runtime();
    let server = rt.block_on(async {
        from_websocket("127.0.0.1:0")
            .executor(TokioExecutor::current())
            .build()
            .unwrap()
    });
    let addr = server.local_addr();
    let got = server
        .stream()
        .map(|m| m.payload_str().unwrap().to_owned())
        .sink_to_vec();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let out = wait(
        spawn_run(
            &format!("range 100 | map \"x * 2\" | to_websocket ws://{addr}/"),
            &[],
        ),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.to_vec().len() < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = stop.send(());
    rt.block_on(running).unwrap().unwrap();
    assert_eq!(
        got.to_vec(),
        (0..100).map(|i| (i * 2).to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn bad_addresses_are_clear_errors() {
    let run = |pipeline: &str| {
        let out = wait(spawn_run(pipeline, &[]), Duration::from_secs(30));
        assert!(!out.status.success(), "`{pipeline}` failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = run("from_websocket nowhere | sink null");
    assert!(said.contains("neither a port to serve on"), "{said}");
    let said = run("range 3 | to_websocket ws://127.0.0.1:1/ connect_timeout=1s");
    assert!(said.contains("cannot reach ws://127.0.0.1:1/"), "{said}");
    let said = run("range 3 | to_websocket 0 slow=sometimes");
    assert!(said.contains("slow=sometimes"), "{said}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let said = run(&format!("from_websocket {port} | sink null"));
    assert!(said.contains("cannot listen on"), "{said}");
}
