//! Where watermarks come from: `watermarks`, which reads each element's event time and
//! passes on, beside the elements, how far the stream's time has surely come.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::select;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{SaveState, decode, encode};
use crate::clock::{IntoInterval, after};
use crate::durable::Durable;
use crate::emit::{Cx, Emit};
use crate::event_time::{EventTime, Mark};
use crate::executor::Executor;
use crate::node::{Kind, Operator, Outlet, Port, Shape, fn_name, guard};
use crate::stream::{Element, Stream};
use crate::task::{NodeState, sleep_until};

const WATERMARKS: Kind = Kind::stateful("watermarks", Shape::Box);

/// How [`Stream::watermarks`] derives a stream's watermark from its elements' times.
///
/// The watermark is the newest event time seen, less the out-of-orderness: an element
/// older than that is late. Two rules keep one input from spoiling the rest:
///
/// - [`idle_after`](Watermarks::idle_after): a stream with no element for that long (on the
///   graph's clock) says it is idle, and a node combining several inputs (a
///   [`union`](Stream::union), a join) leaves it out of their least watermark until it sends
///   an element again. Without it, a quiet input holds every window downstream open.
/// - [`max_skew`](Watermarks::max_skew): one element moves the watermark forward by at most
///   this much, so one far ahead of the others (a device with a wrong clock) makes late at
///   most what is within that much of the watermark, not everything after it. A real jump
///   in time is caught up with over a few elements.
///
/// # Examples
///
/// ```
/// use streamz_core::Watermarks;
///
/// let rules = Watermarks::bounded("5s").idle_after("30s").max_skew("1h");
/// # let _ = rules;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    out_of_orderness: Duration,
    idle: Option<Duration>,
    max_skew: Option<Duration>,
}

impl Watermarks {
    /// Elements may arrive up to `out_of_orderness` (in event time) after a newer one and
    /// still be on time.
    ///
    /// # Panics
    ///
    /// If `out_of_orderness` is a string that is not a duration.
    pub fn bounded(out_of_orderness: impl IntoInterval) -> Self {
        Watermarks {
            out_of_orderness: out_of_orderness.into_interval(),
            idle: None,
            max_skew: None,
        }
    }

    /// Elements arrive in order of time: the watermark is the newest time seen.
    pub fn ascending() -> Self {
        Watermarks::bounded(Duration::ZERO)
    }

    /// After `timeout` without an element (on the graph's clock), the stream says it is
    /// idle; the graph needs an executor.
    ///
    /// # Panics
    ///
    /// If `timeout` is zero, or a string that is not a duration.
    pub fn idle_after(self, timeout: impl IntoInterval) -> Self {
        let timeout = timeout.into_interval();
        assert!(
            !timeout.is_zero(),
            "watermarks: idle_after must be longer than zero"
        );
        Watermarks {
            idle: Some(timeout),
            ..self
        }
    }

    /// One element moves the watermark forward by at most `skew` (the first sets it).
    ///
    /// # Panics
    ///
    /// If `skew` is zero, or a string that is not a duration.
    pub fn max_skew(self, skew: impl IntoInterval) -> Self {
        let skew = skew.into_interval();
        assert!(
            !skew.is_zero(),
            "watermarks: max_skew must be longer than zero"
        );
        Watermarks {
            max_skew: Some(skew),
            ..self
        }
    }

    /// The watermark after an element at `t`, from `watermark`; `None` if it does not move.
    pub(crate) fn next(&self, watermark: EventTime, t: EventTime) -> Option<EventTime> {
        let candidate = t.saturating_sub(self.out_of_orderness);
        if candidate <= watermark {
            return None;
        }
        Some(match self.max_skew {
            Some(skew) if watermark > EventTime::MIN => candidate.min(watermark + skew),
            _ => candidate,
        })
    }
}

/// What a `watermarks` node keeps: the watermark, and what the idle rule watches.
#[derive(Debug)]
struct WatermarkState {
    watermark: EventTime,
    idle: bool,
    last_seen: Instant,
    closed: bool,
}

struct WatermarkOp<F> {
    rules: Watermarks,
    time: F,
    state: Arc<NodeState<WatermarkState>>,
    /// The clock of the idle rule, when there is one.
    executor: Option<Arc<dyn Executor>>,
}

impl<T, F> Operator<T> for WatermarkOp<F>
where
    T: Element,
    F: Fn(&T) -> EventTime + Send + Sync + 'static,
{
    type Out = T;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        let Some(t) = guard(&out.info, cx, || (self.time)(&x)) else {
            return;
        };
        let mut state = self.state.lock();
        let moved = self.rules.next(state.watermark, t);
        if let Some(w) = moved {
            state.watermark = w;
        }
        let woke = std::mem::take(&mut state.idle);
        if let Some(executor) = &self.executor {
            state.last_seen = executor.clock().now();
        }
        let watermark = state.watermark;
        drop(state);
        if woke {
            self.state.notify_one();
        }
        // the element first: it is never behind the watermark it moved
        out.push(x, cx);
        if moved.is_some() || woke {
            out.watermark(Mark::At(watermark), cx);
        }
    }

    fn watermark(&self, _mark: Mark, _out: &Arc<Outlet<T>>, _cx: &mut Cx<'_>) {
        // this node makes the stream's watermark: an upstream's is replaced by its own
    }
}

impl<F> Drop for WatermarkOp<F> {
    fn drop(&mut self) {
        self.state.update(|state| state.closed = true);
    }
}

/// The idle rule: once `timeout` has passed since the last element, say so, once.
async fn idle_task(
    state: Arc<NodeState<WatermarkState>>,
    out: std::sync::Weak<Outlet<impl Element>>,
    executor: Arc<dyn Executor>,
    timeout: Duration,
) {
    loop {
        let listener = state.listen();
        let (closed, idle, due) = {
            let s = state.lock();
            (s.closed, s.idle, after(s.last_seen, timeout))
        };
        if closed {
            return;
        }
        if idle {
            listener.await; // until an element wakes the stream
            continue;
        }
        if executor.clock().now() < due {
            // woken (closed, or an element) or due: look again either way
            let sleep = std::pin::pin!(sleep_until(&*executor, due));
            select(sleep, listener).await;
            continue;
        }
        let went_idle = {
            let mut s = state.lock();
            let went =
                !s.idle && !s.closed && executor.clock().now() >= after(s.last_seen, timeout);
            s.idle |= went;
            went
        };
        if went_idle {
            let Some(out) = out.upgrade() else { return };
            if let Err(e) = out.emit_mark(Mark::Idle).await {
                out.info.graph.report(e);
            }
        }
    }
}

/// What a durable `watermarks` node saves: its watermark, so that a restored run calls late
/// what the interrupted one would have.
#[derive(Serialize, Deserialize)]
struct SavedWatermark(EventTime);

impl<F: Send + Sync> SaveState for WatermarkOp<F> {
    fn save(&self) -> Result<Vec<u8>, String> {
        encode(&SavedWatermark(self.state.lock().watermark))
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let SavedWatermark(w) = decode(bytes)?;
        self.state.lock().watermark = w;
        Ok(())
    }

    fn state_type(&self) -> &'static str {
        std::any::type_name::<EventTime>()
    }
}

impl<T: Element> Stream<T> {
    /// Reads each element's event time with `time` and passes on, beside the elements, the
    /// stream's watermark by `rules` (see [`Watermarks`]): what the event-time windows
    /// downstream ([`window`](Stream::window)) close on. The elements go on unchanged, each
    /// before the watermark it moves.
    ///
    /// Watermarks travel through every operator; a node with several inputs passes on the
    /// least of theirs (an input not heard from yet holds it at the start, an idle or ended
    /// one not at all), and a watermark never goes back. At end of stream, windows close
    /// whatever the watermark.
    ///
    /// # Panics
    ///
    /// If `rules` has an idle timeout and the graph has no executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{EventTime, Stream, Watermarks, Window};
    ///
    /// let source = Stream::new();
    /// let (counts, _late) = source
    ///     .watermarks(|x: &i64| EventTime::from_secs(*x), Watermarks::bounded("2s"))
    ///     .window(Window::tumbling("10s"), |x| EventTime::from_secs(*x))
    ///     .fold(0, |n, _| *n += 1);
    /// let counts = counts.map(|w| (w.start.to_string(), w.value)).sink_to_vec();
    /// for t in [1, 4, 3, 11, 9, 13] {
    ///     source.emit_blocking(t).unwrap();
    /// }
    /// // at 13 s the watermark passed 11 s, and the window [0s, 10s) closed with 4 elements
    /// assert_eq!(counts.to_vec(), vec![("0s".to_owned(), 4)]);
    /// ```
    pub fn watermarks<F>(&self, time: F, rules: Watermarks) -> Stream<T>
    where
        F: Fn(&T) -> EventTime + Send + Sync + 'static,
    {
        let make = self.watermarks_op(time, rules);
        self.attach_with(&WATERMARKS, fn_name::<F>(), make)
    }

    fn watermarks_op<F>(
        &self,
        time: F,
        rules: Watermarks,
    ) -> impl FnOnce(&Arc<Outlet<T>>) -> WatermarkOp<F> + use<F, T>
    where
        F: Fn(&T) -> EventTime + Send + Sync + 'static,
    {
        let executor = rules.idle.map(|_| {
            self.graph_shared()
                .require_executor("watermarks with idle_after")
        });
        move |out| {
            let now = executor
                .as_ref()
                .map_or_else(Instant::now, |e| e.clock().now());
            let state = NodeState::new(WatermarkState {
                watermark: EventTime::MIN,
                idle: false,
                last_seen: now,
                closed: false,
            });
            if let (Some(executor), Some(timeout)) = (&executor, rules.idle) {
                executor.spawn(Box::pin(idle_task(
                    state.clone(),
                    Arc::downgrade(out),
                    executor.clone(),
                    timeout,
                )));
            }
            WatermarkOp {
                rules,
                time,
                state,
                executor,
            }
        }
    }

    /// Passes on a watermark from here: every element before `time` has been emitted (for a
    /// source that knows its stream's time, a broker's or a test's). A watermark that does not
    /// move a window's forward is ignored there.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{EventTime, Stream, Window};
    ///
    /// let source = Stream::new();
    /// let (sums, _late) = source
    ///     .window(Window::tumbling("1s"), |x: &(i64, u32)| EventTime::from_millis(x.0))
    ///     .fold(0, |sum, x| *sum += x.1);
    /// let sums = sums.map(|w| w.value).sink_to_vec();
    /// source.emit_blocking((100, 1)).unwrap();
    /// source.emit_blocking((900, 2)).unwrap();
    /// source.emit_watermark(EventTime::from_secs(1)).wait().unwrap();
    /// assert_eq!(sums.to_vec(), vec![3]);
    /// ```
    pub fn emit_watermark(&self, time: EventTime) -> Emit {
        self.out.emit_mark(Mark::At(time))
    }
}

impl<T: Element> Durable<'_, T> {
    /// A durable [`watermarks`](Stream::watermarks): its watermark is saved in checkpoints,
    /// so a restored run calls late exactly what the interrupted one would have.
    ///
    /// # Panics
    ///
    /// As [`watermarks`](Stream::watermarks).
    pub fn watermarks<F>(&self, time: F, rules: Watermarks) -> Stream<T>
    where
        F: Fn(&T) -> EventTime + Send + Sync + 'static,
    {
        let make = self.stream.watermarks_op(time, rules);
        self.stream
            .attach_saved(&WATERMARKS, fn_name::<F>(), false, make)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: i64) -> EventTime {
        EventTime::from_secs(n)
    }

    #[test]
    fn the_watermark_trails_the_newest_time() {
        let rules = Watermarks::bounded("2s");
        assert_eq!(rules.next(EventTime::MIN, t(10)), Some(t(8)));
        assert_eq!(rules.next(t(8), t(9)), None);
        assert_eq!(rules.next(t(8), t(20)), Some(t(18)));
    }

    #[test]
    fn one_element_moves_it_by_the_skew_at_most() {
        let rules = Watermarks::ascending().max_skew("5s");
        assert_eq!(
            rules.next(EventTime::MIN, t(100)),
            Some(t(100)),
            "the first sets it"
        );
        assert_eq!(rules.next(t(100), t(1000)), Some(t(105)));
        assert_eq!(rules.next(t(105), t(107)), Some(t(107)));
    }
}
