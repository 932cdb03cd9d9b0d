//! Websockets in and out of streamz graphs, as servers and as clients.
//!
//! - [`from_websocket`]: a server; each message its clients send is an element (the
//!   original's `from_websocket`). [`from_websocket_url`]: a client; each message its
//!   server sends is one.
//! - [`to_websocket`]: a client; each element is sent to its server (the original's
//!   `to_websocket`). [`to_websocket_server`]: a server; each element is sent to every
//!   connected client, a slow one dropped or waited for as the user chooses.
//!
//! Every queue is bounded: a source reads a socket only while the graph has room (the
//! sender feels backpressure); a server sink's clients each have a queue of their own. The
//! sockets (tokio-tungstenite) run on a thread of their own (a one-thread tokio runtime), so
//! the crate works under every streamz executor. When a source's run stops, every message
//! already read reaches the graph.
//!
//! Websockets keep nothing for a client that is away: these are at-most-once links, unlike
//! the broker connectors' (`streamz-kafka`, `streamz-mqtt`, `streamz-nats`).
//!
//! # Examples
//!
//! ```no_run
//! use streamz_websocket::{from_websocket, to_websocket_server};
//!
//! # async fn example() -> Result<(), streamz_core::StreamError> {
//! // what clients send on :8765, upper-cased to every client of :8766
//! let source = from_websocket("127.0.0.1:8765").build()?;
//! let upper = source
//!     .stream()
//!     .map(|m| m.payload_str().unwrap_or_default().to_uppercase());
//! to_websocket_server("127.0.0.1:8766").attach(&upper)?;
//! source.run().await?;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The user guide's chapter, whose Rust examples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/websocket.md")]
pub struct Guide;

/// The crate's README, whose example compiles as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

mod sink;
mod source;
mod thread;

pub use sink::{
    SendError, SlowClient, ToWebsocket, ToWebsocketServer, WebsocketServer, to_websocket,
    to_websocket_server,
};
pub use source::{
    FromWebsocket, Message, RunSummary, WebsocketSource, from_websocket, from_websocket_url,
};
pub use streamz_core::Payload;
