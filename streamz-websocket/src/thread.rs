//! The thread the sockets live on: a one-thread tokio runtime (tokio-tungstenite's sockets
//! and timers are tokio's), so that the crate works under every streamz executor.

use std::future::Future;
use std::time::Duration;

use streamz_core::{ErrorKind, NodeRef, StreamError};
use streamz_tokio::RuntimeThread;

/// A runtime on a thread of its own ([`RuntimeThread`]), ended (its tasks dropped) when
/// this is dropped.
#[derive(Debug)]
pub(crate) struct Thread {
    _runtime: RuntimeThread,
}

impl Thread {
    /// Starts the thread, and runs `setup` on it; returns when `setup` is done, with what it
    /// made, or its error. Blocks the calling thread meanwhile. `setup` gets the [`Tasks`]
    /// token: the thread, once told to end, waits (up to 2 s) for the tasks that hold a
    /// clone of it, so that they can finish their sockets (a last message, a close frame).
    pub(crate) fn start<R, F>(
        node: &NodeRef,
        setup: impl FnOnce(Tasks) -> F + Send + 'static,
    ) -> Result<(Thread, R), StreamError>
    where
        R: Send + 'static,
        F: Future<Output = Result<R, String>> + 'static,
    {
        let (ready, is_ready) = std::sync::mpsc::sync_channel(1);
        let thread = RuntimeThread::spawn("streamz-websocket", move |stopping| async move {
            let tasks = Tasks(std::sync::Arc::new(()));
            let made = setup(tasks.clone()).await;
            let failed = made.is_err();
            if ready.send(made).is_err() || failed {
                return;
            }
            stopping.await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while std::sync::Arc::strong_count(&tasks.0) > 1
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .map_err(|e| failed(node, format!("a thread for the sockets: {e}")))?;
        match is_ready.recv() {
            Ok(Ok(made)) => Ok((Thread { _runtime: thread }, made)),
            Ok(Err(message)) => Err(failed(node, format!("{}: {message}", node.name()))),
            Err(_) => Err(failed(
                node,
                format!("{}: the sockets' thread ended", node.name()),
            )),
        }
    }
}

/// Held by the tasks a [`Thread`] waits for before it ends.
#[derive(Debug, Clone)]
pub(crate) struct Tasks(std::sync::Arc<()>);

/// The error of a node of this crate.
pub(crate) fn failed(node: &NodeRef, message: String) -> StreamError {
    StreamError::new(ErrorKind::Failed, Some(node.clone()), message)
}

/// Whether `url` is a websocket URL this crate can connect to (`ws://`), or why not.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("ws://") && url.len() > "ws://".len() {
        Ok(())
    } else if url.starts_with("wss://") {
        Err(format!(
            "`{url}`: wss:// (TLS) is not supported here: connect to a ws:// address (a TLS-terminating proxy in front of the server)"
        ))
    } else {
        Err(format!(
            "`{url}` is not a websocket URL (ws://host:port/path)"
        ))
    }
}

/// Resolves once `stopping` says so (or its sender is gone).
pub(crate) async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}
