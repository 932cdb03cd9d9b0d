//! [`ClusterError`]: what went wrong with a cluster, naming the process (and the element).

use std::fmt;
use std::sync::Arc;

/// A cluster could not start, lost a process, or failed on an element.
///
/// Cloning is cheap: every element caught by one failure carries the same error.
///
/// # Examples
///
/// ```
/// use streamz_timely::{Cluster, ClusterError};
///
/// // a process index outside the cluster
/// let err: ClusterError = Cluster::from_args(["prog", "-n", "2", "-p", "5"]).unwrap_err();
/// assert!(err.to_string().contains("process 5"), "{err}");
/// assert_eq!(err.process(), Some(5));
/// ```
#[derive(Clone)]
pub struct ClusterError(Arc<Inner>);

struct Inner {
    kind: Kind,
    message: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Config { process: Option<usize> },
    Connect { process: usize },
    Lost { process: Option<usize> },
    Element { process: usize, element: u64 },
    NotLeader { process: usize },
    Stopped,
}

impl ClusterError {
    fn new(kind: Kind, message: String) -> Self {
        ClusterError(Arc::new(Inner { kind, message }))
    }

    pub(crate) fn config(process: Option<usize>, message: impl Into<String>) -> Self {
        Self::new(Kind::Config { process }, message.into())
    }

    pub(crate) fn connect(process: usize, message: String) -> Self {
        Self::new(Kind::Connect { process }, message)
    }

    pub(crate) fn lost(process: Option<usize>, message: String) -> Self {
        Self::new(Kind::Lost { process }, message)
    }

    pub(crate) fn element(process: usize, element: u64, message: String) -> Self {
        Self::new(Kind::Element { process, element }, message)
    }

    pub(crate) fn not_leader(process: usize) -> Self {
        Self::new(
            Kind::NotLeader { process },
            format!(
                "process {process} emitted into a scattered stream: only process 0 feeds the \
                 cluster (every process builds the same pipeline; the others only run its \
                 functions)"
            ),
        )
    }

    pub(crate) fn stopped() -> Self {
        Self::new(
            Kind::Stopped,
            "the cluster has finished: nothing more can be scattered to it".to_owned(),
        )
    }

    /// This failure, as the error of an element that was on the cluster when it happened.
    pub(crate) fn for_element(&self, element: u64) -> Self {
        Self::new(
            self.0.kind,
            format!("element {element} did not come back: {}", self.0.message),
        )
    }

    /// The process this error is about: the one that could not connect, was lost, or ran the
    /// failing function. `None` for a bad configuration, or a lost connection whose peer is
    /// not known.
    pub fn process(&self) -> Option<usize> {
        match self.0.kind {
            Kind::Connect { process }
            | Kind::Element { process, .. }
            | Kind::NotLeader { process } => Some(process),
            Kind::Lost { process } | Kind::Config { process } => process,
            Kind::Stopped => None,
        }
    }

    /// For an element that failed on a worker: its position among the scattered elements,
    /// counted from 0.
    pub fn element_index(&self) -> Option<u64> {
        match self.0.kind {
            Kind::Element { element, .. } => Some(element),
            _ => None,
        }
    }

    /// Whether the cluster itself failed (a process could not connect or was lost), as
    /// opposed to one element's function.
    pub fn is_cluster_failure(&self) -> bool {
        matches!(self.0.kind, Kind::Connect { .. } | Kind::Lost { .. })
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl fmt::Debug for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterError")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .finish()
    }
}

impl std::error::Error for ClusterError {}
