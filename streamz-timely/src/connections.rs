//! Noticing a lost connection: timely's network threads panic when a peer goes away, and a
//! panic hook turns that into the cluster's failure.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use streamz_core::{lock, panic_message};

use crate::error::ClusterError;
use crate::shared::Shared;

/// The clusters of this process, for the panic hook that notices lost connections.
static LIVE: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// timely's network threads (`timely:recv-N`, `timely:send-N`) panic when the connection to
/// process N breaks; this hook turns that into the cluster's failure, naming N, before the
/// default hook prints it.
pub(crate) fn watch_connections() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let peer = thread.name().and_then(|name| {
                name.strip_prefix("timely:recv-")
                    .or_else(|| name.strip_prefix("timely:send-"))
                    .and_then(|n| n.parse::<usize>().ok())
            });
            if let Some(peer) = peer {
                let cause = panic_message(info.payload());
                let clusters: Vec<_> = lock(&LIVE).iter().filter_map(Weak::upgrade).collect();
                for shared in clusters {
                    if !shared.is_stopping() {
                        shared.fail(lost(shared.process, peer, &cause));
                    } else {
                        let _ = shared
                            .lost_while_stopping
                            .set(lost(shared.process, peer, &cause));
                    }
                }
            }
            previous(info);
        }));
    });
}

fn lost(me: usize, peer: usize, cause: &str) -> ClusterError {
    ClusterError::lost(
        Some(peer),
        format!(
            "process {me} lost process {peer}: it stopped or its connection broke ({cause}); \
             a timely cluster cannot go on without one of its processes"
        ),
    )
}

/// Watches `shared`'s connections from now on (`watch_connections` installed the hook).
pub(crate) fn watch(shared: &Arc<Shared>) {
    lock(&LIVE).retain(|w| w.strong_count() > 0);
    lock(&LIVE).push(Arc::downgrade(shared));
}
