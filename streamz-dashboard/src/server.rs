//! Serving a dashboard: its routes, the server on a thread of its own ([`Server`]), and the
//! checks on each request (the `Host` header, the events stream's end).

use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use futures_util::Stream as FuturesStream;
use streamz_core::{Element, Stream};

use crate::{DEFAULT_ADDR, Dashboard};

const STATUS_PAGE: &str = include_str!("status.html");

impl Dashboard {
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
