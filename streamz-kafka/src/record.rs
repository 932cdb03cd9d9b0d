//! [`Record`]: what `from_kafka` emits, and what `to_kafka` can produce.

use std::sync::Arc;

use rdkafka::message::{BorrowedMessage, Headers, Message};

/// One Kafka record, as [`from_kafka`](crate::from_kafka) emits it: its value (the original's
/// `from_kafka` emits only that), and its key, topic, partition, offset, timestamp and
/// headers.
///
/// Producing a `Record` with [`to_kafka`](crate::to_kafka) sends its key, value and headers
/// (to the sink's topic: a record read from one topic is written to another as it is).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The topic it was read from.
    pub topic: Arc<str>,
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key, when it has one.
    pub key: Option<Vec<u8>>,
    /// Its value; `None` for a tombstone (a record with no value).
    pub value: Option<Vec<u8>>,
    /// Its timestamp, in milliseconds since the Unix epoch, when it has one.
    pub timestamp: Option<i64>,
    /// Its headers, in order: each a name and a value (`None` for a header with no value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    /// The value as UTF-8 text; `None` when there is no value or it is not UTF-8.
    ///
    /// ```
    /// let record = streamz_kafka::Record { value: Some(b"42".to_vec()), ..Default::default() };
    /// assert_eq!(record.value_str(), Some("42"));
    /// ```
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(self.value.as_deref()?).ok()
    }

    /// The key as UTF-8 text; `None` when there is no key or it is not UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(self.key.as_deref()?).ok()
    }

    pub(crate) fn from_message(message: &BorrowedMessage<'_>, topic: &Arc<str>) -> Self {
        let headers = message.headers().map_or_else(Vec::new, |headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        });
        Record {
            topic: topic.clone(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            timestamp: message.timestamp().to_millis(),
            headers,
        }
    }
}
