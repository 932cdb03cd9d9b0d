//! One connection to a broker: rumqttc's event loop, driven on a thread of its own (a tokio
//! runtime of one thread, since rumqttc's sockets are tokio's), so that the crate works under
//! every streamz executor. The thread reconnects with backoff; what it learns goes to the
//! source or the sink through [`Role`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS as RQoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason, Publish};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use streamz_core::{ErrorKind, NodeRef, StreamError, lock};
use streamz_tokio::RuntimeThread;
use tokio::sync::{Notify, mpsc, oneshot};

/// The quality of service of a subscription or a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QoS {
    /// QoS 0: sent once, not acknowledged; lost if the connection drops.
    AtMostOnce,
    /// QoS 1: acknowledged; a source acknowledges a message only when it is done, and the
    /// broker sends it again (to the same persistent session) until it is. The default.
    #[default]
    AtLeastOnce,
}

impl QoS {
    pub(crate) fn rumqttc(self) -> RQoS {
        match self {
            QoS::AtMostOnce => RQoS::AtMostOnce,
            QoS::AtLeastOnce => RQoS::AtLeastOnce,
        }
    }

    pub(crate) fn from_rumqttc(qos: RQoS) -> QoS {
        match qos {
            RQoS::AtMostOnce => QoS::AtMostOnce,
            _ => QoS::AtLeastOnce,
        }
    }
}

/// The setters of [`Settings`] that [`FromMqtt`](crate::FromMqtt) and
/// [`ToMqtt`](crate::ToMqtt) share, inside their `impl` blocks.
macro_rules! login_options {
    () => {
        /// A user name and password.
        pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
            self.settings.credentials = Some((user.into(), password.into()));
            self
        }

        /// TLS, trusting the certificate authority in the PEM file `ca`.
        pub fn tls_ca(mut self, ca: impl Into<std::path::PathBuf>) -> Self {
            self.settings.ca = Some(ca.into());
            self
        }

        /// The keep-alive interval (default 30 s).
        pub fn keep_alive(mut self, interval: std::time::Duration) -> Self {
            self.settings.keep_alive = interval;
            self
        }

        /// How long connecting (when it is built) waits for the broker (default 10 s).
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.connect_timeout = timeout;
            self
        }
    };
}
pub(crate) use login_options;

/// How to reach and log in to a broker: what [`from_mqtt`](crate::from_mqtt) and
/// [`to_mqtt`](crate::to_mqtt) share.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) client_id: Option<String>,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) ca: Option<PathBuf>,
    pub(crate) keep_alive: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) session_expiry: Duration,
}

impl Settings {
    pub(crate) fn new(host: impl Into<String>, port: u16) -> Self {
        Settings {
            host: host.into(),
            port,
            client_id: None,
            credentials: None,
            ca: None,
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            session_expiry: Duration::from_secs(24 * 3600),
        }
    }

    pub(crate) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// What the connection serves.
pub(crate) enum Role {
    /// A subscriber: messages go to `messages`; `pending` holds the packet ids of QoS 1
    /// messages in the graph, so that the broker's resending of one (after a reconnection)
    /// is not emitted twice.
    Source {
        topics: Vec<(String, QoS)>,
        messages: mpsc::Sender<Publish>,
        inbox: Arc<Inbox>,
    },
    /// A publisher: each publication's completion, in the order they were queued.
    Sink(Arc<Deliveries>),
}

/// A source's messages between the connection and the graph.
///
/// The connection never waits for the graph: rumqttc writes (acknowledgements, pings) only
/// while its event loop is polled, so a loop that waited for room downstream would hold back
/// the acknowledgements the graph's progress depends on. What it receives goes to
/// `buffered`, which a task of the connection's moves to the source's channel as the source
/// takes them; past `limit` (a broker that sends more than the receive maximum: mosquitto
/// 2.0 does, resuming a session) the connection stops reading until the source catches up.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// The packet ids of the QoS 1 messages in the graph, so that the broker's resending
    /// of one (after a reconnection) is not emitted twice.
    pub(crate) pending: Mutex<HashSet<u16>>,
    buffered: Mutex<VecDeque<Publish>>,
    /// Acknowledgements not yet handed to rumqttc, in order.
    acks: Mutex<VecDeque<Publish>>,
    arrived: Notify,
    moved: Notify,
    /// Set when the source stops taking messages.
    closed: std::sync::atomic::AtomicBool,
}

impl Inbox {
    /// Acknowledges `publish` to the broker, after those acknowledged before it.
    pub(crate) fn ack(&self, client: &AsyncClient, publish: Publish) {
        lock(&self.pending).remove(&publish.pkid);
        lock(&self.acks).push_back(publish);
        self.hand_over(client);
    }

    /// Hands what acknowledgements fit to rumqttc's request queue (the rest wait for the
    /// connection's next turn).
    fn hand_over(&self, client: &AsyncClient) {
        let mut acks = lock(&self.acks);
        while let Some(publish) = acks.front() {
            if client.try_ack(publish).is_err() {
                break;
            }
            acks.pop_front();
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Moves buffered messages to the source's channel until the source stops.
    async fn forward(&self, messages: mpsc::Sender<Publish>) {
        loop {
            let arrived = self.arrived.notified();
            let next = lock(&self.buffered).pop_front();
            let Some(publish) = next else {
                arrived.await;
                continue;
            };
            self.moved.notify_one();
            if messages.send(publish).await.is_err() {
                // not acknowledged: the broker sends them again to the next session
                self.closed
                    .store(true, std::sync::atomic::Ordering::Release);
                lock(&self.buffered).clear();
                self.moved.notify_one();
                return;
            }
        }
    }

    /// Takes a message from the connection; waits while `limit` are buffered.
    async fn take(&self, publish: Publish, limit: usize) {
        lock(&self.buffered).push_back(publish);
        self.arrived.notify_one();
        loop {
            let moved = self.moved.notified();
            if self.is_closed() || lock(&self.buffered).len() < limit {
                return;
            }
            moved.await;
        }
    }
}

/// A sink's publications waiting for the broker: queued ones (not yet given a packet id)
/// in order, and those sent, by packet id.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    pub(crate) queued: Mutex<VecDeque<oneshot::Sender<Result<(), String>>>>,
    sent: Mutex<HashMap<u16, oneshot::Sender<Result<(), String>>>>,
}

/// What the connection's thread and its owner share.
#[derive(Debug, Default)]
pub(crate) struct Health {
    failure: Mutex<Option<StreamError>>,
    last_error: Mutex<Option<String>>,
    pub(crate) failed: Notify,
    reconnections: std::sync::atomic::AtomicU64,
}

impl Health {
    pub(crate) fn failure(&self) -> Option<StreamError> {
        lock(&self.failure).clone()
    }

    pub(crate) fn fail(&self, e: StreamError) {
        lock(&self.failure).get_or_insert(e);
        // the source's run makes its `notified()` before it looks at `failure`
        self.failed.notify_waiters();
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    pub(crate) fn note(&self, message: String) {
        *lock(&self.last_error) = Some(message);
    }

    pub(crate) fn reconnections(&self) -> u64 {
        self.reconnections
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A running connection: dropped, it disconnects (after what is queued) and ends its thread.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) client: AsyncClient,
    pub(crate) health: Arc<Health>,
    _thread: RuntimeThread,
}

pub(crate) fn failed(node: &NodeRef, message: String) -> StreamError {
    StreamError::new(ErrorKind::Failed, Some(node.clone()), message)
}

impl Connection {
    /// Connects (and subscribes, for a source), waiting at most the connect timeout; then
    /// the thread carries on, reconnecting when the connection drops.
    pub(crate) fn open(
        settings: &Settings,
        role: Role,
        receive_maximum: u16,
        node: &NodeRef,
    ) -> Result<Connection, StreamError> {
        let what = match role {
            Role::Source { .. } => "from_mqtt",
            Role::Sink(_) => "to_mqtt",
        };
        let address = settings.address();
        let client_id = settings.client_id.clone().unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            format!("streamz-{}-{nanos:08x}", std::process::id())
        });
        let mut options = MqttOptions::new(client_id, &settings.host, settings.port);
        options
            .set_keep_alive(settings.keep_alive.max(Duration::from_secs(1)))
            .set_connection_timeout(settings.connect_timeout.as_secs().max(1))
            .set_request_channel_capacity(2 * receive_maximum as usize + 16);
        if let Some((user, password)) = &settings.credentials {
            options.set_credentials(user, password);
        }
        if let Some(ca) = &settings.ca {
            let ca = std::fs::read(ca).map_err(|e| {
                failed(
                    node,
                    format!(
                        "{what}: cannot read the CA certificate {}: {e}",
                        ca.display()
                    ),
                )
            })?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: None,
            }));
        }
        if let Role::Source { .. } = role {
            options
                .set_manual_acks(true)
                .set_receive_maximum(Some(receive_maximum.max(1)));
            if settings.client_id.is_some() {
                // a persistent session: the broker keeps the subscription and the
                // unacknowledged messages while the client is away
                options
                    .set_clean_start(false)
                    .set_session_expiry_interval(Some(
                        settings.session_expiry.as_secs().min(u32::MAX as u64) as u32,
                    ));
            }
        }
        let (client, eventloop) = AsyncClient::new(options, 2 * receive_maximum as usize + 16);
        let health = Arc::new(Health::default());
        let (ready, is_ready) = std::sync::mpsc::channel();
        let thread = {
            let (client, health, driver_node, address) = (
                client.clone(),
                health.clone(),
                node.clone(),
                address.clone(),
            );
            RuntimeThread::spawn(format!("streamz-mqtt-{what}"), move |stopping| async move {
                let driver = Driver {
                    limit: 4 * receive_maximum.max(16) as usize,
                    client,
                    role,
                    health,
                    node: driver_node,
                    address,
                    what,
                };
                let driving = driver.drive(eventloop, ready);
                let mut driving = std::pin::pin!(driving);
                tokio::select! {
                    () = &mut driving => {}
                    () = stopping => {
                        // the disconnect is queued (`Drop`): the driver ends once it and
                        // what was queued before it, acknowledgements included, are sent;
                        // a broker that is away has 5 s to come back for them
                        let _ = tokio::time::timeout(Duration::from_secs(5), driving).await;
                    }
                }
            })
            .map_err(|e| failed(node, format!("{what}: cannot start its thread: {e}")))?
        };
        let answer = is_ready
            .recv_timeout(settings.connect_timeout + Duration::from_secs(1))
            .unwrap_or_else(|_| {
                Err(format!(
                    "the MQTT broker at {address} did not answer within {}",
                    humantime::format_duration(settings.connect_timeout)
                ))
            });
        let connection = Connection {
            client,
            health,
            _thread: thread,
        };
        match answer {
            Ok(()) => Ok(connection),
            Err(message) => {
                connection.close();
                Err(failed(node, format!("{what}: {message}")))
            }
        }
    }

    /// Disconnects (after what is queued, acknowledgements included, waiting up to 5 s for a
    /// broker that is away) and waits for the thread.
    pub(crate) fn close(self) {
        drop(self);
    }
}

impl Drop for Connection {
    /// Queues the disconnect; then the thread (a field, dropped after this) is told to stop
    /// and waited for.
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}

/// Why the broker refused a connection, in words.
fn refusal(code: &ConnectReturnCode) -> String {
    match code {
        ConnectReturnCode::BadUserNamePassword => {
            "refused the connection: bad user name or password".to_owned()
        }
        ConnectReturnCode::NotAuthorized => {
            "refused the connection: not authorised (wrong or missing credentials, or an ACL)"
                .to_owned()
        }
        ConnectReturnCode::ClientIdentifierNotValid | ConnectReturnCode::BadClientId => {
            "refused the connection: the client id is not valid".to_owned()
        }
        ConnectReturnCode::Banned => "refused the connection: banned".to_owned(),
        other => format!("refused the connection: {other:?}"),
    }
}

/// Aborts a task when dropped.
struct StopOnDrop(tokio::task::JoinHandle<()>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Driver {
    /// How many received messages may wait for the source before the connection stops
    /// reading.
    limit: usize,
    client: AsyncClient,
    role: Role,
    health: Arc<Health>,
    node: NodeRef,
    address: String,
    what: &'static str,
}

impl Driver {
    async fn drive(
        self,
        mut eventloop: EventLoop,
        ready: std::sync::mpsc::Sender<Result<(), String>>,
    ) {
        let mut ready = Some(ready);
        let forwarder = match &self.role {
            Role::Source {
                messages, inbox, ..
            } => {
                let (messages, inbox) = (messages.clone(), inbox.clone());
                Some(tokio::spawn(async move { inbox.forward(messages).await }))
            }
            Role::Sink(_) => None,
        };
        let _stop_forwarding = forwarder.map(StopOnDrop);
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Role::Source { inbox, .. } = &self.role {
                inbox.hand_over(&self.client);
            }
            let event = eventloop.poll().await;
            match event {
                Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                    backoff = Duration::from_millis(100);
                    if ready.is_none() {
                        self.health
                            .reconnections
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    if let Role::Source { topics, .. } = &self.role {
                        // subscribe on the first connection (the topics may have changed
                        // since the session was made), and whenever the broker has no session
                        if ready.is_some() || !connack.session_present {
                            let filters = topics.iter().map(|(t, q)| {
                                rumqttc::v5::mqttbytes::v5::Filter::new(t.clone(), q.rumqttc())
                            });
                            if let Err(e) = self.client.try_subscribe_many(filters) {
                                self.note(format!("cannot subscribe: {e}"));
                            }
                            // a resumed session's messages may come before the SUBACK, and
                            // wait for the source: it is ready now (a refusal in the SUBACK
                            // still fails it); a new session is ready at the SUBACK
                            if !connack.session_present {
                                continue;
                            }
                        }
                    }
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as Code;
                    let refused: Vec<String> = match &self.role {
                        Role::Source { topics, .. } => suback
                            .return_codes
                            .iter()
                            .zip(topics)
                            .filter(|(code, _)| !matches!(code, Code::Success(_)))
                            .map(|(code, (topic, _))| format!("`{topic}` ({code:?})"))
                            .collect(),
                        Role::Sink(_) => Vec::new(),
                    };
                    if !refused.is_empty() {
                        let message = format!(
                            "the MQTT broker at {} refused the subscription to {}",
                            self.address,
                            refused.join(", ")
                        );
                        match ready.take() {
                            Some(ready) => drop(ready.send(Err(message))),
                            None => self
                                .health
                                .fail(failed(&self.node, format!("{}: {message}", self.what))),
                        }
                        return;
                    }
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if let Role::Source { inbox, .. } = &self.role {
                        if publish.qos != RQoS::AtMostOnce
                            && publish.dup
                            && lock(&inbox.pending).contains(&publish.pkid)
                        {
                            // sent again after a reconnection, and still in the graph
                            continue;
                        }
                        if inbox.is_closed() {
                            // the source has stopped: not acknowledged, so the broker sends
                            // it again to the next session; the connection goes on until
                            // its last acknowledgements and the disconnect are sent
                            continue;
                        }
                        inbox.take(publish, self.limit).await;
                    }
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Role::Sink(deliveries) = &self.role {
                        let mut sent = lock(&deliveries.sent);
                        if pkid != 0 && sent.contains_key(&pkid) {
                            // sent again after a reconnection
                            continue;
                        }
                        if let Some(done) = lock(&deliveries.queued).pop_front() {
                            if pkid == 0 {
                                // QoS 0: done once written
                                let _ = done.send(Ok(()));
                            } else {
                                sent.insert(pkid, done);
                            }
                        }
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(puback))) => {
                    if let Role::Sink(deliveries) = &self.role
                        && let Some(done) = lock(&deliveries.sent).remove(&puback.pkid)
                    {
                        let _ = done.send(match puback.reason {
                            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                            reason => Err(format!(
                                "the MQTT broker at {} refused the message: {reason:?}",
                                self.address
                            )),
                        });
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    // ours: what was queued before it has been sent
                    return;
                }
                Ok(_) => {}
                Err(ConnectionError::RequestsDone) => return,
                Err(e) => {
                    let message = match &e {
                        ConnectionError::ConnectionRefused(code) => {
                            format!("the MQTT broker at {} {}", self.address, refusal(code))
                        }
                        ConnectionError::Io(io) => {
                            format!("cannot reach the MQTT broker at {}: {io}", self.address)
                        }
                        other => format!(
                            "the connection to the MQTT broker at {}: {other}",
                            self.address
                        ),
                    };
                    if let Some(ready) = ready.take() {
                        // the first connection: the caller's error
                        let _ = ready.send(Err(message));
                        return;
                    }
                    if let ConnectionError::ConnectionRefused(_) = e {
                        self.health
                            .fail(failed(&self.node, format!("{}: {message}", self.what)));
                        if let Role::Sink(deliveries) = &self.role {
                            for (_, done) in lock(&deliveries.sent).drain() {
                                let _ = done.send(Err(message.clone()));
                            }
                            for done in lock(&deliveries.queued).drain(..) {
                                let _ = done.send(Err(message.clone()));
                            }
                        }
                        return;
                    }
                    self.note(format!(
                        "{message}; reconnecting in {}",
                        humantime::format_duration(backoff)
                    ));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn note(&self, message: String) {
        self.health.note(message);
    }
}
