//! Reactive stream graphs, built by chaining operators on a [`Stream`] and fed with
//! [`emit`](Stream::emit): the Rust successor of Python's
//! [streamz](https://streamz.readthedocs.io).
//!
//! This crate is the runtime-agnostic core: the operator graph, the [`Executor`] and
//! [`Clock`] traits that time-based and asynchronous operators run on, and a deterministic
//! [`VirtualExecutor`] for tests. The executor crates (`streamz-tokio`, `streamz-asyncstd`,
//! `streamz-smol`, `streamz-rayon`) plug real runtimes in.
//!
//! ```
//! use streamz_core::Stream;
//!
//! let source = Stream::new();
//! let windows = source
//!     .map(|x: i32| x * 10)
//!     .sliding_window(2, false)
//!     .sink_to_vec();
//! for x in 1..=3 {
//!     source.emit_blocking(x)?;
//! }
//! assert_eq!(windows.to_vec(), vec![vec![10, 20], vec![20, 30]]);
//! # Ok::<(), streamz_core::StreamError>(())
//! ```
//!
//! The user guide's chapter on the core is
//! [docs/core.md](https://github.com/streamz-rs/streamz/blob/main/docs/core.md); contributors
//! should read `DESIGN.md` in this crate.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The user guide's chapter on the core, whose examples run as doctests (kept out of the
/// crate's own documentation: the chapter is not in the published crate).
#[cfg(doctest)]
#[doc = include_str!("../../docs/core.md")]
pub struct Guide;

/// The user guide's chapter on event time, whose examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/event-time.md")]
pub struct EventTimeGuide;

/// The crate's README, whose example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

mod ack;
mod checkpoint;
mod clock;
mod durable;
mod edges;
mod emit;
mod error;
mod event_time;
mod executor;
mod manual_clock;
mod meter;
mod metrics;
mod node;
mod offsets;
mod ops;
mod payload;
mod queue;
mod shared;
mod stream;
mod sync;
mod task;
mod topology;
mod virtual_executor;
mod visualize;

pub use ack::{Ack, OnFailure};
pub use checkpoint::{Checkpoint, StateStore, StoreError};
pub use clock::{Clock, IntoInterval, deadline_timer};
pub use durable::{
    CheckpointInfo, Checkpoints, CheckpointsBuilder, Durable, Feed, NodeState, SavedState,
    SourceGate, SourceState, SourceTurn,
};
pub use emit::{BoxFuture, Emit};
pub use error::{BoxError, ErrorKind, NodeRef, StreamError, panic_message};
pub use event_time::EventTime;
pub use executor::Executor;
pub use manual_clock::ManualClock;
pub use metrics::{EdgeSnapshot, Graph, GraphSnapshot, NodeSnapshot};
pub use node::{fn_name, label};
pub use offsets::OffsetTracker;
pub use ops::{
    ApplyTuple, Collector, Firing, Idx, Keep, Plain, Pluck, Saved, Sink, Subscription, VecSink,
    Watermarks, Window, WindowBuilder, Windowed, ZipInput,
};
pub use payload::Payload;
pub use stream::{Element, GraphNode, Stream};
pub use sync::lock;
pub use virtual_executor::VirtualExecutor;
