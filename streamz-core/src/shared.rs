//! What every node of a graph shares: the executor, and where errors go that no `emit` is
//! waiting for.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use event_listener::Event;
use std::sync::{Arc, OnceLock};

use crate::durable::Gate;
use crate::emit::Cx;
use crate::error::StreamError;
use crate::executor::Executor;
use crate::node::{Inlet, Outlet};

/// The graph's error stream, as nodes: its outlet, and its inlet (for `connect`).
pub(crate) type ErrorSource = (Arc<Outlet<StreamError>>, Arc<dyn Inlet<StreamError>>);

/// What every node of a graph shares (the push's own context is [`Cx`]). Every node gets its
/// upstream's when it is built; a source makes a new one.
pub(crate) struct GraphShared {
    pub(crate) executor: Option<Arc<dyn Executor>>,
    /// The graph's error stream, made on first use by `Stream::errors`.
    errors: OnceLock<ErrorSource>,
    /// Whether nodes built in this graph count their elements.
    metrics: AtomicBool,
    /// Elements' work detached from dropped `Emit`s (or from `emit_blocking` refused with
    /// `WouldDeadlock`) still running on the executor: `flush` and `closed` wait for it.
    detached: AtomicUsize,
    detached_changed: Event,
    /// Set once the graph is checkpointed: what holds a checkpoint until the graph is still
    /// (`durable.rs`).
    gate: OnceLock<Arc<Gate>>,
}

impl fmt::Debug for GraphShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphShared")
            .field("executor", &self.executor)
            .finish_non_exhaustive()
    }
}

impl GraphShared {
    pub(crate) fn new(executor: Option<Arc<dyn Executor>>) -> Arc<Self> {
        Arc::new(GraphShared {
            executor,
            errors: OnceLock::new(),
            metrics: AtomicBool::new(false),
            detached: AtomicUsize::new(0),
            detached_changed: Event::new(),
            gate: OnceLock::new(),
        })
    }

    /// Notes work detached onto the executor; `detach_finished` when it is done.
    pub(crate) fn detach_started(&self) {
        self.detached.fetch_add(1, Ordering::AcqRel);
        if let Some(gate) = self.gate() {
            gate.add(1);
        }
    }

    pub(crate) fn detach_finished(&self) {
        if let Some(gate) = self.gate() {
            gate.sub(1);
        }
        if self.detached.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.detached_changed.notify(usize::MAX);
        }
    }

    /// Waits until no detached work of this graph is running.
    pub(crate) async fn detached_done(&self) {
        loop {
            if self.detached.load(Ordering::Acquire) == 0 {
                return;
            }
            let listener = self.detached_changed.listen();
            if self.detached.load(Ordering::Acquire) == 0 {
                return;
            }
            listener.await;
        }
    }

    /// The checkpoints' gate, once the graph is checkpointed.
    #[inline]
    pub(crate) fn gate(&self) -> Option<&Arc<Gate>> {
        self.gate.get()
    }

    /// Checkpoints this graph through `gate`; false if it already is.
    pub(crate) fn set_gate(&self, gate: &Arc<Gate>) -> bool {
        self.gate.set(gate.clone()).is_ok()
    }

    /// Elements' work detached and still running.
    pub(crate) fn detached(&self) -> usize {
        self.detached.load(Ordering::Acquire)
    }

    pub(crate) fn metrics_enabled(&self) -> bool {
        self.metrics.load(Ordering::Relaxed)
    }

    pub(crate) fn enable_metrics(&self) {
        self.metrics.store(true, Ordering::Relaxed);
    }

    /// The executor, for operators that cannot work without one.
    ///
    /// # Panics
    ///
    /// If the graph has none: a programming error, reported where the graph is built.
    pub(crate) fn require_executor(&self, op: &str) -> Arc<dyn Executor> {
        match &self.executor {
            Some(executor) => executor.clone(),
            None => panic!(
                "{op} needs an executor for its timers and tasks: build the graph from \
                 Stream::with_executor(...) (for example streamz_tokio::TokioExecutor::current())"
            ),
        }
    }

    /// The graph's error stream: `make` builds it, with the executor, on first use.
    pub(crate) fn error_source(
        &self,
        make: impl FnOnce(Option<Arc<dyn Executor>>) -> ErrorSource,
    ) -> &ErrorSource {
        self.errors.get_or_init(|| make(self.executor.clone()))
    }

    /// An error that no `emit` is waiting for: log it and send it to the error stream.
    pub(crate) fn report(&self, err: StreamError) {
        let node = err.node().map(|n| n.name().to_owned()).unwrap_or_default();
        match self.errors.get() {
            Some((errors, _)) => {
                tracing::debug!(node = %node, error = %err, "stream error sent to the error stream");
                // A failure while handling an error is logged, never reported again.
                let done = Cx::run(&errors.info.graph, false, |cx| errors.push(err, cx));
                if let Err(e) = done.into_result_or_detach() {
                    tracing::error!(error = %e, "the error stream's own handler failed");
                }
            }
            None => tracing::error!(node = %node, error = %err, "unhandled stream error"),
        }
    }
}
