//! What travels between `scatter` and `gather`: a handle on a value being computed on the
//! pool ([`Remote`]), and the window of permits that bounds how many are in flight.

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use event_listener::Event;
use streamz_core::{StreamError, lock};

/// The items one scattered element has become: one after `map`, none or one after `filter`,
/// any number after `flatten`.
#[derive(Clone, Debug)]
pub(crate) enum Items<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Items<T> {
    pub(crate) fn map<U>(self, mut f: impl FnMut(T) -> U) -> Items<U> {
        match self {
            Items::One(x) => Items::One(f(x)),
            Items::Many(xs) => Items::Many(xs.into_iter().map(f).collect()),
        }
    }
}

impl<T> IntoIterator for Items<T> {
    type Item = T;
    type IntoIter = std::iter::Chain<std::option::IntoIter<T>, std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            Items::One(x) => Some(x).into_iter().chain(Vec::new()),
            Items::Many(xs) => None.into_iter().chain(xs),
        }
    }
}

/// What one scattered element's work came to: its items, or the failure of the stage it
/// failed at (a `StreamError` naming that stage's node, which `gather` passes on unchanged).
pub(crate) type Outcome<T> = Result<Items<T>, StreamError>;

type Callback<V> = Box<dyn FnOnce(Arc<V>) + Send>;

enum PromiseState<V> {
    /// Not set yet: what to call, and which tasks to wake, once it is.
    Waiting {
        callbacks: Vec<Callback<V>>,
        wakers: Vec<Waker>,
    },
    Done(Arc<V>),
}

/// A value to be set once, with callbacks for when it is.
pub(crate) struct Promise<V> {
    state: Mutex<PromiseState<V>>,
}

impl<V: Send + Sync + 'static> Promise<V> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Promise {
            state: Mutex::new(PromiseState::Waiting {
                callbacks: Vec::new(),
                wakers: Vec::new(),
            }),
        })
    }

    pub(crate) fn done(value: V) -> Arc<Self> {
        Arc::new(Promise {
            state: Mutex::new(PromiseState::Done(Arc::new(value))),
        })
    }

    /// Sets the value and runs the callbacks. Only the first call counts.
    pub(crate) fn set(&self, value: V) {
        let value = Arc::new(value);
        let (callbacks, wakers) = {
            let mut state = lock(&self.state);
            let PromiseState::Waiting { callbacks, wakers } = &mut *state else {
                return;
            };
            let waiting = (std::mem::take(callbacks), std::mem::take(wakers));
            *state = PromiseState::Done(value.clone());
            waiting
        };
        for callback in callbacks {
            callback(value.clone());
        }
        for waker in wakers {
            waker.wake();
        }
    }

    /// Runs `callback` with the value once it is set: now, if it is.
    pub(crate) fn when_set(&self, callback: impl FnOnce(Arc<V>) + Send + 'static) {
        let mut state = lock(&self.state);
        match &mut *state {
            PromiseState::Waiting { callbacks, .. } => callbacks.push(Box::new(callback)),
            PromiseState::Done(value) => {
                let value = value.clone();
                drop(state);
                callback(value);
            }
        }
    }

    /// Waits for the value, blocking the thread.
    pub(crate) fn wait(&self) -> Arc<V> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.when_set(move |value| {
            let _ = tx.send(value);
        });
        rx.recv().expect("`when_set` always calls back")
    }

    /// Waits for the value. Each task waiting is woken once when it is set; a task polling
    /// again before then is not added twice.
    pub(crate) async fn get(&self) -> Arc<V> {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            match &mut *state {
                PromiseState::Done(value) => Poll::Ready(value.clone()),
                PromiseState::Waiting { wakers, .. } => {
                    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                        wakers.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// The permits of one scattered segment: how many elements may be between `scatter` and
/// `gather` at once.
pub(crate) struct Window {
    state: Mutex<WindowState>,
    freed: Event,
}

struct WindowState {
    capacity: usize,
    used: usize,
}

impl Window {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Window {
            state: Mutex::new(WindowState { capacity, used: 0 }),
            freed: Event::new(),
        })
    }

    pub(crate) fn set_capacity(&self, capacity: usize) {
        lock(&self.state).capacity = capacity;
        self.freed.notify(usize::MAX);
    }

    pub(crate) fn capacity(&self) -> usize {
        lock(&self.state).capacity
    }

    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut state = lock(&self.state);
        (state.used < state.capacity).then(|| {
            state.used += 1;
            Permit(self.clone())
        })
    }

    pub(crate) async fn acquire(self: Arc<Self>) -> Permit {
        loop {
            let listener = self.freed.listen();
            if let Some(permit) = self.try_acquire() {
                return permit;
            }
            listener.await;
        }
    }
}

/// One element's place in the window, given back when dropped.
pub(crate) struct Permit(Arc<Window>);

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.0.state).used -= 1;
        self.0.freed.notify(1);
    }
}

/// One scattered element: the outcome of its work on the pool, and its permit.
pub(crate) struct Remote<T> {
    pub(crate) outcome: Arc<Promise<Outcome<T>>>,
    permit: Arc<Permit>,
}

impl<T> Clone for Remote<T> {
    fn clone(&self) -> Self {
        Remote {
            outcome: self.outcome.clone(),
            permit: self.permit.clone(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Remote<T> {
    pub(crate) fn ready(x: T, permit: Permit) -> Self {
        Remote {
            outcome: Promise::done(Ok(Items::One(x))),
            permit: Arc::new(permit),
        }
    }

    /// A remote for the next step of this element's work, holding the same permit.
    pub(crate) fn next<U: Clone + Send + Sync + 'static>(&self) -> Remote<U> {
        Remote {
            outcome: Promise::new(),
            permit: self.permit.clone(),
        }
    }

    /// Waits for the outcome.
    pub(crate) async fn items(self) -> Result<Items<T>, StreamError> {
        let outcome = self.outcome.get().await;
        drop(self.permit);
        (*outcome).clone()
    }
}
