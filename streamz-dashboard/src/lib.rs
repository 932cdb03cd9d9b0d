//! A live dashboard for running streamz graphs, in the spirit of the one Dask gives the
//! original streamz's users at `http://localhost:8787/status`.
//!
//! One line serves a graph's dashboard from a program:
//!
//! ```no_run
//! use streamz_core::Stream;
//!
//! let source = Stream::new();
//! let _out = source.map(|x: u64| x * 2).sink_to_vec();
//! let dashboard = streamz_dashboard::serve(&source)?; // http://127.0.0.1:8787/status
//! for x in 0..1_000_000 {
//!     source.emit_blocking(x).unwrap();
//! }
//! dashboard.stop();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The server is read-only and serves:
//!
//! - `GET /status`: a page that draws the graph and updates itself live (server-sent events)
//!   with each node's counts, rates, the elements it holds and its latency, and the thread
//!   pools' threads and calls in flight;
//! - `GET /api/graph`: the same figures as JSON; `GET /api/events`: as a stream of them;
//! - `GET /metrics`: the same figures in Prometheus' text format.
//!
//! Watching a graph turns its metrics on ([`Stream::enable_metrics`](streamz_core::Stream::enable_metrics)), which costs each node
//! about a nanosecond per element.

/// The crate's README, whose example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

/// The user guide's chapter, whose examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/dashboard.md")]
pub struct Guide;

/// Where [`serve`] listens: the address of Dask's dashboard.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8787";

mod dashboard;
mod figures;
mod prometheus;
mod server;

pub use dashboard::{Dashboard, PartitionFigures};
pub use server::{Server, serve};
