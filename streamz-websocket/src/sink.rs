//! [`to_websocket`] (a client: each element sent to a server) and [`to_websocket_server`]
//! (a server: each element sent to every connected client).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use streamz_core::{NodeRef, Payload, Stream, StreamError, lock};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use crate::source::{ClientSocket, Socket, connect, outgoing, send};
use crate::thread::{Tasks, Thread, check_url, failed, stopped};

/// A message a sink could not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    to: Arc<str>,
    message: String,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "to_websocket {}: {}", self.to, self.message)
    }
}

impl std::error::Error for SendError {}

/// A sink sending to a websocket server: see [`to_websocket`].
#[must_use = "a builder does nothing until it is attached"]
#[derive(Debug)]
pub struct ToWebsocket {
    url: String,
    max_in_flight: usize,
    connect_timeout: Duration,
    timeout: Duration,
}

/// Sends each element to the websocket server at `url` (`ws://host:port/path`), as a
/// client (the original's `to_websocket`): a string as a text message, bytes as a binary
/// one.
///
/// An element is done once it is written to the connection. At most
/// [`max_in_flight`](ToWebsocket::max_in_flight) wait to be written; past that, `emit`
/// waits. A connection that drops is made again (with backoff), and the element it was
/// writing sent on the new one. Once the connection has been down for
/// [`timeout`](ToWebsocket::timeout), the element waiting fails, and each one after it fails
/// at once (after one more try to connect) until a connection is made again: a server that
/// is gone fails the elements, it does not hold the pipeline for `timeout` each.
///
/// # Examples
///
/// ```no_run
/// use streamz_core::Stream;
/// use streamz_websocket::to_websocket;
///
/// # fn example() -> Result<(), streamz_core::StreamError> {
/// let source = Stream::<String>::new();
/// let sent = to_websocket("ws://127.0.0.1:8765/in").attach(&source)?;
/// # Ok(())
/// # }
/// ```
pub fn to_websocket(url: impl Into<String>) -> ToWebsocket {
    ToWebsocket {
        url: url.into(),
        max_in_flight: 100,
        connect_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    }
}

impl ToWebsocket {
    /// At most `n` elements waiting to be written (default 100, at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.clamp(1, 1 << 20);
        self
    }

    /// The wait for the connection and its handshake (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the connection may be down before the elements waiting for it fail
    /// (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects, and sends each element of `upstream`; the stream returned has each element
    /// once it is written.
    ///
    /// # Errors
    ///
    /// A URL that is not `ws://`; a server that does not answer, or refuses the handshake,
    /// within the connect timeout.
    pub fn attach<T: Payload>(self, upstream: &Stream<T>) -> Result<Stream<T>, StreamError> {
        let node = NodeRef::detached("to_websocket");
        check_url(&self.url).map_err(|e| failed(&node, format!("to_websocket: {e}")))?;
        let (requests, queued) = mpsc::channel::<Request>(self.max_in_flight);
        let (url, connect_timeout, timeout) =
            (self.url.clone(), self.connect_timeout, self.timeout);
        let (thread, ()) = Thread::start(&node, move |tasks| async move {
            let (socket, _) = connect(&url, WebSocketConfig::default(), connect_timeout).await?;
            tokio::spawn(write_server(
                url,
                socket,
                connect_timeout,
                timeout,
                queued,
                tasks,
            ));
            Ok(())
        })?;
        // the queue first, so that the writer sees its end and closes the socket, then the
        // thread, which waits for it
        let link = Arc::new(Link {
            requests,
            _thread: thread,
        });
        let to: Arc<str> = self.url.into();
        Ok(upstream
            .try_map_async(self.max_in_flight, move |element: T| {
                // queued here, as the elements come (the futures start in no set order);
                // never full: at most `max_in_flight` calls are outstanding, each with at
                // most one request queued
                let (done, is_done) = oneshot::channel();
                let queued = link
                    .requests
                    .try_send(Request {
                        message: outgoing(&element),
                        done,
                    })
                    .map_err(|e| e.to_string());
                let (link, to) = (link.clone(), to.clone());
                async move {
                    let result = match queued {
                        Ok(()) => is_done
                            .await
                            .unwrap_or_else(|_| Err("the connection ended".to_owned())),
                        Err(e) => Err(format!("the connection's queue: {e}")),
                    };
                    // the connection lives while a message does
                    drop(link);
                    result
                        .map(|()| element)
                        .map_err(|message| SendError { to, message })
                }
            })
            .named("to_websocket"))
    }
}

/// A client sink's queue and the thread of its socket, in the order they end.
struct Link {
    requests: mpsc::Sender<Request>,
    _thread: Thread,
}

/// A message on its way to the socket, and where its outcome goes.
struct Request {
    message: WsMessage,
    done: oneshot::Sender<Result<(), String>>,
}

/// Writes what is queued, in order, connecting again when the connection drops. A message
/// fails once the connection has been down for `timeout`: the first after waiting that long,
/// those after it at once (each after one more try to connect), until a connection is made.
async fn write_server(
    url: String,
    socket: ClientSocket,
    connect_timeout: Duration,
    timeout: Duration,
    mut queued: mpsc::Receiver<Request>,
    _tasks: Tasks,
) {
    let mut socket = Some(socket);
    let mut down_since: Option<Instant> = None;
    while let Some(request) = queued.recv().await {
        let mut wait = Duration::from_millis(100);
        let result = loop {
            if socket.is_none()
                && let Ok((again, _)) =
                    connect(&url, WebSocketConfig::default(), connect_timeout).await
            {
                socket = Some(again);
            }
            if let Some(open) = socket.as_mut() {
                match send(open, request.message.clone()).await {
                    Ok(()) => {
                        down_since = None;
                        break Ok(());
                    }
                    Err(_) => socket = None,
                }
            }
            let since = *down_since.get_or_insert_with(Instant::now);
            let left = (since + timeout).saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(format!(
                    "no connection to the server for {}",
                    humantime::format_duration(timeout)
                ));
            }
            tokio::time::sleep(wait.min(left)).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        };
        let _ = request.done.send(result);
    }
    if let Some(mut socket) = socket {
        let _ = socket.close(None).await;
    }
}

/// What a server sink does with a client that cannot keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowClient {
    /// Disconnects it (close code 1008) when its queue is full: the others go on. The
    /// default.
    #[default]
    Drop,
    /// Waits for it: `emit` waits until every client's queue has room.
    Wait,
}

/// A sink serving websocket clients: see [`to_websocket_server`].
#[must_use = "a builder does nothing until it is bound or attached"]
#[derive(Debug)]
pub struct ToWebsocketServer {
    addr: String,
    client_buffer: usize,
    slow_client: SlowClient,
    max_connections: usize,
    handshake_timeout: Duration,
}

/// A websocket server on `addr` (`host:port`; port 0 picks a free one) that sends each
/// element to every client connected: a string as a text message, bytes as a binary one.
///
/// Each client has a queue of at most [`client_buffer`](ToWebsocketServer::client_buffer)
/// messages. A client whose queue is full is disconnected, or waited for, as
/// [`slow_client`](ToWebsocketServer::slow_client) says: never more memory than the queues.
/// An element is done once it is queued for every client connected (none: at once: a
/// client that connects later does not get what was sent before).
///
/// # Examples
///
/// ```no_run
/// use streamz_core::Stream;
/// use streamz_websocket::{SlowClient, to_websocket_server};
///
/// # fn example() -> Result<(), streamz_core::StreamError> {
/// let prices = Stream::<String>::new();
/// let server = to_websocket_server("127.0.0.1:0")
///     .slow_client(SlowClient::Drop)
///     .bind()?;
/// println!("serving on ws://{}", server.local_addr());
/// server.attach(&prices);
/// # Ok(())
/// # }
/// ```
pub fn to_websocket_server(addr: impl Into<String>) -> ToWebsocketServer {
    ToWebsocketServer {
        addr: addr.into(),
        client_buffer: 1000,
        slow_client: SlowClient::Drop,
        max_connections: 512,
        handshake_timeout: Duration::from_secs(10),
    }
}

impl ToWebsocketServer {
    /// A client's queue, at most (default 1000 messages, at least 1).
    pub fn client_buffer(mut self, n: usize) -> Self {
        self.client_buffer = n.clamp(1, 1 << 20);
        self
    }

    /// What to do with a client whose queue is full (default [`SlowClient::Drop`]).
    pub fn slow_client(mut self, policy: SlowClient) -> Self {
        self.slow_client = policy;
        self
    }

    /// Clients at most at once (default 512); one more is told "try again later" (1013).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// The wait for a client's handshake (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Listens: the server's clients can connect from now on.
    ///
    /// # Errors
    ///
    /// An address that cannot be listened on.
    pub fn bind(self) -> Result<WebsocketServer, StreamError> {
        let node = NodeRef::detached("to_websocket_server");
        let clients: Arc<Clients> = Arc::default();
        let (addr, queue, timeout, max) = (
            self.addr.clone(),
            self.client_buffer,
            self.handshake_timeout,
            self.max_connections,
        );
        let (stop, stopping) = watch::channel(false);
        let serving = clients.clone();
        let (thread, local_addr) = Thread::start(&node, move |tasks| async move {
            let listener = TcpListener::bind(&addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let local = listener
                .local_addr()
                .map_err(|e| format!("listening on {addr}: {e}"))?;
            tokio::spawn(accept_clients(
                listener, serving, queue, timeout, max, stopping, tasks,
            ));
            Ok(local)
        })?;
        Ok(WebsocketServer(Arc::new(Serving {
            clients,
            local_addr,
            slow_client: self.slow_client,
            stop,
            _thread: thread,
        })))
    }

    /// Listens, and sends each element of `upstream` to the clients: as
    /// [`bind`](ToWebsocketServer::bind) then [`WebsocketServer::attach`].
    ///
    /// # Errors
    ///
    /// As [`bind`](ToWebsocketServer::bind).
    pub fn attach<T: Payload>(self, upstream: &Stream<T>) -> Result<Stream<T>, StreamError> {
        Ok(self.bind()?.attach(upstream))
    }
}

/// The connected clients of a server sink, each with its queue.
#[derive(Debug, Default)]
struct Clients {
    connected: std::sync::Mutex<Vec<Client>>,
    next: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Client {
    id: u64,
    queue: mpsc::Sender<WsMessage>,
    /// Told when the sink drops the client.
    kick: Option<oneshot::Sender<()>>,
}

/// A listening server sink: see [`to_websocket_server`]. Its clones share the server,
/// which stops (each client sent what is queued for it, then told the server is going
/// away, 1001) once the last clone, and the graph it is attached to, are gone.
#[derive(Debug, Clone)]
pub struct WebsocketServer(Arc<Serving>);

#[derive(Debug)]
struct Serving {
    clients: Arc<Clients>,
    local_addr: SocketAddr,
    slow_client: SlowClient,
    stop: watch::Sender<bool>,
    // last: it waits for the clients' tasks, which `stop` ends
    _thread: Thread,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl WebsocketServer {
    /// Its address (its port, when it was given port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        lock(&self.0.clients.connected).len()
    }

    /// How many clients it disconnected for being slow.
    pub fn dropped_clients(&self) -> u64 {
        self.0.clients.dropped.load(Ordering::Relaxed)
    }

    /// Sends each element of `upstream` to every connected client; the stream returned has
    /// each element once it is queued for each of them.
    pub fn attach<T: Payload>(&self, upstream: &Stream<T>) -> Stream<T> {
        let server = self.clone();
        upstream
            .then(move |element: T| {
                let server = server.clone();
                async move {
                    server.publish(outgoing(&element)).await;
                    element
                }
            })
            .named("to_websocket_server")
    }

    /// Queues `message` for every client, dropping or waiting for a full one.
    async fn publish(&self, message: WsMessage) {
        let queues: Vec<(u64, mpsc::Sender<WsMessage>)> = lock(&self.0.clients.connected)
            .iter()
            .map(|c| (c.id, c.queue.clone()))
            .collect();
        for (id, queue) in queues {
            match self.0.slow_client {
                SlowClient::Wait => {
                    // a client that left: its queue is closed
                    let _ = queue.send(message.clone()).await;
                }
                SlowClient::Drop => match queue.try_send(message.clone()) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => self.0.clients.kick(id),
                },
            }
        }
    }
}

impl Clients {
    /// Disconnects a slow client.
    fn kick(&self, id: u64) {
        let mut connected = lock(&self.connected);
        if let Some(at) = connected.iter().position(|c| c.id == id) {
            let mut client = connected.swap_remove(at);
            if let Some(kick) = client.kick.take() {
                let _ = kick.send(());
            }
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Accepts clients until the server stops, each written to by a task of its own.
async fn accept_clients(
    listener: TcpListener,
    clients: Arc<Clients>,
    queue: usize,
    timeout: Duration,
    max: usize,
    mut stopping: watch::Receiver<bool>,
    tasks: Tasks,
) {
    let config = WebSocketConfig::default().max_message_size(Some(1 << 16));
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stopping) => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (clients, stopping, tasks) = (clients.clone(), stopping.clone(), tasks.clone());
        tokio::spawn(async move {
            let _tasks = tasks;
            let handshake = tokio_tungstenite::accept_async_with_config(tcp, Some(config));
            let Ok(Ok(mut socket)) = tokio::time::timeout(timeout, handshake).await else {
                return;
            };
            let (queue, mut queued) = mpsc::channel::<WsMessage>(queue);
            let (kick, kicked) = oneshot::channel();
            let id = clients.next.fetch_add(1, Ordering::Relaxed);
            let full = {
                let mut connected = lock(&clients.connected);
                let full = connected.len() >= max;
                if !full {
                    connected.push(Client {
                        id,
                        queue,
                        kick: Some(kick),
                    });
                }
                full
            };
            {
                if full {
                    let _ = socket
                        .close(Some(CloseFrame {
                            code: CloseCode::Again,
                            reason: "too many connections".into(),
                        }))
                        .await;
                    return;
                }
            }
            write_client(&mut socket, &mut queued, kicked, stopping).await;
            lock(&clients.connected).retain(|c| c.id != id);
        });
    }
}

/// Writes a client's queue to it until it leaves, is dropped, or the server stops (then
/// after what is queued).
async fn write_client(
    socket: &mut Socket,
    queued: &mut mpsc::Receiver<WsMessage>,
    mut kicked: oneshot::Receiver<()>,
    mut stopping: watch::Receiver<bool>,
) {
    const KICKED: (&str, CloseCode) = ("too slow: its queue was full", CloseCode::Policy);
    const AWAY: (&str, CloseCode) = ("the server is stopping", CloseCode::Away);
    let (reason, code) = loop {
        let message = tokio::select! {
            biased;
            _ = &mut kicked => break KICKED,
            _ = stopped(&mut stopping) => {
                while let Ok(message) = queued.try_recv() {
                    if send(socket, message).await.is_err() {
                        return;
                    }
                }
                break AWAY;
            }
            message = queued.recv() => match message {
                Some(message) => message,
                None => break AWAY,
            },
            // what a client sends is read (pings answered, a close seen) and dropped
            incoming = socket.next() => match incoming {
                Some(Ok(_)) => continue,
                _ => return,
            },
        };
        // a write a slow client holds up is given up when it is kicked
        tokio::select! {
            biased;
            _ = &mut kicked => break KICKED,
            sent = send(socket, message) => if sent.is_err() { return },
        }
    };
    // what was written goes first: a kicked client gets its close frame once it has read
    // that (within 5 s), or none
    let closing = socket.close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
}
