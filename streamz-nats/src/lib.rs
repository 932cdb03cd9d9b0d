//! NATS in and out of streamz graphs: core subjects at most once, JetStream at least once.
//!
//! - [`from_nats`]: a subject's messages as a stream. Core NATS as it is; with
//!   [`jetstream`](FromNats::jetstream), a JetStream consumer whose messages are each
//!   acknowledged only once it, and everything made from it, is done, so that with a
//!   [`durable`](FromNats::durable) consumer a crash loses nothing: the server sends what
//!   was not acknowledged again.
//! - [`to_nats`]: a publishing sink; with [`jetstream`](ToNats::jetstream), its elements
//!   are done when the stream has stored them, with a bounded number awaited at once.
//!
//! Together, `from_nats → … → to_nats` through JetStream is at-least-once end to end. The
//! client is [async-nats](https://docs.rs/async-nats); it runs on a thread of its own (a
//! one-thread tokio runtime), so the crate works under every streamz executor. A lost
//! server is reconnected to for ever, with backoff; a refused login is an error.
//!
//! # Examples
//!
//! ```no_run
//! use streamz_nats::{from_nats, to_nats};
//!
//! # async fn example() -> Result<(), streamz_core::StreamError> {
//! let source = from_nats("nats://127.0.0.1:4222", ["in"])
//!     .jetstream("IN")
//!     .durable("upper")
//!     .build()?;
//! let upper = source
//!     .stream()
//!     .map(|m| m.payload_str().unwrap_or_default().to_uppercase());
//! to_nats("nats://127.0.0.1:4222", "out").jetstream("OUT").attach(&upper)?;
//! source.run().await?; // each message acknowledged once its output is stored
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The user guide's chapter, whose Rust examples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/nats.md")]
pub struct Guide;

/// The crate's README, whose example compiles as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

mod checkpoint;
mod connection;
mod sink;
mod source;

pub use checkpoint::{MAX_ACK_PENDING, NatsCheckpoint};
pub use sink::{PublishError, ToNats, to_nats};
pub use source::{FromNats, Message, NatsSource, RunSummary, from_nats};
pub use streamz_core::{OnFailure, Payload};

#[cfg(feature = "testing")]
pub mod testing;
