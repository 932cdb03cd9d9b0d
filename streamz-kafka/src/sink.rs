//! [`to_kafka`]: a producer sink whose elements are done when the broker has them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use streamz_core::{Element, Stream, StreamError};

use crate::config::{check_topics, failed, servers};
use crate::record::Record;
use crate::runtime::Runtime;

type KafkaProducer = FutureProducer<DefaultClientContext, Runtime>;

/// What [`to_kafka`] can produce: a value, and optionally a key and headers.
pub trait Produce: Element {
    /// The record's value; `None` for a tombstone.
    fn payload(&self) -> Option<&[u8]>;

    /// The record's key (default: none, so librdkafka's partitioner spreads records).
    fn key(&self) -> Option<&[u8]> {
        None
    }

    /// The record's headers (default: none).
    fn headers(&self) -> &[(String, Option<Vec<u8>>)] {
        &[]
    }
}

impl Produce for String {
    fn payload(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
}

impl Produce for &'static str {
    fn payload(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
}

impl Produce for Vec<u8> {
    fn payload(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl Produce for Record {
    fn payload(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    fn headers(&self) -> &[(String, Option<Vec<u8>>)] {
        &self.headers
    }
}

/// A key and a value.
impl<K, V> Produce for (K, V)
where
    K: AsRef<[u8]> + Element,
    V: AsRef<[u8]> + Element,
{
    fn payload(&self) -> Option<&[u8]> {
        Some(self.1.as_ref())
    }

    fn key(&self) -> Option<&[u8]> {
        Some(self.0.as_ref())
    }
}

/// An element the broker has acknowledged, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered<T> {
    /// The element.
    pub element: T,
    /// The partition it was written to.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// A delivery the broker refused, or that timed out (`message.timeout.ms`).
#[derive(Debug)]
pub struct DeliveryError {
    topic: Arc<str>,
    servers: Arc<str>,
    error: KafkaError,
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivery to topic `{}` on {} failed: {}",
            self.topic, self.servers, self.error
        )
    }
}

impl std::error::Error for DeliveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl DeliveryError {
    /// librdkafka's error.
    pub fn kafka_error(&self) -> &KafkaError {
        &self.error
    }
}

/// A producer sink: see [`to_kafka`].
#[must_use = "a builder does nothing until it is attached to a stream"]
#[derive(Debug, Clone)]
pub struct ToKafka {
    topic: String,
    config: ClientConfig,
    max_in_flight: usize,
    connect_timeout: Duration,
}

/// The original's `to_kafka`: each element is produced to `topic`, and emitted downstream
/// (as [`Delivered`]) once the broker has acknowledged it. No fixed poll delay: delivery
/// reports are handled as they come.
///
/// An element is done (its [`Ack`](streamz_core::Ack), if it has one, completes) only after
/// its delivery: so `from_kafka → … → to_kafka` commits an input offset only once what was
/// made from it is in the output topic, which is at-least-once end to end. At most
/// [`max_in_flight`](ToKafka::max_in_flight) deliveries are awaited at once; past that,
/// `emit` waits (backpressure from a slow broker). A failed delivery (after librdkafka's
/// own retries, within `message.timeout.ms`) is the element's error, a [`DeliveryError`].
///
/// `config` is the producer's librdkafka configuration (`bootstrap.servers` at least).
///
/// # Examples
///
/// ```no_run
/// use streamz_core::Stream;
/// use streamz_kafka::{ClientConfig, to_kafka};
///
/// # async fn example() -> Result<(), streamz_core::StreamError> {
/// let mut config = ClientConfig::new();
/// config.set("bootstrap.servers", "127.0.0.1:9092");
/// let source: Stream<String> = Stream::new();
/// let delivered = to_kafka("out", config).attach(&source)?;
/// delivered.sink(|d| println!("{} at {}/{}", d.element, d.partition, d.offset));
/// source.emit("hello".to_string()).await?; // returns once the broker has it queued
/// source.close().await?; // waits for every delivery
/// # Ok(())
/// # }
/// ```
pub fn to_kafka(topic: impl Into<String>, config: ClientConfig) -> ToKafka {
    ToKafka {
        topic: topic.into(),
        config,
        max_in_flight: 1000,
        connect_timeout: Duration::from_secs(10),
    }
}

impl ToKafka {
    /// At most `n` deliveries awaited at once (default 1000). At least 1.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// How long [`attach`](ToKafka::attach) waits for the broker to answer (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Makes the producer, checks the broker answers and has the topic, and attaches the
    /// sink to `upstream`. Blocks for up to the connect timeout.
    ///
    /// # Errors
    ///
    /// A configuration librdkafka refuses, a broker that does not answer, a topic that is
    /// not on the broker.
    pub fn attach<T: Produce>(
        self,
        upstream: &Stream<T>,
    ) -> Result<Stream<Delivered<T>>, StreamError> {
        let servers: Arc<str> = servers(&self.config).into();
        let node = streamz_core::NodeRef::detached("to_kafka");
        let producer = KafkaProducer::from_config(&self.config)
            .map_err(|e| failed(&node, format!("to_kafka: the producer's config: {e}")))?;
        check_topics(
            producer.client(),
            std::slice::from_ref(&self.topic),
            &servers,
            self.connect_timeout,
            &node,
        )?;
        let producer = Arc::new(producer);
        let topic: Arc<str> = self.topic.into();
        Ok(upstream
            .try_map_async(self.max_in_flight, move |element: T| {
                let (producer, topic, servers) = (producer.clone(), topic.clone(), servers.clone());
                async move {
                    let (element, delivery) = deliver(&producer, &topic, element).await;
                    match delivery {
                        Ok((partition, offset)) => Ok(Delivered {
                            element,
                            partition,
                            offset,
                        }),
                        Err(error) => Err(DeliveryError {
                            topic,
                            servers,
                            error,
                        }),
                    }
                }
            })
            .named("to_kafka"))
    }
}

/// Queues `element` in librdkafka (waiting while its queue is full) and waits for the
/// broker's acknowledgement.
async fn deliver<T: Produce>(
    producer: &KafkaProducer,
    topic: &str,
    element: T,
) -> (T, Result<(i32, i64), KafkaError>) {
    let mut headers = None;
    if !element.headers().is_empty() {
        let mut owned = rdkafka::message::OwnedHeaders::new();
        for (key, value) in element.headers() {
            owned = owned.insert(rdkafka::message::Header {
                key,
                value: value.as_deref(),
            });
        }
        headers = Some(owned);
    }
    let mut wait = Duration::from_millis(1);
    // the element is not `Sync`: its bytes are copied into librdkafka's queue before any
    // `await`, and it is kept, owned, for the downstream
    let future = loop {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(payload) = element.payload() {
            record = record.payload(payload);
        }
        if let Some(key) = element.key() {
            record = record.key(key);
        }
        if let Some(headers) = &headers {
            record = record.headers(headers.clone());
        }
        let sent = producer.send_result(record);
        match sent {
            Ok(future) => break future,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
            Err((e, _)) => return (element, Err(e)),
        }
        // librdkafka's own queue is full: wait for deliveries to make room
        futures_timer::Delay::new(wait).await;
        wait = (wait * 2).min(Duration::from_millis(50));
    };
    let result = match future.await {
        Ok(Ok(delivery)) => Ok((delivery.partition, delivery.offset)),
        Ok(Err((e, _))) => Err(e),
        Err(_canceled) => Err(KafkaError::Canceled),
    };
    (element, result)
}
