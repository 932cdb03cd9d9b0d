//! A Kafka source in a graph's checkpoints: its offsets are part of each checkpoint, and the
//! group is committed only what a durable checkpoint covers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use streamz_core::{CheckpointsBuilder, Element, NodeRef, SourceGate, SourceState, Stream, lock};

use crate::commit::{KafkaConsumer, Shared};

/// A partition: its topic and number.
type At = (Arc<str>, i32);

/// A Kafka source's offsets in a graph's checkpoints: made by
/// [`KafkaCheckpoint::register`] (or [`KafkaSource::checkpointed`]), before the
/// checkpoints start.
///
/// With one, the source is checkpointed instead of committing as records are done:
///
/// - Each checkpoint holds, for each partition the source has read, the offset after the
///   last record it emitted; the graph is still when it is read, so every record before it
///   has been through the whole graph (its outputs delivered, its state updates made).
/// - The group is committed that offset once the checkpoint holding it is durable, and
///   never more: the broker and the checkpoint agree, whatever moment a crash comes at.
/// - Restored, the source skips the records that the checkpoint already covers (a commit
///   that had not reached the broker before a crash): each record's effect on the state is
///   counted once. What is read again after a crash is what came after the checkpoint, so
///   outputs are at least once, their duplicates those of the last checkpoint's interval.
///
/// The group's committed offsets are the checkpoints' own: a checkpointed source should be
/// its group's only member (a partition taken by another member would be read without this
/// state), and a new store with an old group starts its state afresh from the group's
/// commits.
///
/// [`KafkaSource::checkpointed`]: crate::KafkaSource::checkpointed
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use streamz_core::Checkpoints;
/// use streamz_kafka::{ClientConfig, from_kafka};
/// use streamz_tokio::TokioExecutor;
///
/// # async fn example(store: impl streamz_core::StateStore) -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = ClientConfig::new();
/// config
///     .set("bootstrap.servers", "127.0.0.1:9092")
///     .set("group.id", "totals");
/// let mut source = from_kafka(["events"], config).executor(TokioExecutor::current()).build()?;
/// let total = source
///     .stream()
///     .map(|record| record.value_str().map_or(0, str::len))
///     .durable()
///     .accumulate_from(0, |acc: &usize, n| acc + n);
/// total.sink(|t| println!("{t}"));
/// let mut builder = Checkpoints::builder(store).every(Duration::from_secs(1));
/// source.checkpointed(&mut builder);
/// let checkpoints = builder.start()?; // restores `total` and the offsets
/// source.run_until(tokio::signal::ctrl_c().map(|_| ())).await?;
/// checkpoints.finish().await?; // the last checkpoint; the group is committed its offsets
/// # Ok(())
/// # }
/// # use futures_util::FutureExt;
/// ```
#[derive(Clone)]
pub struct KafkaCheckpoint {
    pub(crate) positions: Arc<Positions>,
    pub(crate) gate: SourceGate,
    pub(crate) stream: NodeRef,
}

impl fmt::Debug for KafkaCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaCheckpoint")
            .field("stream", &self.stream)
            .field("restored", &self.positions.restored.get())
            .finish_non_exhaustive()
    }
}

impl KafkaCheckpoint {
    /// Registers the Kafka source that will feed `stream` with `builder`'s checkpoints;
    /// give it to the source with [`FromKafka::checkpoint`](crate::FromKafka::checkpoint)
    /// and build the source into `stream`
    /// ([`build_into`](crate::FromKafka::build_into)). The source may be built before or
    /// after the checkpoints start (a checkpoint taken before it is built holds the
    /// position restored).
    pub fn register<T: Element>(builder: &mut CheckpointsBuilder, stream: &Stream<T>) -> Self {
        let positions = Arc::new(Positions::default());
        let gate = builder.source(stream, positions.clone());
        KafkaCheckpoint {
            positions,
            gate,
            stream: stream.node(),
        }
    }

    /// Each partition's offset the restored checkpoint holds (empty when nothing was
    /// restored), sorted.
    pub fn restored(&self) -> Vec<(String, i32, i64)> {
        let mut all: Vec<(String, i32, i64)> = self
            .positions
            .restored
            .get()
            .into_iter()
            .flatten()
            .flat_map(|(t, partitions)| partitions.iter().map(|(&p, &o)| (t.clone(), p, o)))
            .collect();
        all.sort();
        all
    }

    /// Leaves the consumer group, once the last checkpoint
    /// ([`Checkpoints::finish`](streamz_core::Checkpoints::finish)) has committed the last
    /// offsets: the source's run leaves its consumer in the group for that commit.
    /// Dropping the checkpoints and every clone of this handle does the same.
    pub fn leave_group(&self) {
        let attached = lock(&self.positions.attached).take();
        drop(attached);
    }
}

/// What a checkpoint holds of a source: `(topic, partition, offset)`, sorted.
pub(crate) type Offsets = Vec<(String, i32, i64)>;

/// A source's positions, read at each checkpoint, and the consumer it commits them with.
#[derive(Default)]
pub(crate) struct Positions {
    /// The offset after the last record emitted, for each partition (those restored
    /// included).
    next: Mutex<BTreeMap<At, i64>>,
    /// What the restored checkpoint held, by topic and partition: records before these
    /// were counted already.
    restored: OnceLock<HashMap<String, HashMap<i32, i64>>>,
    /// The source's figures and its consumer, once built; taken when it leaves the group.
    attached: Mutex<Option<(Arc<Shared>, Arc<KafkaConsumer>)>>,
}

impl Positions {
    /// Called by the source when it is built.
    pub(crate) fn attach(&self, shared: Arc<Shared>, consumer: Arc<KafkaConsumer>) {
        *lock(&self.attached) = Some((shared, consumer));
    }

    /// True when the restored checkpoint covers this record: its effect is in the state.
    pub(crate) fn covered(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.restored
            .get()
            .and_then(|restored| restored.get(topic)?.get(&partition))
            .is_some_and(|&next| offset < next)
    }

    /// The source emitted up to `last` in a partition.
    pub(crate) fn emitted(&self, topic: &Arc<str>, partition: i32, last: i64) {
        let next = last.saturating_add(1);
        let mut all = lock(&self.next);
        match all.get_mut(&(topic.clone(), partition)) {
            Some(at) => *at = (*at).max(next),
            None => {
                all.insert((topic.clone(), partition), next);
            }
        }
    }
}

impl SourceState for Positions {
    type Position = Offsets;

    fn position(&self) -> Offsets {
        lock(&self.next)
            .iter()
            .map(|((t, p), &o)| (t.to_string(), *p, o))
            .collect()
    }

    fn restore(&self, position: Offsets) {
        let mut next = lock(&self.next);
        let mut restored: HashMap<String, HashMap<i32, i64>> = HashMap::new();
        for (topic, partition, offset) in position {
            next.insert((Arc::from(topic.as_str()), partition), offset);
            restored.entry(topic).or_default().insert(partition, offset);
        }
        drop(next);
        let _ = self.restored.set(restored);
    }

    fn durable(&self, position: &Offsets) {
        let attached = lock(&self.attached).clone();
        if let Some((shared, consumer)) = attached {
            shared.commit_checkpoint(position, &consumer);
        }
    }
}
