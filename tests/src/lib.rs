//! Cross-executor and conformance tests for streamz.
//!
//! [`harness`] runs one time-based test on every executor in virtual time; the tests
//! themselves are in `tests/`.
//!
//! The README's example is compiled and run here, so it stays true:
#![doc = include_str!("../../README.md")]

pub mod harness;
