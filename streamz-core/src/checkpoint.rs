//! [`StateStore`]: where checkpoints are kept, and [`Checkpoint`], what one holds.
//!
//! A checkpoint is a numbered set of entries, one per stateful node and per source, each
//! the node's state as bytes under the node's stable identity. A store keeps the newest
//! checkpoint it was given, written atomically: after a crash at any moment, [`load`]
//! returns that checkpoint or the one before it, never a mixture, and a store whose content
//! is damaged is an error, never an empty store.
//!
//! [`load`]: StateStore::load

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

/// One consistent cut of a graph: every stateful node's state and every source's position,
/// each as bytes under the node's identity.
///
/// # Examples
///
/// ```
/// use streamz_core::Checkpoint;
///
/// let mut checkpoint = Checkpoint::new(7);
/// checkpoint.insert("total", b"41".to_vec());
/// assert_eq!(checkpoint.get("total"), Some(&b"41"[..]));
/// assert_eq!(checkpoint.size(), "total".len() + 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Counts up from 1, one a checkpoint taken.
    pub id: u64,
    /// When it was taken.
    pub taken_at: SystemTime,
    entries: BTreeMap<String, Vec<u8>>,
}

impl Checkpoint {
    /// An empty checkpoint numbered `id`, taken now.
    pub fn new(id: u64) -> Self {
        Checkpoint {
            id,
            taken_at: SystemTime::now(),
            entries: BTreeMap::new(),
        }
    }

    /// Sets the entry of the node named `key` (replacing one there was).
    pub fn insert(&mut self, key: impl Into<String>, state: Vec<u8>) {
        self.entries.insert(key.into(), state);
    }

    /// The state saved for the node named `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// Every entry, in the order of their keys.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// How many entries it has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes of its keys and states together.
    pub fn size(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// Why a store could not load or save.
#[derive(Debug)]
pub struct StoreError {
    message: String,
    source: Option<crate::BoxError>,
}

impl StoreError {
    /// An error saying `message` (which names the store: its file, its server).
    pub fn new(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            source: None,
        }
    }

    /// The same, with the error underneath.
    pub fn with_source(mut self, source: impl Into<crate::BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What went wrong, in words.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Where checkpoints are kept: a file on local disk (`streamz-store`'s `RedbStore`, the
/// default) or a server.
///
/// An implementation must make [`save`](StateStore::save) atomic (a crash during it leaves
/// the checkpoint before it) and durable (once it returns, a crash, even of the machine,
/// does not lose it), and [`load`](StateStore::load) must fail, not return `None`, when
/// what it holds is damaged.
///
/// # Examples
///
/// A store in memory, for tests:
///
/// ```
/// use std::sync::Mutex;
/// use streamz_core::{Checkpoint, StateStore, StoreError};
///
/// #[derive(Default)]
/// struct InMemory(Mutex<Option<Checkpoint>>);
///
/// impl StateStore for InMemory {
///     fn load(&self) -> Result<Option<Checkpoint>, StoreError> {
///         Ok(self.0.lock().unwrap().clone())
///     }
///     fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
///         *self.0.lock().unwrap() = Some(checkpoint.clone());
///         Ok(())
///     }
/// }
///
/// let store = InMemory::default();
/// assert_eq!(store.load().unwrap(), None);
/// let mut checkpoint = Checkpoint::new(1);
/// checkpoint.insert("count", b"3".to_vec());
/// store.save(&checkpoint).unwrap();
/// assert_eq!(store.load().unwrap(), Some(checkpoint));
/// ```
pub trait StateStore: Send + Sync + 'static {
    /// The newest checkpoint saved, or `None` for a store that has none yet.
    ///
    /// # Errors
    ///
    /// A store that cannot be read, or whose content is damaged.
    fn load(&self) -> Result<Option<Checkpoint>, StoreError>;

    /// Saves `checkpoint` in place of the one before, atomically and durably.
    ///
    /// # Errors
    ///
    /// A store that cannot be written; then the checkpoint before stands.
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;
}

/// A boxed store is a store: for a program that chooses its store at run time.
impl<S: StateStore + ?Sized> StateStore for Box<S> {
    fn load(&self) -> Result<Option<Checkpoint>, StoreError> {
        (**self).load()
    }

    fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        (**self).save(checkpoint)
    }
}

/// What a node with durable state saves into a checkpoint and restores from one: the
/// operators built through [`Stream::durable`](crate::Stream::durable), and the sources'
/// positions (`Feed`). Encoded with [`encode`], so that every state is read back the same way.
pub(crate) trait SaveState: Send + Sync {
    /// The state, encoded.
    fn save(&self) -> Result<Vec<u8>, String>;
    /// Replaces the state with the one `bytes` encode.
    fn restore(&self, bytes: &[u8]) -> Result<(), String>;
    /// The state's type, for messages.
    fn state_type(&self) -> &'static str;
    /// The checkpoint that holds what `save` last returned is now durable in the store (a
    /// broker's source commits its positions then).
    fn saved(&self) {}
}

/// A state as bytes: MessagePack, which describes itself (so `serde_json::Value` states
/// round-trip) and is compact.
pub(crate) fn encode<S: serde::Serialize + ?Sized>(state: &S) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec(state).map_err(|e| e.to_string())
}

/// The state `bytes` encode.
pub(crate) fn decode<S: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<S, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}
