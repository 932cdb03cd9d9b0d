//! A node's list of downstream connections, read on every element without a lock.
//!
//! Readers load the current list under an epoch guard that the push context ([`Cx`]) pins
//! once per push, so reading costs one atomic load per node. Writers (`connect`, `disconnect`,
//! rare) serialize on a mutex, publish a new list, and hand the old one to the epoch collector,
//! which frees it once no thread pinned before the swap can still be reading it.
//!
//! This is the only `unsafe` code in the crate.
#![allow(unsafe_code)]

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned};

use crate::node::lock;

pub(crate) struct Edges<E> {
    list: Atomic<Vec<E>>,
    writer: Mutex<()>,
}

impl<E: Clone + Send> Edges<E> {
    pub(crate) fn new() -> Self {
        Edges {
            list: Atomic::new(Vec::new()),
            writer: Mutex::new(()),
        }
    }

    /// The current list, valid while `guard` is.
    #[inline]
    pub(crate) fn read<'g>(&self, guard: &'g Guard) -> &'g [E] {
        let list = self.list.load(Ordering::Acquire, guard);
        // SAFETY: `list` is never null (it starts as, and is only ever replaced by, a valid
        // `Vec`), and a replaced list is destroyed only through `defer_destroy`, after every
        // guard pinned before the replacement (ours included) has been dropped.
        unsafe { list.deref() }
    }

    /// Replaces the list with `f(current)`.
    pub(crate) fn update(&self, f: impl FnOnce(&[E]) -> Vec<E>) {
        let _writer = lock(&self.writer);
        let guard = epoch::pin();
        let next = Owned::new(f(self.read(&guard)));
        let old = self.list.swap(next, Ordering::AcqRel, &guard);
        // SAFETY: `old` is no longer reachable from `self.list`, and writers are serialized, so
        // no one else will destroy it; readers that still hold it are protected by their guards.
        unsafe { guard.defer_destroy(old) };
    }

    /// Takes the list out, leaving it empty.
    pub(crate) fn take(&mut self) -> Vec<E> {
        let guard = epoch::pin();
        let old = self
            .list
            .swap(Owned::new(Vec::new()), Ordering::AcqRel, &guard);
        // SAFETY: `&mut self` means no reader holds this node's list, and `old` is no longer
        // reachable from it, so we own it.
        unsafe { std::mem::take(&mut *old.into_owned()) }
    }
}

impl<E> Drop for Edges<E> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` in `drop`: no reader or writer can reach the list any more.
        let guard = unsafe { epoch::unprotected() };
        let list = self
            .list
            .swap(epoch::Shared::null(), Ordering::Relaxed, guard);
        if !list.is_null() {
            // SAFETY: the pointer came from `Owned` and is no longer reachable from `self`.
            drop(unsafe { list.into_owned() });
        }
    }
}
