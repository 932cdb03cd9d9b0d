//! Spreads CPU-bound stream work over a [rayon](https://docs.rs/rayon) thread pool:
//! `scatter → map → buffer → gather`, the part the original streamz gives to Dask.
//!
//! [`scatter`](ScatterExt::scatter) sends a stream's elements to a [`Pool`]; the functions of
//! the [`Scattered`] stream's operators (`map`, `filter`, `starmap`, `accumulate`, `flatten`)
//! run there; [`buffer(n)`](Scattered::buffer) lets up to `n` elements be on the pool at once;
//! and [`gather`](Scattered::gather) brings the results back in input order
//! ([`gather_unordered`](Scattered::gather_unordered): in the order they are ready).
//!
//! ```
//! use streamz_core::Stream;
//! use streamz_rayon::{Pool, ScatterExt};
//!
//! fn slow_square(x: u64) -> u64 {
//!     std::thread::sleep(std::time::Duration::from_millis(5));
//!     x * x
//! }
//!
//! let pool = Pool::new(4).unwrap();
//! let source = Stream::with_executor(pool.clone());
//! let out = source.scatter(&pool).map(slow_square).buffer(4).gather().sink_to_vec();
//! for x in 0..8 {
//!     source.emit_blocking(x).unwrap();
//! }
//! futures_executor::block_on(source.flush());
//! assert_eq!(out.to_vec(), vec![0, 1, 4, 9, 16, 25, 36, 49]);
//! ```
//!
//! A panic or an `Err` in a pooled function fails that element at its own stage, with the kind
//! it would have in the local graph (`ErrorKind::Panic` or `Failed`), and comes out at
//! `gather`; the elements after it go on (in the original, one failure behind a buffer stops
//! the pipeline).

/// The crate's README, whose example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

mod lane;
mod pool;
mod remote;
mod scattered;

pub use pool::{Pool, PoolSnapshot};
pub use scattered::{DurableScattered, ScatterExt, Scatterable, Scattered};
