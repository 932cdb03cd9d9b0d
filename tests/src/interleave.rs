//! Injecting `Pending` into asynchronous user functions at random points.
//!
//! [`Interleaved`] wraps a future and, before some of its polls, returns `Pending` instead,
//! waking itself at once. Virtual time does not move, but the executor gets to run other
//! tasks first: a pipeline whose output changes under it depends on a lucky schedule.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that yields at random points, chosen by a seeded generator.
#[derive(Debug)]
pub struct Interleaved<F> {
    inner: Pin<Box<F>>,
    rng: fastrand::Rng,
    /// How likely each poll is to yield instead, in percent.
    percent: u8,
}

impl<F: Future> Interleaved<F> {
    /// Wraps `inner`; each poll yields first with probability `percent`%.
    pub fn new(inner: F, seed: u64, percent: u8) -> Self {
        Interleaved {
            inner: Box::pin(inner),
            rng: fastrand::Rng::with_seed(seed),
            percent,
        }
    }
}

impl<F: Future> Future for Interleaved<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let percent = self.percent;
        if self.rng.u8(0..100) < percent {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.inner.as_mut().poll(cx)
    }
}
