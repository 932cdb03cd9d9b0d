//! A JetStream source in a graph's checkpoints: its stream sequence is part of each
//! checkpoint, and the consumer is acknowledged only what a durable checkpoint covers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, AckKind};
use streamz_core::{CheckpointsBuilder, Element, NodeRef, SourceGate, SourceState, Stream, lock};
use tokio::sync::mpsc;

use crate::connection::Connection;
use crate::source::ToAck;

/// A JetStream source's place in a graph's checkpoints: made by
/// [`NatsCheckpoint::register`] before the checkpoints start, and given to the source with
/// [`FromNats::checkpoint`](crate::FromNats::checkpoint) before it is built into the same
/// stream ([`build_into`](crate::FromNats::build_into)).
///
/// With one, the source is checkpointed instead of acknowledging messages as they are done:
///
/// - Each checkpoint holds the stream sequence of the last message the source emitted; the
///   graph is still when it is read, so every message up to it has been through the whole
///   graph.
/// - The consumer acknowledges all messages up to a sequence at once (its ack policy is
///   `all`), and is acknowledged that sequence once the checkpoint holding it is durable,
///   never before: the server and the checkpoint agree, whatever moment a crash comes at.
/// - The checkpoint is where a run resumes: the source's consumer is made (a durable one
///   made again) to start at the message after the restored sequence, so the server sends
///   every message after it, in order, and none before: each message's effect on the state
///   is counted once, whatever the server had been acknowledged when the crash came.
///   Outputs are at least once, their duplicates those made after the last checkpoint.
///   Build the source after the checkpoints have started (and restored).
///
/// A durable consumer ([`durable`](crate::FromNats::durable)) shows the server how far the
/// source is (and holds the messages of a stream kept by interest); a durable consumer that
/// a source without checkpoints made acknowledges each message (`explicit`) and is refused:
/// give a checkpointed source a durable name of its own.
/// Between two checkpoints the server has the messages since the last one unacknowledged: at
/// most [`MAX_ACK_PENDING`] (it stops sending past it).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use streamz_core::{Checkpoints, Stream};
/// use streamz_nats::{Message, NatsCheckpoint, from_nats};
/// use streamz_tokio::TokioExecutor;
///
/// # async fn example(store: impl streamz_core::StateStore) -> Result<(), Box<dyn std::error::Error>> {
/// let messages: Stream<Message> = Stream::with_executor(TokioExecutor::current());
/// let total = messages
///     .map(|m| m.payload.len())
///     .durable()
///     .accumulate_from(0, |acc: &usize, n| acc + n);
/// total.sink(|t| println!("{t}"));
/// let mut builder = Checkpoints::builder(store).every(Duration::from_secs(1));
/// let checkpoint = NatsCheckpoint::register(&mut builder, &messages);
/// let checkpoints = builder.start()?; // restores `total` and the sequence, before the build
/// let source = from_nats("nats://127.0.0.1:4222", ["orders.*"])
///     .jetstream("ORDERS")
///     .durable("totals")
///     .checkpoint(checkpoint.clone())
///     .build_into(&messages, Ok::<_, std::convert::Infallible>)?;
/// source.run_until(tokio::signal::ctrl_c().map(|_| ())).await?;
/// checkpoints.finish().await?; // the last checkpoint, then its acknowledgement
/// checkpoint.close(); // disconnects
/// # Ok(())
/// # }
/// # use futures_util::FutureExt;
/// ```
#[derive(Clone)]
pub struct NatsCheckpoint {
    pub(crate) positions: Arc<Positions>,
    pub(crate) gate: SourceGate,
    pub(crate) stream: NodeRef,
}

/// The most messages a checkpointed source's consumer has unacknowledged (between two
/// checkpoints), when the source makes the consumer.
pub const MAX_ACK_PENDING: i64 = 1_000_000;

impl fmt::Debug for NatsCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsCheckpoint")
            .field("stream", &self.stream)
            .field("restored", &self.restored())
            .finish_non_exhaustive()
    }
}

impl NatsCheckpoint {
    /// Registers the JetStream source that will feed `stream` with `builder`'s checkpoints.
    pub fn register<T: Element>(builder: &mut CheckpointsBuilder, stream: &Stream<T>) -> Self {
        let positions = Arc::new(Positions::default());
        let gate = builder.source(stream, positions.clone());
        NatsCheckpoint {
            positions,
            gate,
            stream: stream.node(),
        }
    }

    /// The stream sequence the restored checkpoint holds (`None` when nothing was
    /// restored, or nothing had been read).
    pub fn restored(&self) -> Option<u64> {
        match self.positions.restored.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// Disconnects, once the last checkpoint
    /// ([`Checkpoints::finish`](streamz_core::Checkpoints::finish)) has been acknowledged:
    /// the source's run leaves its connection open for that acknowledgement. Dropping the
    /// checkpoints and every clone of this handle does the same.
    pub fn close(&self) {
        drop(lock(&self.positions.sender).take());
        let connection = lock(&self.positions.connection).take();
        if let Some(connection) = connection {
            connection.close();
        }
    }
}

/// A source's position and the acknowledgement that goes with it.
#[derive(Default)]
pub(crate) struct Positions {
    /// The stream sequence of the last message emitted (or skipped), the restored one at
    /// first: a message at or below it is not emitted again.
    last: AtomicU64,
    /// What the checkpoint restored.
    restored: AtomicU64,
    /// The acknowledgement of the message at `last`, until a checkpoint reads it.
    newest: Mutex<Option<(u64, jetstream::message::Acker)>>,
    /// The acknowledgement a checkpoint read, sent once that checkpoint is durable.
    saving: Mutex<Option<(u64, jetstream::message::Acker)>>,
    /// Where acknowledgements go (the source's task that sends them), from when it is
    /// built until [`NatsCheckpoint::close`].
    pub(crate) sender: Mutex<Option<mpsc::Sender<ToAck>>>,
    /// After the run: its connection, kept for the last checkpoint's acknowledgement.
    pub(crate) connection: Mutex<Option<Connection>>,
}

impl Positions {
    /// True when the message at `sequence` was emitted already, by this run or before the
    /// checkpoint restored.
    pub(crate) fn last_emitted(&self) -> u64 {
        self.last.load(Ordering::Relaxed)
    }

    pub(crate) fn covered(&self, sequence: u64) -> bool {
        sequence <= self.last.load(Ordering::Relaxed)
    }

    /// The message at `sequence` was emitted (or skipped, covered): its acknowledgement
    /// acknowledges every one before it.
    pub(crate) fn emitted(&self, sequence: u64, acker: jetstream::message::Acker) {
        self.last.fetch_max(sequence, Ordering::Relaxed);
        let mut newest = lock(&self.newest);
        if newest.as_ref().is_none_or(|(s, _)| *s <= sequence) {
            *newest = Some((sequence, acker));
        }
    }

    fn send(&self, acker: jetstream::message::Acker) {
        let sender = lock(&self.sender).clone();
        if let Some(sender) = sender {
            let _ = sender.try_send((acker, AckKind::Ack, None));
        }
    }
}

impl SourceState for Positions {
    type Position = u64;

    fn position(&self) -> u64 {
        // the graph is still: the newest acknowledgement is that of `last`
        if let Some(newest) = lock(&self.newest).take() {
            *lock(&self.saving) = Some(newest);
        }
        self.last.load(Ordering::Relaxed)
    }

    fn restore(&self, position: u64) {
        self.last.store(position, Ordering::Relaxed);
        self.restored.store(position, Ordering::Relaxed);
    }

    fn durable(&self, position: &u64) {
        let saving = lock(&self.saving).take();
        if let Some((sequence, acker)) = saving {
            if sequence <= *position {
                self.send(acker);
            } else {
                *lock(&self.saving) = Some((sequence, acker));
            }
        }
    }
}
