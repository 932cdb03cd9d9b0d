//! Counting what a piece of code allocates on this thread (`allocation-counter`, which
//! replaces the global allocator of this binary): how the peer comparison measures the heap
//! a node takes and whether a push allocates.

/// What `f` allocated on this thread: (allocations, bytes).
pub(crate) fn counting(f: impl FnOnce()) -> (u64, u64) {
    let info = allocation_counter::measure(f);
    (info.count_total, info.bytes_total)
}

/// What `f` made and still holds once it has returned (its result kept alive): (allocations,
/// bytes) live, and the result.
pub(crate) fn holding<R>(f: impl FnOnce() -> R) -> ((u64, u64), R) {
    let mut kept = None;
    let info = allocation_counter::measure(|| kept = Some(f()));
    let kept = kept.expect("f ran");
    let live = |n: i64| u64::try_from(n).unwrap_or(0);
    ((live(info.count_current), live(info.bytes_current)), kept)
}
