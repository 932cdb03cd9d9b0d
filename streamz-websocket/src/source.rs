//! [`from_websocket`] (a server: the messages its clients send) and [`from_websocket_url`]
//! (a client: the messages a server sends), as a stream.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::{Either, select};
use futures_util::{FutureExt, SinkExt, StreamExt};
use streamz_core::{BoxError, Element, ErrorKind, Executor, NodeRef, Stream, StreamError, lock};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Message as WsMessage};

use crate::thread::{Tasks, Thread, check_url, failed, stopped};

/// A message, as a source emits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who sent it: the client (for [`from_websocket`]) or the server
    /// ([`from_websocket_url`]).
    pub peer: SocketAddr,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Whether it was a text message (its payload then is UTF-8), rather than a binary one.
    pub is_text: bool,
}

impl Message {
    /// The payload as text, if it is UTF-8.
    ///
    /// ```
    /// # use streamz_websocket::Message;
    /// let m = Message { peer: "127.0.0.1:1".parse().unwrap(), payload: b"hi".to_vec(), is_text: true };
    /// assert_eq!(m.payload_str(), Some("hi"));
    /// ```
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

type ErrorHook = Arc<dyn Fn(StreamError) + Send + Sync>;

/// Where a source's messages come from.
#[derive(Debug, Clone)]
enum Endpoint {
    /// A server on this address.
    Serve(String),
    /// A client of this URL.
    Connect(String),
}

/// A websocket source: see [`from_websocket`] and [`from_websocket_url`].
#[must_use = "a builder does nothing until it is built"]
pub struct FromWebsocket {
    endpoint: Endpoint,
    max_connections: usize,
    max_message_size: usize,
    max_in_flight: usize,
    connect_timeout: Duration,
    on_error: Option<ErrorHook>,
    executor: Option<Arc<dyn Executor>>,
}

impl std::fmt::Debug for FromWebsocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FromWebsocket")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A websocket server on `addr` (`host:port`; port 0 picks a free one, see
/// [`WebsocketSource::local_addr`]), as a source: each text or binary message a client
/// sends is an element (the original's `from_websocket`).
///
/// A client is read from only while the graph has room, so a fast client feels
/// backpressure (its socket fills) rather than filling memory: at most
/// [`max_in_flight`](FromWebsocket::max_in_flight) messages wait for the graph, one more a
/// client. At most [`max_connections`](FromWebsocket::max_connections) clients at once (one
/// more is told "try again later", close code 1013); a message over
/// [`max_message_size`](FromWebsocket::max_message_size) closes its connection (1009). When
/// the run stops, every message read reaches the graph; the clients are told the server is
/// going away (1001).
///
/// # Examples
///
/// ```no_run
/// use streamz_websocket::from_websocket;
///
/// # async fn example() -> Result<(), streamz_core::StreamError> {
/// let source = from_websocket("127.0.0.1:8765").build()?;
/// source.stream().map(|m| m.payload_str().unwrap_or("").to_owned()).sink(|text| println!("{text}"));
/// source.run().await?;
/// # Ok(())
/// # }
/// ```
pub fn from_websocket(addr: impl Into<String>) -> FromWebsocket {
    FromWebsocket::new(Endpoint::Serve(addr.into()))
}

/// A websocket client of `url` (`ws://host:port/path`), as a source: each text or binary
/// message the server sends is an element.
///
/// The server is read from only while the graph has room (at most
/// [`max_in_flight`](FromWebsocket::max_in_flight) messages wait for it). A connection that
/// drops is made again, with backoff (100 ms, doubling, up to 5 s); what the server sends
/// meanwhile is not seen (websockets keep nothing for an absent client).
///
/// # Examples
///
/// ```no_run
/// use streamz_websocket::from_websocket_url;
///
/// # async fn example() -> Result<(), streamz_core::StreamError> {
/// let source = from_websocket_url("ws://127.0.0.1:8765/prices").build()?;
/// source.stream().map(|m| m.payload_str().unwrap_or("").to_owned()).sink(|text| println!("{text}"));
/// source.run().await?;
/// # Ok(())
/// # }
/// ```
pub fn from_websocket_url(url: impl Into<String>) -> FromWebsocket {
    FromWebsocket::new(Endpoint::Connect(url.into()))
}

impl FromWebsocket {
    fn new(endpoint: Endpoint) -> Self {
        FromWebsocket {
            endpoint,
            max_connections: 512,
            max_message_size: 1 << 20,
            max_in_flight: 100,
            connect_timeout: Duration::from_secs(10),
            on_error: None,
            executor: None,
        }
    }

    /// A server's clients at most at once (default 512, at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// The largest message read, in bytes (default 1 MiB); a larger one closes its
    /// connection (close code 1009).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.max(1);
        self
    }

    /// Messages read and waiting for the graph, at most (default 100, at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.clamp(1, 1 << 20);
        self
    }

    /// A client's wait for the connection and its handshake, and a server's for a
    /// client's handshake (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
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

    /// Listens (a server) or connects (a client).
    ///
    /// # Errors
    ///
    /// An address that cannot be listened on (in use, not this machine's); a URL that is
    /// not `ws://`; a server that does not answer, or refuses the handshake, within the
    /// connect timeout.
    pub fn build(self) -> Result<WebsocketSource<Message>, StreamError> {
        let stream = match &self.executor {
            Some(executor) => Stream::with_executor(executor.clone()),
            None => Stream::new(),
        }
        .named("from_websocket");
        self.build_into(&stream, Ok::<_, BoxError>)
    }

    /// Listens or connects, to emit into `stream` (an existing graph's source, with its
    /// executor and name) what `decode` makes of each message. A message `decode` fails on
    /// is passed to [`on_error`](FromWebsocket::on_error). The
    /// [`executor`](FromWebsocket::executor) option does not apply: `stream` has its own.
    ///
    /// # Errors
    ///
    /// As [`build`](FromWebsocket::build).
    pub fn build_into<T, E>(
        self,
        stream: &Stream<T>,
        decode: impl Fn(Message) -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<WebsocketSource<T>, StreamError>
    where
        T: Element,
        E: Into<BoxError>,
    {
        let node = NodeRef::detached("from_websocket");
        let (deliveries, received) = mpsc::channel::<Message>(self.max_in_flight);
        let (stop, stopping) = watch::channel(false);
        let health: Arc<Health> = Arc::default();
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size));
        let timeout = self.connect_timeout;
        let (thread, local_addr) = match self.endpoint.clone() {
            Endpoint::Serve(addr) => {
                let (health, max) = (health.clone(), self.max_connections);
                Thread::start(&node, move |tasks| async move {
                    let listener = TcpListener::bind(&addr)
                        .await
                        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                    let local = listener
                        .local_addr()
                        .map_err(|e| format!("listening on {addr}: {e}"))?;
                    let places = Arc::new(Semaphore::new(max));
                    tokio::spawn(serve(
                        listener, places, config, timeout, deliveries, stopping, health, tasks,
                    ));
                    Ok(local)
                })?
            }
            Endpoint::Connect(url) => {
                check_url(&url).map_err(|e| failed(&node, format!("from_websocket: {e}")))?;
                let health = health.clone();
                Thread::start(&node, move |tasks| async move {
                    let (socket, peer) = connect(&url, config, timeout).await?;
                    tokio::spawn(read_server(
                        url, socket, peer, config, timeout, deliveries, stopping, health, tasks,
                    ));
                    Ok(peer)
                })?
            }
        };
        Ok(WebsocketSource {
            stream: stream.clone(),
            decode: Box::new(move |m| decode(m).map_err(Into::into)),
            received,
            stop,
            health,
            local_addr,
            node,
            on_error: self.on_error,
            _thread: thread,
        })
    }
}

/// What the sockets' tasks learned, for the run's summary.
#[derive(Debug, Default)]
struct Health {
    connections: AtomicU64,
    refused: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

impl Health {
    fn note(&self, message: String) {
        *lock(&self.last_error) = Some(message);
    }
}

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;
pub(crate) type ClientSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Accepts clients until the source stops, each read by a task of its own.
#[allow(clippy::too_many_arguments)]
async fn serve(
    listener: TcpListener,
    places: Arc<Semaphore>,
    config: WebSocketConfig,
    timeout: Duration,
    deliveries: mpsc::Sender<Message>,
    mut stopping: watch::Receiver<bool>,
    health: Arc<Health>,
    tasks: Tasks,
) {
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stopping) => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // out of file descriptors, say: wait a moment rather than spin
                health.note(format!("accepting a client: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let place = places.clone().try_acquire_owned().ok();
        let (deliveries, stopping, health) = (deliveries.clone(), stopping.clone(), health.clone());
        let tasks = tasks.clone();
        tokio::spawn(async move {
            let _tasks = tasks;
            let handshake = tokio_tungstenite::accept_async_with_config(tcp, Some(config));
            let mut socket = match tokio::time::timeout(timeout, handshake).await {
                Ok(Ok(socket)) => socket,
                Ok(Err(e)) => return health.note(format!("a handshake with {peer}: {e}")),
                Err(_) => {
                    return health.note(format!(
                        "a handshake with {peer}: none within {}",
                        humantime::format_duration(timeout)
                    ));
                }
            };
            let Some(place) = place else {
                health.refused.fetch_add(1, Ordering::Relaxed);
                let _ = socket
                    .close(Some(close(CloseCode::Again, "too many connections")))
                    .await;
                return;
            };
            health.connections.fetch_add(1, Ordering::Relaxed);
            read_client(socket, peer, place, deliveries, stopping, health).await;
        });
    }
}

fn close(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// Reads a client's messages into the source's channel until it leaves or the source stops
/// (a message read always reaches the channel).
async fn read_client(
    mut socket: Socket,
    peer: SocketAddr,
    _place: OwnedSemaphorePermit,
    deliveries: mpsc::Sender<Message>,
    mut stopping: watch::Receiver<bool>,
    health: Arc<Health>,
) {
    loop {
        let next = tokio::select! {
            _ = stopped(&mut stopping) => {
                let _ = socket.close(Some(close(CloseCode::Away, "the server is stopping"))).await;
                return;
            }
            next = socket.next() => next,
        };
        let message = match next {
            None => return,
            Some(Ok(message)) => message,
            Some(Err(e)) => return health.note(format!("reading {peer}: {e}")),
        };
        let message = match message {
            WsMessage::Text(text) => Message {
                peer,
                payload: text.as_bytes().to_vec(),
                is_text: true,
            },
            WsMessage::Binary(bytes) => Message {
                peer,
                payload: bytes.to_vec(),
                is_text: false,
            },
            // pings are answered by the socket; a close ends the stream
            _ => continue,
        };
        if deliveries.send(message).await.is_err() {
            return;
        }
    }
}

/// Connects to `url`, within `timeout`.
pub(crate) async fn connect(
    url: &str,
    config: WebSocketConfig,
    timeout: Duration,
) -> Result<(ClientSocket, SocketAddr), String> {
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), false);
    let (socket, _) = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| {
            format!(
                "no answer from {url} within {}",
                humantime::format_duration(timeout)
            )
        })?
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Io(e) => format!("cannot reach {url}: {e}"),
            e => format!("the websocket handshake with {url} failed: {e}"),
        })?;
    let peer = match socket.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.peer_addr(),
        _ => Err(std::io::Error::other("not a plain socket")),
    }
    .map_err(|e| format!("connecting to {url}: {e}"))?;
    Ok((socket, peer))
}

/// Reads the server's messages into the source's channel, connecting again (with backoff)
/// when the connection drops, until the source stops.
#[allow(clippy::too_many_arguments)]
async fn read_server(
    url: String,
    mut socket: ClientSocket,
    mut peer: SocketAddr,
    config: WebSocketConfig,
    timeout: Duration,
    deliveries: mpsc::Sender<Message>,
    mut stopping: watch::Receiver<bool>,
    health: Arc<Health>,
    _tasks: Tasks,
) {
    health.connections.fetch_add(1, Ordering::Relaxed);
    let mut wait = Duration::from_millis(100);
    loop {
        loop {
            let next = tokio::select! {
                _ = stopped(&mut stopping) => {
                    let _ = socket.close(None).await;
                    return;
                }
                next = socket.next() => next,
            };
            let message = match next {
                None => break,
                Some(Ok(WsMessage::Text(text))) => Message {
                    peer,
                    payload: text.as_bytes().to_vec(),
                    is_text: true,
                },
                Some(Ok(WsMessage::Binary(bytes))) => Message {
                    peer,
                    payload: bytes.to_vec(),
                    is_text: false,
                },
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    health.note(format!("reading {url}: {e}"));
                    break;
                }
            };
            wait = Duration::from_millis(100);
            if deliveries.send(message).await.is_err() {
                return;
            }
        }
        // dropped: again, with backoff
        loop {
            tokio::select! {
                _ = stopped(&mut stopping) => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(5));
            match connect(&url, config, timeout).await {
                Ok((again, at)) => {
                    (socket, peer) = (again, at);
                    health.connections.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) => health.note(e),
            }
        }
    }
}

/// A listening or connected websocket and the stream it feeds: build the graph on
/// [`stream`](WebsocketSource::stream), then [`run`](WebsocketSource::run) it.
pub struct WebsocketSource<T = Message> {
    stream: Stream<T>,
    decode: Decode<T>,
    received: mpsc::Receiver<Message>,
    stop: watch::Sender<bool>,
    health: Arc<Health>,
    local_addr: SocketAddr,
    node: NodeRef,
    on_error: Option<ErrorHook>,
    _thread: Thread,
}

/// How a source makes its element of a message.
type Decode<T> = Box<dyn Fn(Message) -> Result<T, BoxError> + Send + Sync>;

impl<T> std::fmt::Debug for WebsocketSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebsocketSource")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// What a finished run did: see [`WebsocketSource::run_until`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Messages received (each reached the graph).
    pub messages: u64,
    /// Connections made: a server's clients; a client's connections to its server (more
    /// than 1: it connected again).
    pub connections: u64,
    /// A server's clients turned away, over `max_connections`.
    pub refused: u64,
}

impl<T: Element> WebsocketSource<T> {
    /// The stream of messages.
    pub fn stream(&self) -> &Stream<T> {
        &self.stream
    }

    /// A server's address (its port, when it was given port 0); a client's server's.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The last error of a connection (a client that left badly, a failed reconnection),
    /// which does not end the run.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.health.last_error).clone()
    }

    /// Runs until the graph is closed downstream (a client connects again whenever its
    /// server is back): see [`run_until`](WebsocketSource::run_until).
    pub async fn run(self) -> Result<RunSummary, StreamError> {
        self.run_until(std::future::pending()).await
    }

    /// Emits messages until `stop` completes; then stops reading (a server stops accepting
    /// and tells its clients it is going away), emits every message already read, closes
    /// the stream (what it holds drains to the sinks) and closes the sockets.
    ///
    /// # Errors
    ///
    /// One of closing the stream.
    pub async fn run_until(
        mut self,
        stop: impl Future<Output = ()>,
    ) -> Result<RunSummary, StreamError> {
        let mut stop = pin!(stop.fuse());
        let mut messages = 0u64;
        let mut stopping = false;
        loop {
            let message = if stopping {
                // every message read: the tasks end once the sockets are closed
                match self.received.recv().await {
                    Some(message) => message,
                    None => break,
                }
            } else {
                match select(&mut stop, pin!(self.received.recv())).await {
                    Either::Left(_) => {
                        stopping = true;
                        let _ = self.stop.send(true);
                        continue;
                    }
                    Either::Right((None, _)) => break,
                    Either::Right((Some(message), _)) => message,
                }
            };
            messages += 1;
            let peer = message.peer;
            let emitted = match (self.decode)(message) {
                Ok(element) => self.stream.emit(element).await,
                Err(e) => Err(StreamError::new(
                    ErrorKind::Failed,
                    Some(self.node.clone()),
                    format!("a message from {peer}: {e}"),
                )),
            };
            match emitted {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Closed => {
                    let _ = self.stop.send(true);
                    break;
                }
                Err(e) => {
                    if let Some(hook) = &self.on_error {
                        hook(e);
                    }
                }
            }
        }
        let closed = self.stream.close().await;
        closed.map(|()| RunSummary {
            messages,
            connections: self.health.connections.load(Ordering::Relaxed),
            refused: self.health.refused.load(Ordering::Relaxed),
        })
    }
}

/// Sends `message` on `socket`: what the sinks share.
pub(crate) async fn send<S>(socket: &mut S, message: WsMessage) -> Result<(), String>
where
    S: futures_util::Sink<WsMessage, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    socket.send(message).await.map_err(|e| e.to_string())
}

/// The websocket message of a payload: text when it is text.
pub(crate) fn outgoing<T: streamz_core::Payload>(element: &T) -> WsMessage {
    match element.text() {
        Some(text) => WsMessage::text(text.to_owned()),
        None => WsMessage::binary(element.payload().to_vec()),
    }
}
