//! Runs streamz graphs on [smol](https://docs.rs/smol).
//!
//! This crate will provide the `Executor` for smol that time-based operators and async
//! functions run on; the graph itself is `streamz-core`.
