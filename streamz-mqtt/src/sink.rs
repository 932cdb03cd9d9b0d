//! [`to_mqtt`]: a publishing sink whose elements are done when the broker has them.

use std::sync::Arc;
use std::time::Duration;

use streamz_core::{NodeRef, Payload, Stream, StreamError, lock};
use tokio::sync::oneshot;

use crate::connection::{Connection, Deliveries, QoS, Role, Settings};
use crate::source::Message;

impl Payload for Message {
    fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// A publication the broker refused, or that the connection lost for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    topic: Arc<str>,
    message: String,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "to_mqtt `{}`: {}", self.topic, self.message)
    }
}

impl std::error::Error for PublishError {}

/// A publishing sink: see [`to_mqtt`].
#[must_use = "a builder does nothing until it is attached"]
#[derive(Debug)]
pub struct ToMqtt {
    settings: Settings,
    topic: String,
    qos: QoS,
    retain: bool,
    max_in_flight: u16,
}

/// Publishes each element to `topic` on the MQTT broker at `host:port` (MQTT 5).
///
/// An element is done when the broker has acknowledged it (QoS 1, the default; with QoS 0,
/// when it is written to the connection), so a source upstream acknowledges its own
/// messages only once they are published. At most
/// [`max_in_flight`](ToMqtt::max_in_flight) publications are awaited at once; past that,
/// `emit` waits. A dropped connection is made again, with what was not acknowledged sent
/// again.
///
/// # Examples
///
/// ```no_run
/// use streamz_core::Stream;
/// use streamz_mqtt::to_mqtt;
///
/// # fn example() -> Result<(), streamz_core::StreamError> {
/// let source = Stream::<String>::new();
/// let published = to_mqtt("127.0.0.1", 1883, "greetings").attach(&source)?;
/// # Ok(())
/// # }
/// ```
pub fn to_mqtt(host: impl Into<String>, port: u16, topic: impl Into<String>) -> ToMqtt {
    ToMqtt {
        settings: Settings::new(host, port),
        topic: topic.into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        max_in_flight: 100,
    }
}

impl ToMqtt {
    crate::connection::login_options!();

    /// The publications' QoS (default [`QoS::AtLeastOnce`]).
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Whether the broker retains the last publication for new subscribers (default no).
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// The client id (default a fresh one).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.settings.client_id = Some(id.into());
        self
    }

    /// At most `n` publications awaited at once (default 100, at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.clamp(1, u16::MAX as usize) as u16;
        self
    }

    /// Connects, and publishes each element of `upstream`; the stream returned has each
    /// element once the broker has it.
    ///
    /// # Errors
    ///
    /// A broker that does not answer within the connect timeout, a refusal, an unreadable
    /// CA file, a topic that is not a valid MQTT topic name.
    pub fn attach<T: Payload>(self, upstream: &Stream<T>) -> Result<Stream<T>, StreamError> {
        let node = NodeRef::detached("to_mqtt");
        if self.topic.is_empty() || self.topic.contains(['+', '#']) {
            return Err(crate::connection::failed(
                &node,
                format!(
                    "to_mqtt: `{}` is not a topic to publish to (it must not be empty nor hold `+` or `#`)",
                    self.topic
                ),
            ));
        }
        let deliveries = Arc::new(Deliveries::default());
        let connection = Connection::open(
            &self.settings,
            Role::Sink(deliveries.clone()),
            self.max_in_flight,
            &node,
        )?;
        let connection = Arc::new(Closing(Some(connection)));
        let topic: Arc<str> = self.topic.into();
        let (qos, retain) = (self.qos.rumqttc(), self.retain);
        Ok(upstream
            .try_map_async(self.max_in_flight as usize, move |element: T| {
                let (connection, deliveries, topic) =
                    (connection.clone(), deliveries.clone(), topic.clone());
                async move {
                    let client = &connection.0.as_ref().expect("open until dropped").client;
                    let mut wait = Duration::from_millis(1);
                    let done = loop {
                        let (done, is_done) = oneshot::channel();
                        {
                            // queued in the order the connection will send them
                            let mut queued = lock(&deliveries.queued);
                            match client.try_publish(
                                &*topic,
                                qos,
                                retain,
                                element.payload().to_vec(),
                            ) {
                                Ok(()) => {
                                    queued.push_back(done);
                                    break Ok(is_done);
                                }
                                Err(rumqttc::v5::ClientError::TryRequest(_)) => {}
                                Err(e) => break Err(e.to_string()),
                            }
                        }
                        // the request queue is full: wait for the connection to take some
                        futures_timer::Delay::new(wait).await;
                        wait = (wait * 2).min(Duration::from_millis(50));
                    };
                    let result = match done {
                        Ok(is_done) => is_done
                            .await
                            .unwrap_or_else(|_| Err("the connection ended".to_owned())),
                        Err(e) => Err(e),
                    };
                    result
                        .map(|()| element)
                        .map_err(|message| PublishError { topic, message })
                }
            })
            .named("to_mqtt"))
    }
}

/// The sink's connection, disconnected when the last publication's future lets it go.
struct Closing(Option<Connection>);

impl Drop for Closing {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            connection.close();
        }
    }
}
