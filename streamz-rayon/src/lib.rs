//! Spreads CPU-bound stream work over a [rayon](https://docs.rs/rayon) thread pool:
//! `scatter → map → buffer → gather`, the part the original streamz gives to Dask.
//!
//! Not written yet; the graph itself is `streamz-core`.
