//! A node's list of downstream connections, read on every element without a lock.
//!
//! Readers load the current list under an epoch guard that the push context ([`Cx`]) pins
//! once per push, so reading costs one atomic load per node. Writers (`connect`, `disconnect`,
//! rare) serialize on a mutex, publish a new list, and hand the old one to the epoch collector,
//! which frees it once no thread pinned before the swap can still be reading it.
//!
//! It also holds [`DirectArc`], an `Arc` that keeps its target's address at hand.
//!
//! This is the only `unsafe` code in the crate. The list's protocol is model-checked with loom:
//!
//! ```text
//! RUSTFLAGS="--cfg crossbeam_loom" cargo test -p streamz-core --features loom --lib edges
//! ```
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;

use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned};
#[cfg(crossbeam_loom)]
use loom::sync::Mutex;
use smallvec::SmallVec;
#[cfg(not(crossbeam_loom))]
use std::sync::Mutex;

#[cfg(not(crossbeam_loom))]
use crate::sync::lock;

#[cfg(crossbeam_loom)]
use crate::sync::loom_lock as lock;

/// A list of edges. One edge, the common case, is stored in the list's own allocation, so
/// reaching it costs one pointer less.
type List<E> = SmallVec<[E; 1]>;

pub(crate) struct Edges<E> {
    list: Atomic<List<E>>,
    writer: Mutex<()>,
}

impl<E: Clone + Send> Edges<E> {
    pub(crate) fn new() -> Self {
        Edges {
            list: Atomic::new(List::new()),
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
        let next = Owned::new(f(self.read(&guard)).into_iter().collect::<List<E>>());
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
            .swap(Owned::new(List::new()), Ordering::AcqRel, &guard);
        // SAFETY: `&mut self` means no reader holds this node's list, and `old` is no longer
        // reachable from it, so we own it.
        unsafe { std::mem::take(&mut *old.into_owned()) }.into_vec()
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

/// An `Arc` that also keeps the address of what it points to.
///
/// Reaching the target of an `Arc<dyn Trait>` means reading the target's alignment from the
/// vtable to find where it sits in the allocation, a dependent load on every call; a push
/// through a chain of nodes is a chain of such loads. This keeps the address computed once.
pub(crate) struct DirectArc<I: ?Sized> {
    arc: Arc<I>,
    ptr: NonNull<I>,
}

impl<I: ?Sized> DirectArc<I> {
    pub(crate) fn new(arc: Arc<I>) -> Self {
        let ptr = NonNull::from(&*arc);
        DirectArc { arc, ptr }
    }
}

impl<I: ?Sized> Deref for DirectArc<I> {
    type Target = I;

    #[inline(always)]
    fn deref(&self) -> &I {
        // SAFETY: `ptr` is the address of `arc`'s target, which `arc`, never replaced, keeps
        // alive and unmoved for as long as `self` lives; we hand out only shared references,
        // as `Arc` does.
        unsafe { self.ptr.as_ref() }
    }
}

impl<I: ?Sized> Clone for DirectArc<I> {
    fn clone(&self) -> Self {
        DirectArc {
            arc: self.arc.clone(),
            ptr: self.ptr,
        }
    }
}

// SAFETY: a `DirectArc` is an `Arc` plus a pointer used only as `Arc`'s `Deref` would be, so it
// may cross and be shared between threads exactly when the `Arc` may.
unsafe impl<I: ?Sized> Send for DirectArc<I> where Arc<I>: Send {}
// SAFETY: as above.
unsafe impl<I: ?Sized> Sync for DirectArc<I> where Arc<I>: Sync {}

#[cfg(all(test, crossbeam_loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::Edges;

    /// Which edges have been dropped.
    struct Registry {
        dropped: [AtomicBool; 4],
        next: AtomicUsize,
    }

    /// An edge that records in the registry when it is dropped; each clone is a new edge.
    struct Watch {
        id: usize,
        registry: Arc<Registry>,
    }

    impl Watch {
        fn new(registry: &Arc<Registry>) -> Self {
            Watch {
                id: registry.next.fetch_add(1, Ordering::SeqCst),
                registry: registry.clone(),
            }
        }
    }

    impl Clone for Watch {
        fn clone(&self) -> Self {
            Watch::new(&self.registry)
        }
    }

    impl Drop for Watch {
        fn drop(&mut self) {
            self.registry.dropped[self.id].store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_list_is_never_freed_while_a_reader_holds_it() {
        loom::model(|| {
            let registry = Arc::new(Registry {
                dropped: Default::default(),
                next: AtomicUsize::new(0),
            });
            let edges = Arc::new(Edges::new());
            edges.update(|_| vec![Watch::new(&registry)]);

            let reader = {
                let (edges, registry) = (edges.clone(), registry.clone());
                loom::thread::spawn(move || {
                    let guard = crossbeam_epoch::pin();
                    for edge in edges.read(&guard) {
                        assert!(
                            !registry.dropped[edge.id].load(Ordering::SeqCst),
                            "an edge list was freed while a reader held it"
                        );
                    }
                })
            };
            // a rewiring while the reader may be reading
            edges.update(|current| current.iter().chain(current).cloned().collect());
            edges.update(|_| Vec::new());
            reader.join().unwrap();
        });
    }
}
