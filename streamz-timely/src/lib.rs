//! `scatter → map → buffer → gather` across processes and machines, on
//! [timely-dataflow](https://docs.rs/timely): the rayon crate's scatter and gather, for users
//! who outgrow one machine.
//!
//! Every process runs the same program. It starts a [`Cluster`] from its arguments (timely's
//! `-n PROCESSES -p INDEX -w WORKERS -h HOSTFILE`), builds the same pipeline, and process 0
//! feeds it; the functions between [`scatter`](ScatterExt::scatter) and
//! [`gather`](Scattered::gather) run on the workers of every process, and the results come
//! back to process 0 in input order. Changing `streamz_rayon::Pool` for a `Cluster` is the
//! one line that changes:
//!
//! ```
//! use streamz_core::Stream;
//! use streamz_timely::{Cluster, ScatterExt};
//!
//! fn increment(x: u64) -> u64 {
//!     x + 1
//! }
//!
//! // run as `prog -n 2 -p 0` and `prog -n 2 -p 1`; here, one process with two workers
//! let cluster = Cluster::from_args(["prog", "-w", "2"])?;
//! let executor = streamz_tokio::TokioExecutor::background()?;
//! let source = Stream::with_executor(executor.clone());
//! let out = source.scatter(&cluster).map(increment).buffer(5).gather().sink_to_vec();
//! if cluster.is_leader() {
//!     for x in 0..10 {
//!         source.emit_blocking(x)?;
//!     }
//!     executor.block_on(source.flush());
//! }
//! cluster.finish()?;
//! assert_eq!(out.to_vec(), (1..=10).collect::<Vec<_>>());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Elements cross processes with serde, so the scattered type and the gathered type are
//! [`Exchangeable`]: `Serialize + Deserialize`. [`buffer(n)`](Scattered::buffer) bounds what is
//! on the cluster at once, and `emit` waits while it is full, as it does locally. A process
//! that cannot connect, a process lost mid-run, or a function that panics on a remote worker
//! is a [`ClusterError`] naming the process (and the element), not a hang.
//!
//! What timely does not give: the cluster is fixed when it starts (no process can join or
//! leave), and a lost process ends it (no recovery; the elements on it fail).

/// The crate's README, whose example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

/// The user guide's chapter, whose examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/cluster.md")]
pub struct Guide;

mod cluster;
mod config;
mod connections;
mod error;
mod network;
mod scattered;
mod shared;
mod worker;

pub use cluster::Cluster;
pub use config::ClusterConfig;
pub use error::ClusterError;
pub use scattered::{Exchangeable, ScatterExt, Scattered};
