//! MQTT in and out of streamz graphs, at least once.
//!
//! - [`from_mqtt`]: a subscription's messages as a stream; each QoS 1 message is
//!   acknowledged to the broker only once it, and everything made from it, is done, so that
//!   with a persistent session ([`FromMqtt::client_id`]) a crash loses nothing: the broker
//!   sends what was not acknowledged again.
//! - [`to_mqtt`]: a publishing sink whose elements are done when the broker has
//!   acknowledged them, with a bounded number awaited at once.
//!
//! Together, `from_mqtt → … → to_mqtt` is at-least-once end to end at QoS 1. The client is
//! [rumqttc](https://docs.rs/rumqttc), over MQTT 5; its event loop runs on a thread of its
//! own (a one-thread tokio runtime), so the crate works under every streamz executor. A
//! dropped connection is made again with backoff (100 ms, doubling, up to 5 s); a refusal
//! (bad credentials, not authorised) is an error.
//!
//! # Examples
//!
//! ```no_run
//! use streamz_mqtt::{from_mqtt, to_mqtt};
//!
//! # async fn example() -> Result<(), streamz_core::StreamError> {
//! let source = from_mqtt("127.0.0.1", 1883, ["in"]).client_id("upper").build()?;
//! let upper = source
//!     .stream()
//!     .map(|m| m.payload_str().unwrap_or_default().to_uppercase());
//! to_mqtt("127.0.0.1", 1883, "out").attach(&upper)?;
//! source.run().await?; // each message acknowledged once its output is published
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The user guide's chapter, whose Rust examples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/mqtt.md")]
pub struct Guide;

/// The crate's README, whose example compiles as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

mod connection;
mod sink;
mod source;

pub use connection::QoS;
pub use sink::{PublishError, ToMqtt, to_mqtt};
pub use source::{FromMqtt, Message, MqttSource, RunSummary, from_mqtt};
pub use streamz_core::{OnFailure, Payload};

#[cfg(feature = "testing")]
pub mod testing;
