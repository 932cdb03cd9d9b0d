//! [`to_nats`]: a publishing sink; with JetStream, its elements are done when the stream
//! has stored them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishErrorKind};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use streamz_core::{NodeRef, Payload, Stream, StreamError};
use tokio::sync::{mpsc, oneshot};

use crate::connection::{Connection, Settings, failed};
use crate::source::Message;

impl Payload for Message {
    fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// A publication the server refused, or that did not reach it in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    subject: Arc<str>,
    message: String,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "to_nats `{}`: {}", self.subject, self.message)
    }
}

impl std::error::Error for PublishError {}

/// A publishing sink: see [`to_nats`].
#[must_use = "a builder does nothing until it is attached"]
#[derive(Debug)]
pub struct ToNats {
    settings: Settings,
    subject: String,
    jetstream: Option<String>,
    create_stream: bool,
    max_in_flight: usize,
    timeout: Duration,
}

/// Publishes each element to `subject` on the NATS server at `server`.
///
/// As it is, core NATS: an element is done once the client has taken it (at most once: a
/// subscriber that is away, or a connection that drops before the server read it, loses
/// it). With [`jetstream`](ToNats::jetstream), an element is done
/// when the stream has stored it (JetStream's publish acknowledgement), so a source
/// upstream acknowledges its own messages only once they are stored; a publication not
/// acknowledged (a server restarting) is sent again, with the same message id so that the
/// stream stores it once, until [`timeout`](ToNats::timeout). At most
/// [`max_in_flight`](ToNats::max_in_flight) publications are awaited at once; past that,
/// `emit` waits.
///
/// # Examples
///
/// ```no_run
/// use streamz_core::Stream;
/// use streamz_nats::to_nats;
///
/// # fn example() -> Result<(), streamz_core::StreamError> {
/// let source = Stream::<String>::new();
/// let stored = to_nats("nats://127.0.0.1:4222", "greetings")
///     .jetstream("GREETINGS")
///     .attach(&source)?;
/// # Ok(())
/// # }
/// ```
pub fn to_nats(server: impl Into<String>, subject: impl Into<String>) -> ToNats {
    ToNats {
        settings: Settings::new(server),
        subject: subject.into(),
        jetstream: None,
        create_stream: false,
        max_in_flight: 100,
        timeout: Duration::from_secs(60),
    }
}

impl ToNats {
    crate::connection::login_options!();

    /// Publishes through JetStream, into the stream `stream` (which must capture the
    /// subject): an element is done once the stream has stored it.
    pub fn jetstream(mut self, stream: impl Into<String>) -> Self {
        self.jetstream = Some(stream.into());
        self
    }

    /// Makes the JetStream stream (capturing the subject) if the server does not have it
    /// (default no: a missing stream is an error).
    pub fn create_stream(mut self, create: bool) -> Self {
        self.create_stream = create;
        self
    }

    /// At most `n` publications awaited at once (default 100, at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.clamp(1, 1 << 20);
        self
    }

    /// JetStream: how long a publication is tried (sent again when it is not acknowledged
    /// within 5 s) before it fails (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects (and, with JetStream, checks that the stream captures the subject), and
    /// publishes each element of `upstream`; the stream returned has each element once it
    /// is published.
    ///
    /// # Errors
    ///
    /// A server that does not answer within the connection timeout, a refused login, a
    /// subject that is not one to publish to, a missing stream or one that does not
    /// capture the subject.
    pub fn attach<T: Payload>(self, upstream: &Stream<T>) -> Result<Stream<T>, StreamError> {
        let node = NodeRef::detached("to_nats");
        let subject = self.subject.clone();
        if subject.is_empty()
            || subject.contains(['*', '>', ' ', '\t', '\r', '\n'])
            || subject.starts_with('.')
            || subject.ends_with('.')
            || subject.contains("..")
        {
            return Err(failed(
                &node,
                format!(
                    "to_nats: `{subject}` is not a subject to publish to (tokens separated by `.`, no wildcard `*` or `>`, no white space)"
                ),
            ));
        }
        let (requests, queued) = mpsc::channel::<Request>(self.max_in_flight);
        let jetstream = self.jetstream.clone();
        let create = self.create_stream;
        let subject_ = subject.clone();
        let (connection, context) = Connection::open(
            &self.settings,
            &node,
            move |client| async move {
                let Some(name) = jetstream else {
                    return Ok(None);
                };
                let context = jetstream::new(client);
                let mut stream = crate::connection::stream(
                    &context,
                    &name,
                    std::slice::from_ref(&subject_),
                    create,
                )
                .await?;
                let info = stream
                    .info()
                    .await
                    .map_err(|e| format!("the JetStream stream `{name}`: {e}"))?;
                if !info
                    .config
                    .subjects
                    .iter()
                    .any(|filter| captures(filter, &subject_))
                {
                    return Err(format!(
                        "the JetStream stream `{name}` does not capture `{subject_}` (its subjects: {})",
                        info.config.subjects.join(", ")
                    ));
                }
                Ok(Some(context))
            },
        )?;
        let publisher = Publisher {
            client: connection.client.clone(),
            context,
            subject: subject.clone().into(),
            timeout: self.timeout,
            ids: Ids::new(),
        };
        connection.handle().spawn(publisher.serve(queued));
        let connection = Arc::new(connection);
        let subject: Arc<str> = subject.into();
        Ok(upstream
            .try_map_async(self.max_in_flight, move |element: T| {
                // queued here, as the elements come (the futures start in no set order);
                // never full: at most `max_in_flight` calls are outstanding, each with at
                // most one request queued
                let (done, is_done) = oneshot::channel();
                let payload = Bytes::copy_from_slice(element.payload());
                let queued = requests
                    .try_send(Request { payload, done })
                    .map_err(|e| e.to_string());
                let (connection, subject) = (connection.clone(), subject.clone());
                async move {
                    let result = match queued {
                        Ok(()) => is_done
                            .await
                            .unwrap_or_else(|_| Err("the connection ended".to_owned())),
                        Err(e) => Err(format!("the connection's queue: {e}")),
                    };
                    // the connection lives while a publication does
                    drop(connection);
                    result
                        .map(|()| element)
                        .map_err(|message| PublishError { subject, message })
                }
            })
            .named("to_nats"))
    }
}

/// Whether the subject filter `filter` (with `*` and `>`) matches `subject`.
fn captures(filter: &str, subject: &str) -> bool {
    let mut filter = filter.split('.');
    let mut subject = subject.split('.');
    loop {
        match (filter.next(), subject.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(f), Some(s)) if f == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A publication on its way to the connection, and where its outcome goes.
struct Request {
    payload: Bytes,
    done: oneshot::Sender<Result<(), String>>,
}

/// Message ids unique to this sink, so that a publication sent again is stored once.
struct Ids {
    prefix: String,
    next: AtomicU64,
}

impl Ids {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Ids {
            prefix: format!("streamz-{}-{nanos:x}-", std::process::id()),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        format!(
            "{}{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// The connection's side of the sink: publishes what is queued, in order, and answers each
/// request when it is published (core) or stored (JetStream).
struct Publisher {
    client: Client,
    context: Option<jetstream::Context>,
    subject: Arc<str>,
    timeout: Duration,
    ids: Ids,
}

impl Publisher {
    async fn serve(self, mut queued: mpsc::Receiver<Request>) {
        // JetStream: each sent in order, its acknowledgement awaited beside the next ones'
        // (at most `max_in_flight`: the requests' channel and the sink's bound)
        let mut awaited = FuturesUnordered::new();
        loop {
            let request = tokio::select! {
                request = queued.recv() => match request {
                    Some(request) => request,
                    None => break,
                },
                Some(()) = awaited.next(), if !awaited.is_empty() => continue,
            };
            match &self.context {
                None => {
                    let result = self
                        .client
                        .publish(self.subject.to_string(), request.payload)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = request.done.send(result);
                }
                Some(context) => {
                    let id = self.ids.next();
                    let first = self.send(context, &id, request.payload.clone()).await;
                    let this = &self;
                    awaited.push(async move {
                        let result = this.stored(context, id, request.payload, first).await;
                        let _ = request.done.send(result);
                    });
                }
            }
        }
        while awaited.next().await.is_some() {}
    }

    async fn send(
        &self,
        context: &jetstream::Context,
        id: &str,
        payload: Bytes,
    ) -> Result<jetstream::context::PublishAckFuture, jetstream::context::PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        context
            .publish_with_headers(self.subject.to_string(), headers, payload)
            .await
    }

    /// Waits for the stream's acknowledgement, sending the publication again (the same id)
    /// while it is not had, until the timeout.
    async fn stored(
        &self,
        context: &jetstream::Context,
        id: String,
        payload: Bytes,
        first: Result<jetstream::context::PublishAckFuture, jetstream::context::PublishError>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let mut sent = first;
        let mut wait = Duration::from_millis(100);
        loop {
            let error = match sent {
                Ok(ack) => match ack.await {
                    Ok(_) => return Ok(()),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            let retried = matches!(
                error.kind(),
                PublishErrorKind::TimedOut
                    | PublishErrorKind::BrokenPipe
                    | PublishErrorKind::StreamNotFound
                    | PublishErrorKind::MaxAckPending
            );
            if !retried || Instant::now() + wait >= deadline {
                return Err(if retried {
                    format!(
                        "not stored by JetStream within {} ({error})",
                        humantime::format_duration(self.timeout)
                    )
                } else {
                    error.to_string()
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            sent = self.send(context, &id, payload.clone()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::captures;

    #[test]
    fn subject_filters_match_as_nats_does() {
        assert!(captures("orders", "orders"));
        assert!(captures("orders.*", "orders.eu"));
        assert!(!captures("orders.*", "orders.eu.paris"));
        assert!(captures("orders.>", "orders.eu.paris"));
        assert!(!captures("orders.>", "orders"));
        assert!(!captures("orders", "orders.eu"));
        assert!(captures("*.eu", "orders.eu"));
        assert!(!captures("orders.eu", "orders.us"));
    }
}
