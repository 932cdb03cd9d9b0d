//! The operators, one file per family. Each file holds the operator's node logic and the
//! `impl Stream<T>` block with its building methods.

mod accumulate;
mod join;
mod map;
mod partition;
mod pluck;
mod select;
mod sink;
mod window;

pub use join::ZipInput;
pub use map::ApplyTuple;
pub use partition::Keep;
pub use pluck::{Idx, Pluck};
pub use sink::{Sink, VecSink};
pub use window::Collector;
