//! Locking a mutex, one way for this crate and the crates that build on it.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, ignoring poisoning: a user function that panicked while a lock was held has
/// been turned into an error already, and every guarded state stays consistent because user
/// functions only ever see shared references to it. For the crates that run a graph's
/// functions elsewhere (a pool, a cluster), which keep state the same way.
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
///
/// let m = Mutex::new(1);
/// let _ = std::panic::catch_unwind(|| {
///     let _held = m.lock().unwrap();
///     panic!("poisons the mutex");
/// });
/// *streamz_core::lock(&m) += 1; // still usable
/// assert_eq!(*streamz_core::lock(&m), 2);
/// ```
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`] for loom's mutex, which `edges.rs` uses under the model checker.
#[cfg(crossbeam_loom)]
pub(crate) fn loom_lock<T>(m: &loom::sync::Mutex<T>) -> loom::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
