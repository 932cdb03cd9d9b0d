//! Where streamz checkpoints are kept.
//!
//! [`RedbStore`] keeps them in one file on local disk, in [redb](https://www.redb.org), the
//! default store: a pure-Rust embedded database (no C library to build, unlike SQLite),
//! whose commits are atomic and durable (copy-on-write pages with checksums, fsync on
//! commit). So a crash at any moment, even during a save, leaves the checkpoint before it,
//! and a damaged or truncated file is an error when it is opened or read, never an empty
//! store that would start the pipeline afresh.
//!
//! # Examples
//!
//! ```
//! use streamz_core::{Checkpoint, StateStore};
//! use streamz_store::RedbStore;
//!
//! # fn main() -> Result<(), streamz_core::StoreError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = RedbStore::open(dir.path().join("state.db"))?;
//! assert_eq!(store.load()?, None); // a new file has no checkpoint yet
//! let mut checkpoint = Checkpoint::new(1);
//! checkpoint.insert("accumulate", b"41".to_vec());
//! store.save(&checkpoint)?;
//! assert_eq!(store.load()?.unwrap().get("accumulate"), Some(&b"41"[..]));
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use crate::redis::RedisStore;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use redb::{Database, DatabaseError, ReadableTable, ReadableTableMetadata, TableDefinition};
use streamz_core::{Checkpoint, StateStore, StoreError};

/// The user guide's chapter on durable state, whose examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/durable-state.md")]
pub struct DurableState;

/// The crate's README, whose example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

/// The checkpoint's entries: a node's identity → its state.
const ENTRIES: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("entries");
/// What the file holds: its format, and the checkpoint's number, time and entry count.
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// The layout of the tables above; a file of another is refused.
const FORMAT: u64 = 1;

/// Checkpoints in one file on local disk (redb).
///
/// The file holds the newest checkpoint saved; each [`save`](StateStore::save) replaces it
/// in one transaction. One process at a time may have the file open.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the store at `path`, making the file if there is none (an empty file is made
    /// a store too).
    ///
    /// # Errors
    ///
    /// A file that is not a store, or is damaged; one another process has open; one that
    /// cannot be read or made. Each error names the file.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        // redb asserts on some damage (a file cut short) instead of returning an error: a
        // damaged file is the user's input, so that is an error here too
        let opened = std::panic::catch_unwind(|| Database::create(&path)).map_err(|panic| {
            StoreError::new(damaged(&path, &streamz_core::panic_message(panic.as_ref())))
        })?;
        let db = opened.map_err(|e| {
            let message = match &e {
                DatabaseError::DatabaseAlreadyOpen => format!(
                    "the checkpoint store {} is in use by another process",
                    path.display()
                ),
                DatabaseError::Storage(redb::StorageError::Io(io))
                    if io.kind() != std::io::ErrorKind::InvalidData =>
                {
                    format!("cannot open the checkpoint store {}: {io}", path.display())
                }
                other => damaged(&path, other),
            };
            StoreError::new(message).with_source(e)
        })?;
        Ok(RedbStore { db, path })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failed(&self, doing: &str, e: impl Into<redb::Error>) -> StoreError {
        let e: redb::Error = e.into();
        let message = match &e {
            redb::Error::Corrupted(_) => damaged(&self.path, &e),
            _ => format!("the checkpoint store {}: {doing}: {e}", self.path.display()),
        };
        StoreError::new(message).with_source(e)
    }
}

/// The words for a damaged store: what it is, and what the user can do.
fn damaged(path: &Path, e: &dyn std::fmt::Display) -> String {
    format!(
        "the checkpoint store {} is damaged ({e}): restore it from a copy, or remove it to start every node afresh",
        path.display()
    )
}

/// A checksum of a checkpoint's entries, kept beside them: redb does not check the pages it
/// reads, so damage inside an entry would otherwise load as a different state.
fn checksum<'a>(entries: impl Iterator<Item = (&'a str, &'a [u8])>) -> u64 {
    let mut hasher = crc32fast::Hasher::new();
    for (key, state) in entries {
        for part in [key.as_bytes(), state] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    u64::from(hasher.finalize())
}

impl StateStore for RedbStore {
    fn load(&self) -> Result<Option<Checkpoint>, StoreError> {
        // redb meets some damage with a panic (an unreachable branch of a damaged tree):
        // that is an error about the file, like the rest
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read())).unwrap_or_else(
            |panic| {
                Err(StoreError::new(damaged(
                    &self.path,
                    &streamz_core::panic_message(panic.as_ref()),
                )))
            },
        )
    }

    fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.write(checkpoint)
    }
}

impl RedbStore {
    fn read(&self) -> Result<Option<Checkpoint>, StoreError> {
        let read = self
            .db
            .begin_read()
            .map_err(|e| self.failed("reading", e))?;
        let meta = match read.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.failed("reading", e)),
        };
        let field = |name: &str| -> Result<u64, StoreError> {
            meta.get(name)
                .map_err(|e| self.failed("reading", e))?
                .map(|v| v.value())
                .ok_or_else(|| {
                    StoreError::new(damaged(&self.path, &format_args!("no `{name}` recorded")))
                })
        };
        let format = field("format")?;
        if format != FORMAT {
            return Err(StoreError::new(format!(
                "the checkpoint store {} has format {format}, this version reads {FORMAT}",
                self.path.display()
            )));
        }
        let mut checkpoint = Checkpoint::new(field("id")?);
        checkpoint.taken_at = UNIX_EPOCH + Duration::from_nanos(field("taken_at_ns")?);
        let expected = field("entries")?;
        let entries = read
            .open_table(ENTRIES)
            .map_err(|e| self.failed("reading", e))?;
        let found = entries.len().map_err(|e| self.failed("reading", e))?;
        if found != expected {
            return Err(StoreError::new(damaged(
                &self.path,
                &format_args!("{found} entries where {expected} were saved"),
            )));
        }
        for entry in entries.iter().map_err(|e| self.failed("reading", e))? {
            let (key, state) = entry.map_err(|e| self.failed("reading", e))?;
            checkpoint.insert(key.value(), state.value().to_vec());
        }
        if checksum(checkpoint.entries()) != field("checksum")? {
            return Err(StoreError::new(damaged(
                &self.path,
                &"its entries do not match their checksum",
            )));
        }
        Ok(Some(checkpoint))
    }

    fn write(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let write = self
            .db
            .begin_write()
            .map_err(|e| self.failed("writing", e))?;
        {
            write
                .delete_table(ENTRIES)
                .map_err(|e| self.failed("writing", e))?;
            let mut entries = write
                .open_table(ENTRIES)
                .map_err(|e| self.failed("writing", e))?;
            for (key, state) in checkpoint.entries() {
                entries
                    .insert(key, state)
                    .map_err(|e| self.failed("writing", e))?;
            }
            let mut meta = write
                .open_table(META)
                .map_err(|e| self.failed("writing", e))?;
            let taken_at = checkpoint
                .taken_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
                .min(u64::MAX as u128) as u64;
            for (name, value) in [
                ("format", FORMAT),
                ("id", checkpoint.id),
                ("taken_at_ns", taken_at),
                ("entries", checkpoint.len() as u64),
                ("checksum", checksum(checkpoint.entries())),
            ] {
                meta.insert(name, value)
                    .map_err(|e| self.failed("writing", e))?;
            }
        }
        write.commit().map_err(|e| self.failed("committing", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_read_back_as_saved_and_replaces_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("s.db")).unwrap();
        let mut first = Checkpoint::new(1);
        first.insert("a", vec![1, 2, 3]);
        first.insert("b", Vec::new());
        store.save(&first).unwrap();
        let mut second = Checkpoint::new(2);
        second.insert("c", vec![9]);
        store.save(&second).unwrap();
        drop(store);
        let loaded = RedbStore::open(dir.path().join("s.db"))
            .unwrap()
            .load()
            .unwrap()
            .unwrap();
        assert_eq!(loaded.id, 2);
        assert_eq!(
            loaded.entries().collect::<Vec<_>>(),
            vec![("c", &[9u8][..])]
        );
        assert_eq!(loaded.taken_at, second.taken_at);
    }
}
