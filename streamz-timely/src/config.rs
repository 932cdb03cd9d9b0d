//! [`ClusterConfig`]: how to start a cluster.

use std::path::Path;
use std::time::Duration;

use crate::error::ClusterError;

/// How to start a [`Cluster`](crate::Cluster): its processes' addresses, which one this is, and the worker
/// threads of each.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use streamz_timely::ClusterConfig;
///
/// let config = ClusterConfig::new()
///     .addresses(["127.0.0.1:2101", "127.0.0.1:2102"])
///     .process(1)
///     .workers(2)
///     .connect_timeout(Duration::from_secs(5));
/// assert_eq!(config.processes_count(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub(crate) addresses: Vec<String>,
    pub(crate) process: usize,
    pub(crate) workers: usize,
    pub(crate) connect_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterConfig {
    /// One process with one worker thread; 30 s to connect.
    pub fn new() -> Self {
        ClusterConfig {
            addresses: Vec::new(),
            process: 0,
            workers: 1,
            connect_timeout: Duration::from_secs(30),
        }
    }

    /// `n` processes on this machine, at `localhost:2101`, `localhost:2102`, … (timely's
    /// default when no hostfile is given).
    pub fn processes(mut self, n: usize) -> Self {
        self.addresses = if n > 1 {
            (0..n).map(|i| format!("localhost:{}", 2101 + i)).collect()
        } else {
            Vec::new()
        };
        self
    }

    /// Every process's address (`host:port`), process 0 first.
    pub fn addresses<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.addresses = addresses.into_iter().map(Into::into).collect();
        self
    }

    /// The addresses from a hostfile: one `host:port` a line, process 0 first (blank lines
    /// and lines starting with `#` are skipped).
    ///
    /// # Errors
    ///
    /// When the file cannot be read, or has no address.
    pub fn hostfile(self, path: impl AsRef<Path>) -> Result<Self, ClusterError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ClusterError::config(
                None,
                format!("cannot read the hostfile {}: {e}", path.display()),
            )
        })?;
        let addresses: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        if addresses.is_empty() {
            return Err(ClusterError::config(
                None,
                format!("the hostfile {} has no address", path.display()),
            ));
        }
        Ok(self.addresses(addresses))
    }

    /// Which process this is: 0 owns the sources and the local graph.
    pub fn process(mut self, index: usize) -> Self {
        self.process = index;
        self
    }

    /// Worker threads in each process (default 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// How long to wait for the other processes to connect (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many processes the cluster has.
    pub fn processes_count(&self) -> usize {
        self.addresses.len().max(1)
    }

    pub(crate) fn check(&self) -> Result<(), ClusterError> {
        let n = self.processes_count();
        if self.process >= n {
            return Err(ClusterError::config(
                Some(self.process),
                format!(
                    "process {} is not in a cluster of {n} process{} (indexes are 0 to {})",
                    self.process,
                    if n == 1 { "" } else { "es" },
                    n - 1
                ),
            ));
        }
        if self.workers == 0 {
            return Err(ClusterError::config(
                Some(self.process),
                "a process needs at least one worker thread (-w 1 or more)",
            ));
        }
        Ok(())
    }
}
