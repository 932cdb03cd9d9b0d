//! Runs streamz graphs on [async-std](https://docs.rs/async-std).
//!
//! This crate will provide the `Executor` for async-std that time-based operators and async
//! functions run on; the graph itself is `streamz-core`.
