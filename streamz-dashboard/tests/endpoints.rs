//! The dashboard's endpoints against running pipelines, over real HTTP on 127.0.0.1.

use std::time::Duration;

use serde_json::Value;
use streamz_core::Stream;
use streamz_dashboard::Dashboard;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `METHOD path` on `addr`: (status line, headers and body).
async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, String) {
    request_for(addr, &addr.to_string(), method, path).await
}

/// The same, naming `host` in the `Host` header.
async fn request_for(
    addr: std::net::SocketAddr,
    host: &str,
    method: &str,
    path: &str,
) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let (status, rest) = out.split_once("\r\n").unwrap();
    (status.to_owned(), rest.to_owned())
}

async fn body(addr: std::net::SocketAddr, path: &str) -> String {
    let (status, rest) = request(addr, "GET", path).await;
    assert!(status.ends_with("200 OK"), "{path}: {status}");
    rest.split_once("\r\n\r\n").unwrap().1.to_owned()
}

async fn figures(addr: std::net::SocketAddr) -> Value {
    serde_json::from_str(&body(addr, "/api/graph").await).unwrap()
}

fn node<'a>(figures: &'a Value, name: &str) -> &'a Value {
    figures["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {figures}"))
}

#[tokio::test]
async fn the_counts_go_up_while_a_pipeline_runs() {
    let source = Stream::new();
    let _out = source
        .map(|x: u64| x * 2)
        .named("double")
        .filter(|x| x % 3 == 0)
        .named("thirds")
        .sink_to_vec();
    let server = Dashboard::new()
        .watch(&source)
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    for x in 0..10 {
        source.emit(x).await.unwrap();
    }
    let first = figures(addr).await;
    assert_eq!(node(&first, "double")["in"], 10);
    assert_eq!(node(&first, "thirds")["out"], 4);
    assert_eq!(first["edges"].as_array().unwrap().len(), 3);
    for x in 10..25 {
        source.emit(x).await.unwrap();
    }
    let second = figures(addr).await;
    assert_eq!(node(&second, "double")["out"], 25);
    assert_eq!(node(&second, "thirds")["out"], 9);
    assert!(second["time_ms"].as_f64() > first["time_ms"].as_f64());
}

#[tokio::test]
async fn prometheus_text_parses_and_agrees_with_the_json() {
    let source = Stream::new();
    let _out = source
        .map(|x: i32| 10 / x)
        .named("divide \"by\" x")
        .sink_to_vec();
    // an event-time window whose late elements are counted
    let at = |x: &i32| streamz_core::EventTime::from_secs(i64::from(*x));
    let (windows, late) = source
        .watermarks(at, streamz_core::Watermarks::ascending())
        .window(streamz_core::Window::tumbling("1s"), at)
        .fold(0, |n, _| *n += 1);
    let (_windows, _late) = (
        windows.named("per second").sink_to_vec(),
        late.sink_to_vec(),
    );
    let server = Dashboard::new()
        .watch(&source)
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    for x in [1, 0, 2, 5] {
        let _ = source.emit(x).await;
    }
    let (status, rest) = request(server.local_addr(), "GET", "/metrics").await;
    assert!(status.ends_with("200 OK"));
    assert!(
        rest.to_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{rest}"
    );
    let text = rest.split_once("\r\n\r\n").unwrap().1;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |metric: &str, name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("name") == Some(name))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {metric} for {name} in:\n{text}"))
    };
    // the parser keeps a label's escapes as written: the quotes were escaped
    let name = r#"divide \"by\" x"#;
    assert_eq!(value("streamz_node_elements_in_total", name), 4.0);
    assert_eq!(value("streamz_node_elements_out_total", name), 3.0);
    assert_eq!(value("streamz_node_errors_total", name), 1.0);
    // 0 came after the watermark had reached 1 s
    assert_eq!(value("streamz_node_late_total", "per second"), 1.0);
    assert_eq!(value("streamz_node_in_flight", name), 0.0);
    assert!(scrape.docs.contains_key("streamz_node_elements_in_total"));
}

#[tokio::test]
async fn the_page_and_the_event_stream_are_served_and_nothing_can_be_changed() {
    let source = Stream::<u8>::new();
    let _out = source.sink_to_vec();
    let server = Dashboard::new()
        .watch(&source)
        .update_every(Duration::from_millis(20))
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    let page = body(addr, "/status").await;
    assert!(page.contains("<svg id=\"graph\"") && page.contains("EventSource(\"/api/events\")"));
    let (status, rest) = request(addr, "GET", "/").await;
    assert!(
        status.contains("303") && rest.contains("location: /status"),
        "{status} {rest}"
    );
    for (method, path) in [
        ("POST", "/api/graph"),
        ("PUT", "/metrics"),
        ("DELETE", "/status"),
    ] {
        let (status, _) = request(addr, method, path).await;
        assert!(status.contains("405"), "{method} {path}: {status}");
    }
    // two events from the stream
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("event: figures").count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("events keep coming")
            .unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.to_lowercase()
            .contains("content-type: text/event-stream")
    );
    assert!(seen.contains("data: {\""));
}

#[cfg(feature = "rayon")]
#[tokio::test]
async fn pools_show_their_threads_and_calls() {
    use streamz_rayon::{Pool, ScatterExt};
    let pool = Pool::new(2).unwrap();
    let source = Stream::with_executor(streamz_tokio::TokioExecutor::current());
    let _out = source
        .scatter(&pool)
        .map(|x: u64| x + 1)
        .gather()
        .sink_to_vec();
    let server = Dashboard::new()
        .watch(&source)
        .pool("cpu", &pool)
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    for x in 0..5 {
        source.emit(x).await.unwrap();
    }
    let figures = figures(server.local_addr()).await;
    let pool = &figures["pools"][0];
    assert_eq!(
        (pool["name"].as_str(), pool["threads"].as_u64()),
        (Some("cpu"), Some(2))
    );
    let metrics = body(server.local_addr(), "/metrics").await;
    assert!(
        metrics.contains("streamz_pool_threads{pool=\"cpu\"} 2"),
        "{metrics}"
    );
    // the pooled stage's calls have a latency
    assert!(
        figures["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["latency_ms"].as_f64().is_some()),
        "{figures}"
    );
}

#[test]
fn a_background_server_serves_from_its_own_thread_and_refuses_a_used_address() {
    let source = Stream::new();
    let _out = source.map(|x: u8| x).sink_to_vec();
    let server = Dashboard::new()
        .watch(&source)
        .serve_in_background("127.0.0.1:0")
        .unwrap();
    source.emit_blocking(7).unwrap();
    assert!(server.url().starts_with("http://127.0.0.1:") && server.url().ends_with("/status"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let figures = runtime.block_on(figures(server.local_addr()));
    assert_eq!(figures["nodes"][0]["out"], 1);
    let taken = Dashboard::new().serve_in_background(server.local_addr());
    assert_eq!(taken.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
    server.stop();
}

#[tokio::test]
async fn requests_for_another_host_are_refused_unless_allowed() {
    let source = Stream::<u8>::new();
    let server = Dashboard::new()
        .watch(&source)
        .allow_host("dashboard.internal")
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    let port = addr.port();
    for host in [
        addr.to_string(),
        format!("localhost:{port}"),
        "LOCALHOST".to_owned(),
        format!("[::1]:{port}"),
        "dashboard.internal:80".to_owned(),
    ] {
        let (status, _) = request_for(addr, &host, "GET", "/api/graph").await;
        assert!(status.ends_with("200 OK"), "{host}: {status}");
    }
    // a page of another site whose name resolves to 127.0.0.1 (DNS rebinding)
    for host in [
        "evil.example",
        "evil.example:8787",
        "127.0.0.1.evil.example",
        "",
    ] {
        let (status, body) = request_for(addr, host, "GET", "/api/graph").await;
        assert!(status.contains("421"), "{host}: {status}");
        assert!(!body.contains("nodes"), "{host}: {body}");
    }
}

#[test]
fn dropping_a_background_server_with_an_open_event_stream_returns_promptly() {
    let source = Stream::<u8>::new();
    let server = Dashboard::new()
        .watch(&source)
        .serve_in_background("127.0.0.1:0")
        .unwrap();
    let addr = server.local_addr();
    // an open /status page: its event stream, one chunk read
    let mut events = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(
        &mut events,
        format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut chunk = [0u8; 256];
    let n = std::io::Read::read(&mut events, &mut chunk).unwrap();
    assert!(String::from_utf8_lossy(&chunk[..n]).contains("200 OK"));
    let start = std::time::Instant::now();
    drop(server);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}
