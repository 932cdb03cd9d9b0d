//! Kafka in and out of streamz graphs, at least once.
//!
//! - [`from_kafka`]: a consumer group's records as a stream, each committed only after it,
//!   and everything made from it, is done; [`from_kafka_batched`]: the same in
//!   per-partition batches (the original's).
//! - [`to_kafka`]: a producer sink whose elements are done when the broker has
//!   acknowledged them, with a bounded number in flight.
//!
//! Together, `from_kafka → … → to_kafka` is at-least-once end to end: a crash at any moment
//! loses nothing (the group reads again from its last commit), and the records read again
//! number at most the source's [`max_in_flight`](FromKafka::max_in_flight). Exactly-once is
//! not offered.
//!
//! How it works: the source emits each record with an [`Ack`](streamz_core::Ack); the
//! graph completes it when the record's last derived element is handled (sinks, windows,
//! joins, buffers, the rayon pool and the timely cluster all carry it); an
//! [`OffsetTracker`](streamz_core::OffsetTracker) turns completions, in any order, into
//! the position below which every record is done, which a committer thread commits,
//! coalescing completions, one synchronous commit at a time.
//!
//! The client is [rdkafka](https://docs.rs/rdkafka), with the librdkafka it vendors built
//! from source (its default; needs a C compiler and `make`, no system library): the same
//! librdkafka version everywhere. Its futures run on no particular executor, so the crate
//! works under every streamz executor.
//!
//! # Examples
//!
//! ```no_run
//! use streamz_kafka::{ClientConfig, from_kafka, to_kafka};
//!
//! # async fn example() -> Result<(), streamz_core::StreamError> {
//! let mut consumer = ClientConfig::new();
//! consumer
//!     .set("bootstrap.servers", "127.0.0.1:9092")
//!     .set("group.id", "upper");
//! let mut producer = ClientConfig::new();
//! producer.set("bootstrap.servers", "127.0.0.1:9092");
//!
//! let source = from_kafka(["in"], consumer).build()?;
//! let upper = source
//!     .stream()
//!     .map(|r| r.value_str().unwrap_or_default().to_uppercase());
//! to_kafka("out", producer).attach(&upper)?;
//! source.run().await?; // commits each input record once its output is in `out`
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The user guide's chapter, whose Rust examples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/kafka.md")]
pub struct Guide;

/// The crate's README, whose example compiles as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

mod checkpoint;
mod commit;
mod config;
mod record;
mod runtime;
mod sink;
mod source;

pub use checkpoint::KafkaCheckpoint;
pub use commit::PartitionStats;
pub use rdkafka::ClientConfig;
pub use record::Record;
pub use sink::{Delivered, DeliveryError, Produce, ToKafka, to_kafka};
pub use source::{
    FromKafka, FromKafkaBatched, KafkaSource, RunSummary, SourceStats, StartFrom, from_kafka,
    from_kafka_batched,
};
pub use streamz_core::OnFailure;

#[cfg(feature = "testing")]
pub mod testing;
