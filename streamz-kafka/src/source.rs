//! [`from_kafka`] and [`from_kafka_batched`]: a consumer group's records into a stream,
//! committed as they are done.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{Either, select};
use rdkafka::ClientConfig;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use streamz_core::{Ack, BoxError, Element, ErrorKind, Executor, OnFailure, Stream, StreamError};

use crate::checkpoint::KafkaCheckpoint;
use crate::commit::{Context, KafkaConsumer, Key, PartitionStats, Shared};
use crate::config::{check_topics, failed, servers};
use crate::record::Record;

/// Where a consumer group starts in a partition it has no committed offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The oldest record (`auto.offset.reset=earliest`). The default: a new group reads
    /// what is there.
    #[default]
    Earliest,
    /// The next record produced (`auto.offset.reset=latest`).
    Latest,
}

/// A Kafka consumer group's records, as a source: see [`from_kafka`].
#[must_use = "a builder does nothing until it is built"]
#[derive(Clone)]
pub struct FromKafka {
    topics: Vec<String>,
    config: ClientConfig,
    max_in_flight: usize,
    on_failure: OnFailure,
    connect_timeout: Duration,
    start_from: Option<StartFrom>,
    on_error: Option<ErrorHook>,
    executor: Option<Arc<dyn Executor>>,
    checkpoint: Option<KafkaCheckpoint>,
}

type ErrorHook = Arc<dyn Fn(StreamError) + Send + Sync>;

impl std::fmt::Debug for FromKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FromKafka")
            .field("topics", &self.topics)
            .field("max_in_flight", &self.max_in_flight)
            .field("on_failure", &self.on_failure)
            .finish_non_exhaustive()
    }
}

/// A consumer group's records, one element a record: the original's `from_kafka`, committed
/// at least once.
///
/// `config` is the consumer's librdkafka configuration and must set `bootstrap.servers` and
/// `group.id`. Offsets are committed by the source, after processing: its
/// `enable.auto.commit` is always false.
///
/// Each record is emitted with an [`Ack`]; when it and everything made from it is done,
/// its offset may be committed, in order, partition by partition: the position committed
/// is always one below which every record is done. At most
/// [`max_in_flight`](FromKafka::max_in_flight) records are read and not yet committed, so
/// after a crash at most that many records that had been done are read again. A
/// rebalance commits what is done in the partitions taken away.
///
/// # Examples
///
/// ```no_run
/// use streamz_kafka::{ClientConfig, from_kafka};
///
/// # async fn example() -> Result<(), streamz_core::StreamError> {
/// let mut config = ClientConfig::new();
/// config
///     .set("bootstrap.servers", "127.0.0.1:9092")
///     .set("group.id", "totals");
/// let source = from_kafka(["events"], config).max_in_flight(10_000).build()?;
/// source
///     .stream()
///     .map(|record| record.value_str().map_or(0, str::len))
///     .sink(|n| println!("{n}"));
/// source.run().await?; // until the graph fails; `run_until` stops it
/// # Ok(())
/// # }
/// ```
pub fn from_kafka<I, S>(topics: I, config: ClientConfig) -> FromKafka
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    FromKafka {
        topics: topics.into_iter().map(Into::into).collect(),
        config,
        max_in_flight: 1000,
        on_failure: OnFailure::Stop,
        connect_timeout: Duration::from_secs(10),
        start_from: None,
        on_error: None,
        executor: None,
        checkpoint: None,
    }
}

/// The original's `from_kafka_batched`: each poll interval, for each partition with new
/// records, a batch of up to `max_batch_size` of them (the original's default: 10,000),
/// committed when the batch, and everything made from it, is done. See [`from_kafka`] for
/// `config`.
///
/// ```no_run
/// use std::time::Duration;
/// use streamz_kafka::{ClientConfig, from_kafka_batched};
///
/// # async fn example() -> Result<(), streamz_core::StreamError> {
/// let mut config = ClientConfig::new();
/// config.set("bootstrap.servers", "127.0.0.1:9092").set("group.id", "batches");
/// let source = from_kafka_batched(["events"], config)
///     .max_batch_size(500)
///     .poll_interval(Duration::from_millis(200))
///     .build()?;
/// source.stream().sink(|batch| println!("{} records", batch.len()));
/// source.run().await?;
/// # Ok(())
/// # }
/// ```
pub fn from_kafka_batched<I, S>(topics: I, config: ClientConfig) -> FromKafkaBatched
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    FromKafkaBatched {
        inner: from_kafka(topics, config).max_in_flight(100_000),
        max_batch_size: 10_000,
        poll_interval: Duration::from_secs(1),
    }
}

/// Per-partition batches of a consumer group's records: see [`from_kafka_batched`].
#[must_use = "a builder does nothing until it is built"]
#[derive(Debug, Clone)]
pub struct FromKafkaBatched {
    inner: FromKafka,
    max_batch_size: usize,
    poll_interval: Duration,
}

impl FromKafka {
    /// At most `n` records read and not yet committed (default 1000): the source stops
    /// reading until commits make room. It bounds memory, and the records a crash makes the
    /// group read again. At least 1.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// What to do with a record that fails in the pipeline (default [`OnFailure::Stop`]).
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    /// The executor the source's graph runs its tasks and timers on (buffers, async
    /// functions, `to_kafka`'s deliveries, timed windows): as
    /// [`Stream::with_executor`]. Without one, the graph is synchronous, and its async
    /// nodes run within the source's own `emit`s.
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.executor = Some(Arc::new(executor));
        self
    }

    /// Calls `f` with each error an `emit` of the source returned (an operator's error or
    /// panic on a record's way through the graph). Errors that happen after a record has
    /// left `emit` (behind a buffer, in a pool) are on the graph's
    /// [`errors()`](streamz_core::Stream::errors) stream instead; either way the record's
    /// acknowledgement fails, and [`on_failure`](FromKafka::on_failure) decides its offset.
    pub fn on_error(mut self, f: impl Fn(StreamError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(f));
        self
    }

    /// Where the group starts in a partition it has not committed in (default
    /// [`StartFrom::Earliest`], unless `config` sets `auto.offset.reset`).
    pub fn start_from(mut self, start_from: StartFrom) -> Self {
        self.start_from = Some(start_from);
        self
    }

    /// Checkpoints the source with a graph's checkpoints instead of committing records as
    /// they are done: see [`KafkaCheckpoint`], registered for the stream the source is
    /// built into ([`build_into`](FromKafka::build_into)). For a source made by
    /// [`build`](FromKafka::build), [`KafkaSource::checkpointed`] does the same.
    pub fn checkpoint(mut self, checkpoint: KafkaCheckpoint) -> Self {
        self.checkpoint = Some(checkpoint);
        self
    }

    /// How long [`build`](FromKafka::build) waits for the broker to answer (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects, checks that the topics exist, and subscribes. Blocks for up to the connect
    /// timeout.
    ///
    /// # Errors
    ///
    /// A configuration librdkafka refuses, a missing `group.id`, a broker that does not
    /// answer, a topic that is not on the broker; a [`checkpoint`](FromKafka::checkpoint)
    /// (which needs [`build_into`](FromKafka::build_into) the stream it was registered for).
    pub fn build(self) -> Result<KafkaSource<Record>, StreamError> {
        let stream = self.new_stream("from_kafka");
        self.build_as(
            "from_kafka",
            stream,
            None,
            Box::new(|read| match read {
                Read::One(record) => Ok(record),
                Read::Batch(mut batch) => Ok(batch.pop().unwrap_or_default()),
            }),
        )
    }

    /// As [`build`](FromKafka::build), emitting into `stream` (a source the caller made,
    /// with its executor and name) what `decode` makes of each record. A record `decode`
    /// fails on is a failed record: passed to [`on_error`](FromKafka::on_error) and
    /// committed or not as [`on_failure`](FromKafka::on_failure) says. The
    /// [`executor`](FromKafka::executor) option does not apply: `stream` has its own.
    ///
    /// # Errors
    ///
    /// As [`build`](FromKafka::build); a [`checkpoint`](FromKafka::checkpoint) registered
    /// for another stream.
    pub fn build_into<T, E, F>(
        self,
        stream: &Stream<T>,
        decode: F,
    ) -> Result<KafkaSource<T>, StreamError>
    where
        T: Element,
        E: Into<BoxError>,
        F: Fn(Record) -> Result<T, E> + Send + Sync + 'static,
    {
        self.build_as(
            "from_kafka",
            stream.clone(),
            None,
            Box::new(move |read| match read {
                Read::One(record) => decode(record).map_err(Into::into),
                Read::Batch(mut batch) => {
                    decode(batch.pop().unwrap_or_default()).map_err(Into::into)
                }
            }),
        )
    }

    /// The batched form of this source: see [`from_kafka_batched`]. Its
    /// [`max_in_flight`](FromKafkaBatched::max_in_flight) is what was set here.
    pub fn batched(self, max_batch_size: usize, poll_interval: Duration) -> FromKafkaBatched {
        FromKafkaBatched {
            inner: self,
            max_batch_size: max_batch_size.max(1),
            poll_interval,
        }
    }

    fn new_stream<T: Element>(&self, name: &'static str) -> Stream<T> {
        match &self.executor {
            Some(executor) => Stream::with_executor(executor.clone()),
            None => Stream::new(),
        }
        .named(name)
    }

    fn build_as<T: Element>(
        self,
        name: &'static str,
        stream: Stream<T>,
        batch: Option<(usize, Duration)>,
        decode: Decode<T>,
    ) -> Result<KafkaSource<T>, StreamError> {
        let node = stream.node();
        if let Some(checkpoint) = &self.checkpoint
            && checkpoint.stream != node
        {
            return Err(failed(
                &node,
                format!(
                    "{name}: its checkpoint was registered for {}, not for the stream it is built into",
                    checkpoint.stream
                ),
            ));
        }
        let servers = servers(&self.config);
        let mut config = self.config;
        if config.get("group.id").is_none() {
            return Err(failed(
                &node,
                format!("{name} needs a consumer group: set `group.id` in its config"),
            ));
        }
        config.set("enable.auto.commit", "false");
        config.set("enable.auto.offset.store", "false");
        if let Some(start) = self.start_from {
            config.set(
                "auto.offset.reset",
                match start {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            );
        } else if config.get("auto.offset.reset").is_none() {
            config.set("auto.offset.reset", "earliest");
        }
        if config.get("statistics.interval.ms").is_none() {
            config.set("statistics.interval.ms", "1000");
        }
        let shared = Arc::new(Shared::new(
            node.clone(),
            servers.clone(),
            self.max_in_flight,
            self.on_failure,
        ));
        let consumer: KafkaConsumer =
            KafkaConsumer::from_config_and_context(&config, Context(shared.clone()))
                .map_err(|e| failed(&node, format!("{name}: the consumer's config: {e}")))?;
        check_topics(
            consumer.client(),
            &self.topics,
            &servers,
            self.connect_timeout,
            &node,
        )?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| failed(&node, format!("{name}: subscribing to {topics:?}: {e}")))?;
        let mut source = KafkaSource {
            stream,
            consumer: Arc::new(consumer),
            shared,
            batch,
            on_error: self.on_error,
            decode,
            checkpoint: None,
        };
        if let Some(checkpoint) = self.checkpoint {
            source.attach(checkpoint);
        }
        Ok(source)
    }
}

impl FromKafkaBatched {
    /// As [`FromKafka::build_into`]: `decode` makes the element of each batch.
    ///
    /// # Errors
    ///
    /// As [`FromKafka::build`].
    pub fn build_into<T, E, F>(
        self,
        stream: &Stream<T>,
        decode: F,
    ) -> Result<KafkaSource<T>, StreamError>
    where
        T: Element,
        E: Into<BoxError>,
        F: Fn(Vec<Record>) -> Result<T, E> + Send + Sync + 'static,
    {
        self.inner.build_as(
            "from_kafka_batched",
            stream.clone(),
            Some((self.max_batch_size, self.poll_interval)),
            Box::new(move |read| match read {
                Read::One(record) => decode(vec![record]).map_err(Into::into),
                Read::Batch(batch) => decode(batch).map_err(Into::into),
            }),
        )
    }

    /// At most `n` records in a batch (default 10,000, the original's). At least 1.
    pub fn max_batch_size(mut self, n: usize) -> Self {
        self.max_batch_size = n.max(1);
        self
    }

    /// How long a poll gathers records before its batches are emitted (default 1 s, the
    /// original's).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// As [`FromKafka::max_in_flight`], in records (default 100,000). A poll ends early, with
    /// the batches it has, when the bound is reached.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.inner = self.inner.max_in_flight(n);
        self
    }

    /// As [`FromKafka::on_failure`]: for a batch that fails.
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.inner = self.inner.on_failure(on_failure);
        self
    }

    /// As [`FromKafka::start_from`].
    pub fn start_from(mut self, start_from: StartFrom) -> Self {
        self.inner = self.inner.start_from(start_from);
        self
    }

    /// As [`FromKafka::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.connect_timeout(timeout);
        self
    }

    /// As [`FromKafka::executor`].
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.inner = self.inner.executor(executor);
        self
    }

    /// As [`FromKafka::on_error`].
    pub fn on_error(mut self, f: impl Fn(StreamError) + Send + Sync + 'static) -> Self {
        self.inner = self.inner.on_error(f);
        self
    }

    /// As [`FromKafka::build`].
    ///
    /// # Errors
    ///
    /// As [`FromKafka::build`].
    pub fn build(self) -> Result<KafkaSource<Vec<Record>>, StreamError> {
        let stream = self.inner.new_stream("from_kafka_batched");
        self.inner.build_as(
            "from_kafka_batched",
            stream,
            Some((self.max_batch_size, self.poll_interval)),
            Box::new(|read| match read {
                Read::One(record) => Ok(vec![record]),
                Read::Batch(batch) => Ok(batch),
            }),
        )
    }
}

/// A subscribed consumer and the stream it feeds: build the graph on
/// [`stream`](KafkaSource::stream), then [`run`](KafkaSource::run) it.
pub struct KafkaSource<T> {
    stream: Stream<T>,
    consumer: Arc<KafkaConsumer>,
    shared: Arc<Shared>,
    batch: Option<(usize, Duration)>,
    on_error: Option<ErrorHook>,
    decode: Decode<T>,
    checkpoint: Option<KafkaCheckpoint>,
}

/// What a source read: a record, or a partition's batch.
enum Read {
    One(Record),
    Batch(Vec<Record>),
}

/// How a source makes its element of what it read.
type Decode<T> = Box<dyn Fn(Read) -> Result<T, BoxError> + Send + Sync>;

impl<T> std::fmt::Debug for KafkaSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("servers", &self.shared.servers)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// What a finished run did: see [`KafkaSource::run_until`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Records read.
    pub records: u64,
    /// Records (or batches) that failed in the pipeline.
    pub failed: u64,
    /// Commits the broker acknowledged.
    pub commits: u64,
    /// Records read again after a restore that the restored checkpoint covered: not
    /// emitted (their effect is in the state already).
    pub skipped: u64,
}

/// A handle on a running source's figures, that outlives [`KafkaSource::run`]'s borrow.
#[derive(Debug, Clone)]
pub struct SourceStats(Arc<Shared>);

impl SourceStats {
    /// Each assigned partition's committed position, high watermark and lag.
    pub fn partitions(&self) -> Vec<PartitionStats> {
        self.0.partition_stats()
    }

    /// The last error the client reported (a broker it cannot reach, a failed commit): they
    /// are retried, so they do not end the run.
    pub fn last_error(&self) -> Option<String> {
        self.0.last_error()
    }

    /// The servers the source was configured with (`bootstrap.servers`).
    pub fn servers(&self) -> &str {
        &self.0.servers
    }
}

impl<T: Element> KafkaSource<T> {
    /// The stream the records are emitted into; it is closed when the run ends.
    pub fn stream(&self) -> &Stream<T> {
        &self.stream
    }

    /// Each assigned partition's committed position, high watermark and lag.
    pub fn partitions(&self) -> Vec<PartitionStats> {
        self.shared.partition_stats()
    }

    /// Checkpoints the source with `builder`'s checkpoints, instead of committing records as
    /// they are done: see [`KafkaCheckpoint`]. Call it before
    /// [`start`](streamz_core::CheckpointsBuilder::start), which restores the offsets. The
    /// run then leaves the consumer in its group, so that the last checkpoint
    /// ([`Checkpoints::finish`](streamz_core::Checkpoints::finish)) commits its offsets;
    /// it leaves when the checkpoints are dropped (or at
    /// [`KafkaCheckpoint::leave_group`]).
    pub fn checkpointed(
        &mut self,
        builder: &mut streamz_core::CheckpointsBuilder,
    ) -> KafkaCheckpoint {
        let checkpoint = KafkaCheckpoint::register(builder, &self.stream);
        self.attach(checkpoint.clone());
        checkpoint
    }

    fn attach(&mut self, checkpoint: KafkaCheckpoint) {
        self.shared.checkpointed.store(true, Ordering::Relaxed);
        checkpoint
            .positions
            .attach(self.shared.clone(), self.consumer.clone());
        self.checkpoint = Some(checkpoint);
    }

    /// A handle on the figures, for a dashboard or a progress line while the source runs.
    pub fn stats(&self) -> SourceStats {
        SourceStats(self.shared.clone())
    }

    /// Runs until a record fails under [`OnFailure::Stop`] or the consumer fails: see
    /// [`run_until`](KafkaSource::run_until).
    ///
    /// # Errors
    ///
    /// As [`run_until`](KafkaSource::run_until).
    pub async fn run(self) -> Result<RunSummary, StreamError> {
        self.run_until(std::future::pending()).await
    }

    /// Reads and emits records until `stop` completes (or a record fails under
    /// [`OnFailure::Stop`], or the consumer fails fatally); then stops reading, closes the
    /// stream (everything read drains to the sinks), commits what is done, and leaves the
    /// group.
    ///
    /// # Errors
    ///
    /// The failure that stopped it: a record that failed under [`OnFailure::Stop`] (its
    /// error is the source of the one returned), or a fatal consumer error.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()>,
    ) -> Result<RunSummary, StreamError> {
        let committer = {
            let (shared, consumer) = (self.shared.clone(), self.consumer.clone());
            std::thread::Builder::new()
                .name("streamz-kafka-commit".into())
                .spawn(move || shared.commit_loop(&consumer))
                .map_err(|e| {
                    failed(
                        &self.shared.node,
                        format!("cannot start the committer thread: {e}"),
                    )
                })?
        };
        let stop = pin!(stop.fuse());
        let failed_ = pin!(self.shared.failed().fuse());
        let mut halt = select(stop, failed_);
        let mut skipped = 0;
        let records = match self.batch {
            None => self.read_each(&mut halt, &mut skipped).await,
            Some((max, interval)) => {
                self.read_batches(&mut halt, max, interval, &mut skipped)
                    .await
            }
        };
        // what was read drains; its acknowledgements complete
        let closed = self.stream.close().await;
        self.shared.shut_down();
        let _ = committer.join();
        if self.checkpoint.is_none() {
            self.shared.freeze_figures();
            self.consumer.unsubscribe();
        }
        let summary = RunSummary {
            records,
            failed: self.shared.failed_records.load(Ordering::Relaxed),
            commits: self.shared.commits.load(Ordering::Relaxed),
            skipped,
        };
        match self.shared.failure() {
            Some(e) => Err(e),
            None => closed.map(|()| summary),
        }
    }

    /// Reads one record at a time until `halt`; returns how many were read.
    async fn read_each<H: Future + Unpin>(&self, halt: &mut H, skipped: &mut u64) -> u64 {
        let mut records = 0;
        let mut topic: Arc<str> = Arc::from("");
        loop {
            if !self.shared.has_room() {
                let room = pin!(self.shared.wait_for_room());
                if let Either::Left(_) = select(&mut *halt, room).await {
                    return records;
                }
            }
            if self.shared.failure().is_some() {
                return records;
            }
            let message = match select(&mut *halt, pin!(self.consumer.recv())).await {
                Either::Left(_) => return records,
                Either::Right((message, _)) => message,
            };
            let record = match message {
                Ok(message) => {
                    if *topic != *message.topic() {
                        topic = Arc::from(message.topic());
                    }
                    Record::from_message(&message, &topic)
                }
                Err(e) => {
                    if self.consumer_error(e) {
                        return records;
                    }
                    continue;
                }
            };
            let (partition, offset) = (record.partition, record.offset);
            let Some(checkpoint) = &self.checkpoint else {
                records += 1;
                let key = self.shared.read(&topic, partition, offset, offset, 1);
                if self.emit(Read::One(record), key, offset).await {
                    return records;
                }
                continue;
            };
            if checkpoint.positions.covered(&topic, partition, offset) {
                *skipped += 1;
                continue;
            }
            records += 1;
            // a checkpoint is taken between turns: the position and the graph agree
            let turn = checkpoint.gate.enter().await;
            let key = self.shared.read(&topic, partition, offset, offset, 1);
            checkpoint.positions.emitted(&topic, partition, offset);
            let closed = self.emit(Read::One(record), key, offset).await;
            drop(turn);
            if closed {
                return records;
            }
        }
    }

    /// Gathers per-partition batches for each poll interval until `halt`.
    async fn read_batches<H: Future + Unpin>(
        &self,
        halt: &mut H,
        max: usize,
        interval: Duration,
        skipped: &mut u64,
    ) -> u64 {
        let mut records = 0;
        loop {
            if !self.shared.has_room() {
                let room = pin!(self.shared.wait_for_room());
                if let Either::Left(_) = select(&mut *halt, room).await {
                    return records;
                }
            }
            if self.shared.failure().is_some() {
                return records;
            }
            // (topic, partition) → its batch, in the order partitions first had a record
            let mut batches: Vec<(Arc<str>, i32, Vec<Record>)> = Vec::new();
            let deadline = Instant::now() + interval;
            let mut halted = false;
            let mut gathered = 0;
            while self.shared.has_room_for(gathered) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let timer = futures_timer::Delay::new(left);
                let recv = pin!(self.consumer.recv());
                let recv = select(recv, timer);
                let message = match select(&mut *halt, recv).await {
                    Either::Left(_) => {
                        halted = true;
                        break;
                    }
                    Either::Right((Either::Left((message, _)), _)) => message,
                    Either::Right((Either::Right(_), _)) => break,
                };
                let message = match message {
                    Ok(message) => message,
                    Err(e) => {
                        if self.consumer_error(e) {
                            halted = true;
                            break;
                        }
                        continue;
                    }
                };
                if let Some(checkpoint) = &self.checkpoint
                    && checkpoint.positions.covered(
                        message.topic(),
                        message.partition(),
                        message.offset(),
                    )
                {
                    *skipped += 1;
                    continue;
                }
                let i = match batches
                    .iter()
                    .position(|(t, p, _)| **t == *message.topic() && *p == message.partition())
                {
                    Some(i) => i,
                    None => {
                        batches.push((Arc::from(message.topic()), message.partition(), Vec::new()));
                        batches.len() - 1
                    }
                };
                let topic = batches[i].0.clone();
                batches[i].2.push(Record::from_message(&message, &topic));
                gathered += 1;
                if batches[i].2.len() >= max {
                    break;
                }
            }
            for (topic, partition, batch) in batches {
                records += batch.len() as u64;
                let (first, last) = (batch[0].offset, batch[batch.len() - 1].offset);
                let turn = match &self.checkpoint {
                    Some(checkpoint) => Some(checkpoint.gate.enter().await),
                    None => None,
                };
                let key = self
                    .shared
                    .read(&topic, partition, first, last, batch.len() as u64);
                if let Some(checkpoint) = &self.checkpoint {
                    checkpoint.positions.emitted(&topic, partition, last);
                }
                let closed = self.emit(Read::Batch(batch), key, first).await;
                drop(turn);
                if closed {
                    return records;
                }
            }
            if halted {
                return records;
            }
        }
    }

    /// Emits what was read, acknowledged (or fails it if it cannot be decoded); true when
    /// the stream was closed (by someone else), which ends the source.
    async fn emit(&self, read: Read, key: Key, first: i64) -> bool {
        let element = match (self.decode)(read) {
            Ok(element) => element,
            Err(e) => {
                let e = StreamError::new(
                    ErrorKind::Failed,
                    Some(self.shared.node.clone()),
                    format!(
                        "the record at offset {first} of {}/{}: {e}",
                        key.topic, key.partition
                    ),
                );
                if let Some(hook) = &self.on_error {
                    hook(e.clone());
                }
                self.shared.done(&key, first, Err(e));
                return false;
            }
        };
        let shared = self.shared.clone();
        let ack = Ack::new(move |result| shared.done(&key, first, result));
        match self.stream.emit_acked(element, ack).await {
            Ok(()) => false,
            Err(e) if e.kind() == ErrorKind::Closed => true,
            Err(e) => {
                if let Some(hook) = &self.on_error {
                    hook(e);
                }
                false
            }
        }
    }

    /// A consumer's error: true when it is fatal (the source fails).
    fn consumer_error(&self, e: KafkaError) -> bool {
        use rdkafka::types::RDKafkaErrorCode as Code;
        let fatal = match &e {
            KafkaError::PartitionEOF(_) => return false,
            KafkaError::MessageConsumptionFatal(_) => true,
            KafkaError::MessageConsumption(code) => matches!(
                code,
                Code::UnknownTopicOrPartition
                    | Code::TopicAuthorizationFailed
                    | Code::GroupAuthorizationFailed
            ),
            _ => false,
        };
        if fatal {
            self.shared.fail(failed(
                &self.shared.node,
                format!("the consumer failed on {}: {e}", self.shared.servers),
            ));
        } else {
            self.shared.note_error(format!(
                "the consumer reported, on {}: {e}",
                self.shared.servers
            ));
        }
        fatal
    }
}
