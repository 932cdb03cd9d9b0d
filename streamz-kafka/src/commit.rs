//! What a source knows of its partitions: what it has read, what is done, what the broker has
//! committed; the thread that commits; and the consumer's callbacks (rebalances, statistics,
//! errors).
//!
//! A record is *outstanding* from the moment it is read until the broker has acknowledged a
//! commit past it. At most `max_in_flight` are, so a crash replays at most that many records
//! that were already done: the duplicates of at-least-once delivery are bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use event_listener::Event;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use streamz_core::{ErrorKind, NodeRef, OffsetTracker, StreamError, lock};

use crate::runtime::Runtime;
use streamz_core::OnFailure;

/// The consumer every source uses.
pub(crate) type KafkaConsumer = rdkafka::consumer::StreamConsumer<Context, Runtime>;

/// One assignment of one partition: a partition revoked and assigned again is a new one, so
/// the completions of records read before the revocation move nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    epoch: u64,
}

/// A partition this consumer is assigned.
#[derive(Debug)]
struct Assigned {
    epoch: u64,
    /// What was read and not yet committed: (last offset, records), oldest first.
    uncommitted: VecDeque<(i64, u64)>,
    /// The position the broker has acknowledged.
    committed: Option<i64>,
    /// A position to commit, past `committed`.
    pending: Option<i64>,
    /// The partition's high watermark, from the client's statistics.
    high_watermark: Option<i64>,
    /// One past the newest offset read in this assignment.
    next: Option<i64>,
}

#[derive(Debug, Default)]
struct Partitions {
    assigned: HashMap<(Arc<str>, i32), Assigned>,
    /// Records read and not yet committed, across partitions.
    uncommitted: u64,
    /// Set when the source ends: the committer commits what is pending and stops.
    shutdown: bool,
}

/// One partition's figures: see [`KafkaSource::partitions`](crate::KafkaSource::partitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The last position the broker acknowledged as committed by this source: every record
    /// before it is done. `None` until the first commit.
    pub committed: Option<i64>,
    /// The partition's high watermark (one past its newest record), as the client last saw
    /// it (librdkafka's statistics, every `statistics.interval.ms`, 1 s by default).
    pub high_watermark: Option<i64>,
    /// Records between the committed position and the high watermark.
    pub lag: Option<i64>,
}

/// What a source, its acknowledgements, its committer and its consumer's callbacks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) node: NodeRef,
    pub(crate) servers: String,
    pub(crate) max_in_flight: u64,
    pub(crate) on_failure: OnFailure,
    pub(crate) tracker: OffsetTracker<Key>,
    partitions: Mutex<Partitions>,
    /// Wakes the committer.
    work: Condvar,
    /// Notified when records stop being outstanding, and when the source fails.
    pub(crate) room: Event,
    epochs: AtomicU64,
    failure: Mutex<Option<StreamError>>,
    /// The last error the client or a commit reported (they are retried).
    last_error: Mutex<Option<String>>,
    pub(crate) failed_records: AtomicU64,
    /// The partitions' figures when the source ended (after which it has none assigned).
    last_figures: Mutex<Option<Vec<PartitionStats>>>,
    pub(crate) commits: AtomicU64,
    /// Set when the source is checkpointed ([`KafkaCheckpoint`](crate::KafkaCheckpoint)):
    /// a record stops being outstanding when it is done, and the committer commits what
    /// durable checkpoints hold instead of what is done.
    pub(crate) checkpointed: AtomicBool,
}

impl Shared {
    pub(crate) fn new(
        node: NodeRef,
        servers: String,
        max_in_flight: usize,
        on_failure: OnFailure,
    ) -> Self {
        Shared {
            node,
            servers,
            max_in_flight: max_in_flight.max(1) as u64,
            on_failure,
            // the bound is on what is not committed, below; completions are not bounded again
            tracker: OffsetTracker::new(usize::MAX),
            partitions: Mutex::default(),
            work: Condvar::new(),
            room: Event::new(),
            epochs: AtomicU64::new(0),
            failure: Mutex::new(None),
            last_error: Mutex::new(None),
            failed_records: AtomicU64::new(0),
            last_figures: Mutex::new(None),
            commits: AtomicU64::new(0),
            checkpointed: AtomicBool::new(false),
        }
    }

    /// True while fewer than `max_in_flight` records are outstanding.
    pub(crate) fn has_room(&self) -> bool {
        lock(&self.partitions).uncommitted < self.max_in_flight
    }

    /// True while `n` more records may be read.
    pub(crate) fn has_room_for(&self, n: u64) -> bool {
        lock(&self.partitions).uncommitted + n < self.max_in_flight
    }

    /// Notes records `first..=last` (`count` of them) read from a partition, begins them in
    /// the tracker, and returns the key their completion is reported with.
    pub(crate) fn read(
        &self,
        topic: &Arc<str>,
        partition: i32,
        first: i64,
        last: i64,
        count: u64,
    ) -> Key {
        let mut partitions = lock(&self.partitions);
        let at = (topic.clone(), partition);
        let known = partitions
            .assigned
            .get(&at)
            .filter(|a| a.next.is_none_or(|next| first >= next));
        if known.is_none() {
            // a partition whose assignment was not seen, or one the consumer read again from
            // an earlier offset (a reset, an assignment it did not report): a new
            // assignment, in which the completions of what was read before move nothing
            let epoch = self.epochs.fetch_add(1, Ordering::Relaxed);
            let mut fresh = Assigned::new(epoch);
            if let Some(old) = partitions.assigned.remove(&at) {
                self.forget(&mut partitions, &at, old, &mut fresh);
            }
            partitions.assigned.insert(at.clone(), fresh);
        }
        let Partitions {
            assigned,
            uncommitted,
            ..
        } = &mut *partitions;
        let a = assigned.get_mut(&at).expect("inserted above");
        a.uncommitted.push_back((last, count));
        a.next = Some(last.saturating_add(1));
        *uncommitted += count;
        let epoch = a.epoch;
        let key = Key {
            topic: topic.clone(),
            partition,
            epoch,
        };
        drop(partitions);
        let begun = self.tracker.try_begin_range(key.clone(), first, last);
        debug_assert!(begun, "the tracker is not bounded");
        key
    }

    /// An acknowledgement's function: the records from `first` (one, or a batch) are done.
    pub(crate) fn done(&self, key: &Key, first: i64, result: Result<(), StreamError>) {
        if let Err(e) = result {
            self.failed_records.fetch_add(1, Ordering::Relaxed);
            if self.on_failure == OnFailure::Stop {
                // not completed: nothing at or past it is committed in its partition
                let message = format!(
                    "{}; the record at offset {first} of {}/{} is not committed, and the source stops",
                    e.message(),
                    key.topic,
                    key.partition
                );
                self.fail(
                    StreamError::new(ErrorKind::Failed, e.node().cloned(), message).with_source(e),
                );
                return;
            }
        }
        if let Some(position) = self.tracker.complete(key, first) {
            if self.checkpointed.load(Ordering::Relaxed) {
                // what checkpoints commit is theirs; what is done makes room
                self.done_below(key, position);
                return;
            }
            let mut partitions = lock(&self.partitions);
            if let Some(a) = partitions
                .assigned
                .get_mut(&(key.topic.clone(), key.partition))
                && a.epoch == key.epoch
            {
                a.pending = Some(position);
                self.work.notify_one();
            }
        }
    }

    /// A checkpointed source's records before `position` are done: no longer outstanding.
    fn done_below(&self, key: &Key, position: i64) {
        let mut partitions = lock(&self.partitions);
        let Partitions {
            assigned,
            uncommitted,
            ..
        } = &mut *partitions;
        if let Some(a) = assigned.get_mut(&(key.topic.clone(), key.partition))
            && a.epoch == key.epoch
        {
            a.settle_below(position, uncommitted);
        }
        drop(partitions);
        self.room.notify(usize::MAX);
    }

    /// A checkpoint holding `offsets` is durable: the committer commits them (those past
    /// what was committed, of the partitions assigned); once the source has ended, they are
    /// committed here, synchronously (the checkpoint's writer calls this off the graph's
    /// threads).
    pub(crate) fn commit_checkpoint(
        &self,
        offsets: &[(String, i32, i64)],
        consumer: &KafkaConsumer,
    ) {
        let mut partitions = lock(&self.partitions);
        if !partitions.shutdown {
            let mut any = false;
            for (topic, partition, offset) in offsets {
                if let Some(a) = partitions
                    .assigned
                    .get_mut(&(Arc::<str>::from(topic.as_str()), *partition))
                    && a.committed.is_none_or(|c| *offset > c)
                {
                    a.pending = Some(a.pending.map_or(*offset, |p| p.max(*offset)));
                    any = true;
                }
            }
            if any {
                self.work.notify_one();
            }
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            let at = (Arc::<str>::from(topic.as_str()), *partition);
            if partitions
                .assigned
                .get(&at)
                .is_some_and(|a| a.committed.is_none_or(|c| *offset > c))
            {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset));
            }
        }
        drop(partitions);
        if tpl.count() == 0 {
            return;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                let mut partitions = lock(&self.partitions);
                for (topic, partition, offset) in offsets {
                    if let Some(a) = partitions
                        .assigned
                        .get_mut(&(Arc::<str>::from(topic.as_str()), *partition))
                    {
                        a.committed = Some(a.committed.map_or(*offset, |c| c.max(*offset)));
                    }
                }
            }
            Err(e) => self.note_error(format!("the last checkpoint's commit failed: {e}")),
        }
    }

    /// Fails the source (the first failure is kept).
    pub(crate) fn fail(&self, e: StreamError) {
        lock(&self.failure).get_or_insert(e);
        self.room.notify(usize::MAX);
    }

    pub(crate) fn failure(&self) -> Option<StreamError> {
        lock(&self.failure).clone()
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// Notes an error that is retried (the last one is kept, for the figures).
    pub(crate) fn note_error(&self, e: String) {
        *lock(&self.last_error) = Some(e);
    }

    /// Waits until a record may be read or the source has failed.
    pub(crate) async fn wait_for_room(&self) {
        loop {
            let listener = self.room.listen();
            if self.has_room() || lock(&self.failure).is_some() {
                return;
            }
            listener.await;
        }
    }

    /// Waits until the source has failed.
    pub(crate) async fn failed(&self) {
        loop {
            let listener = self.room.listen();
            if lock(&self.failure).is_some() {
                return;
            }
            listener.await;
        }
    }

    /// Each assigned partition's figures; after the source ended, those it ended with.
    pub(crate) fn partition_stats(&self) -> Vec<PartitionStats> {
        if let Some(last) = &*lock(&self.last_figures) {
            return last.clone();
        }
        let partitions = lock(&self.partitions);
        let mut all: Vec<PartitionStats> = partitions
            .assigned
            .iter()
            .map(|((topic, partition), a)| PartitionStats {
                topic: topic.to_string(),
                partition: *partition,
                committed: a.committed,
                high_watermark: a.high_watermark,
                lag: a
                    .high_watermark
                    .zip(a.committed)
                    .map(|(high, committed)| (high - committed).max(0)),
            })
            .collect();
        all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        all
    }

    /// Commits pending positions, synchronously, until the source ends: one commit at a
    /// time, of everything pending when it starts, so that commits keep up with any rate of
    /// completions.
    pub(crate) fn commit_loop(&self, consumer: &KafkaConsumer) {
        loop {
            let mut partitions = lock(&self.partitions);
            let batch = loop {
                let batch: Vec<(Arc<str>, i32, u64, i64)> = partitions
                    .assigned
                    .iter_mut()
                    .filter_map(|((t, p), a)| Some((t.clone(), *p, a.epoch, a.pending.take()?)))
                    .collect();
                if !batch.is_empty() || partitions.shutdown {
                    break batch;
                }
                partitions = self
                    .work
                    .wait(partitions)
                    .unwrap_or_else(|poison| poison.into_inner());
            };
            let shutdown = partitions.shutdown;
            drop(partitions);
            if batch.is_empty() {
                return;
            }
            let mut tpl = TopicPartitionList::new();
            for (topic, partition, _, position) in &batch {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*position));
            }
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    for (topic, partition, epoch, position) in batch {
                        self.committed(&topic, partition, epoch, position);
                    }
                }
                Err(e) => {
                    self.note_error(format!("commit failed: {e}"));
                    // put back what was not replaced by a newer position, and retry
                    let mut partitions = lock(&self.partitions);
                    for (topic, partition, epoch, position) in batch {
                        if let Some(a) = partitions.assigned.get_mut(&(topic, partition))
                            && a.epoch == epoch
                        {
                            a.pending.get_or_insert(position);
                        }
                    }
                    drop(partitions);
                    if shutdown {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// The broker acknowledged `position` for a partition.
    fn committed(&self, topic: &Arc<str>, partition: i32, epoch: u64, position: i64) {
        let mut partitions = lock(&self.partitions);
        let Partitions {
            assigned,
            uncommitted,
            ..
        } = &mut *partitions;
        if let Some(a) = assigned.get_mut(&(topic.clone(), partition))
            && a.epoch == epoch
        {
            a.committed = Some(a.committed.map_or(position, |c| c.max(position)));
            a.settle_below(position, uncommitted);
        }
        drop(partitions);
        self.room.notify(usize::MAX);
    }

    /// Keeps the partitions' figures as they are now, for after the consumer is gone.
    pub(crate) fn freeze_figures(&self) {
        let now = self.partition_stats();
        *lock(&self.last_figures) = Some(now);
    }

    /// Ends the committer after it has committed what is pending.
    pub(crate) fn shut_down(&self) {
        lock(&self.partitions).shutdown = true;
        self.work.notify_all();
    }

    /// Partitions assigned to this consumer: each a new assignment (the consumer reads from
    /// the committed position again).
    fn assign(&self, tpl: &TopicPartitionList) {
        let mut partitions = lock(&self.partitions);
        for elem in tpl.elements() {
            let at = (Arc::<str>::from(elem.topic()), elem.partition());
            let epoch = self.epochs.fetch_add(1, Ordering::Relaxed);
            let mut fresh = Assigned::new(epoch);
            if let Some(old) = partitions.assigned.remove(&at) {
                self.forget(&mut partitions, &at, old, &mut fresh);
            }
            partitions.assigned.insert(at, fresh);
        }
        drop(partitions);
        self.room.notify(usize::MAX);
    }

    /// Drops an assignment replaced by `fresh`: its records in flight no longer count, and
    /// `fresh` knows what was committed.
    fn forget(
        &self,
        partitions: &mut Partitions,
        at: &(Arc<str>, i32),
        old: Assigned,
        fresh: &mut Assigned,
    ) {
        partitions.uncommitted -= old.uncommitted.iter().map(|&(_, n)| n).sum::<u64>();
        self.tracker.revoke(&Key {
            topic: at.0.clone(),
            partition: at.1,
            epoch: old.epoch,
        });
        fresh.committed = old.committed;
        fresh.high_watermark = old.high_watermark;
    }

    /// Partitions taken away: what is done is committed (by the caller, with the returned
    /// list); the records still in flight will be read again by the partition's next owner.
    fn revoke(&self, tpl: &TopicPartitionList) -> TopicPartitionList {
        let mut commit = TopicPartitionList::new();
        let mut partitions = lock(&self.partitions);
        for elem in tpl.elements() {
            let key = (Arc::<str>::from(elem.topic()), elem.partition());
            let Some(a) = partitions.assigned.remove(&key) else {
                continue;
            };
            partitions.uncommitted -= a.uncommitted.iter().map(|&(_, n)| n).sum::<u64>();
            let position = self.tracker.revoke(&Key {
                topic: key.0.clone(),
                partition: key.1,
                epoch: a.epoch,
            });
            // a checkpointed source's commits are its checkpoints'
            if self.checkpointed.load(Ordering::Relaxed) {
                continue;
            }
            if let Some(position) = position.filter(|&p| a.committed.is_none_or(|c| p > c)) {
                let _ = commit.add_partition_offset(&key.0, key.1, Offset::Offset(position));
            }
        }
        drop(partitions);
        self.room.notify(usize::MAX);
        commit
    }

    fn statistics(&self, stats: &Statistics) {
        let mut partitions = lock(&self.partitions);
        for (topic, t) in &stats.topics {
            for (&partition, p) in &t.partitions {
                if let Some(a) = partitions
                    .assigned
                    .get_mut(&(Arc::<str>::from(topic.as_str()), partition))
                    && p.hi_offset >= 0
                {
                    a.high_watermark = Some(p.hi_offset);
                }
            }
        }
    }
}

impl Assigned {
    /// The records before `position` are no longer outstanding.
    fn settle_below(&mut self, position: i64, uncommitted: &mut u64) {
        while let Some(&(last, count)) = self.uncommitted.front() {
            if last >= position {
                break;
            }
            self.uncommitted.pop_front();
            *uncommitted -= count;
        }
    }

    fn new(epoch: u64) -> Self {
        Assigned {
            epoch,
            uncommitted: VecDeque::new(),
            committed: None,
            pending: None,
            high_watermark: None,
            next: None,
        }
    }
}

/// The consumer's callbacks.
#[derive(Debug)]
pub(crate) struct Context(pub(crate) Arc<Shared>);

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        self.0.statistics(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.note_error(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let commit = self.0.revoke(tpl);
                if commit.count() > 0
                    && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
                {
                    self.0
                        .note_error(format!("commit at a rebalance failed: {e}"));
                }
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => self.0.note_error(format!("rebalance failed: {e}")),
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.0.assign(tpl);
        }
    }
}
