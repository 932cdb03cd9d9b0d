//! A bounded queue whose memory follows what it holds, not its bound.
//!
//! `async_channel::bounded(n)` allocates `n` slots up front, so `buffer(100_000_000)` took
//! 3.9 GB for three elements. Up to [`RING`] elements, the queue is such a channel (its
//! slots cost at most `RING` of them, and it is the fastest); past that, the elements sit in
//! an unbounded `async_channel` (which grows and shrinks in blocks of a few dozen slots) and
//! the bound is a semaphore of `n` permits: a sender takes one, the receiver gives it back as
//! it takes the element out. The API is the part of `async_channel`'s the nodes with a task
//! use.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::TrySendError;
use async_lock::Semaphore;
use event_listener::Event;
use futures_util::future::{Either, select};

/// The largest bound kept in a preallocated ring.
pub(crate) const RING: usize = 1024;

struct Shared {
    /// The bound, for a queue past [`RING`]; `None` when the channel is bounded itself.
    room: Option<Semaphore>,
    /// Notified when the queue closes, so senders waiting for room give up.
    closed: Event,
}

impl Shared {
    /// One element left the queue: its room is free again.
    fn give_back(&self) {
        if let Some(room) = &self.room {
            room.add_permits(1);
        }
    }
}

pub(crate) struct Sender<T> {
    items: async_channel::Sender<T>,
    shared: Arc<Shared>,
}

pub(crate) struct Receiver<T> {
    items: Pin<Box<async_channel::Receiver<T>>>,
    shared: Arc<Shared>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            items: self.items.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// A queue that holds at most `cap` elements (past 2^62, which no memory holds, the bound
/// is 2^62).
pub(crate) fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let ((tx, rx), room) = if cap <= RING {
        (async_channel::bounded(cap.max(1)), None)
    } else {
        (
            async_channel::unbounded(),
            Some(Semaphore::new(cap.min(usize::MAX >> 2))),
        )
    };
    let shared = Arc::new(Shared {
        room,
        closed: Event::new(),
    });
    (
        Sender {
            items: tx,
            shared: shared.clone(),
        },
        Receiver {
            items: Box::pin(rx),
            shared,
        },
    )
}

impl<T> Sender<T> {
    /// Queues `x` if there is room.
    pub(crate) fn try_send(&self, x: T) -> Result<(), TrySendError<T>> {
        let Some(room) = &self.shared.room else {
            return self.items.try_send(x);
        };
        if self.items.is_closed() {
            return Err(TrySendError::Closed(x));
        }
        match room.try_acquire() {
            Some(permit) => {
                permit.forget();
                self.push(x)
            }
            None => Err(TrySendError::Full(x)),
        }
    }

    /// Queues `x`, waiting for room; gives `x` back if the queue closes first.
    pub(crate) async fn send(&self, x: T) -> Result<(), T> {
        let Some(room) = &self.shared.room else {
            return self.items.send(x).await.map_err(|e| e.into_inner());
        };
        loop {
            if self.items.is_closed() {
                return Err(x);
            }
            let closed = self.shared.closed.listen();
            if self.items.is_closed() {
                return Err(x);
            }
            let permit = std::pin::pin!(room.acquire());
            match select(permit, closed).await {
                Either::Left((permit, _)) => {
                    permit.forget();
                    return self.push(x).map_err(TrySendError::into_inner);
                }
                Either::Right(_) => continue,
            }
        }
    }

    fn push(&self, x: T) -> Result<(), TrySendError<T>> {
        let pushed = self.items.try_send(x);
        if pushed.is_err() {
            // closed between the check and the push: the permit goes back
            self.shared.give_back();
        }
        pushed
    }

    /// Closes the queue: what it holds can still be received; nothing more is taken.
    pub(crate) fn close(&self) {
        self.items.close();
        self.shared.closed.notify(usize::MAX);
    }
}

impl<T> Receiver<T> {
    /// How many elements it holds.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The next element, or `Err` once the queue is closed and empty.
    pub(crate) async fn recv(&self) -> Result<T, async_channel::RecvError> {
        let x = self.items.recv().await?;
        self.shared.give_back();
        Ok(x)
    }
}

impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let next = this.items.as_mut().poll_next(cx);
        if let Poll::Ready(Some(_)) = next {
            this.shared.give_back();
        }
        next
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.items.close();
        self.shared.closed.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_bound_and_hands_room_back() {
        let (tx, rx) = bounded(2);
        assert!(tx.try_send(1).is_ok());
        assert!(tx.try_send(2).is_ok());
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(futures_executor::block_on(rx.recv()), Ok(1));
        assert!(tx.try_send(3).is_ok());
        tx.close();
        assert!(matches!(tx.try_send(4), Err(TrySendError::Closed(4))));
        assert_eq!(futures_executor::block_on(rx.recv()), Ok(2));
        assert_eq!(futures_executor::block_on(rx.recv()), Ok(3));
        assert!(futures_executor::block_on(rx.recv()).is_err());
    }

    #[test]
    fn a_waiting_send_gives_up_when_the_queue_closes() {
        let (tx, rx) = bounded(1);
        tx.try_send(1).unwrap();
        let waiting = tx.clone();
        let handle = std::thread::spawn(move || futures_executor::block_on(waiting.send(2)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(rx);
        assert_eq!(handle.join().unwrap(), Err(2));
    }

    #[test]
    fn past_the_ring_the_bound_is_kept_by_permits() {
        let (tx, rx) = bounded(RING + 1);
        for x in 0..=RING {
            tx.try_send(x).unwrap();
        }
        assert!(matches!(tx.try_send(0), Err(TrySendError::Full(0))));
        assert_eq!(futures_executor::block_on(rx.recv()), Ok(0));
        assert!(tx.try_send(0).is_ok());
    }

    #[test]
    fn a_huge_bound_costs_nothing_up_front() {
        let (tx, rx) = bounded(usize::MAX >> 4);
        for x in 0..3 {
            tx.try_send(x).unwrap();
        }
        assert_eq!(futures_executor::block_on(rx.recv()), Ok(0));
    }
}
