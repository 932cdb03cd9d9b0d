//! [`RedisStore`]: checkpoints in a Redis server (feature `redis`).

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use redis::Commands;
use streamz_core::{Checkpoint, StateStore, StoreError};

use crate::checksum;

/// What a checkpoint's value starts with: the layout this version writes and reads.
const MAGIC: &[u8; 8] = b"streamz1";

/// Keeps checkpoints in a Redis server, under one key: each checkpoint is one value, written
/// with one `SET`, so a save replaces the checkpoint before it whole or not at all, and a
/// value that is not a whole checkpoint (cut short, overwritten, written by something else) is
/// an error when it is loaded, never an empty store.
///
/// A save is as durable as the server is made to be: with `appendonly yes` and
/// `appendfsync always` a checkpoint the server has acknowledged survives a crash of the
/// server or its machine; with Redis's default (snapshots every so often), a crash of the
/// server can lose the last checkpoints, and a restarted run resumes from an older one (its
/// output repeats more, its state is still consistent).
///
/// # Examples
///
/// ```no_run
/// use streamz_core::{Stream, VirtualExecutor};
/// use streamz_store::RedisStore;
///
/// let store = RedisStore::open("redis://127.0.0.1:6379/", "word-count")?;
/// let executor = VirtualExecutor::new();
/// let source = Stream::<u64>::with_executor(executor.clone());
/// source.durable().accumulate(|a: &u64, x| a + x);
/// let (checkpoints, feed) = source.checkpoint::<u64>(store, "1s")?;
/// # let _ = (checkpoints, feed);
/// # Ok::<(), streamz_core::StoreError>(())
/// ```
pub struct RedisStore {
    client: redis::Client,
    url: String,
    key: String,
    /// The connection, made again after a failure.
    connection: Mutex<Option<redis::Connection>>,
    timeout: Duration,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store under `key` in the server at `url` (`redis://host:port/db`, with
    /// `redis://user:password@…` for credentials). Connects at once, so that a server that
    /// is not there is an error here, not at the first checkpoint.
    ///
    /// # Errors
    ///
    /// A URL that is not one, or a server that cannot be reached within 5 s.
    pub fn open(url: &str, key: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::new(format!("`{url}` is not a Redis URL: {e}")).with_source(e)
        })?;
        let store = RedisStore {
            client,
            url: url.to_owned(),
            key: key.to_owned(),
            connection: Mutex::new(None),
            timeout: Duration::from_secs(5),
        };
        store.with_connection("connecting", |_| Ok(()))?;
        Ok(store)
    }

    /// The key the checkpoints are kept under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Runs `f` on the connection (made if there is none). A connection the server dropped
    /// (it restarted) is made again and `f` tried once more: every call here (`GET`, `SET`)
    /// can be repeated. A failure drops the connection, so the next call connects again.
    fn with_connection<R>(
        &self,
        doing: &str,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Result<R, StoreError> {
        let mut slot = streamz_core::lock(&self.connection);
        let failed = |e: redis::RedisError| {
            StoreError::new(format!(
                "the checkpoint store {} (key `{}`): {doing}: {e}",
                self.url, self.key
            ))
            .with_source(e)
        };
        let mut retried = slot.is_none();
        loop {
            if slot.is_none() {
                let connection = self
                    .client
                    .get_connection_with_timeout(self.timeout)
                    .map_err(failed)?;
                connection
                    .set_read_timeout(Some(self.timeout))
                    .and_then(|()| connection.set_write_timeout(Some(self.timeout)))
                    .map_err(failed)?;
                *slot = Some(connection);
            }
            let connection = slot.as_mut().expect("made above");
            match f(connection) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    *slot = None;
                    if retried || !(e.is_io_error() || e.is_connection_dropped()) {
                        return Err(failed(e));
                    }
                    retried = true;
                }
            }
        }
    }

    fn damaged(&self, what: &str) -> StoreError {
        StoreError::new(format!(
            "the checkpoint in {} under `{}` is damaged ({what}): restore it from a copy, or delete the key to start every node afresh",
            self.url, self.key
        ))
    }
}

impl StateStore for RedisStore {
    fn load(&self) -> Result<Option<Checkpoint>, StoreError> {
        let value: Option<Vec<u8>> = self.with_connection("reading", |c| c.get(&self.key))?;
        match value {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some).map_err(|what| self.damaged(&what)),
        }
    }

    fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let bytes = encode(checkpoint);
        self.with_connection("writing", |c| c.set(&self.key, &bytes))
    }
}

/// A checkpoint as one value: `MAGIC`, its number, its time (ns since 1970), its entry
/// count and their checksum, then each entry's key and state, each with its length.
fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    let taken_at = checkpoint
        .taken_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut bytes = Vec::with_capacity(40 + checkpoint.size() + 16 * checkpoint.len());
    bytes.extend_from_slice(MAGIC);
    let (id, count) = (checkpoint.id, checkpoint.len() as u64);
    for n in [id, taken_at, count, sum(id, taken_at, count, checkpoint)] {
        bytes.extend_from_slice(&n.to_le_bytes());
    }
    for (key, state) in checkpoint.entries() {
        for part in [key.as_bytes(), state] {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part);
        }
    }
    bytes
}

/// The checksum of a checkpoint's value: of its entries (as the file store's), and, in the
/// high half, of its number, time and count.
fn sum(id: u64, taken_at: u64, count: u64, checkpoint: &Checkpoint) -> u64 {
    let mut header = crc32fast::Hasher::new();
    for n in [id, taken_at, count] {
        header.update(&n.to_le_bytes());
    }
    checksum(checkpoint.entries()) ^ (u64::from(header.finalize()) << 32)
}

/// The checkpoint `bytes` hold; what is wrong with them, if they are not one.
fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    let mut rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("it is not a checkpoint streamz wrote")?;
    let mut number = || -> Result<u64, String> {
        let (n, tail) = rest.split_first_chunk::<8>().ok_or("it is cut short")?;
        rest = tail;
        Ok(u64::from_le_bytes(*n))
    };
    let (id, taken_at, count, sum) = (number()?, number()?, number()?, number()?);
    let mut checkpoint = Checkpoint::new(id);
    checkpoint.taken_at = UNIX_EPOCH + Duration::from_nanos(taken_at);
    for _ in 0..count {
        let mut part = || -> Result<&[u8], String> {
            let (n, tail) = rest.split_first_chunk::<8>().ok_or("it is cut short")?;
            let n = usize::try_from(u64::from_le_bytes(*n)).map_err(|_| "a length is too large")?;
            if tail.len() < n {
                return Err("it is cut short".to_owned());
            }
            let (part, tail) = tail.split_at(n);
            rest = tail;
            Ok(part)
        };
        let key = std::str::from_utf8(part()?).map_err(|_| "a key is not UTF-8")?;
        let key = key.to_owned();
        checkpoint.insert(key, part()?.to_vec());
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes follow the last entry", rest.len()));
    }
    if checkpoint.len() as u64 != count {
        return Err("an entry is there twice".to_owned());
    }
    if self::sum(id, taken_at, count, &checkpoint) != sum {
        return Err("its checksum does not match".to_owned());
    }
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_any_cut_or_flip_is_caught() {
        let mut checkpoint = Checkpoint::new(9);
        checkpoint.insert("accumulate #1", vec![1, 2, 3]);
        checkpoint.insert("source #1", b"\x05".to_vec());
        let bytes = encode(&checkpoint);
        let back = decode(&bytes).unwrap();
        assert_eq!(
            (back.id, back.get("accumulate #1")),
            (9, Some(&[1u8, 2, 3][..]))
        );
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x40;
            assert!(decode(&flipped).is_err(), "flip at {i}");
        }
    }
}
