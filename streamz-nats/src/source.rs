//! [`from_nats`]: a subject's messages as a stream: core NATS (at most once), or a JetStream
//! consumer whose messages are acknowledged only once they, and everything made from them,
//! are done.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use async_nats::{Client, Subscriber};
use futures_util::future::{Either, select};
use futures_util::{FutureExt, StreamExt};
use streamz_core::{
    Ack, BoxError, Element, ErrorKind, Executor, NodeRef, OnFailure, Stream, StreamError,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::checkpoint::{MAX_ACK_PENDING, NatsCheckpoint};
use crate::connection::{Connection, Health, Settings, failed};

/// A message, as a source emits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published to.
    pub subject: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Its headers, in order (a name may come more than once).
    pub headers: Vec<(String, String)>,
    /// Its sequence number in the JetStream stream (none for core NATS).
    pub sequence: Option<u64>,
    /// How many times JetStream has delivered it, this time included (more than 1: it was
    /// not acknowledged in time before, and is sent again; 1 for core NATS).
    pub delivered: u64,
}

impl Message {
    /// The payload as text, if it is UTF-8.
    ///
    /// ```
    /// # use streamz_nats::Message;
    /// let m = Message {
    ///     subject: "s".into(),
    ///     payload: b"hi".to_vec(),
    ///     headers: vec![],
    ///     sequence: None,
    ///     delivered: 1,
    /// };
    /// assert_eq!(m.payload_str(), Some("hi"));
    /// ```
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

type ErrorHook = Arc<dyn Fn(StreamError) + Send + Sync>;

/// The JetStream side of a source: see [`FromNats::jetstream`].
#[derive(Debug, Clone)]
struct JetStream {
    stream: String,
    durable: Option<String>,
    create_stream: bool,
    ack_wait: Duration,
}

/// A subscription to a NATS server, as a source: see [`from_nats`].
#[must_use = "a builder does nothing until it is built"]
pub struct FromNats {
    settings: Settings,
    subjects: Vec<String>,
    queue_group: Option<String>,
    jetstream: Option<JetStream>,
    max_in_flight: usize,
    on_failure: OnFailure,
    on_error: Option<ErrorHook>,
    executor: Option<Arc<dyn Executor>>,
    checkpoint: Option<NatsCheckpoint>,
}

impl std::fmt::Debug for FromNats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FromNats")
            .field("server", &self.settings.server)
            .field("subjects", &self.subjects)
            .field("jetstream", &self.jetstream)
            .finish_non_exhaustive()
    }
}

/// Messages of `subjects` (wildcards `*` and `>`) from the NATS server at `server`
/// (`nats://host:port`, or `host:port`), as a source.
///
/// As it is, a core NATS subscription: at most once, as core NATS is. What is published
/// while the source is away is not kept, and a graph slower than the publishers makes the
/// client drop messages (a *slow consumer*, counted in [`RunSummary::dropped`]) once its
/// buffer ([`subscription_capacity`](FromNats::subscription_capacity)) is full.
///
/// With [`jetstream`](FromNats::jetstream), a consumer of a JetStream stream instead: each
/// message is acknowledged only when it is done (every element made from it handled by
/// every sink, dropped by an operator's semantics, or failed and skipped by
/// [`on_failure`](FromNats::on_failure)); one the server has not heard about within its
/// [`ack_wait`](FromNats::ack_wait) it sends again. With a [`durable`](FromNats::durable)
/// consumer the server remembers what was acknowledged while the process is away (a crash,
/// a restart): at least once. At most [`max_in_flight`](FromNats::max_in_flight) messages are
/// unacknowledged at once.
///
/// # Examples
///
/// ```no_run
/// use streamz_nats::{from_nats, to_nats};
///
/// # async fn example() -> Result<(), streamz_core::StreamError> {
/// let source = from_nats("nats://127.0.0.1:4222", ["orders.*"])
///     .jetstream("ORDERS")
///     .durable("shipping") // remembered by the server across runs
///     .build()?;
/// let labels = source.stream().map(|m| m.payload_str().unwrap_or("").to_uppercase());
/// to_nats("nats://127.0.0.1:4222", "labels").attach(&labels)?;
/// source.run().await?; // each order acknowledged once its label is published
/// # Ok(())
/// # }
/// ```
pub fn from_nats<T: Into<String>>(
    server: impl Into<String>,
    subjects: impl IntoIterator<Item = T>,
) -> FromNats {
    FromNats {
        settings: Settings::new(server),
        subjects: subjects.into_iter().map(Into::into).collect(),
        queue_group: None,
        jetstream: None,
        max_in_flight: 100,
        on_failure: OnFailure::Stop,
        on_error: None,
        executor: None,
        checkpoint: None,
    }
}

impl FromNats {
    crate::connection::login_options!();

    /// Core NATS: subscribes as a member of the queue group `group`, among whose members
    /// the server shares the messages out.
    pub fn queue_group(mut self, group: impl Into<String>) -> Self {
        self.queue_group = Some(group.into());
        self
    }

    /// Core NATS: how many messages the client buffers for the graph (default 65,536);
    /// past it, it drops them.
    pub fn subscription_capacity(mut self, n: usize) -> Self {
        self.settings.subscription_capacity = n.max(1);
        self
    }

    /// Reads the JetStream stream `stream` (the messages of it on the source's subjects)
    /// through a consumer, each message acknowledged once it is done. The consumer is
    /// ephemeral (the server forgets it once the source is gone) unless it is
    /// [`durable`](FromNats::durable).
    pub fn jetstream(mut self, stream: impl Into<String>) -> Self {
        self.jetstream = Some(JetStream {
            stream: stream.into(),
            durable: None,
            create_stream: false,
            ack_wait: Duration::from_secs(30),
        });
        self
    }

    fn jetstream_mut(&mut self) -> &mut JetStream {
        self.jetstream.get_or_insert_with(|| JetStream {
            stream: String::new(),
            durable: None,
            create_stream: false,
            ack_wait: Duration::from_secs(30),
        })
    }

    /// A durable consumer named `name`: made if the stream does not have it, then used by
    /// every run with this name, which resumes after what the last one acknowledged.
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.jetstream_mut().durable = Some(name.into());
        self
    }

    /// Makes the stream (capturing the source's subjects, kept in files) if the server
    /// does not have it (default no: a missing stream is an error).
    pub fn create_stream(mut self, create: bool) -> Self {
        self.jetstream_mut().create_stream = create;
        self
    }

    /// How long the server waits for a message's acknowledgement before it sends the
    /// message again (default 30 s): the time a killed run's messages wait before the next
    /// run gets them. Applies to the consumers this source makes; a durable consumer that
    /// exists keeps its own.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.jetstream_mut().ack_wait = wait;
        self
    }

    /// JetStream: at most `n` messages unacknowledged at once (default 100, at least 1),
    /// also the consumer's `max_ack_pending` when this source makes it.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.clamp(1, 1 << 20);
        self
    }

    /// What to do when a JetStream message fails in the pipeline (default
    /// [`OnFailure::Stop`]: the message is given back to the server, which sends it
    /// again, to the next run; the source stops).
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

    /// JetStream: checkpoints the source with a graph's checkpoints instead of
    /// acknowledging messages as they are done: see [`NatsCheckpoint`], registered for the
    /// stream the source is built into ([`build_into`](FromNats::build_into)).
    pub fn checkpoint(mut self, checkpoint: NatsCheckpoint) -> Self {
        self.checkpoint = Some(checkpoint);
        self
    }

    /// The executor the source's graph runs on: as [`Stream::with_executor`].
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.executor = Some(Arc::new(executor));
        self
    }

    /// Connects and subscribes (or finds or makes the consumer).
    ///
    /// # Errors
    ///
    /// No subject; a server that does not answer within the connection timeout; a refused
    /// login; a missing JetStream stream (its error lists those there are); a durable
    /// consumer that filters other subjects; a [`checkpoint`](FromNats::checkpoint) (which
    /// needs [`build_into`](FromNats::build_into) the stream it was registered for).
    pub fn build(self) -> Result<NatsSource<Message>, StreamError> {
        let stream = match &self.executor {
            Some(executor) => Stream::with_executor(executor.clone()),
            None => Stream::new(),
        }
        .named("from_nats");
        self.build_into(&stream, Ok::<_, BoxError>)
    }

    /// Connects and subscribes, to emit into `stream` (an existing graph's source, with its
    /// executor and name) what `decode` makes of each message. A message `decode` fails on
    /// is a failed message: passed to [`on_error`](FromNats::on_error) and, with JetStream,
    /// acknowledged or not as [`on_failure`](FromNats::on_failure) says. The
    /// [`executor`](FromNats::executor) option does not apply: `stream` has its own.
    ///
    /// # Errors
    ///
    /// As [`build`](FromNats::build); a [`checkpoint`](FromNats::checkpoint) registered for
    /// another stream, or without [`jetstream`](FromNats::jetstream); a durable consumer that
    /// acknowledges each message, for a checkpointed source.
    pub fn build_into<T, E>(
        self,
        stream: &Stream<T>,
        decode: impl Fn(Message) -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<NatsSource<T>, StreamError>
    where
        T: Element,
        E: Into<BoxError>,
    {
        let node = NodeRef::detached("from_nats");
        if self.subjects.is_empty() || self.subjects.iter().any(|s| s.is_empty()) {
            return Err(failed(
                &node,
                "from_nats: no subject to subscribe to".into(),
            ));
        }
        if let Some(js) = &self.jetstream
            && js.stream.is_empty()
        {
            return Err(failed(
                &node,
                "from_nats: a durable consumer, create_stream or ack_wait without the JetStream stream to read (jetstream)".into(),
            ));
        }
        if let Some(checkpoint) = &self.checkpoint {
            if self.jetstream.is_none() {
                return Err(failed(
                    &node,
                    "from_nats: a checkpointed source reads a JetStream stream (jetstream): core NATS cannot send again what it sent".into(),
                ));
            }
            if checkpoint.stream != stream.node() {
                return Err(failed(
                    &node,
                    format!(
                        "from_nats: its checkpoint was registered for {}, not for the stream it is built into",
                        checkpoint.stream
                    ),
                ));
            }
        }
        // checkpointed: the consumer starts after the restored checkpoint's sequence
        let checkpointed = self
            .checkpoint
            .as_ref()
            .map(|c| c.positions.last_emitted() + 1);
        let capacity = self.max_in_flight.min(1024);
        let (deliveries, received) = mpsc::channel::<Delivery>(capacity);
        // each acknowledgement queued holds one of `max_in_flight` places, or is the giving
        // back of a message that was pulled and never emitted (at most `capacity`): never
        // more than this
        let (acks, to_ack) = mpsc::channel(self.max_in_flight + capacity);
        let subjects = self.subjects.clone();
        let queue_group = self.queue_group.clone();
        let jetstream = self.jetstream.clone();
        let max_in_flight = self.max_in_flight;
        let (connection, feed) =
            Connection::open(&self.settings, &node, move |client| async move {
                Ok(match jetstream {
                    None => Feed::Core(subscribe(&client, &subjects, queue_group).await?),
                    Some(js) => {
                        let (consumer, batch) =
                            consume(client, &subjects, &js, max_in_flight, checkpointed).await?;
                        Feed::JetStream(Box::new(consumer), batch)
                    }
                })
            })?;
        let health = connection.health.clone();
        let (stop, stopped) = oneshot::channel();
        let forwarding =
            connection
                .handle()
                .spawn(forward(feed, deliveries, health.clone(), stopped));
        let acknowledging = connection
            .handle()
            .spawn(acknowledge(to_ack, health.clone()));
        if let Some(checkpoint) = &self.checkpoint {
            *streamz_core::lock(&checkpoint.positions.sender) = Some(acks.clone());
        }
        Ok(NatsSource {
            checkpoint: self.checkpoint,
            stream: stream.clone(),
            decode: Box::new(move |m| decode(m).map_err(Into::into)),
            received,
            acks: Arc::new(Acks {
                sender: acks,
                health,
                on_failure: self.on_failure,
                node,
                server: self.settings.server.clone(),
                failed: AtomicU64::new(0),
                checkpointed: checkpointed.is_some(),
            }),
            in_flight: Arc::new(Semaphore::new(self.max_in_flight)),
            forwarding: Some((stop, forwarding)),
            acknowledging,
            connection,
            on_error: self.on_error,
        })
    }
}

/// Where a source's messages come from, on the connection's runtime.
enum Feed {
    Core(futures_util::stream::SelectAll<Subscriber>),
    /// A consumer, and how many messages to ask it for at once.
    JetStream(Box<jetstream::consumer::PullConsumer>, usize),
}

/// A message on its way to the graph, with what acknowledges it (JetStream).
struct Delivery {
    message: async_nats::Message,
    acker: Option<jetstream::message::Acker>,
    sequence: Option<u64>,
    delivered: u64,
}

async fn subscribe(
    client: &Client,
    subjects: &[String],
    queue_group: Option<String>,
) -> Result<futures_util::stream::SelectAll<Subscriber>, String> {
    let mut all = Vec::new();
    for subject in subjects {
        let subscribed = match &queue_group {
            None => client.subscribe(subject.clone()).await,
            Some(group) => client.queue_subscribe(subject.clone(), group.clone()).await,
        };
        all.push(subscribed.map_err(|e| format!("subscribing to `{subject}`: {e}"))?);
    }
    // a subscription is made when the server has read it
    client
        .flush()
        .await
        .map_err(|e| format!("subscribing: {e}"))?;
    Ok(futures_util::stream::select_all(all))
}

/// The pull consumer, the durable one found or made or an ephemeral one, and how many
/// messages to ask it for at once.
async fn consume(
    client: Client,
    subjects: &[String],
    js: &JetStream,
    max_in_flight: usize,
    checkpointed: Option<u64>,
) -> Result<(jetstream::consumer::PullConsumer, usize), String> {
    let context = jetstream::new(client);
    let stream =
        crate::connection::stream(&context, &js.stream, subjects, js.create_stream).await?;
    let (filter_subject, filter_subjects) = match subjects {
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    };
    let config = pull::Config {
        durable_name: js.durable.clone(),
        filter_subject: filter_subject.clone(),
        filter_subjects: filter_subjects.clone(),
        // checkpointed: one acknowledgement a checkpoint, for every message up to it
        ack_policy: if checkpointed.is_some() {
            jetstream::consumer::AckPolicy::All
        } else {
            jetstream::consumer::AckPolicy::Explicit
        },
        deliver_policy: match checkpointed {
            Some(start_sequence) => {
                jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence }
            }
            None => jetstream::consumer::DeliverPolicy::All,
        },
        ack_wait: js.ack_wait,
        max_ack_pending: if checkpointed.is_some() {
            MAX_ACK_PENDING
        } else {
            max_in_flight.try_into().unwrap_or(i64::MAX)
        },
        ..Default::default()
    };
    let consumer: jetstream::consumer::PullConsumer = match &js.durable {
        Some(name) => match stream.get_consumer::<pull::Config>(name).await {
            Ok(mut consumer) => {
                let info = consumer
                    .info()
                    .await
                    .map_err(|e| format!("the durable consumer `{name}`: {e}"))?;
                let theirs = &info.config;
                if theirs.filter_subject != filter_subject
                    || theirs.filter_subjects != filter_subjects
                {
                    let theirs = if theirs.filter_subjects.is_empty() {
                        theirs.filter_subject.clone()
                    } else {
                        theirs.filter_subjects.join(",")
                    };
                    return Err(format!(
                        "the durable consumer `{name}` of `{}` reads `{theirs}`, not `{}`: give another durable name, or delete that consumer",
                        js.stream,
                        subjects.join(",")
                    ));
                }
                let all = theirs.ack_policy == jetstream::consumer::AckPolicy::All;
                if checkpointed.is_some() != all {
                    return Err(if checkpointed.is_some() {
                        format!(
                            "the durable consumer `{name}` of `{}` acknowledges each message, as a source without checkpoints made it; a checkpointed source acknowledges all messages up to a checkpoint: give it another durable name",
                            js.stream
                        )
                    } else {
                        format!(
                            "the durable consumer `{name}` of `{}` was made by a checkpointed source (it acknowledges all messages up to one): read it with checkpoints, or give another durable name",
                            js.stream
                        )
                    });
                }
                if checkpointed.is_some() {
                    // the checkpoint is where it resumes: the consumer is made again from
                    // there, so that it sends every message after it, in order (the server
                    // would send the ones a killed run had not acknowledged only after their
                    // ack wait, after newer ones)
                    stream.delete_consumer(name).await.map_err(|e| {
                        format!("the durable consumer `{name}`, to start it at the checkpoint: {e}")
                    })?;
                    stream.create_consumer(config).await.map_err(|e| {
                        format!(
                            "making the durable consumer `{name}` of `{}` again: {e}",
                            js.stream
                        )
                    })?
                } else {
                    consumer
                }
            }
            Err(_) => stream.create_consumer(config).await.map_err(|e| {
                format!(
                    "making the durable consumer `{name}` of `{}`: {e}",
                    js.stream
                )
            })?,
        },
        None => stream
            .create_consumer(pull::Config {
                inactive_threshold: Duration::from_secs(30),
                ..config
            })
            .await
            .map_err(|e| format!("making a consumer of `{}`: {e}", js.stream))?,
    };
    Ok((consumer, max_in_flight.min(256)))
}

/// How long a pull request waits on the server for messages: also how long a stopping
/// source waits for the last one to end.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// Moves messages from the client to the source's channel until the source stops taking
/// them.
///
/// JetStream messages come in pull requests (batches) that end on the server after
/// [`PULL_EXPIRES`]. A stopping source asks for no more, and lets the last request end; then
/// it gives back to the server what it pulled and did not hand on, so that the next run has
/// them at once rather than after their ack wait. (Given back while a request is open, a
/// message would be sent straight back to it; one a request sends after the source stopped
/// listening would wait for its ack wait.)
async fn forward(
    feed: Feed,
    deliveries: mpsc::Sender<Delivery>,
    health: Arc<Health>,
    mut stop: oneshot::Receiver<()>,
) {
    let (consumer, batch) = match feed {
        Feed::Core(mut subscribers) => loop {
            let message = tokio::select! {
                _ = &mut stop => return,
                message = subscribers.next() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            let delivery = Delivery {
                message,
                acker: None,
                sequence: None,
                delivered: 1,
            };
            tokio::select! {
                _ = &mut stop => return,
                sent = deliveries.send(delivery) => if sent.is_err() { return },
            }
        },
        Feed::JetStream(consumer, batch) => (consumer, batch),
    };
    let mut stopping = false;
    let mut give_back = Vec::new();
    let mut wait = Duration::from_millis(100);
    while !stopping {
        let requested = tokio::select! {
            _ = &mut stop => break,
            requested = consumer.batch().max_messages(batch).expires(PULL_EXPIRES).messages() => requested,
        };
        let mut messages = match requested {
            Ok(messages) => {
                wait = Duration::from_millis(100);
                messages
            }
            Err(e) => {
                // a lost connection, a server restarting: the client reconnects
                health.note(format!("pulling from the consumer: {e}"));
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // until the request ends, even when stopping (what it sends then is given back)
        while let Some(next) = messages.next().await {
            let message = match next {
                Ok(message) => message,
                Err(e) => {
                    let text = e.to_string();
                    if text.contains("Consumer Deleted") || text.contains("consumer deleted") {
                        health.fail(StreamError::new(
                            ErrorKind::Failed,
                            None,
                            format!("from_nats: the consumer was deleted: {e}"),
                        ));
                        stopping = true;
                    } else {
                        health.note(format!("pulling from the consumer: {e}"));
                    }
                    continue;
                }
            };
            let delivery = delivery(message);
            if stopping {
                give_back.extend(delivery.acker);
                continue;
            }
            let room = tokio::select! {
                _ = &mut stop => None,
                room = deliveries.reserve() => room.ok(),
            };
            match room {
                Some(room) => room.send(delivery),
                None => {
                    stopping = true;
                    give_back.extend(delivery.acker);
                }
            }
        }
    }
    for acker in give_back {
        let _ = acker.ack_with(AckKind::Nak(None)).await;
    }
}

/// A JetStream message as a delivery.
fn delivery(message: jetstream::Message) -> Delivery {
    let (sequence, delivered) = message
        .info()
        .map(|i| (Some(i.stream_sequence), i.delivered.max(1) as u64))
        .unwrap_or((None, 1));
    let (message, acker) = message.split();
    Delivery {
        message,
        acker: Some(acker),
        sequence,
        delivered,
    }
}

/// An acknowledgement to send, and the place in flight it frees once sent (none for a
/// message given back before it was emitted, or a checkpoint's).
pub(crate) type ToAck = (
    jetstream::message::Acker,
    AckKind,
    Option<OwnedSemaphorePermit>,
);

/// Sends the acknowledgements, in the order they come.
async fn acknowledge(mut to_ack: mpsc::Receiver<ToAck>, health: Arc<Health>) {
    while let Some((acker, kind, place)) = to_ack.recv().await {
        if let Err(e) = acker.ack_with(kind).await {
            // the server sends the message again after its ack wait
            health.note(format!("acknowledging a message: {e}"));
        }
        drop(place);
    }
}

/// A subscribed connection and the stream it feeds: build the graph on
/// [`stream`](NatsSource::stream), then [`run`](NatsSource::run) it.
pub struct NatsSource<T = Message> {
    stream: Stream<T>,
    decode: Decode<T>,
    connection: Connection,
    received: mpsc::Receiver<Delivery>,
    acks: Arc<Acks>,
    in_flight: Arc<Semaphore>,
    /// Stops the forwarding task, which ends once it has given back what it pulled.
    forwarding: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    /// The task that sends the acknowledgements: it ends once every sender of them (the
    /// source's, each message's) is gone.
    acknowledging: tokio::task::JoinHandle<()>,
    on_error: Option<ErrorHook>,
    checkpoint: Option<NatsCheckpoint>,
}

/// How a source makes its element of a message.
type Decode<T> = Box<dyn Fn(Message) -> Result<T, BoxError> + Send + Sync>;

impl<T> std::fmt::Debug for NatsSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSource")
            .field("server", &self.acks.server)
            .finish_non_exhaustive()
    }
}

/// What a finished run did: see [`NatsSource::run_until`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Messages received.
    pub messages: u64,
    /// Messages that failed in the pipeline.
    pub failed: u64,
    /// Times the client connected again after it lost the server.
    pub reconnections: u64,
    /// Core NATS: messages the client dropped because the graph was behind (a slow
    /// consumer).
    pub dropped: u64,
    /// Checkpointed: messages the server sent again that the restored checkpoint (or this
    /// run) had emitted already, not emitted again.
    pub skipped: u64,
}

impl<T: Element> NatsSource<T> {
    /// The stream of messages.
    pub fn stream(&self) -> &Stream<T> {
        &self.stream
    }

    /// The last connection error, which the client retries (and so does not end the run).
    pub fn last_error(&self) -> Option<String> {
        self.connection.health.last_error()
    }

    /// Runs until the consumer fails for good or a message fails under
    /// [`OnFailure::Stop`]: see [`run_until`](NatsSource::run_until).
    pub async fn run(self) -> Result<RunSummary, StreamError> {
        self.run_until(std::future::pending()).await
    }

    /// Emits messages until `stop` completes (or the consumer is deleted, or a message
    /// fails under [`OnFailure::Stop`]); then closes the stream (what was received drains
    /// to the sinks and is acknowledged; what was pulled and not emitted is given back to
    /// the server), and disconnects.
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
        let mut skipped = 0u64;
        loop {
            // a place in flight first (JetStream), then a message
            let place = match select(&mut halt, pin!(self.in_flight.clone().acquire_owned())).await
            {
                Either::Left(_) => break,
                Either::Right((place, _)) => place.expect("the semaphore is never closed"),
            };
            let delivery = match select(&mut halt, pin!(self.received.recv())).await {
                Either::Left(_) => break,
                Either::Right((None, _)) => break,
                Either::Right((Some(delivery), _)) => delivery,
            };
            let turn = match (&self.checkpoint, delivery.sequence) {
                (Some(checkpoint), Some(sequence)) => {
                    if checkpoint.positions.covered(sequence) {
                        // its effect is in the state: acknowledged with the next checkpoint
                        if let Some(acker) = delivery.acker {
                            checkpoint.positions.emitted(sequence, acker);
                        }
                        skipped += 1;
                        continue;
                    }
                    Some((checkpoint.gate.enter().await, checkpoint, sequence))
                }
                _ => None,
            };
            messages += 1;
            let message = Message {
                subject: delivery.message.subject.to_string(),
                payload: delivery.message.payload.to_vec(),
                headers: delivery
                    .message
                    .headers
                    .iter()
                    .flat_map(|h| h.iter())
                    .flat_map(|(name, values)| {
                        values
                            .iter()
                            .map(move |v| (name.to_string(), v.as_str().to_owned()))
                    })
                    .collect(),
                sequence: delivery.sequence,
                delivered: delivery.delivered,
            };
            let subject = delivery.message.subject.clone();
            let element = (self.decode)(message);
            let emitted = match (delivery.acker, turn) {
                (Some(acker), Some((turn, checkpoint, sequence))) => {
                    // acknowledged by the checkpoint that covers it
                    checkpoint.positions.emitted(sequence, acker);
                    let emitted = match element {
                        Ok(element) => {
                            let acks = self.acks.clone();
                            let ack = Ack::new(move |result| acks.done_checkpointed(place, result));
                            self.stream.emit_acked(element, ack).await
                        }
                        Err(e) => {
                            let e = self.undecodable(&subject, e);
                            self.acks.done_checkpointed(place, Err(e.clone()));
                            Err(e)
                        }
                    };
                    drop(turn);
                    emitted
                }
                (None, _) => match element {
                    Ok(element) => self.stream.emit(element).await,
                    Err(e) => Err(self.undecodable(&subject, e)),
                },
                (Some(acker), None) => match element {
                    Ok(element) => {
                        let acks = self.acks.clone();
                        let ack = Ack::new(move |result| acks.done(acker, place, result));
                        self.stream.emit_acked(element, ack).await
                    }
                    Err(e) => {
                        let e = self.undecodable(&subject, e);
                        self.acks.done(acker, place, Err(e.clone()));
                        Err(e)
                    }
                },
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
        // no more messages: what was pulled and not emitted goes back to the server at once
        // (not after its ack wait); what was emitted drains, and is acknowledged before the
        // connection closes
        if let Some((stop, forwarding)) = self.forwarding.take() {
            let _ = stop.send(());
            let _ = select(
                forwarding,
                futures_timer::Delay::new(Duration::from_secs(5)),
            )
            .await;
        }
        self.received.close();
        while let Ok(delivery) = self.received.try_recv() {
            if let Some(acker) = delivery.acker {
                self.acks.give_back(acker);
            }
        }
        drop(self.decode);
        let closed = self.stream.close().await;
        // every acknowledgement sent (within 5 s: a server that is away when the run ends
        // sends those messages again after their ack wait)
        let failed = self.acks.failed.load(Ordering::Relaxed);
        drop(self.acks);
        if self.checkpoint.is_none() {
            let _ = select(
                self.acknowledging,
                futures_timer::Delay::new(Duration::from_secs(5)),
            )
            .await;
        }
        let failure = self.connection.health.failure();
        let summary = RunSummary {
            messages,
            failed,
            reconnections: self.connection.health.reconnections(),
            dropped: self.connection.health.dropped(),
            skipped,
        };
        match &self.checkpoint {
            // kept for the last checkpoint's acknowledgement
            Some(checkpoint) => {
                *streamz_core::lock(&checkpoint.positions.connection) = Some(self.connection);
            }
            None => self.connection.close(),
        }
        match failure {
            Some(e) => Err(e),
            None => closed.map(|()| summary),
        }
    }
}

impl<T> NatsSource<T> {
    /// The error of a message `decode` failed on.
    fn undecodable(&self, subject: &str, e: BoxError) -> StreamError {
        StreamError::new(
            ErrorKind::Failed,
            Some(self.acks.node.clone()),
            format!("a message on `{subject}`: {e}"),
        )
    }
}

/// A JetStream source's acknowledgements, each sent once its message is done.
struct Acks {
    sender: mpsc::Sender<ToAck>,
    health: Arc<Health>,
    on_failure: OnFailure,
    node: NodeRef,
    server: String,
    failed: AtomicU64,
    checkpointed: bool,
}

impl Acks {
    /// A checkpointed source's message is done: its place is free; a failure is counted,
    /// and stops the source under [`OnFailure::Stop`] (the message is in the checkpoint's
    /// position all the same: the state it left is the one the checkpoint saves).
    fn done_checkpointed(&self, place: OwnedSemaphorePermit, result: Result<(), StreamError>) {
        debug_assert!(self.checkpointed);
        drop(place);
        if let Err(e) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if self.on_failure == OnFailure::Stop {
                self.health.fail(failed(
                    &self.node,
                    format!("a message failed in the pipeline ({e}); the source stops"),
                ));
            }
        }
    }

    fn done(
        &self,
        acker: jetstream::message::Acker,
        place: OwnedSemaphorePermit,
        result: Result<(), StreamError>,
    ) {
        let kind = match result {
            Ok(()) => AckKind::Ack,
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                match self.on_failure {
                    OnFailure::Skip => AckKind::Ack,
                    OnFailure::Stop => {
                        self.health.fail(failed(
                            &self.node,
                            format!(
                                "a message failed in the pipeline ({e}); it is given back to {} (sent again to the next run), and the source stops",
                                self.server
                            ),
                        ));
                        AckKind::Nak(None)
                    }
                }
            }
        };
        self.send(acker, kind, Some(place));
    }

    /// A message pulled and never emitted: the server may send it again at once.
    fn give_back(&self, acker: jetstream::message::Acker) {
        self.send(acker, AckKind::Nak(None), None);
    }

    fn send(
        &self,
        acker: jetstream::message::Acker,
        kind: AckKind,
        place: Option<OwnedSemaphorePermit>,
    ) {
        // never full: see where the channel is made
        if let Err(e) = self.sender.try_send((acker, kind, place)) {
            self.health.note(format!(
                "an acknowledgement could not be queued ({e}); the server sends its message again after its ack wait"
            ));
        }
    }
}
