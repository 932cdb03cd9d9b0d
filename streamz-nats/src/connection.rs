//! One connection to a NATS server: async-nats's client, on a thread of its own (a tokio
//! runtime of one thread, since async-nats's sockets and timers are tokio's), so that the
//! crate works under every streamz executor. The client reconnects by itself, for ever, with
//! backoff; what it reports goes to [`Health`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event};
use futures_util::StreamExt;
use streamz_core::{ErrorKind, NodeRef, StreamError, lock};
use streamz_tokio::RuntimeThread;
use tokio::sync::Notify;

/// The setters of [`Settings`] that [`FromNats`](crate::FromNats) and
/// [`ToNats`](crate::ToNats) share, inside their `impl` blocks.
macro_rules! login_options {
    () => {
        /// A user name and password.
        pub fn user_and_password(
            mut self,
            user: impl Into<String>,
            password: impl Into<String>,
        ) -> Self {
            self.settings.user_and_password = Some((user.into(), password.into()));
            self
        }

        /// A token.
        pub fn token(mut self, token: impl Into<String>) -> Self {
            self.settings.token = Some(token.into());
            self
        }

        /// A credentials file (a JWT and an NKey seed, as `nsc` writes them).
        pub fn credentials_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.settings.credentials_file = Some(path.into());
            self
        }

        /// TLS, trusting the certificate authorities in the PEM file `path` (and requiring
        /// TLS of the server).
        pub fn add_root_certificates(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.settings.root_certificates = Some(path.into());
            self
        }

        /// How long connecting (when it is built) waits for the server (default 10 s).
        pub fn connection_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.connection_timeout = timeout;
            self
        }
    };
}
pub(crate) use login_options;

/// How to reach and log in to a server: what [`from_nats`](crate::from_nats) and
/// [`to_nats`](crate::to_nats) share.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) server: String,
    pub(crate) user_and_password: Option<(String, String)>,
    pub(crate) token: Option<String>,
    pub(crate) credentials_file: Option<PathBuf>,
    pub(crate) root_certificates: Option<PathBuf>,
    pub(crate) connection_timeout: Duration,
    /// The subscriptions' buffer in the client (core NATS: past it, messages are dropped).
    pub(crate) subscription_capacity: usize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // no secrets in a debug print
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("connection_timeout", &self.connection_timeout)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub(crate) fn new(server: impl Into<String>) -> Self {
        Settings {
            server: server.into(),
            user_and_password: None,
            token: None,
            credentials_file: None,
            root_certificates: None,
            connection_timeout: Duration::from_secs(10),
            subscription_capacity: 65_536,
        }
    }

    async fn options(&self, health: Arc<Health>) -> Result<ConnectOptions, String> {
        let mut options = ConnectOptions::new();
        if let Some(path) = &self.credentials_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| format!("the credentials file {}: {e}", path.display()))?;
        }
        if let Some((user, password)) = &self.user_and_password {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(path) = &self.root_certificates {
            // read here, so that a missing file is an error of its own
            std::fs::metadata(path)
                .map_err(|e| format!("the root certificates file {}: {e}", path.display()))?;
            options = options
                .add_root_certificates(path.clone())
                .require_tls(true);
        }
        Ok(options
            .connection_timeout(self.connection_timeout)
            .subscription_capacity(self.subscription_capacity.max(1))
            .name("streamz")
            .event_callback(move |event| {
                let health = health.clone();
                async move { health.event(event) }
            }))
    }
}

/// What the connection learned that the source or the sink reports.
#[derive(Debug, Default)]
pub(crate) struct Health {
    failure: Mutex<Option<StreamError>>,
    last_error: Mutex<Option<String>>,
    connections: AtomicU64,
    slow_consumer: AtomicU64,
    /// Woken when `failure` is set.
    pub(crate) failed: Notify,
}

impl Health {
    pub(crate) fn failure(&self) -> Option<StreamError> {
        lock(&self.failure).clone()
    }

    /// Fails the source for good (the first failure is the one kept).
    pub(crate) fn fail(&self, e: StreamError) {
        lock(&self.failure).get_or_insert(e);
        self.failed.notify_waiters();
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    pub(crate) fn note(&self, message: String) {
        *lock(&self.last_error) = Some(message);
    }

    /// Times the client connected again after it lost the server.
    pub(crate) fn reconnections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// Messages the client dropped because the graph did not take them fast enough (core
    /// NATS's slow consumer).
    pub(crate) fn dropped(&self) -> u64 {
        self.slow_consumer.load(Ordering::Relaxed)
    }

    fn event(&self, event: Event) {
        match event {
            Event::Connected => {
                self.connections.fetch_add(1, Ordering::Relaxed);
            }
            Event::SlowConsumer(_) => {
                self.slow_consumer.fetch_add(1, Ordering::Relaxed);
                self.note(
                    "the client dropped a message: the graph was behind (slow consumer)".into(),
                );
            }
            Event::Disconnected => self.note("disconnected; reconnecting".into()),
            other => self.note(other.to_string()),
        }
    }
}

/// The error of a connection's node.
pub(crate) fn failed(node: &NodeRef, message: String) -> StreamError {
    StreamError::new(ErrorKind::Failed, Some(node.clone()), message)
}

/// A connected client and the thread that runs it. Closing it flushes what was published
/// (acknowledgements included) and disconnects.
pub(crate) struct Connection {
    pub(crate) client: Client,
    pub(crate) health: Arc<Health>,
    thread: RuntimeThread,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `settings.server`, then runs `setup` with the client on the connection's
    /// runtime; returns when both are done (or one failed, with its error). Blocks the
    /// calling thread meanwhile.
    pub(crate) fn open<R, F>(
        settings: &Settings,
        node: &NodeRef,
        setup: impl FnOnce(Client) -> F + Send + 'static,
    ) -> Result<(Connection, R), StreamError>
    where
        R: Send + 'static,
        F: Future<Output = Result<R, String>>,
    {
        let health: Arc<Health> = Arc::default();
        let (ready, is_ready) = std::sync::mpsc::sync_channel::<Result<(Client, R), String>>(1);
        let settings = settings.clone();
        let thread_health = health.clone();
        let thread = RuntimeThread::spawn("streamz-nats", move |stopping| async move {
            let server = settings.server.clone();
            let connected = async {
                let options = settings.options(thread_health).await?;
                let timeout = settings.connection_timeout;
                let client = tokio::time::timeout(timeout, options.connect(&*server))
                    .await
                    .map_err(|_| {
                        format!(
                            "no answer from the NATS server at {server} within {}",
                            humantime::format_duration(timeout)
                        )
                    })?
                    .map_err(|e| refusal(&server, &e))?;
                let made = setup(client.clone()).await?;
                Ok((client, made))
            };
            let client = match connected.await {
                Ok((client, made)) => {
                    if ready.send(Ok((client.clone(), made))).is_err() {
                        return;
                    }
                    client
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            // until closed: the client's tasks, and what the source or sink spawned
            stopping.await;
            let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), client.drain()).await;
        })
        .map_err(|e| failed(node, format!("a thread for the connection: {e}")))?;
        match is_ready.recv() {
            Ok(Ok((client, made))) => Ok((
                Connection {
                    client,
                    health,
                    thread,
                },
                made,
            )),
            Ok(Err(message)) => Err(failed(node, format!("{}: {message}", node.name()))),
            Err(_) => Err(failed(
                node,
                format!("{}: the connection's thread ended", node.name()),
            )),
        }
    }

    /// The runtime the connection runs on, to spawn its tasks.
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        self.thread.handle()
    }

    /// Flushes what was published (within 5 s), disconnects and ends the thread.
    pub(crate) fn close(self) {
        drop(self.thread);
    }
}

/// Why connecting failed, in words.
fn refusal(server: &str, e: &async_nats::ConnectError) -> String {
    match e.kind() {
        ConnectErrorKind::AuthorizationViolation => format!(
            "the NATS server at {server} refused the login (authorization violation): check the user and password, token or credentials"
        ),
        ConnectErrorKind::TimedOut => format!("no answer from the NATS server at {server}"),
        ConnectErrorKind::Tls => format!("TLS with the NATS server at {server} failed: {e}"),
        ConnectErrorKind::Io => format!("cannot reach the NATS server at {server}: {e}"),
        ConnectErrorKind::ServerParse => format!("`{server}` is not a NATS server address: {e}"),
        _ => format!("connecting to the NATS server at {server}: {e}"),
    }
}

/// The JetStream stream `name`, made (capturing `subjects`) if `create` and it is missing;
/// an error naming the streams there are otherwise.
pub(crate) async fn stream(
    context: &jetstream::Context,
    name: &str,
    subjects: &[String],
    create: bool,
) -> Result<jetstream::stream::Stream, String> {
    use async_nats::jetstream::context::GetStreamErrorKind;
    match context.get_stream(name).await {
        Ok(stream) => Ok(stream),
        Err(e)
            if matches!(e.kind(), GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            if create {
                return context
                    .create_stream(jetstream::stream::Config {
                        name: name.to_owned(),
                        subjects: subjects.to_vec(),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("creating the JetStream stream `{name}`: {e}"));
            }
            let mut names: Vec<String> = context
                .stream_names()
                .take(100)
                .filter_map(|n| async move { n.ok() })
                .collect()
                .await;
            names.sort();
            Err(format!(
                "no JetStream stream `{name}` ({e}); the server has {}; create it (`nats stream add`), or have it made (`create_stream(true)`; on the command line `create=true`)",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ))
        }
        Err(e) => Err(format!(
            "the JetStream stream `{name}`: {e} (is JetStream enabled on the server? nats-server -js)"
        )),
    }
}
