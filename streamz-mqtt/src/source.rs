//! [`from_mqtt`]: a subscription's messages as a stream, each QoS 1 message acknowledged to
//! the broker (PUBACK) only once it, and everything made from it, is done.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{Either, select};
use rumqttc::v5::mqttbytes::v5::Publish;
use streamz_core::{
    Ack, BoxError, Element, ErrorKind, Executor, NodeRef, OffsetTracker, OnFailure, Stream,
    StreamError, lock,
};
use tokio::sync::mpsc;

use crate::connection::{Connection, Health, Inbox, QoS, Role, Settings, failed};

/// A message, as a source emits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic it was published to.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// The QoS it was delivered with.
    pub qos: QoS,
    /// Whether the broker sent it as a retained message.
    pub retain: bool,
}

impl Message {
    /// The payload as text, if it is UTF-8.
    ///
    /// ```
    /// # use streamz_mqtt::{Message, QoS};
    /// let m = Message { topic: "t".into(), payload: b"hi".to_vec(), qos: QoS::AtLeastOnce, retain: false };
    /// assert_eq!(m.payload_str(), Some("hi"));
    /// ```
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

type ErrorHook = Arc<dyn Fn(StreamError) + Send + Sync>;

/// A subscription to an MQTT broker, as a source: see [`from_mqtt`].
#[must_use = "a builder does nothing until it is built"]
pub struct FromMqtt {
    settings: Settings,
    topics: Vec<String>,
    qos: QoS,
    max_in_flight: u16,
    on_failure: OnFailure,
    on_error: Option<ErrorHook>,
    executor: Option<Arc<dyn Executor>>,
}

impl std::fmt::Debug for FromMqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FromMqtt")
            .field("address", &self.settings.address())
            .field("topics", &self.topics)
            .field("qos", &self.qos)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

/// Messages of `topics` (filters: `+` and `#` wildcards) from the MQTT broker at
/// `host:port`, as a source, over MQTT 5.
///
/// With QoS 1 (the default), a message is acknowledged to the broker only when it is done:
/// every element made from it handled by every sink, dropped by an operator's semantics, or
/// failed and skipped by [`on_failure`](FromMqtt::on_failure). Acknowledgements go in the
/// order the messages came, as MQTT asks. Give a [`client_id`](FromMqtt::client_id) for a
/// persistent session: the broker then keeps the subscription, and every message not yet
/// acknowledged, while the process is away (a crash, a restart), and sends them again when
/// it comes back: at least once. At most [`max_in_flight`](FromMqtt::max_in_flight)
/// messages are in the graph at once, and the broker is told to send no more unacknowledged
/// (MQTT 5's receive maximum); what a broker sends past it waits in the connection's buffer
/// (up to four times as many, then the socket is not read until the graph catches up).
///
/// # Examples
///
/// ```no_run
/// use streamz_mqtt::{from_mqtt, to_mqtt};
///
/// # async fn example() -> Result<(), streamz_core::StreamError> {
/// let source = from_mqtt("127.0.0.1", 1883, ["sensors/+/temperature"])
///     .client_id("thermometer") // a persistent session
///     .build()?;
/// let celsius = source.stream().map(|m| m.payload_str().unwrap_or("").to_owned());
/// to_mqtt("127.0.0.1", 1883, "temperatures").attach(&celsius)?;
/// source.run().await?; // each message acknowledged once it is in `temperatures`
/// # Ok(())
/// # }
/// ```
pub fn from_mqtt<T: Into<String>>(
    host: impl Into<String>,
    port: u16,
    topics: impl IntoIterator<Item = T>,
) -> FromMqtt {
    FromMqtt {
        settings: Settings::new(host, port),
        topics: topics.into_iter().map(Into::into).collect(),
        qos: QoS::AtLeastOnce,
        max_in_flight: 100,
        on_failure: OnFailure::Stop,
        on_error: None,
        executor: None,
    }
}

impl FromMqtt {
    crate::connection::login_options!();

    /// The subscription's QoS (default [`QoS::AtLeastOnce`]).
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// The client id, which makes the session persistent (kept by the broker for
    /// [`session_expiry`](FromMqtt::session_expiry) while the client is away). Without one
    /// the client has a fresh id and a clean session, and what is sent while it is away is
    /// lost.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.settings.client_id = Some(id.into());
        self
    }

    /// How long the broker keeps a persistent session whose client is away (default one
    /// day).
    pub fn session_expiry(mut self, expiry: Duration) -> Self {
        self.settings.session_expiry = expiry;
        self
    }

    /// At most `n` QoS 1 messages unacknowledged at once (default 100, at least 1, at most
    /// 65,535): the receive maximum the broker is told.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.clamp(1, u16::MAX as usize) as u16;
        self
    }

    /// What to do when a message fails in the pipeline (default [`OnFailure::Stop`]).
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    /// Called with each failure of an element this source emitted that its `emit` returned
    /// (failures later on are on the graph's `errors()` stream).
    pub fn on_error(mut self, hook: impl Fn(StreamError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// The executor the source's graph runs on: as [`Stream::with_executor`].
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.executor = Some(Arc::new(executor));
        self
    }

    /// Connects and subscribes.
    ///
    /// # Errors
    ///
    /// No topic; a broker that does not answer within the connect timeout; a refusal (bad
    /// credentials, not authorised, a subscription refused); an unreadable CA file.
    pub fn build(self) -> Result<MqttSource<Message>, StreamError> {
        let stream = match &self.executor {
            Some(executor) => Stream::with_executor(executor.clone()),
            None => Stream::new(),
        }
        .named("from_mqtt");
        self.build_into(&stream, Ok::<_, BoxError>)
    }

    /// Connects and subscribes, to emit into `stream` (an existing graph's source, with its
    /// executor and name) what `decode` makes of each message. A message `decode` fails on
    /// is a failed message: passed to [`on_error`](FromMqtt::on_error) and acknowledged or
    /// not as [`on_failure`](FromMqtt::on_failure) says. The
    /// [`executor`](FromMqtt::executor) option does not apply: `stream` has its own.
    ///
    /// # Errors
    ///
    /// As [`build`](FromMqtt::build).
    pub fn build_into<T, E>(
        self,
        stream: &Stream<T>,
        decode: impl Fn(Message) -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<MqttSource<T>, StreamError>
    where
        T: Element,
        E: Into<BoxError>,
    {
        let node = NodeRef::detached("from_mqtt");
        if self.topics.is_empty() {
            return Err(failed(&node, "from_mqtt: no topic to subscribe to".into()));
        }
        let (messages, received) = mpsc::channel(self.max_in_flight as usize);
        let inbox: Arc<Inbox> = Arc::default();
        let role = Role::Source {
            topics: self.topics.iter().map(|t| (t.clone(), self.qos)).collect(),
            messages,
            inbox: inbox.clone(),
        };
        let connection = Connection::open(&self.settings, role, self.max_in_flight, &node)?;
        let acks = Arc::new(Acks {
            tracker: OffsetTracker::new(self.max_in_flight as usize),
            unacked: Mutex::default(),
            inbox,
            client: connection.client.clone(),
            health: connection.health.clone(),
            on_failure: self.on_failure,
            node,
            address: self.settings.address(),
            failed: AtomicU64::new(0),
        });
        Ok(MqttSource {
            stream: stream.clone(),
            decode: Box::new(move |m| decode(m).map_err(Into::into)),
            connection,
            received,
            acks,
            on_error: self.on_error,
        })
    }
}

/// A subscribed connection and the stream it feeds: build the graph on
/// [`stream`](MqttSource::stream), then [`run`](MqttSource::run) it.
pub struct MqttSource<T = Message> {
    stream: Stream<T>,
    decode: Decode<T>,
    connection: Connection,
    received: mpsc::Receiver<Publish>,
    acks: Arc<Acks>,
    on_error: Option<ErrorHook>,
}

/// How a source makes its element of a message.
type Decode<T> = Box<dyn Fn(Message) -> Result<T, BoxError> + Send + Sync>;

impl<T> std::fmt::Debug for MqttSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSource")
            .field("address", &self.acks.address)
            .finish_non_exhaustive()
    }
}

/// What a finished run did: see [`MqttSource::run_until`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Messages received.
    pub messages: u64,
    /// Messages that failed in the pipeline.
    pub failed: u64,
    /// Times the connection was made again after it dropped.
    pub reconnections: u64,
}

impl<T: Element> MqttSource<T> {
    /// The stream of messages.
    pub fn stream(&self) -> &Stream<T> {
        &self.stream
    }

    /// The last connection error, which the source retries (with backoff) and so does not
    /// end the run.
    pub fn last_error(&self) -> Option<String> {
        self.connection.health.last_error()
    }

    /// Runs until the connection fails for good (a refusal) or a message fails under
    /// [`OnFailure::Stop`]: see [`run_until`](MqttSource::run_until).
    pub async fn run(self) -> Result<RunSummary, StreamError> {
        self.run_until(std::future::pending()).await
    }

    /// Emits messages until `stop` completes (or the connection is refused, or a message
    /// fails under [`OnFailure::Stop`]); then closes the stream (what was received drains
    /// to the sinks and is acknowledged), and disconnects.
    ///
    /// # Errors
    ///
    /// The failure that stopped it, or one of closing the stream.
    pub async fn run_until(
        mut self,
        stop: impl Future<Output = ()>,
    ) -> Result<RunSummary, StreamError> {
        let stop = pin!(stop.fuse());
        let health = self.connection.health.clone();
        let failed_ = pin!(async move {
            loop {
                let notified = health.failed.notified();
                if health.failure().is_some() {
                    return;
                }
                notified.await;
            }
        });
        let mut halt = select(stop, failed_);
        let mut messages = 0u64;
        let mut seq = 0i64;
        loop {
            let publish = match select(&mut halt, pin!(self.received.recv())).await {
                Either::Left(_) => break,
                Either::Right((None, _)) => break,
                Either::Right((Some(publish), _)) => publish,
            };
            messages += 1;
            let message = Message {
                topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                payload: publish.payload.to_vec(),
                qos: QoS::from_rumqttc(publish.qos),
                retain: publish.retain,
            };
            let qos = message.qos;
            // for a failure's message (a counted reference, not a copy)
            let topic = publish.topic.clone();
            let element = (self.decode)(message);
            let emitted = if qos == QoS::AtMostOnce {
                match element {
                    Ok(element) => self.stream.emit(element).await,
                    Err(e) => Err(self.undecodable(&topic, e)),
                }
            } else {
                seq += 1;
                let this = seq;
                // waits while `max_in_flight` are in the graph (a broker may send more than
                // the receive maximum: they wait in the connection's buffer)
                self.acks.tracker.begin((), this).await;
                lock(&self.acks.inbox.pending).insert(publish.pkid);
                lock(&self.acks.unacked).push_back((this, publish));
                match element {
                    Ok(element) => {
                        let acks = self.acks.clone();
                        let ack = Ack::new(move |result| acks.done(this, result));
                        self.stream.emit_acked(element, ack).await
                    }
                    Err(e) => {
                        let e = self.undecodable(&topic, e);
                        self.acks.done(this, Err(e.clone()));
                        Err(e)
                    }
                }
            };
            match emitted {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Closed => break,
                Err(e) => {
                    if let Some(hook) = &self.on_error {
                        hook(e);
                    }
                }
            }
        }
        // no more messages (the connection leaves the rest unacknowledged, for the next
        // session); what was received drains, its acknowledgements queued before the
        // disconnect
        self.received.close();
        drop(self.decode);
        let closed = self.stream.close().await;
        let failure = self.connection.health.failure();
        let summary = RunSummary {
            messages,
            failed: self.acks.failed.load(Ordering::Relaxed),
            reconnections: self.connection.health.reconnections(),
        };
        self.connection.close();
        match failure {
            Some(e) => Err(e),
            None => closed.map(|()| summary),
        }
    }
}

impl<T> MqttSource<T> {
    /// The error of a message `decode` failed on.
    fn undecodable(&self, topic: &[u8], e: BoxError) -> StreamError {
        StreamError::new(
            ErrorKind::Failed,
            Some(self.acks.node.clone()),
            format!("a message on `{}`: {e}", String::from_utf8_lossy(topic)),
        )
    }
}

/// The acknowledgements of a source's QoS 1 messages: sent in the order the messages came,
/// each once it and those before it are done.
struct Acks {
    tracker: OffsetTracker<()>,
    unacked: Mutex<VecDeque<(i64, Publish)>>,
    inbox: Arc<Inbox>,
    client: rumqttc::v5::AsyncClient,
    health: Arc<Health>,
    on_failure: OnFailure,
    node: NodeRef,
    address: String,
    failed: AtomicU64,
}

impl Acks {
    fn done(&self, seq: i64, result: Result<(), StreamError>) {
        if let Err(e) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if self.on_failure == OnFailure::Stop {
                // not acknowledged, nor anything after it: the broker sends them again
                self.health.fail(failed(
                    &self.node,
                    format!(
                        "a message failed in the pipeline ({e}); it and those after it are not acknowledged to {}, and the source stops",
                        self.address
                    ),
                ));
                return;
            }
        }
        if self.health.failure().is_some() {
            return;
        }
        let Some(position) = self.tracker.complete(&(), seq) else {
            return;
        };
        let mut unacked = lock(&self.unacked);
        while unacked.front().is_some_and(|(s, _)| *s < position) {
            let (_, publish) = unacked.pop_front().expect("checked");
            self.inbox.ack(&self.client, publish);
        }
    }
}
