//! A synchronous emit allocates nothing: counted with a global allocator, on the emitting
//! thread only (the test harness's own threads allocate when they like).
// The counting allocator is the one place that needs `unsafe`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use streamz_core::Stream;

struct Counting;

thread_local! {
    /// Whether this thread's allocations are counted.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::SeqCst)
}

// One test only: the counter is global, and tests run on parallel threads.
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
