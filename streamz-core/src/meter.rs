//! A node's counters: elements in and out, errors, and the latency of asynchronous work.
//! Read by [`Graph::snapshot`](crate::Graph::snapshot) (`metrics.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A node's counters.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    on: AtomicBool,
    pub(crate) input: AtomicU64,
    pub(crate) output: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Elements that came too late for any window (always counted: what the late stream
    /// got, or the error stream).
    pub(crate) late: AtomicU64,
    /// A moving average of asynchronous work's duration, in nanoseconds (0: none yet).
    pub(crate) latency_ns: AtomicU64,
}

impl Meter {
    pub(crate) fn new(on: bool) -> Self {
        Meter {
            on: AtomicBool::new(on),
            ..Meter::default()
        }
    }

    #[inline(always)]
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub(crate) fn turn_on(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    #[inline(always)]
    pub(crate) fn count_in(&self) {
        if self.is_on() {
            self.input.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    pub(crate) fn count_out(&self) {
        if self.is_on() {
            self.output.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A failed element (always counted: failures are rare).
    pub(crate) fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// An element too late for any window.
    pub(crate) fn count_late(&self) {
        self.late.fetch_add(1, Ordering::Relaxed);
    }

    /// Folds one duration of asynchronous work into the average (weight 1/8 for the new one).
    pub(crate) fn record_latency(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .latency_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 { ns } else { old - old / 8 + ns / 8 })
            });
    }
}
