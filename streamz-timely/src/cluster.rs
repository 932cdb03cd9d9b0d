//! [`Cluster`]: this process's timely workers, connected to every other process's.
//!
//! Every process runs the same program. Each builds the same pipeline, and each `gather`
//! registers a dataflow here; the workers build the registered dataflows in order, so that
//! all workers of all processes agree on them. Global worker 0 (on process 0) is the only one
//! that feeds them: the graph's `scatter` nodes hand it their elements, and the results come
//! back to it. A control dataflow, fed by worker 0 alone, tells the others when to stop: when
//! worker 0 closes its input, every worker sees that input's frontier empty and finishes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use streamz_core::{lock, panic_message};
use timely::communication::Hooks;
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};

use crate::config::ClusterConfig;
use crate::error::ClusterError;
use crate::shared::Shared;
use crate::{connections, network, worker};

/// The handle on a running cluster: this process's timely workers, connected to the other
/// processes'. Start it from the process's arguments with [`Cluster::from_args`], or from a
/// [`ClusterConfig`] with [`Cluster::start`]; scatter streams to it with
/// [`scatter`](crate::ScatterExt::scatter); end it with [`Cluster::finish`].
///
/// Cloning gives another handle on the same cluster.
///
/// # Examples
///
/// A cluster of one process, with two workers:
///
/// ```
/// use streamz_core::Stream;
/// use streamz_timely::{Cluster, ClusterConfig, ScatterExt};
///
/// let cluster = Cluster::start(ClusterConfig::new().workers(2))?;
/// let source = Stream::new();
/// let out = source.scatter(&cluster).map(|x: u64| x * x).gather().sink_to_vec();
/// if cluster.is_leader() {
///     for x in 0..4 {
///         source.emit_blocking(x)?;
///     }
/// }
/// cluster.finish()?;
/// assert_eq!(out.to_vec(), vec![0, 1, 4, 9]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Cluster {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("process", &self.shared.process)
            .field("processes", &self.shared.processes)
            .field("workers", &self.shared.workers)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts the cluster from the process's arguments, program name first, as
    /// `std::env::args()` gives them, with timely's options: `-n PROCESSES`, `-p INDEX`
    /// (this process), `-w WORKERS` (threads in each process), `-h HOSTFILE` (one `host:port`
    /// a line, process 0 first; without it, `localhost:2101`, `localhost:2102`, …). The other
    /// arguments are the program's: [`Cluster::args`].
    ///
    /// Returns once every process is connected, or fails after 30 s.
    ///
    /// # Errors
    ///
    /// When the options are wrong, this process cannot listen on its address, or the others
    /// do not connect in time.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_timely::Cluster;
    ///
    /// let cluster = Cluster::from_args(["prog", "-w", "2", "input.txt"])?;
    /// assert_eq!((cluster.processes(), cluster.workers()), (1, 2));
    /// assert_eq!(cluster.args(), ["input.txt"]);
    /// cluster.finish()?;
    /// # Ok::<(), streamz_timely::ClusterError>(())
    /// ```
    pub fn from_args<I, S>(args: I) -> Result<Cluster, ClusterError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).skip(1).collect();
        let mut opts = getopts::Options::new();
        opts.optopt("w", "threads", "worker threads in each process", "NUM");
        opts.optopt("p", "process", "index of this process", "IDX");
        opts.optopt("n", "processes", "number of processes", "NUM");
        opts.optopt("h", "hostfile", "file of process addresses", "FILE");
        let matches = opts
            .parse(&args)
            .map_err(|e| ClusterError::config(None, format!("bad cluster arguments: {e}")))?;
        let number = |flag: &str, default: usize| -> Result<usize, ClusterError> {
            match matches.opt_str(flag) {
                None => Ok(default),
                Some(text) => text.parse().map_err(|_| {
                    ClusterError::config(None, format!("-{flag} takes a number, not {text:?}"))
                }),
            }
        };
        let processes = number("n", 1)?;
        let mut config = ClusterConfig::new()
            .processes(processes)
            .process(number("p", 0)?)
            .workers(number("w", 1)?);
        if let (Some(hostfile), true) = (matches.opt_str("h"), processes > 1) {
            config = config.hostfile(hostfile)?;
            let listed = config.addresses.len();
            if listed < processes {
                return Err(ClusterError::config(
                    None,
                    format!("-n {processes}, but the hostfile lists {listed} address(es)"),
                ));
            }
            config.addresses.truncate(processes);
        }
        Self::start_with_args(config, matches.free)
    }

    /// Starts the cluster from `config`.
    ///
    /// # Errors
    ///
    /// As [`Cluster::from_args`].
    pub fn start(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        Self::start_with_args(config, Vec::new())
    }

    fn start_with_args(config: ClusterConfig, args: Vec<String>) -> Result<Cluster, ClusterError> {
        config.check()?;
        connections::watch_connections();
        let processes = config.processes_count();
        let shared = Arc::new(Shared {
            process: config.process,
            processes,
            workers: config.workers,
            args,
            plans: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            leader: OnceLock::new(),
            leader_idle: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            failure: OnceLock::new(),
            lost_while_stopping: OnceLock::new(),
            running: AtomicUsize::new(config.workers),
            changed: Condvar::new(),
            changes: Mutex::new(()),
            guards: Mutex::new(None),
        });
        let (builders, others): (Vec<AllocatorBuilder>, Box<dyn std::any::Any + Send>) =
            if processes == 1 {
                let config = if config.workers == 1 {
                    timely::CommunicationConfig::Thread
                } else {
                    timely::CommunicationConfig::Process(config.workers)
                };
                config
                    .try_build()
                    .map_err(|e| ClusterError::config(Some(0), e))?
            } else {
                let sockets = network::connect(&config)?;
                let hooks = Hooks::default();
                let local =
                    ProcessBuilder::new_typed_vector(config.workers, hooks.refill.clone(), None);
                let (builders, guard) = initialize_networking_from_sockets(
                    local,
                    sockets,
                    config.process,
                    config.workers,
                    hooks,
                )
                .map_err(|e| {
                    ClusterError::config(
                        Some(config.process),
                        format!(
                            "process {}: cannot start timely's network threads: {e}",
                            config.process
                        ),
                    )
                })?;
                let builders = builders.into_iter().map(AllocatorBuilder::Tcp).collect();
                (builders, Box::new(guard))
            };
        connections::watch(&shared);
        let worker_shared = shared.clone();
        let guards = timely::execute::execute_from(
            builders,
            others,
            timely::WorkerConfig::default(),
            move |worker| worker::run_worker(worker, &worker_shared),
        )
        .map_err(|e| ClusterError::config(Some(config.process), e))?;
        *lock(&shared.guards) = Some(guards);
        Ok(Cluster { shared })
    }

    /// This process's index: 0 owns the sources and the local graph.
    pub fn process(&self) -> usize {
        self.shared.process
    }

    /// How many processes the cluster has.
    pub fn processes(&self) -> usize {
        self.shared.processes
    }

    /// Worker threads in each process.
    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// Whether this is process 0, the one whose sources feed the cluster.
    pub fn is_leader(&self) -> bool {
        self.shared.is_leader()
    }

    /// The program's own arguments: those [`Cluster::from_args`] did not take.
    pub fn args(&self) -> &[String] {
        &self.shared.args
    }

    /// The failure that stopped the cluster, if one has.
    pub fn failure(&self) -> Option<ClusterError> {
        self.shared.failure()
    }

    /// Ends the cluster. On process 0: waits for the elements still on the cluster, then
    /// tells every process to stop and waits for them. On the others: waits until process 0
    /// ends the cluster. Scattering to it afterwards fails.
    ///
    /// # Errors
    ///
    /// The failure that stopped the cluster: a process lost, here or elsewhere.
    pub fn finish(&self) -> Result<(), ClusterError> {
        let shared = &self.shared;
        if shared.is_leader() {
            shared.wait_until(|| shared.failure.get().is_some() || shared.all_pending_empty());
            shared.stopping.store(true, Ordering::Release);
            shared.notify();
        }
        shared.wait_until(|| {
            shared.failure.get().is_some() || shared.running.load(Ordering::Acquire) == 0
        });
        if let Some(failure) = shared.failure() {
            // timely's threads panicked when the peer went: join them here, where their
            // panics are caught, rather than in a destructor, where a second panic aborts
            let _ = shared.join_threads();
            return Err(failure);
        }
        // an element emitted on another thread while the cluster stopped never reached it
        shared.cancel_pending();
        // Joins the workers, then timely's network threads, which end once every peer has
        // said goodbye. A peer lost at this point makes a join panic.
        if let Some(joined) = shared.join_threads() {
            match joined {
                Ok(results) => {
                    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                        return Err(ClusterError::lost(
                            None,
                            format!("process {}: a worker ended badly: {e}", shared.process),
                        ));
                    }
                }
                Err(panic) => {
                    // a peer lost as the cluster finished: named by the network thread's panic
                    if let Some(lost) = shared.lost_while_stopping.get() {
                        return Err(lost.clone());
                    }
                    return Err(ClusterError::lost(
                        None,
                        format!(
                            "process {}: the cluster's connections did not close cleanly: {}",
                            shared.process,
                            panic_message(&*panic)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
