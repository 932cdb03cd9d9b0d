//! [`OffsetTracker`]: completions that arrive in any order, turned into the positions a source
//! may commit, partition by partition; and the bound on what is outstanding.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::Hash;
use std::sync::Mutex;

use event_listener::Event;

use crate::sync::lock;

/// Where a broker's source stands: for each partition, the records it has read and not yet
/// seen done, and the position it may commit.
///
/// A source calls [`begin`](OffsetTracker::begin) for each record it reads (offsets increase
/// within a partition, gaps allowed) and [`complete`](OffsetTracker::complete) when the
/// record is done, in whatever order that happens. `complete` returns the partition's new
/// commit position when it moves: the offset of the oldest record still outstanding, or one
/// past the newest read when none is, which is what a Kafka consumer commits ("the next
/// offset to read"). So a source commits only positions below which every record is done, and
/// a restart from the last commit replays whatever was not.
///
/// It is bounded: at most `max_outstanding` records, across partitions, are begun and not
/// complete. `begin` waits for room (backpressure from the commit side: a slow pipeline makes
/// the source stop reading); [`try_begin`](OffsetTracker::try_begin) does not wait.
///
/// # Examples
///
/// ```
/// use streamz_core::OffsetTracker;
///
/// let offsets = OffsetTracker::new(100);
/// for offset in 10..14 {
///     assert!(offsets.try_begin("p0", offset));
/// }
/// assert_eq!(offsets.complete(&"p0", 11), None); // 10 is still outstanding
/// assert_eq!(offsets.complete(&"p0", 10), Some(12)); // 10 and 11 done: commit 12
/// assert_eq!(offsets.complete(&"p0", 13), None); // 12 is still outstanding
/// assert_eq!(offsets.complete(&"p0", 12), Some(14)); // all done: one past the newest
/// assert_eq!(offsets.outstanding(), 0);
/// ```
pub struct OffsetTracker<P> {
    state: Mutex<State<P>>,
    max_outstanding: usize,
    /// Notified when a completion makes room.
    room: Event,
}

struct State<P> {
    partitions: HashMap<P, Partition>,
    outstanding: usize,
}

#[derive(Default)]
struct Partition {
    /// Begun and not complete.
    open: BTreeSet<i64>,
    /// One past the newest begun.
    next: Option<i64>,
    /// The last position `complete` reported (at first, the first offset begun: nothing done).
    reported: Option<i64>,
}

impl Partition {
    /// The position below which every begun record is done.
    fn position(&self) -> Option<i64> {
        self.open.first().copied().or(self.next)
    }
}

impl<P> fmt::Debug for OffsetTracker<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OffsetTracker")
            .field("outstanding", &lock(&self.state).outstanding)
            .field("max_outstanding", &self.max_outstanding)
            .finish_non_exhaustive()
    }
}

impl<P: Hash + Eq + Clone> OffsetTracker<P> {
    /// A tracker allowing `max_outstanding` records at once (at least 1).
    pub fn new(max_outstanding: usize) -> Self {
        OffsetTracker {
            state: Mutex::new(State {
                partitions: HashMap::new(),
                outstanding: 0,
            }),
            max_outstanding: max_outstanding.max(1),
            room: Event::new(),
        }
    }

    /// The bound on outstanding records.
    pub fn max_outstanding(&self) -> usize {
        self.max_outstanding
    }

    /// Begins the record at `offset` of `partition`, waiting while `max_outstanding` are.
    ///
    /// # Panics
    ///
    /// If `offset` is not past every offset begun on `partition` before (a source reads a
    /// partition in order).
    pub async fn begin(&self, partition: P, offset: i64) {
        loop {
            let listener = self.room.listen();
            if self.try_begin(partition.clone(), offset) {
                return;
            }
            listener.await;
        }
    }

    /// Begins the record if there is room; `false` (and nothing begun) when `max_outstanding`
    /// records are outstanding.
    ///
    /// # Panics
    ///
    /// As [`begin`](OffsetTracker::begin).
    pub fn try_begin(&self, partition: P, offset: i64) -> bool {
        self.try_begin_range(partition, offset, offset)
    }

    /// Begins the records `first..=last` of `partition` as one entry (a batch, done as a
    /// whole), waiting while `max_outstanding` entries are. It is completed with
    /// [`complete`](OffsetTracker::complete)`(partition, first)`, after which the position may
    /// move to `last + 1`.
    ///
    /// # Panics
    ///
    /// As [`begin`](OffsetTracker::begin), or if `last < first`.
    pub async fn begin_range(&self, partition: P, first: i64, last: i64) {
        loop {
            let listener = self.room.listen();
            if self.try_begin_range(partition.clone(), first, last) {
                return;
            }
            listener.await;
        }
    }

    /// [`begin_range`](OffsetTracker::begin_range) if there is room; `false` (and nothing
    /// begun) when `max_outstanding` entries are outstanding.
    ///
    /// # Panics
    ///
    /// As [`begin_range`](OffsetTracker::begin_range).
    pub fn try_begin_range(&self, partition: P, first: i64, last: i64) -> bool {
        assert!(
            first <= last,
            "OffsetTracker: the range {first}..={last} is empty"
        );
        let mut state = lock(&self.state);
        if state.outstanding >= self.max_outstanding {
            return false;
        }
        let p = state.partitions.entry(partition).or_default();
        assert!(
            p.next.is_none_or(|next| first >= next),
            "OffsetTracker: offset {first} begun after {}: a partition is read in order",
            p.next.map_or(0, |n| n - 1)
        );
        p.open.insert(first);
        p.next = Some(last.saturating_add(1));
        p.reported.get_or_insert(first);
        state.outstanding += 1;
        true
    }

    /// Marks the record at `offset` of `partition` done. Returns the partition's new commit
    /// position when it has moved since the last one returned; `None` when it has not, or when
    /// the record was not outstanding (completed twice, or never begun).
    pub fn complete(&self, partition: &P, offset: i64) -> Option<i64> {
        let mut state = lock(&self.state);
        let p = state.partitions.get_mut(partition)?;
        if !p.open.remove(&offset) {
            return None;
        }
        let position = p.position();
        let moved = position.filter(|&now| p.reported.is_none_or(|was| now > was));
        if moved.is_some() {
            p.reported = moved;
        }
        state.outstanding -= 1;
        drop(state);
        self.room.notify(1);
        moved
    }

    /// The position `partition` may commit now, if it has begun any record.
    pub fn position(&self, partition: &P) -> Option<i64> {
        lock(&self.state).partitions.get(partition)?.position()
    }

    /// Records begun and not complete, across partitions.
    pub fn outstanding(&self) -> usize {
        lock(&self.state).outstanding
    }

    /// Forgets `partition` (revoked in a rebalance): its outstanding records no longer count
    /// against the bound, and completing them later does nothing. Returns the position it
    /// could commit, for a last commit before it goes.
    pub fn revoke(&self, partition: &P) -> Option<i64> {
        let mut state = lock(&self.state);
        let p = state.partitions.remove(partition)?;
        state.outstanding -= p.open.len();
        drop(state);
        self.room.notify(usize::MAX);
        p.position()
    }
}
