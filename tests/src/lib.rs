//! Cross-executor and conformance tests for streamz.
//!
//! [`harness`] runs one time-based test on every executor in virtual time; [`interleave`]
//! makes async user functions yield at random points; the tests themselves are in `tests/`.
//!
//! The README's example is compiled and run here, so it stays true:
#![doc = include_str!("../../README.md")]

pub mod harness;
pub mod interleave;

/// The user guide's chapter on asynchronous computation, whose examples run here.
#[doc = include_str!("../../docs/async.md")]
pub mod guide_async {}

/// The user guide's chapter on offloading to a thread pool, whose examples run here.
#[doc = include_str!("../../docs/offload.md")]
pub mod guide_offload {}
