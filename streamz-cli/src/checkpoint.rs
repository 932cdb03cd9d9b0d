//! `--checkpoint PATH`: a run whose state survives a crash. The graph's durable stages
//! (every stateful stage of the command line is) and its sources' positions are saved into
//! PATH every `--checkpoint-every`, and at the end; a run started again with the same
//! pipeline and PATH resumes from the last checkpoint.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use streamz_core::{Checkpoints, Feed, StateStore};
use streamz_store::RedbStore;

use crate::error::CliError;
use crate::graph::Graph;

/// What `--checkpoint` and its options asked for.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointArgs {
    /// A file, or `redis://HOST:PORT[/DB]`.
    pub(crate) path: PathBuf,
    /// The key in a Redis server.
    pub(crate) key: String,
    pub(crate) every: Duration,
    pub(crate) fresh: Vec<String>,
}

/// The store, opened, and whether it has a checkpoint to resume from (sinks into files then
/// append to what the run before wrote).
pub(crate) struct Opened {
    store: Box<dyn StateStore>,
    pub(crate) resuming: bool,
}

/// Opens (or creates) the store `args.path` names: a redb file, or a Redis server.
pub(crate) fn open(args: &CheckpointArgs) -> Result<Opened, CliError> {
    let text = args.path.to_string_lossy();
    let store: Box<dyn StateStore> = if text.starts_with("redis://")
        || text.starts_with("rediss://")
    {
        redis(&text, &args.key)?
    } else {
        Box::new(RedbStore::open(&args.path).map_err(|e| {
            CliError::new(format!("--checkpoint: {e}"))
                .help("give --checkpoint a file of its own; a store that is damaged must be moved away to start afresh")
        })?)
    };
    let resuming = store
        .load()
        .map_err(|e| CliError::new(format!("--checkpoint: {e}")))?
        .is_some();
    Ok(Opened { store, resuming })
}

#[cfg(feature = "redis")]
fn redis(url: &str, key: &str) -> Result<Box<dyn StateStore>, CliError> {
    let store = streamz_store::RedisStore::open(url, key).map_err(|e| {
        CliError::new(format!("--checkpoint: {e}"))
            .help("is the server running? (redis-server; the key is --checkpoint-key)")
    })?;
    Ok(Box::new(store))
}

#[cfg(not(feature = "redis"))]
fn redis(url: &str, _key: &str) -> Result<Box<dyn StateStore>, CliError> {
    Err(CliError::new(format!(
        "--checkpoint {url}: this streamz was built without Redis (cargo feature `redis`)"
    )))
}

/// A running checkpointed graph: its checkpoints, and each source's feed (in the graph's
/// order of sources).
pub(crate) struct Checkpointing {
    /// Shared with `--stats` and the dashboard, which show the last one.
    pub(crate) checkpoints: Arc<Checkpoints>,
    /// The feed of each source that emits through one (`None` for those that keep their
    /// own position).
    pub(crate) feeds: Vec<Option<Feed<Value, Value>>>,
    pub(crate) path: PathBuf,
    /// What the sources that keep their own position do once the last checkpoint is saved
    /// (a Kafka source leaves its group, its last offsets committed).
    pub(crate) after_last: Vec<Box<dyn FnOnce() + Send>>,
}

/// Restores `graph` from the store and starts its checkpoints.
pub(crate) fn start(
    graph: &mut Graph,
    opened: Opened,
    args: &CheckpointArgs,
) -> Result<Checkpointing, CliError> {
    if let Some(feed) = graph.feeds.iter().find(|f| !f.source.resumable) {
        return Err(CliError::new(format!(
            "--checkpoint: the source `{}` cannot resume where a run stopped",
            feed.name
        ))
        .help("a checkpointed run reads from sources that can: from_textfile, from_kafka, from_kafka_batched, from_nats with stream=NAME, range, values, from_periodic"));
    }
    let mut builder = Checkpoints::builder(opened.store).every(args.every);
    for key in &args.fresh {
        builder = builder.fresh(key);
    }
    let mut after_last = Vec::new();
    let feeds = graph
        .feeds
        .iter_mut()
        .map(|f| match f.source.register.take() {
            Some(register) => {
                after_last.push(register(&mut builder, &f.stream));
                None
            }
            None => Some(builder.feed::<Value, Value>(&f.stream)),
        })
        .collect();
    let checkpoints = builder.start().map_err(|e| {
        CliError::new(format!("--checkpoint {}: {e}", args.path.display())).help(
            "a stage whose state should start afresh can be named with --checkpoint-fresh KEY",
        )
    })?;
    if let [first, ..] = checkpoints.not_durable() {
        return Err(CliError::new(format!(
            "--checkpoint: the stage `{first}` keeps state that checkpoints cannot save yet"
        ))
        .help("every stateful stage of the command line is durable: this is a bug in streamz"));
    }
    if let Some(restored) = checkpoints.restored() {
        eprintln!(
            "streamz: resuming from checkpoint #{} of {}",
            restored.id,
            args.path.display()
        );
    }
    Ok(Checkpointing {
        checkpoints: Arc::new(checkpoints),
        feeds,
        path: args.path.clone(),
        after_last,
    })
}
