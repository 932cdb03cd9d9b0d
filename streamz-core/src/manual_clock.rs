//! [`ManualClock`]: a clock that moves only when told to.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::emit::BoxFuture;
use crate::node::lock;

/// A clock whose time moves only when [`advance`](ManualClock::advance) says so, firing its
/// timers in deadline order (ties in the order they were set).
///
/// The [`VirtualExecutor`](crate::VirtualExecutor) runs on one. The executor crates accept
/// one too (`with_clock`), so that a time-based pipeline gives the same results at the same
/// virtual times on every runtime. Cloning gives another handle on the same clock.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use streamz_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let mut nap = clock.sleep_until(clock.now() + Duration::from_secs(1));
/// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// assert!(nap.as_mut().poll(&mut cx).is_pending());
/// assert_eq!(clock.next_deadline(), Some(Duration::from_secs(1)));
/// clock.advance(Duration::from_secs(1));
/// assert!(nap.as_mut().poll(&mut cx).is_ready());
/// assert_eq!(clock.elapsed(), Duration::from_secs(1));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    shared: Arc<Shared>,
}

struct Shared {
    start: Instant,
    timers: Mutex<Timers>,
}

struct Timers {
    now: Duration,
    next_seq: u64,
    due: BTreeMap<(Duration, u64), Waker>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &self.elapsed())
            .field("timers", &self.pending_timers())
            .finish()
    }
}

impl ManualClock {
    /// A new clock at zero.
    pub fn new() -> Self {
        ManualClock {
            shared: Arc::new(Shared {
                start: Instant::now(),
                timers: Mutex::new(Timers {
                    now: Duration::ZERO,
                    next_seq: 0,
                    due: BTreeMap::new(),
                }),
            }),
        }
    }

    /// Time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        lock(&self.shared.timers).now
    }

    /// How many timers are set and have not fired.
    pub fn pending_timers(&self) -> usize {
        lock(&self.shared.timers).due.len()
    }

    /// When the earliest timer is due, as time since the clock was made.
    pub fn next_deadline(&self) -> Option<Duration> {
        lock(&self.shared.timers).due.keys().next().map(|(d, _)| *d)
    }

    /// Moves the clock forward by `duration`, firing every timer due by then.
    pub fn advance(&self, duration: Duration) {
        let target = self.elapsed() + duration;
        while self.fire_next(target) {}
        let mut timers = lock(&self.shared.timers);
        timers.now = timers.now.max(target);
    }

    /// Fires the earliest timer due at or before `limit` (time since the clock was made),
    /// moving the clock to its deadline; false if there is none.
    pub fn fire_next(&self, limit: Duration) -> bool {
        let mut timers = lock(&self.shared.timers);
        let Some((&(deadline, seq), _)) = timers.due.iter().next() else {
            return false;
        };
        if deadline > limit {
            return false;
        }
        let waker = timers.due.remove(&(deadline, seq));
        timers.now = timers.now.max(deadline);
        drop(timers);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.shared.start + self.elapsed()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(Sleep {
            shared: self.shared.clone(),
            deadline: deadline.saturating_duration_since(self.shared.start),
            key: None,
        })
    }
}

/// A timer on a manual clock.
struct Sleep {
    shared: Arc<Shared>,
    deadline: Duration,
    key: Option<(Duration, u64)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let shared = self.shared.clone();
        let mut timers = lock(&shared.timers);
        if timers.now >= self.deadline {
            if let Some(key) = self.key.take() {
                timers.due.remove(&key);
            }
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let key = (self.deadline, timers.next_seq);
                timers.next_seq += 1;
                self.key = Some(key);
                key
            }
        };
        timers.due.insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.shared.timers).due.remove(&key);
        }
    }
}
