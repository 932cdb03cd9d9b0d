//! The network sources: lines over TCP, and bodies POSTed over HTTP.

use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use streamz_core::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::run::Control;
use crate::source::Input;

async fn listen(host: &str, port: u16) -> Result<TcpListener, String> {
    let listener = TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("listening on {addr}");
    Ok(listener)
}

/// Takes connections for a server, at most `max` open at once: past it, and when accepting
/// fails (out of file descriptors, a connection reset before it was accepted), that client
/// is refused and the others are served. Refusals are reported on stderr, the first and then
/// at each power of two.
struct Acceptor {
    source: &'static str,
    open: Arc<Semaphore>,
    max: usize,
    refused: u64,
}

impl Acceptor {
    fn new(source: &'static str, max: usize) -> Self {
        Acceptor {
            source,
            open: Arc::new(Semaphore::new(max)),
            max,
            refused: 0,
        }
    }

    fn refuse(&mut self, why: std::fmt::Arguments<'_>) {
        self.refused += 1;
        if self.refused.is_power_of_two() {
            eprintln!(
                "warning: {}: {why}; {} refused so far",
                self.source, self.refused
            );
        }
    }

    /// The next connection, with the permit that counts it open; `None` once the run stops.
    async fn next(
        &mut self,
        listener: &TcpListener,
        control: &mut Control,
    ) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = control.stopped() => return None,
            };
            match accepted {
                Ok((socket, peer)) => match self.open.clone().try_acquire_owned() {
                    Ok(permit) => return Some((socket, peer, permit)),
                    Err(_) => {
                        let max = self.max;
                        self.refuse(format_args!(
                            "{peer} refused: {max} connections open (max_connections)"
                        ));
                    }
                },
                Err(e) => {
                    self.refuse(format_args!("cannot accept a connection ({e})"));
                    // back off a little, so that a flood does not spin
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                        () = control.stopped() => return None,
                    }
                }
            }
        }
    }
}

/// Each line any client sends is an element; a line over `max_line` bytes is reported and
/// dropped, and the connection goes on with the next line.
pub(crate) async fn tcp(
    stream: &Stream<Value>,
    host: &str,
    port: u16,
    max_line: usize,
    max_connections: usize,
    json: bool,
    mut control: Control,
) -> Result<(), String> {
    let listener = listen(host, port).await?;
    let mut clients = tokio::task::JoinSet::new();
    let mut acceptor = Acceptor::new("from_tcp", max_connections);
    while let Some((socket, peer, permit)) = acceptor.next(&listener, &mut control).await {
        // finished clients leave the set, so it holds only live ones
        while clients.try_join_next().is_some() {}
        let (input, mut control) = (Input::new(stream.clone(), None), control.clone());
        clients.spawn(async move {
            let origin = format!("tcp {peer}");
            let reader = tokio::io::BufReader::new(socket);
            // never cancelled: an element taken is delivered
            let fed = crate::run::feed_lines(
                &input,
                reader,
                crate::run::LinePosition::default(),
                json,
                max_line,
                &origin,
                None,
                &mut control,
            );
            if let Err(e) = fed.await {
                eprintln!("warning: {e}");
            }
            drop(permit);
        });
    }
    // Each client ends at its next read, after the element it is pushing, if any.
    drop(listener);
    while clients.join_next().await.is_some() {}
    Ok(())
}

/// The bounds of `from_http_server`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// The largest body taken (413 past it).
    pub(crate) max_body: usize,
    /// Requests handled at once; more wait for a turn (their bodies unread). Memory for bodies
    /// is at most `max_requests × max_body`.
    pub(crate) max_requests: usize,
    /// Connections open at once; more are refused.
    pub(crate) max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub(crate) header_timeout: Duration,
    /// How long a client may take to send a request's body (408 past it).
    pub(crate) body_timeout: Duration,
    /// After the run stops, how long requests still being sent may take before their
    /// connections are dropped. Requests whose body was read are delivered regardless.
    pub(crate) grace: Duration,
}

#[derive(Clone)]
struct Http {
    stream: Stream<Value>,
    control: Control,
    json: bool,
    limits: HttpLimits,
    /// One permit per request being handled, held until its element is through `emit`.
    turns: Arc<Semaphore>,
}

/// Each body POSTed to `path` is an element; the reply waits until the pipeline has taken
/// it (so a client feels backpressure), and says whether it failed. A body over `max_body`
/// bytes gets 413; one not sent within `body_timeout`, 408.
pub(crate) async fn http(
    stream: &Stream<Value>,
    host: &str,
    port: u16,
    path: &str,
    json: bool,
    limits: HttpLimits,
    control: Control,
) -> Result<(), String> {
    let listener = listen(host, port).await?;
    let turns = Arc::new(Semaphore::new(limits.max_requests));
    let state = Http {
        stream: stream.clone(),
        control: control.clone(),
        json,
        limits,
        turns: turns.clone(),
    };
    let app = Router::new().route(path, post(receive)).with_state(state);
    let service = TowerToHyperService::new(app);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut acceptor = Acceptor::new("from_http_server", limits.max_connections);
    let mut stop = control.clone();
    while let Some((socket, _, permit)) = acceptor.next(&listener, &mut stop).await {
        let connection =
            graceful.watch(http1.serve_connection(TokioIo::new(socket), service.clone()));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    // Idle connections close now, requests being handled finish; requests still being sent
    // get the grace period.
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "warning: from_http_server: requests still being sent {} after the stop were dropped",
            humantime::format_duration(limits.grace)
        );
    }
    // Every request whose body was read is delivered before the source closes.
    let _ = turns.acquire_many(limits.max_requests as u32).await;
    Ok(())
}

async fn receive(State(http): State<Http>, body: Body) -> (StatusCode, String) {
    let Ok(turn) = http.turns.clone().acquire_owned().await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_owned(),
        );
    };
    let read = tokio::time::timeout(
        http.limits.body_timeout,
        axum::body::to_bytes(body, http.limits.max_body),
    )
    .await;
    let bytes = match read {
        Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                "the body took too long\n".to_owned(),
            );
        }
        Ok(Err(e)) => {
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_big {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the body is over {} bytes (max_body)\n",
                        http.limits.max_body
                    ),
                )
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}\n"),
                )
            };
        }
        Ok(Ok(bytes)) => bytes,
    };
    // no copy: the collected body becomes the string's buffer
    let Ok(body) = String::from_utf8(Vec::from(bytes)) else {
        return (
            StatusCode::BAD_REQUEST,
            "the body is not valid UTF-8\n".to_owned(),
        );
    };
    let value = if http.json {
        match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid JSON: {e}\n")),
        }
    } else {
        Value::String(body)
    };
    // The element is accepted: it goes through `emit` in a task of its own, so a client
    // that hangs up, or the end of the grace period, does not cancel it.
    let (stream, control) = (http.stream.clone(), http.control.clone());
    let emitted = tokio::spawn(async move {
        let result = control.emit_for_client(&stream, value).await;
        drop(turn);
        result
    });
    match emitted.await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n".to_owned()),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}
