//! Processing-time operators that pass on fewer elements than they get: `debounce`,
//! `throttle` and `sample`. Each keeps at most one element (the newest), has one task on the
//! graph's executor and at most one timer, and sets it only while it holds something or a
//! period is running; an element replaced or left out is done at once (its acknowledgement
//! goes), and what is held at end of stream is passed on before the stream closes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{Either, select};

use crate::clock::{IntoInterval, after};
use crate::emit::Cx;
use crate::executor::Executor;
use crate::node::{Finish, Kind, Operator, Outlet, Port, Shape};
use crate::stream::{Element, Stream};
use crate::task::{InFlight, NodeState, hand_on, sleep_until};

const DEBOUNCE: Kind = Kind::new("debounce", Shape::Octagon);
const THROTTLE: Kind = Kind::new("throttle", Shape::Octagon);
const SAMPLE: Kind = Kind::new("sample", Shape::Octagon);

/// What the three keep: the newest element (held while it waits), when the task must act
/// next, and whether the stream ended.
struct Pace<T> {
    held: Option<(T, InFlight)>,
    due: Option<Instant>,
    closed: bool,
}

impl<T> Pace<T> {
    fn new() -> Arc<NodeState<Self>> {
        NodeState::new(Pace {
            held: None,
            due: None,
            closed: false,
        })
    }

    /// Keeps `x`; returns what it replaces, to be let go once the lock is (its release may
    /// pass a watermark on).
    #[must_use]
    fn keep<U: 'static>(
        &mut self,
        x: T,
        out: &Arc<Outlet<U>>,
        cx: &Cx<'_>,
    ) -> Option<(T, InFlight)> {
        let held = InFlight::hold_acked(out.node(), 1, cx.acks().clone());
        self.held.replace((x, held))
    }
}

/// One operator, three rules for when the held element goes.
struct PaceOp<T> {
    rule: Rule,
    interval: Duration,
    executor: Arc<dyn Executor>,
    state: Arc<NodeState<Pace<T>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Debounce,
    Throttle { leading: bool, trailing: bool },
    Sample { start: Instant },
}

impl<T: Element> Operator<T> for PaceOp<T> {
    type Out = T;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        let now = self.executor.clock().now();
        let mut state = self.state.lock();
        let was_due = state.due;
        let mut trailing = None;
        let mut leading = None;
        let mut replaced = None;
        match self.rule {
            Rule::Debounce => {
                replaced = state.keep(x, out, cx);
                state.due = Some(after(now, self.interval));
            }
            Rule::Throttle {
                leading: lead,
                trailing: trail,
            } => {
                // a period that has ended: its trailing element goes first (the task may not
                // have run yet), and starts the next period
                if let Some(end) = state.due.filter(|end| *end <= now) {
                    trailing = state.held.take();
                    let next = after(end, self.interval);
                    state.due = (trailing.is_some() && next > now).then_some(next);
                }
                match state.due {
                    None if lead => {
                        state.due = Some(after(now, self.interval));
                        leading = Some(x);
                    }
                    None => {
                        replaced = state.keep(x, out, cx);
                        state.due = Some(after(now, self.interval));
                    }
                    Some(_) if trail => replaced = state.keep(x, out, cx),
                    Some(_) => drop(x), // inside the period, and no trailing element
                }
            }
            Rule::Sample { start } => {
                replaced = state.keep(x, out, cx);
                if state.due.is_none() {
                    state.due = Some(next_tick(start, self.interval, now));
                }
            }
        }
        let wake = was_due.is_none() && state.due.is_some();
        drop(state);
        drop(replaced);
        if wake {
            self.state.notify_one();
        }
        if let Some((x, held)) = trailing {
            cx.with_acks(&held.acks, |cx| out.push(x, cx));
        }
        if let Some(x) = leading {
            out.push(x, cx);
        }
    }

    fn finish(&self, _out: &Arc<Outlet<T>>, _cx: &mut Cx<'_>) -> Finish {
        self.state.update(|state| state.closed = true);
        Finish::Later
    }
}

impl<T> Drop for PaceOp<T> {
    fn drop(&mut self) {
        self.state.update(|state| state.closed = true);
    }
}

/// The first tick `start + k·interval` after `now`.
fn next_tick(start: Instant, interval: Duration, now: Instant) -> Instant {
    let elapsed = now.saturating_duration_since(start).as_nanos();
    let k = elapsed / interval.as_nanos() + 1;
    let k = u32::try_from(k).unwrap_or(u32::MAX);
    after(start, interval.saturating_mul(k))
}

/// The task: sleeps until what is due, hands on the held element then, and at end of stream
/// hands on what is held and closes.
async fn pace_task<T: Element>(
    state: Arc<NodeState<Pace<T>>>,
    out: Arc<Outlet<T>>,
    executor: Arc<dyn Executor>,
    rule: Rule,
    interval: Duration,
) {
    loop {
        let listener = state.listen();
        let (due, closed) = {
            let s = state.lock();
            (s.due, s.closed)
        };
        if closed {
            let held = state.lock().held.take();
            if let Some((x, held)) = held {
                hand_on(&out, x, held).await;
            }
            break;
        }
        let Some(due) = due else {
            listener.await;
            continue;
        };
        if executor.clock().now() < due {
            let sleep = std::pin::pin!(sleep_until(&*executor, due));
            if let Either::Right(_) = select(sleep, listener).await {
                continue; // woken: the stream ended, or the node was dropped
            }
        }
        let now = executor.clock().now();
        let taken = {
            let mut s = state.lock();
            match s.due {
                // moved later meanwhile (a debounce's newer element): sleep on
                Some(due) if due > now => continue,
                Some(due) => {
                    let held = s.held.take();
                    s.due = match rule {
                        Rule::Throttle { .. } if held.is_some() => Some(after(due, interval)),
                        _ => None,
                    };
                    held
                }
                None => None,
            }
        };
        if let Some((x, held)) = taken {
            hand_on(&out, x, held).await;
        }
    }
    out.close_from_task().await;
}

impl<T: Element> Stream<T> {
    fn pace(
        &self,
        kind: &'static Kind,
        interval: Duration,
        rule: impl FnOnce(Instant) -> Rule,
    ) -> Stream<T> {
        assert!(
            !interval.is_zero(),
            "{}: the interval must be longer than zero",
            kind.op
        );
        let executor = self.graph_shared().require_executor(kind.op);
        self.attach_with(kind, None, |out| {
            let rule = rule(executor.clock().now());
            let state = Pace::new();
            executor.spawn(Box::pin(pace_task(
                state.clone(),
                out.clone(),
                executor.clone(),
                rule,
                interval,
            )));
            PaceOp {
                rule,
                interval,
                executor,
                state,
            }
        })
    }

    /// Passes an element on once `interval` has gone by without another: of a burst, only
    /// the last goes, `interval` after it came. What is held at end of stream goes at once.
    ///
    /// # Panics
    ///
    /// If `interval` is zero or a string that is not a duration, or the graph has no
    /// executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Executor, Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let clock = executor.clone();
    /// let out = source.debounce("100ms").map(move |x: char| (x, clock.elapsed())).sink_to_vec();
    /// executor.block_on(async {
    ///     for (x, gap) in [('a', 30), ('b', 30), ('c', 200), ('d', 0)] {
    ///         source.emit(x).await.unwrap();
    ///         executor.clock().sleep(Duration::from_millis(gap)).await;
    ///     }
    ///     source.close().await.unwrap();
    /// });
    /// let ms = |n| Duration::from_millis(n);
    /// // 'c' came at 60 ms and nothing followed for 100 ms; 'd' went at end of stream
    /// assert_eq!(out.to_vec(), vec![('c', ms(160)), ('d', ms(260))]);
    /// ```
    pub fn debounce(&self, interval: impl IntoInterval) -> Stream<T> {
        self.pace(&DEBOUNCE, interval.into_interval(), |_| Rule::Debounce)
    }

    /// Passes on at most one element per `interval`. With `leading`, the first element of a
    /// quiet stream goes at once and starts a period of `interval`; with `trailing`, the last
    /// element that came during a period goes when it ends, and starts the next one. Others
    /// are left out (done at once).
    ///
    /// # Panics
    ///
    /// If neither `leading` nor `trailing` is set, `interval` is zero or not a duration, or
    /// the graph has no executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Executor, Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let clock = executor.clone();
    /// let out = source
    ///     .throttle("100ms", true, true)
    ///     .map(move |x: u32| (x, clock.elapsed().as_millis()))
    ///     .sink_to_vec();
    /// executor.block_on(async {
    ///     for x in 0..6 {
    ///         source.emit(x).await.unwrap(); // one every 40 ms
    ///         executor.clock().sleep(Duration::from_millis(40)).await;
    ///     }
    ///     executor.clock().sleep(Duration::from_millis(200)).await;
    /// });
    /// // 0 at once; 2 (the last of the period to 100 ms) at 100; 4 at 200, and the period to
    /// // 300 ms ends with 5
    /// assert_eq!(out.to_vec(), vec![(0, 0), (2, 100), (4, 200), (5, 300)]);
    /// ```
    pub fn throttle(
        &self,
        interval: impl IntoInterval,
        leading: bool,
        trailing: bool,
    ) -> Stream<T> {
        assert!(
            leading || trailing,
            "throttle: pass the leading element, the trailing one, or both"
        );
        self.pace(&THROTTLE, interval.into_interval(), |_| Rule::Throttle {
            leading,
            trailing,
        })
    }

    /// Every `interval` (on a fixed schedule from when the node was built), passes on the
    /// newest element that came since the last time, if one did. What is held at end of
    /// stream goes at once.
    ///
    /// # Panics
    ///
    /// If `interval` is zero or a string that is not a duration, or the graph has no
    /// executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamz_core::{Executor, Stream, VirtualExecutor};
    ///
    /// let executor = VirtualExecutor::new();
    /// let source = Stream::with_executor(executor.clone());
    /// let clock = executor.clone();
    /// let out = source
    ///     .sample("100ms")
    ///     .map(move |x: u32| (x, clock.elapsed().as_millis()))
    ///     .sink_to_vec();
    /// executor.block_on(async {
    ///     for x in 0..5 {
    ///         source.emit(x).await.unwrap(); // at 0, 30, 60, 90, 120 ms
    ///         executor.clock().sleep(Duration::from_millis(30)).await;
    ///     }
    ///     executor.clock().sleep(Duration::from_millis(300)).await;
    /// });
    /// assert_eq!(out.to_vec(), vec![(3, 100), (4, 200)]);
    /// ```
    pub fn sample(&self, interval: impl IntoInterval) -> Stream<T> {
        self.pace(&SAMPLE, interval.into_interval(), |start| Rule::Sample {
            start,
        })
    }
}
