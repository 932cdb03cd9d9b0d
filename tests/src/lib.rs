//! Cross-executor and conformance tests for streamz.
//!
//! The README's example is compiled and run here, so it stays true:
#![doc = include_str!("../../README.md")]
