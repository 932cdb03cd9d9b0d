//! A real Kafka-protocol broker for tests: [tansu](https://crates.io/crates/tansu), started on
//! 127.0.0.1 on a free port, and helpers to make topics, produce, read and look at commits.
//!
//! `tansu` is found through the `STREAMZ_TANSU` environment variable or on `PATH` (install it
//! with `cargo install --locked tansu@0.6.0 --features dynostore,libsql`). When it is
//! missing, [`Broker::start`] returns `None` so that a test can skip, unless
//! `STREAMZ_REQUIRE_KAFKA=1`, where it panics (CI sets it, so no Kafka test skips there).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::Record;
use crate::runtime::Runtime;

/// A tansu broker, stopped when dropped.
#[derive(Debug)]
pub struct Broker {
    child: Option<Child>,
    port: u16,
    storage: String,
    _dir: Option<PathBuf>,
    log: PathBuf,
}

/// The `tansu` binary, if there is one.
pub fn tansu() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STREAMZ_TANSU") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|p| p.is_file())
    })
}

fn required() -> bool {
    std::env::var("STREAMZ_REQUIRE_KAFKA").is_ok_and(|v| v == "1")
}

impl Broker {
    /// A broker with in-memory storage (lost when it stops). `None` when there is no
    /// `tansu` (see the module's documentation).
    pub fn start() -> Option<Broker> {
        Self::start_with("memory://tansu/".to_owned(), None)
    }

    /// A broker whose storage is an SQLite file in `dir`: it keeps its topics, records and
    /// committed offsets across [`restart`](Broker::restart)s.
    pub fn start_persistent(dir: &Path) -> Option<Broker> {
        // tansu reads the path of `sqlite://` relative to its working directory
        Self::start_with("sqlite://tansu.db".to_owned(), Some(dir.to_owned()))
    }

    fn start_with(storage: String, dir: Option<PathBuf>) -> Option<Broker> {
        if tansu().is_none() {
            assert!(
                !required(),
                "STREAMZ_REQUIRE_KAFKA=1 but there is no `tansu` on PATH or in STREAMZ_TANSU"
            );
            eprintln!(
                "skipped: no `tansu` (cargo install --locked tansu@0.6.0 --features dynostore,libsql)"
            );
            return None;
        }
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("streamz-tansu-{port}-{}.log", std::process::id()));
        let mut broker = Broker {
            child: None,
            port,
            storage,
            _dir: dir,
            log,
        };
        broker.spawn();
        Some(broker)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(&self.log).expect("a log file for tansu");
        let mut command = Command::new(tansu().expect("checked"));
        if let Some(dir) = &self._dir {
            command.current_dir(dir);
        }
        let child = command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &self.storage])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !listens(self.port) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tansu exited ({status}) before listening; its log: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} within 30 s; its log: {}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, on the same port, with the same storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A consumer's config for group `group`.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.address())
            .set("group.id", group)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500");
        config
    }

    /// A producer's config.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.address())
            .set("linger.ms", "5");
        config
    }

    /// Creates `topic` with `partitions` partitions.
    ///
    /// # Panics
    ///
    /// If the broker refuses.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            AdminClient::from_config(&self.producer_config()).expect("an admin client");
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let results = futures_executor::block_on(admin.create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create_topics");
        for result in results {
            result.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    }

    /// Produces `values` (keyed by their index, as text) to `topic`, waiting for every
    /// delivery.
    ///
    /// # Panics
    ///
    /// If a delivery fails.
    pub fn produce<I, V>(&self, topic: &str, values: I)
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        // One record a batch: tansu 0.6.0 returns no records to a fetch that starts inside
        // a batch, so a group could not resume from a commit in the middle of one.
        let mut config = self.producer_config();
        config.set("batch.num.messages", "1");
        let producer: FutureProducer<DefaultClientContext, Runtime> =
            FutureProducer::from_config(&config).expect("a producer");
        let mut pending = Vec::new();
        for (i, value) in values.into_iter().enumerate() {
            let key = i.to_string();
            let record = FutureRecord::to(topic).key(&key).payload(value.as_ref());
            pending.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("queued"),
            );
            if pending.len() >= 10_000 {
                for delivery in pending.drain(..) {
                    futures_executor::block_on(delivery)
                        .expect("a delivery report")
                        .expect("delivered");
                }
            }
        }
        for delivery in pending {
            futures_executor::block_on(delivery)
                .expect("a delivery report")
                .expect("delivered");
        }
    }

    /// Reads `topic` from its beginning, every partition, until `want` records have been
    /// read or `timeout` has passed with none new; the records in the order read.
    pub fn read_all(&self, topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
        let mut config = self.consumer_config("streamz-testing-reader");
        config.set("enable.auto.commit", "false");
        let consumer: BaseConsumer = config.create().expect("a consumer");
        let mut tpl = TopicPartitionList::new();
        for p in partitions(&consumer, topic) {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("a partition");
        }
        consumer.assign(&tpl).expect("assign");
        let name: std::sync::Arc<str> = topic.into();
        let mut records = Vec::new();
        let mut last_new = Instant::now();
        while records.len() < want && last_new.elapsed() < timeout {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    records.push(Record::from_message(&message, &name));
                    last_new = Instant::now();
                }
                Some(Err(e)) => eprintln!("read_all: {e}"),
                None => {}
            }
        }
        records
    }

    /// The offsets `group` has committed in `topic`, by partition.
    pub fn committed(&self, group: &str, topic: &str) -> HashMap<i32, i64> {
        let consumer: BaseConsumer = self.consumer_config(group).create().expect("a consumer");
        let mut tpl = TopicPartitionList::new();
        for p in partitions(&consumer, topic) {
            tpl.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }

    /// The broker's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The partitions of `topic`, as the broker's metadata gives them.
fn partitions(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect()
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether something listens on 127.0.0.1:`port`. A connection to itself does not count: a
/// client whose own port the kernel picks equal to the one it asks for (an ephemeral port
/// nobody listens on yet) is connected to itself, and would keep the server from binding.
fn listens(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port))
        .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}
