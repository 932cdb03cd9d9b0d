//! A synchronous emit allocates nothing, and an async sink's write nothing when its future is
//! ready and at most once when it suspends: counted with a global allocator, on the emitting
//! thread only (the test harness's own threads allocate when they like).
// The counting allocator is the one place that needs `unsafe`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use streamz_core::Stream;

struct Counting;

thread_local! {
    /// Whether this thread's allocations are counted.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// What this thread allocated while counting.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn synchronous_emit_allocates_nothing() {
    let source = Stream::<u64>::new();
    let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sum = total.clone();
    let mapped = source.map(|x| x * 3).filter(|x| x % 2 == 0);
    mapped
        .accumulate(|acc: &u64, x| acc + x)
        .slice(1, None, 1)
        .unique(Some(4))
        .sink(move |x| {
            sum.fetch_add(x, Ordering::Relaxed);
        });
    mapped
        .map(|x| x + 1)
        .remove(|x| *x > 1_000_000)
        .sink(|_| {});

    // warm up: the LRU history and the executor's thread-locals get their memory once
    for x in 0..64 {
        source.emit_blocking(x).unwrap();
        futures_executor::block_on(source.emit(x)).unwrap();
    }
    let n = allocations_during(|| {
        for x in 0..10_000u64 {
            source.emit_blocking(x).unwrap();
            futures_executor::block_on(source.emit(x)).unwrap();
        }
    });
    assert_eq!(n, 0, "allocations during 20,000 synchronous emits");
    assert!(total.load(Ordering::Relaxed) > 0);
}

/// A write that suspends once: it asks to be polled again, then is done.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn an_async_sink_allocates_nothing_when_ready_and_at_most_once_when_it_suspends() {
    let n = 10_000u64;
    let ready = Stream::<u64>::new();
    ready.map(|x| x + 1).sink_async(|x| async move {
        std::hint::black_box(x);
    });
    let suspends = Stream::<u64>::new();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = written.clone();
    suspends.map(|x| x + 1).sink_async(move |_| {
        count.fetch_add(1, Ordering::Relaxed);
        YieldOnce(false)
    });
    for x in 0..64 {
        futures_executor::block_on(ready.emit(x)).unwrap();
        futures_executor::block_on(suspends.emit(x)).unwrap();
    }

    let at_once = allocations_during(|| {
        for x in 0..n {
            futures_executor::block_on(ready.emit(x)).unwrap();
        }
    });
    assert_eq!(at_once, 0, "allocations during {n} writes ready at once");

    let suspending = allocations_during(|| {
        for x in 0..n {
            let emit = suspends.emit(x);
            assert!(!emit.is_ready(), "the write suspended");
            futures_executor::block_on(emit).unwrap();
        }
    });
    assert_eq!(written.load(Ordering::Relaxed), 64 + n);
    // the pending write's box, which the Emit holds as it is (`State::One`); the user's
    // future lives in a box the sink reuses. A few one-off allocations of the process's own
    // (7 in a release run) are allowed, 64 in all: a second box per write would be 10,000.
    assert!(
        suspending <= n as usize + 64,
        "{suspending} allocations during {n} suspended writes: more than one each"
    );
}
