//! `--checkpoint PATH`: a run whose state survives a crash. The graph's durable stages
//! (every stateful stage of the command line is) and its sources' positions are saved into
//! PATH every `--checkpoint-every`, and at the end; a run started again with the same
//! pipeline and PATH resumes from the last checkpoint.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use streamz_core::{Checkpoints, Feed, StateStore};
use streamz_store::RedbStore;

use crate::error::CliError;
use crate::graph::Graph;

/// What `--checkpoint` and its options asked for.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointArgs {
    pub(crate) path: PathBuf,
    pub(crate) every: Duration,
    pub(crate) fresh: Vec<String>,
}

/// The store, opened, and whether it has a checkpoint to resume from (sinks into files then
/// append to what the run before wrote).
pub(crate) struct Opened {
    store: RedbStore,
    pub(crate) resuming: bool,
}

/// Opens (or creates) the store at `args.path`.
pub(crate) fn open(args: &CheckpointArgs) -> Result<Opened, CliError> {
    let store = RedbStore::open(&args.path).map_err(|e| {
        CliError::new(format!("--checkpoint: {e}"))
            .help("give --checkpoint a file of its own; a store that is damaged must be moved away to start afresh")
    })?;
    let resuming = store
        .load()
        .map_err(|e| CliError::new(format!("--checkpoint: {e}")))?
        .is_some();
    Ok(Opened { store, resuming })
}

/// A running checkpointed graph: its checkpoints, and each source's feed (in the graph's
/// order of sources).
pub(crate) struct Checkpointing {
    pub(crate) checkpoints: Checkpoints,
    pub(crate) feeds: Vec<Feed<Value, Value>>,
    pub(crate) path: PathBuf,
}

/// Restores `graph` from the store and starts its checkpoints.
pub(crate) fn start(
    graph: &Graph,
    opened: Opened,
    args: &CheckpointArgs,
) -> Result<Checkpointing, CliError> {
    if let Some(feed) = graph.feeds.iter().find(|f| !f.source.resumable) {
        return Err(CliError::new(format!(
            "--checkpoint: the source `{}` cannot resume where a run stopped",
            feed.name
        ))
        .help("a checkpointed run reads from sources that can: from_textfile, range, values, from_periodic"));
    }
    let mut builder = Checkpoints::builder(opened.store).every(args.every);
    for key in &args.fresh {
        builder = builder.fresh(key);
    }
    let feeds = graph
        .feeds
        .iter()
        .map(|f| builder.feed::<Value, Value>(&f.stream))
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
        .help("zip, combine_latest, zip_latest and accumulate between scatter and gather are not durable yet; run this pipeline without --checkpoint"));
    }
    if let Some(restored) = checkpoints.restored() {
        eprintln!(
            "streamz: resuming from checkpoint #{} of {}",
            restored.id,
            args.path.display()
        );
    }
    Ok(Checkpointing {
        checkpoints,
        feeds,
        path: args.path.clone(),
    })
}
