//! The operators, one file per family. Each file holds the operator's node logic and the
//! `impl Stream<T>` block with its building methods.

mod accumulate;
mod async_fn;
mod buffer;
mod event_window;
mod interop;
mod join;
mod map;
mod partition;
mod pluck;
mod select;
mod sink;
mod throttle;
mod time;
mod watermark;
mod window;

pub use event_window::{Firing, Plain, Saved, Window, WindowBuilder, Windowed};
pub use interop::Subscription;
pub use join::ZipInput;
pub use map::ApplyTuple;
pub use partition::Keep;
pub use pluck::{Idx, Pluck};
pub use sink::{Sink, VecSink};
pub use watermark::Watermarks;
pub use window::Collector;
