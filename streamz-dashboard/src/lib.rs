//! A live dashboard for running streamz graphs, in the spirit of the one Dask gives the
//! original streamz's users at `http://localhost:8787/status`.
//!
//! One line serves a graph's dashboard from a program:
//!
//! ```no_run
//! use streamz_core::Stream;
//!
//! let source = Stream::new();
//! let _out = source.map(|x: u64| x * 2).sink_to_vec();
//! let dashboard = streamz_dashboard::serve(&source)?; // http://127.0.0.1:8787/status
//! for x in 0..1_000_000 {
//!     source.emit_blocking(x).unwrap();
//! }
//! dashboard.stop();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The server is read-only and serves:
//!
//! - `GET /status`: a page that draws the graph and updates itself live (server-sent events)
//!   with each node's counts, rates, the elements it holds and its latency, and the thread
//!   pools' threads and calls in flight;
//! - `GET /api/graph`: the same figures as JSON; `GET /api/events`: as a stream of them;
//! - `GET /metrics`: the same figures in Prometheus' text format.
//!
//! Watching a graph turns its metrics on ([`Stream::enable_metrics`]), which costs each node
//! about a nanosecond per element.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use futures_util::Stream as FuturesStream;
use serde_json::{Value, json};
use streamz_core::{Element, Graph, GraphSnapshot, Stream};

/// The user guide's chapter, whose examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/dashboard.md")]
pub struct Guide;

/// Where [`serve`] listens: the address of Dask's dashboard.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8787";

const STATUS_PAGE: &str = include_str!("status.html");

/// The graphs and pools a dashboard shows, and how often its page updates.
///
/// # Examples
///
/// ```
/// use streamz_core::Stream;
/// use streamz_dashboard::Dashboard;
///
/// let source = Stream::new();
/// let _out = source.map(|x: u32| x + 1).named("increment").sink_to_vec();
/// let dashboard = Dashboard::new().watch(&source);
/// source.emit_blocking(1).unwrap();
/// let figures = dashboard.figures();
/// assert_eq!(figures["nodes"][1]["name"], "increment");
/// assert_eq!(figures["nodes"][1]["out"], 1);
/// assert!(dashboard.prometheus().contains("streamz_node_elements_out_total"));
/// ```
#[derive(Clone)]
pub struct Dashboard {
    graphs: Vec<Graph>,
    #[cfg(feature = "rayon")]
    pools: Vec<(String, streamz_rayon::Pool)>,
    every: Duration,
    started: Instant,
    /// Host names besides the bound address and localhost that requests may name.
    hosts: Vec<String>,
    /// Turns true when the server stops: open event streams end, so shutdown is prompt.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("graphs", &self.graphs.len())
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Default for Dashboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Dashboard {
    /// A dashboard that shows nothing yet, updating twice a second.
    pub fn new() -> Self {
        Dashboard {
            graphs: Vec::new(),
            #[cfg(feature = "rayon")]
            pools: Vec::new(),
            every: Duration::from_millis(500),
            started: Instant::now(),
            hosts: Vec::new(),
            stopping: tokio::sync::watch::channel(false).1,
        }
    }

    /// Also answers requests whose `Host` is `name` (with or without a port), as when the
    /// dashboard is reached through a proxy or by a machine's name. By default a served
    /// dashboard answers only requests naming its bound address, `localhost`, `127.0.0.1` or
    /// `[::1]`, and refuses others with 421: a web page of another site that resolves its
    /// own name to 127.0.0.1 (DNS rebinding) cannot read the pipeline's figures.
    pub fn allow_host(mut self, name: &str) -> Self {
        self.hosts.push(name.to_ascii_lowercase());
        self
    }

    /// Shows the graph `stream` belongs to (turning its metrics on). Several graphs may be
    /// watched; a graph watched twice is shown once.
    pub fn watch<T: Element>(self, stream: &Stream<T>) -> Self {
        self.watch_graph(stream.graph())
    }

    /// Shows `graph` (turning its metrics on).
    pub fn watch_graph(mut self, graph: Graph) -> Self {
        graph.enable_metrics();
        self.graphs.push(graph);
        self
    }

    /// Shows a thread pool's threads and calls in flight, under `name`.
    #[cfg(feature = "rayon")]
    pub fn pool(mut self, name: &str, pool: &streamz_rayon::Pool) -> Self {
        self.pools.push((name.to_owned(), pool.clone()));
        self
    }

    /// How often the page gets new figures (default 500 ms).
    pub fn update_every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(10));
        self
    }

    /// The watched graphs, merged into one (a node in two watched graphs appears once).
    fn snapshot(&self) -> GraphSnapshot {
        let mut merged: Option<GraphSnapshot> = None;
        for graph in &self.graphs {
            let next = graph.snapshot();
            match &mut merged {
                None => merged = Some(next),
                Some(all) => {
                    for node in next.nodes {
                        if !all.nodes.iter().any(|n| n.id == node.id) {
                            all.nodes.push(node);
                        }
                    }
                    for edge in next.edges {
                        if !all.edges.contains(&edge) {
                            all.edges.push(edge);
                        }
                    }
                }
            }
        }
        let mut all = merged.unwrap_or_default();
        all.nodes.sort_by_key(|n| n.id);
        all
    }

    /// Everything the dashboard shows, as the JSON that `GET /api/graph` serves: `time_ms`
    /// (since the dashboard was made), `nodes` (`id`, `name`, `operator`, `shape`, `in`,
    /// `out`, `errors`, `in_flight`, `latency_ms`, `closed`), `edges` (`from`, `to`) and
    /// `pools` (`name`, `threads`, `in_flight`, `running`, `completed`).
    pub fn figures(&self) -> Value {
        let snapshot = self.snapshot();
        let nodes: Vec<Value> = snapshot
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "id": n.id,
                    "name": n.name,
                    "operator": n.operator,
                    "shape": n.shape,
                    "metered": n.metered,
                    "in": n.elements_in,
                    "out": n.elements_out,
                    "errors": n.errors,
                    "in_flight": n.in_flight,
                    "latency_ms": n.latency.map(|d| d.as_secs_f64() * 1e3),
                    "closed": n.closed,
                })
            })
            .collect();
        let edges: Vec<Value> = snapshot
            .edges
            .iter()
            .map(|e| json!({"from": e.from, "to": e.to}))
            .collect();
        json!({
            "time_ms": self.started.elapsed().as_secs_f64() * 1e3,
            "nodes": nodes,
            "edges": edges,
            "pools": self.pools_json(),
        })
    }

    #[cfg(feature = "rayon")]
    fn pools_json(&self) -> Vec<Value> {
        self.pools
            .iter()
            .map(|(name, pool)| {
                let now = pool.snapshot();
                json!({
                    "name": name,
                    "threads": now.threads,
                    "in_flight": now.in_flight,
                    "running": now.running,
                    "completed": now.completed,
                })
            })
            .collect()
    }

    #[cfg(not(feature = "rayon"))]
    fn pools_json(&self) -> Vec<Value> {
        Vec::new()
    }

    /// The figures in Prometheus' text exposition format, as `GET /metrics` serves them.
    pub fn prometheus(&self) -> String {
        let snapshot = self.snapshot();
        let mut out = String::new();
        let families: [Family<streamz_core::NodeSnapshot>; 6] = [
            (
                "streamz_node_elements_in_total",
                "counter",
                "Elements that arrived at a node.",
                |n| n.elements_in as f64,
            ),
            (
                "streamz_node_elements_out_total",
                "counter",
                "Elements a node handed on.",
                |n| n.elements_out as f64,
            ),
            (
                "streamz_node_errors_total",
                "counter",
                "Elements a node failed on.",
                |n| n.errors as f64,
            ),
            (
                "streamz_node_in_flight",
                "gauge",
                "Elements a node holds: queued, waiting on a timer, or in an asynchronous call.",
                |n| n.in_flight as f64,
            ),
            (
                "streamz_node_latency_seconds",
                "gauge",
                "Moving average of a node's asynchronous calls' duration (0: none).",
                |n| n.latency.map_or(0.0, |d| d.as_secs_f64()),
            ),
            (
                "streamz_node_closed",
                "gauge",
                "1 once a node has reached end of stream.",
                |n| f64::from(u8::from(n.closed)),
            ),
        ];
        let rows: Vec<_> = snapshot
            .nodes
            .iter()
            .map(|n| {
                let labels = format!(
                    "node=\"{}\",name=\"{}\",operator=\"{}\"",
                    n.id,
                    label(&n.name),
                    label(n.operator)
                );
                (labels, n)
            })
            .collect();
        write_families(&mut out, &families, &rows);
        #[cfg(feature = "rayon")]
        if !self.pools.is_empty() {
            let pools: Vec<_> = self
                .pools
                .iter()
                .map(|(name, pool)| (format!("pool=\"{}\"", label(name)), pool.snapshot()))
                .collect();
            let rows: Vec<_> = pools
                .iter()
                .map(|(labels, now)| (labels.clone(), now))
                .collect();
            let families: [Family<streamz_rayon::PoolSnapshot>; 4] = [
                ("streamz_pool_threads", "gauge", "Threads of a pool.", |p| {
                    p.threads as f64
                }),
                (
                    "streamz_pool_in_flight",
                    "gauge",
                    "Calls submitted to a pool and not finished.",
                    |p| p.in_flight as f64,
                ),
                (
                    "streamz_pool_running",
                    "gauge",
                    "Calls running on a pool's threads.",
                    |p| p.running as f64,
                ),
                (
                    "streamz_pool_completed_total",
                    "counter",
                    "Calls a pool has finished.",
                    |p| p.completed as f64,
                ),
            ];
            write_families(&mut out, &families, &rows);
        }
        out
    }

    /// The dashboard's routes, to serve on an address of your choosing or to nest in your own
    /// axum application. Every route is a read-only `GET`.
    pub fn router(self) -> Router {
        let state = Arc::new(self);
        Router::new()
            .route("/", get(|| async { Redirect::to("/status") }))
            .route("/status", get(|| async { Html(STATUS_PAGE) }))
            .route(
                "/api/graph",
                get({
                    let state = state.clone();
                    move || async move {
                        (
                            [
                                (CONTENT_TYPE, "application/json"),
                                (CACHE_CONTROL, "no-store"),
                            ],
                            state.figures().to_string(),
                        )
                    }
                }),
            )
            .route(
                "/api/events",
                get({
                    let state = state.clone();
                    move || async move { events(state) }
                }),
            )
            .route(
                "/metrics",
                get(move || async move {
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        state.prometheus(),
                    )
                }),
            )
    }

    /// The router a served dashboard runs: the routes behind the `Host` check, and the
    /// sender that ends the event streams when the server stops.
    fn served_router(mut self, addr: SocketAddr) -> (Router, tokio::sync::watch::Sender<bool>) {
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        self.stopping = stopped;
        let mut allowed = vec![
            addr.ip().to_string(),
            format!("[{}]", addr.ip()),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "[::1]".to_owned(),
        ];
        allowed.append(&mut self.hosts);
        let allowed = Arc::new(allowed);
        let router = self.router().layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let allowed = allowed.clone();
                async move {
                    let host = request
                        .headers()
                        .get(axum::http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("");
                    if host_allowed(host, &allowed) {
                        next.run(request).await
                    } else {
                        (
                            axum::http::StatusCode::MISDIRECTED_REQUEST,
                            "this dashboard answers requests for its own address or localhost \
                             (see Dashboard::allow_host)\n",
                        )
                            .into_response()
                    }
                }
            },
        ));
        (router, stopping)
    }

    /// Serves the dashboard on `addr` from the current tokio runtime, until the returned
    /// [`Server`] is stopped or dropped.
    ///
    /// # Errors
    ///
    /// When `addr` cannot be bound (in use, not an address of this machine).
    pub async fn serve(self, addr: impl ToSocketAddrs) -> std::io::Result<Server> {
        let listener = bind(addr)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (router, stopping) = self.served_router(addr);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    stopping.send_replace(true);
                })
                .await;
        });
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: None,
        })
    }

    /// Serves the dashboard on `addr` from a thread of its own (with its own small tokio
    /// runtime), for programs that do not run one; until the [`Server`] is stopped or dropped.
    ///
    /// # Errors
    ///
    /// When `addr` cannot be bound, or the thread cannot be started.
    pub fn serve_in_background(self, addr: impl ToSocketAddrs) -> std::io::Result<Server> {
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (router, stopping) = self.served_router(addr);
        let thread = std::thread::Builder::new()
            .name("streamz-dashboard".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                            stopping.send_replace(true);
                        })
                        .await;
                });
            })?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Serves the dashboard of the graph `stream` belongs to at <http://127.0.0.1:8787/status>,
/// from a thread of its own, until the returned [`Server`] is stopped or dropped. Use
/// [`Dashboard`] for another address, several graphs or a thread pool.
///
/// # Errors
///
/// When the address is in use.
pub fn serve<T: Element>(stream: &Stream<T>) -> std::io::Result<Server> {
    Dashboard::new()
        .watch(stream)
        .serve_in_background(DEFAULT_ADDR)
}

/// A running dashboard server; dropping it stops the server.
///
/// Keep it for as long as the dashboard should be served: `serve(&s)?;` alone serves
/// nothing, and the compiler says so.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn show(s: &streamz_core::Stream<i32>) -> std::io::Result<()> {
///     streamz_dashboard::serve(s)?; // dropped at once: an error with this lint denied
///     Ok(())
/// }
/// ```
///
/// ```no_run
/// #![deny(unused_must_use)]
/// fn show(s: &streamz_core::Stream<i32>) -> std::io::Result<()> {
///     let server = streamz_dashboard::serve(s)?;
///     println!("dashboard at http://{}/status", server.local_addr());
///     std::thread::park(); // serve until the process ends
///     Ok(())
/// }
/// ```
#[derive(Debug)]
#[must_use = "dropping the Server stops it: keep it while the dashboard should be served"]
pub struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's address: `http://ADDR/status`.
    pub fn url(&self) -> String {
        format!("http://{}/status", self.addr)
    }

    /// Stops the server (open pages stop updating) and, for a background server, waits for
    /// its thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn bind(addr: impl ToSocketAddrs) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// True when `host` (a `Host` header: a name or address, maybe with a port) is one of
/// `allowed`.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    let name = match host.rsplit_once(':') {
        // `[::1]:8787`, `localhost:8787`; not the colons inside `[::1]`
        Some((name, port)) if !port.contains(']') => name,
        _ => host.as_str(),
    };
    allowed.iter().any(|a| a == name)
}

/// The figures every `every`, as server-sent events, until the server stops.
fn events(state: Arc<Dashboard>) -> impl IntoResponse {
    let updates = futures_util::stream::unfold((state, true), |(state, first)| async move {
        if !first {
            let mut stopping = state.stopping.clone();
            tokio::select! {
                () = tokio::time::sleep(state.every) => {}
                () = async {
                    // a router nested in someone's app has no server to stop it: never
                    if stopping.wait_for(|s| *s).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => return None,
            }
        }
        if *state.stopping.borrow() {
            return None;
        }
        let event = Event::default()
            .event("figures")
            .data(state.figures().to_string());
        Some((Ok::<_, Infallible>(event), (state, false)))
    });
    Sse::new(Box::pin(updates) as std::pin::Pin<Box<dyn FuturesStream<Item = _> + Send>>)
        .keep_alive(KeepAlive::default())
}

/// A Prometheus metric family: name, type, help, and how to read it off a snapshot.
type Family<S> = (&'static str, &'static str, &'static str, fn(&S) -> f64);

/// Writes each family's HELP and TYPE lines and one sample per row (its labels, rendered).
fn write_families<S>(out: &mut String, families: &[Family<S>], rows: &[(String, &S)]) {
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, row) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(row));
        }
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}
