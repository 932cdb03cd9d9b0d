//! A bounded queue whose memory follows what it holds, not its bound.
//!
//! `async_channel::bounded(n)` allocates `n` slots up front, so `buffer(100_000_000)` took
//! 3.9 GB for three elements. Here the elements sit in an unbounded `async_channel` (which
//! grows and shrinks in blocks of a few dozen slots) and the bound is a semaphore of `n`
//! permits: a sender takes one, the receiver gives it back as it takes the element out.
//! The API is the part of `async_channel`'s the nodes with a task use.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::TrySendError;
use async_lock::Semaphore;
use event_listener::Event;
use futures_util::future::{Either, select};

struct Shared {
    room: Semaphore,
    /// Notified when the queue closes, so senders waiting for room give up.
    closed: Event,
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
    let (tx, rx) = async_channel::unbounded();
    let shared = Arc::new(Shared {
        room: Semaphore::new(cap.min(usize::MAX >> 2)),
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
        if self.items.is_closed() {
            return Err(TrySendError::Closed(x));
        }
        match self.shared.room.try_acquire() {
            Some(permit) => {
                permit.forget();
                self.push(x)
            }
            None => Err(TrySendError::Full(x)),
        }
    }

    /// Queues `x`, waiting for room; gives `x` back if the queue closes first.
    pub(crate) async fn send(&self, x: T) -> Result<(), T> {
        loop {
            if self.items.is_closed() {
                return Err(x);
            }
            let closed = self.shared.closed.listen();
            if self.items.is_closed() {
                return Err(x);
            }
            let room = std::pin::pin!(self.shared.room.acquire());
            match select(room, closed).await {
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
            self.shared.room.add_permits(1);
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
        self.shared.room.add_permits(1);
        Ok(x)
    }
}

impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let next = this.items.as_mut().poll_next(cx);
        if let Poll::Ready(Some(_)) = next {
            this.shared.room.add_permits(1);
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
    fn a_huge_bound_costs_nothing_up_front() {
        let (tx, rx) = bounded(usize::MAX >> 4);
        for x in 0..3 {
            tx.try_send(x).unwrap();
        }
        assert_eq!(futures_executor::block_on(rx.recv()), Ok(0));
    }
}
