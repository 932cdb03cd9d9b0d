//! A node's counters: elements in and out, errors, and the latency of asynchronous work.
//! Read by [`Graph::snapshot`](crate::Graph::snapshot) (`metrics.rs`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A node's counters, allocated when first needed: when metrics are turned on, or at the
/// node's first error or late element. A node without them carries one word and a state, and
/// its push path checks one load.
#[derive(Debug, Default)]
pub(crate) struct Meter(OnceLock<Box<Counts>>);

/// The counters themselves.
#[derive(Debug, Default)]
pub(crate) struct Counts {
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

/// What a node without counters reads as.
static NONE: Counts = Counts {
    on: AtomicBool::new(false),
    input: AtomicU64::new(0),
    output: AtomicU64::new(0),
    errors: AtomicU64::new(0),
    late: AtomicU64::new(0),
    latency_ns: AtomicU64::new(0),
};

impl Meter {
    pub(crate) fn new(on: bool) -> Self {
        let meter = Meter::default();
        if on {
            meter.turn_on();
        }
        meter
    }

    /// The counters, made now if they are not yet.
    fn counts_made(&self) -> &Counts {
        self.0.get_or_init(Box::default)
    }

    /// The counters as they stand (all zero for a node that has none).
    pub(crate) fn counts(&self) -> &Counts {
        self.0.get().map_or(&NONE, |counts| counts)
    }

    #[inline(always)]
    fn on(&self) -> Option<&Counts> {
        self.0
            .get()
            .filter(|counts| counts.on.load(Ordering::Relaxed))
            .map(|counts| &**counts)
    }

    #[inline(always)]
    pub(crate) fn is_on(&self) -> bool {
        self.on().is_some()
    }

    pub(crate) fn turn_on(&self) {
        self.counts_made().on.store(true, Ordering::Relaxed);
    }

    #[inline(always)]
    pub(crate) fn count_in(&self) {
        if let Some(counts) = self.on() {
            counts.input.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    pub(crate) fn count_out(&self) {
        if let Some(counts) = self.on() {
            counts.output.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A failed element (always counted: failures are rare).
    pub(crate) fn count_error(&self) {
        self.counts_made().errors.fetch_add(1, Ordering::Relaxed);
    }

    /// An element too late for any window.
    pub(crate) fn count_late(&self) {
        self.counts_made().late.fetch_add(1, Ordering::Relaxed);
    }

    /// Folds one duration of asynchronous work into the average (weight 1/8 for the new one).
    pub(crate) fn record_latency(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self.counts_made().latency_ns.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |old| Some(if old == 0 { ns } else { old - old / 8 + ns / 8 }),
        );
    }
}
