//! The network sources: lines over TCP, and bodies POSTed over HTTP.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use streamz_core::Stream;
use tokio::net::TcpListener;

use crate::lines::read_line_capped;
use crate::run::Control;

async fn listen(host: &str, port: u16) -> Result<TcpListener, String> {
    let listener = TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("listening on {addr}");
    Ok(listener)
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
    let mut refused: u64 = 0;
    loop {
        // Finished clients leave the set as they end, so it holds only live ones.
        while clients.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = control.stopped() => break,
        };
        let (socket, peer) = match accepted {
            Ok(client) => client,
            Err(e) => {
                // Out of file descriptors (EMFILE/ENFILE), or a connection reset before it
                // was accepted: refuse this one, keep serving the others, and back off a
                // little so a flood does not spin.
                refused += 1;
                if refused.is_power_of_two() {
                    eprintln!(
                        "warning: from_tcp: cannot accept a connection ({e}); {refused} refused so far"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                    () = control.stopped() => break,
                }
                continue;
            }
        };
        if clients.len() >= max_connections {
            refused += 1;
            if refused.is_power_of_two() {
                eprintln!(
                    "warning: from_tcp: {peer} refused: {max_connections} connections open \
                     (max_connections); {refused} refused so far"
                );
            }
            drop(socket);
            continue;
        }
        let (stream, mut control) = (stream.clone(), control.clone());
        clients.spawn(async move {
            let origin = format!("tcp {peer}");
            let mut reader = tokio::io::BufReader::new(socket);
            let mut number = 0;
            loop {
                // Once the run stops, the complete lines already read from the socket are
                // still delivered (they were accepted); nothing more is read.
                let next = if control.stopping() {
                    if control.failing() || !reader.buffer().contains(&b'\n') {
                        break;
                    }
                    read_line_capped(&mut reader, max_line).await
                } else {
                    tokio::select! {
                        next = read_line_capped(&mut reader, max_line) => next,
                        () = control.stopped() => continue,
                    }
                };
                number += 1;
                match next {
                    Ok(None) => break,
                    Ok(Some(Ok(line))) => {
                        if let Some(x) = control.parse(line, json, &origin, number) {
                            // never cancelled: an element taken is delivered
                            let _ = control.emit_for_client(&stream, x).await;
                        }
                    }
                    Ok(Some(Err(bad))) => {
                        control.bad_input(bad.describe(&origin, number, max_line))
                    }
                    Err(e) => {
                        eprintln!("warning: {origin}: {e}");
                        break;
                    }
                }
            }
        });
    }
    // Each client ends at its next read, after the element it is pushing, if any.
    drop(listener);
    while clients.join_next().await.is_some() {}
    Ok(())
}

#[derive(Clone)]
struct Http {
    stream: Stream<Value>,
    control: Control,
    json: bool,
}

/// Each body POSTed to `path` is an element; the reply waits until the pipeline has taken
/// it (so a client feels backpressure), and says whether it failed. A body over `max_body`
/// bytes gets 413.
pub(crate) async fn http(
    stream: &Stream<Value>,
    host: &str,
    port: u16,
    path: &str,
    max_body: usize,
    json: bool,
    control: Control,
) -> Result<(), String> {
    let listener = listen(host, port).await?;
    let state = Http {
        stream: stream.clone(),
        control: control.clone(),
        json,
    };
    let app = Router::new()
        .route(path, post(receive))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state);
    let mut stop = control.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.stopped().await })
        .await
        .map_err(|e| e.to_string())
}

async fn receive(State(http): State<Http>, body: String) -> (StatusCode, String) {
    let value = if http.json {
        match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid JSON: {e}\n")),
        }
    } else {
        Value::String(body)
    };
    match http.control.emit_for_client(&http.stream, value).await {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}
