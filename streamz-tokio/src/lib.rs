//! Runs streamz graphs on [tokio](https://tokio.rs).
//!
//! This crate will provide the `Executor` for tokio that time-based operators and async
//! functions run on; the graph itself is `streamz-core`.
