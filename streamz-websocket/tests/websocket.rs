//! streamz-websocket's sources and sinks against real sockets on 127.0.0.1: many clients, a
//! slow one, a server that goes away and comes back, and bad addresses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use streamz_core::Stream;
use streamz_tokio::TokioExecutor;
use streamz_websocket::{
    SlowClient, from_websocket, from_websocket_url, to_websocket, to_websocket_server,
};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

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

/// A client that sends `n` text messages `"{id}:{i}"` to `addr`, then closes.
async fn client(addr: SocketAddr, id: usize, n: usize) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    for i in 0..n {
        socket
            .send(Message::text(format!("{id}:{i}")))
            .await
            .unwrap();
    }
    let _ = socket.close(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_source_takes_every_message_of_many_clients_in_order() {
    let source = from_websocket("127.0.0.1:0")
        .executor(TokioExecutor::current())
        .max_in_flight(16)
        .build()
        .unwrap();
    let addr = source.local_addr();
    let (clients, each) = (20, 500);
    let seen: Arc<Mutex<BTreeMap<usize, Vec<usize>>>> = Arc::default();
    let (count, all) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let tick = at(&count, clients * each, &all);
    let got = seen.clone();
    source.stream().sink(move |m| {
        let text = m.payload_str().unwrap().to_owned();
        assert!(m.is_text);
        let (id, i) = text.split_once(':').unwrap();
        got.lock()
            .unwrap()
            .entry(id.parse().unwrap())
            .or_default()
            .push(i.parse().unwrap());
        tick();
    });
    let running = tokio::spawn(source.run_until(within(all, Duration::from_secs(30))));
    let senders: Vec<_> = (0..clients)
        .map(|id| tokio::spawn(client(addr, id, each)))
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let summary = running.await.unwrap().unwrap();
    assert_eq!(summary.messages, (clients * each) as u64);
    assert_eq!(summary.connections, clients as u64);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), clients);
    for (id, got) in seen.iter() {
        assert_eq!(got, &(0..each).collect::<Vec<_>>(), "client {id}, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_source_loses_nothing_it_read() {
    let source = from_websocket("127.0.0.1:0")
        .executor(TokioExecutor::current())
        .max_in_flight(64)
        .build()
        .unwrap();
    let addr = source.local_addr();
    let count = Arc::new(AtomicUsize::new(0));
    let (counted, enough) = (count.clone(), Arc::new(Notify::new()));
    let signal = enough.clone();
    // a slow pipeline, so that messages wait in the source when it stops
    source
        .stream()
        .map(|m| {
            std::thread::sleep(Duration::from_micros(200));
            m
        })
        .sink(move |_| {
            if counted.fetch_add(1, Ordering::SeqCst) + 1 == 500 {
                signal.notify_one();
            }
        });
    let running = tokio::spawn(source.run_until(within(enough, Duration::from_secs(30))));
    // clients that send until the server goes away
    let flooders: Vec<_> = (0..4)
        .map(|id| {
            tokio::spawn(async move {
                let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
                    .await
                    .unwrap();
                let mut sent = 0usize;
                while socket
                    .send(Message::text(format!("{id}:{sent}")))
                    .await
                    .is_ok()
                {
                    sent += 1;
                    if sent == 100_000 {
                        break;
                    }
                }
                sent
            })
        })
        .collect();
    let summary = running.await.unwrap().unwrap();
    let mut sent = 0;
    for flooder in flooders {
        sent += flooder.await.unwrap();
    }
    assert!(summary.messages >= 500, "{summary:?}");
    assert_eq!(
        count.load(Ordering::SeqCst) as u64,
        summary.messages,
        "every message read reached the sink"
    );
    assert!(sent as u64 >= summary.messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_source_turns_away_clients_over_its_limit() {
    let source = from_websocket("127.0.0.1:0")
        .executor(TokioExecutor::current())
        .max_connections(2)
        .build()
        .unwrap();
    let addr = source.local_addr();
    source.stream().sink(|_| {});
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(source.run_until(async {
        let _ = stopped.await;
    }));
    let url = format!("ws://{addr}/");
    let (_one, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (_two, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut three, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    match three.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Again),
        other => panic!("{other:?}"),
    }
    let _ = stop.send(());
    let summary = running.await.unwrap().unwrap();
    assert_eq!((summary.connections, summary.refused), (2, 1));
}

/// A websocket server for the client tests: sends `messages` to each client, then closes it;
/// the texts each client sent, in order.
async fn test_server(
    listener: TcpListener,
    messages: Vec<String>,
    clients: usize,
) -> Vec<Vec<String>> {
    let mut received = Vec::new();
    for _ in 0..clients {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        for m in &messages {
            socket.send(Message::text(m.clone())).await.unwrap();
        }
        let mut got = Vec::new();
        if messages.is_empty() {
            while let Some(Ok(m)) = socket.next().await {
                if let Message::Text(t) = m {
                    got.push(t.to_string());
                }
            }
        } else {
            let _ = socket.close(None).await;
            while socket.next().await.is_some() {}
        }
        received.push(got);
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_source_reconnects_to_a_server_that_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first: Vec<String> = (0..100).map(|i| format!("a{i}")).collect();
    let serving = tokio::spawn(test_server(listener, first, 1));
    let source = from_websocket_url(format!("ws://{addr}/feed"))
        .executor(TokioExecutor::current())
        .build()
        .unwrap();
    let got = source
        .stream()
        .map(|m| m.payload_str().unwrap().to_owned())
        .sink_to_vec();
    let (count, all) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let tick = at(&count, 200, &all);
    source.stream().sink(move |_| tick());
    let running = tokio::spawn(source.run_until(within(all, Duration::from_secs(30))));
    serving.await.unwrap();
    // the server is gone; it comes back on the same port
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let second: Vec<String> = (0..100).map(|i| format!("b{i}")).collect();
    let serving = tokio::spawn(test_server(listener, second, 1));
    let summary = running.await.unwrap().unwrap();
    serving.await.unwrap();
    assert_eq!(summary.connections, 2, "{summary:?}");
    let expected: Vec<String> = (0..100)
        .map(|i| format!("a{i}"))
        .chain((0..100).map(|i| format!("b{i}")))
        .collect();
    assert_eq!(got.to_vec(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sink_sends_every_element_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(test_server(listener, Vec::new(), 1));
    {
        let source = Stream::<String>::with_executor(TokioExecutor::current());
        let sent = to_websocket(format!("ws://{addr}/in"))
            .max_in_flight(32)
            .attach(&source)
            .unwrap()
            .sink_to_vec();
        for i in 0..2000 {
            source.emit(format!("m{i}")).await.unwrap();
        }
        source.close().await.unwrap();
        assert_eq!(sent.to_vec().len(), 2000, "each done once written");
    }
    // the graph gone, the sink closes its connection: the server's read ends
    let received = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the sink closed its connection")
        .unwrap();
    assert_eq!(
        received[0],
        (0..2000).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sink_whose_server_is_gone_fails_its_elements_without_holding_the_pipeline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // a server that reads ten messages, then goes away, listener and all
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut read = 0;
        while read < 10 {
            match socket.next().await {
                Some(Ok(Message::Text(_))) => read += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        read
    });
    let source = Stream::<String>::with_executor(TokioExecutor::current());
    let sent = to_websocket(format!("ws://{addr}/"))
        .max_in_flight(8)
        .timeout(Duration::from_millis(500))
        .attach(&source)
        .unwrap()
        .sink_to_vec();
    let errors = source.errors().sink_to_vec();
    for i in 0..10 {
        source.emit(format!("m{i}")).await.unwrap();
    }
    assert_eq!(serving.await.unwrap(), 10);
    let started = std::time::Instant::now();
    for i in 10..200 {
        let _ = source.emit(format!("m{i}")).await;
    }
    let _ = source.close().await;
    let took = started.elapsed();
    // the first waits out the timeout, the rest fail at once: not 190 timeouts
    assert!(took < Duration::from_secs(10), "{took:?}");
    let errors = errors.to_vec();
    assert!(
        errors.iter().all(|e| e
            .to_string()
            .contains("no connection to the server for 500ms")),
        "{:?}",
        errors.first()
    );
    // each element written or failed, none of them both or neither (the eleventh may have
    // gone into the socket before the server's close reached the sink)
    let written = sent.to_vec().len();
    assert!((10..=11).contains(&written), "{written}");
    assert_eq!(written + errors.len(), 200);
}

/// A client of a server sink that reads every message it is sent: their texts.
async fn reader(addr: SocketAddr, pause: Duration) -> (Vec<String>, Option<CloseCode>) {
    counting_reader(addr, pause, Arc::default()).await
}

/// As `reader`, counting what it read in `read`.
async fn counting_reader(
    addr: SocketAddr,
    pause: Duration,
    read: Arc<AtomicUsize>,
) -> (Vec<String>, Option<CloseCode>) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    tokio::time::sleep(pause).await;
    let mut got = Vec::new();
    while let Some(next) = socket.next().await {
        match next {
            Ok(Message::Text(t)) => {
                got.push(t.to_string());
                read.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Message::Close(frame)) => return (got, frame.map(|f| f.code)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (got, None)
}

async fn wait_for_clients(server: &streamz_websocket::WebsocketServer, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.clients() < n {
        assert!(tokio::time::Instant::now() < deadline, "clients connect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Messages of 8 KiB, so that a client that does not read fills its socket and its queue.
fn big(i: usize) -> String {
    format!("{i}:{}", "x".repeat(8 << 10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sink_drops_a_slow_client_and_the_others_get_everything() {
    let server = to_websocket_server("127.0.0.1:0")
        .client_buffer(50)
        .slow_client(SlowClient::Drop)
        .bind()
        .unwrap();
    let addr = server.local_addr();
    let read: Vec<Arc<AtomicUsize>> = (0..10).map(|_| Arc::default()).collect();
    let fast: Vec<_> = read
        .iter()
        .map(|r| tokio::spawn(counting_reader(addr, Duration::ZERO, r.clone())))
        .collect();
    // a client that reads nothing for a second
    let slow = tokio::spawn(reader(addr, Duration::from_secs(1)));
    wait_for_clients(&server, 11).await;
    let n = 3000;
    {
        let source = Stream::<String>::with_executor(TokioExecutor::current());
        let done = server.attach(&source).sink_to_vec();
        for i in 0..n {
            source.emit(big(i)).await.unwrap();
            // a producer no faster than the fast clients: they stay within their queues
            if i % 20 == 0 {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while read.iter().any(|r| r.load(Ordering::SeqCst) + 20 < i)
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        source.close().await.unwrap();
        assert_eq!(done.to_vec().len(), n);
    }
    assert_eq!(server.dropped_clients(), 1);
    assert_eq!(server.clients(), 10);
    drop(server);
    for reader in fast {
        let (got, code) = reader.await.unwrap();
        assert_eq!(got.len(), n, "a fast client gets every message");
        assert!(
            got.iter().enumerate().all(|(i, m)| *m == big(i)),
            "in order"
        );
        assert_eq!(code, Some(CloseCode::Away));
    }
    let (got, code) = slow.await.unwrap();
    assert!(got.len() < n, "{}", got.len());
    assert_eq!(code, Some(CloseCode::Policy), "told it was too slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sink_waits_for_a_slow_client_when_asked() {
    let server = to_websocket_server("127.0.0.1:0")
        .client_buffer(50)
        .slow_client(SlowClient::Wait)
        .bind()
        .unwrap();
    let addr = server.local_addr();
    let fast: Vec<_> = (0..5)
        .map(|_| tokio::spawn(reader(addr, Duration::ZERO)))
        .collect();
    let slow = tokio::spawn(reader(addr, Duration::from_secs(2)));
    wait_for_clients(&server, 6).await;
    let n = 3000;
    let source = Stream::<String>::with_executor(TokioExecutor::current());
    let done = server.attach(&source).sink_to_vec();
    let started = tokio::time::Instant::now();
    let mut at_one_second = None;
    for i in 0..n {
        source.emit(big(i)).await.unwrap();
        if at_one_second.is_none() && started.elapsed() >= Duration::from_secs(1) {
            at_one_second = Some(i);
        }
    }
    source.close().await.unwrap();
    assert_eq!(done.to_vec().len(), n);
    let held = at_one_second.expect("the slow client held the pipeline back");
    assert!(held < n, "{held}");
    assert_eq!(server.dropped_clients(), 0);
    drop((source, done, server));
    for reader in fast {
        assert_eq!(reader.await.unwrap().0.len(), n);
    }
    let (got, code) = slow.await.unwrap();
    assert_eq!(got.len(), n, "the slow client gets everything too");
    assert_eq!(code, Some(CloseCode::Away));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_are_clear_errors() {
    let e = from_websocket("127.0.0.1:99999").build().unwrap_err();
    assert!(
        e.message().contains("cannot listen on 127.0.0.1:99999"),
        "{e}"
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = to_websocket_server(addr.clone()).bind().unwrap_err();
    assert!(
        e.message().contains(&format!("cannot listen on {addr}")),
        "{e}"
    );
    let e = from_websocket_url("http://127.0.0.1:1/")
        .build()
        .unwrap_err();
    assert!(e.message().contains("is not a websocket URL"), "{e}");
    let e = to_websocket("wss://example.org/")
        .attach(&Stream::<String>::with_executor(TokioExecutor::current()))
        .unwrap_err();
    assert!(e.message().contains("wss:// (TLS) is not supported"), "{e}");
    let e = from_websocket_url("ws://127.0.0.1:1/")
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_err();
    assert!(
        e.message().contains("cannot reach ws://127.0.0.1:1/"),
        "{e}"
    );
    // a TCP server that is not a websocket one
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = plain.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = plain.accept().await.unwrap();
        use tokio::io::AsyncWriteExt;
        let _ = tcp.write_all(b"HTTP/1.1 404 Not Found\r\n\r\n").await;
    });
    let e = to_websocket(format!("ws://{at}/"))
        .attach(&Stream::<String>::with_executor(TokioExecutor::current()))
        .unwrap_err();
    assert!(e.message().contains("handshake"), "{e}");
}
