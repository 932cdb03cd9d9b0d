//! [`Cluster`]: this process's timely workers, connected to every other process's.
//!
//! Every process runs the same program. Each builds the same pipeline, and each `gather`
//! registers a dataflow here; the workers build the registered dataflows in order, so that
//! all workers of all processes agree on them. Global worker 0 (on process 0) is the only one
//! that feeds them: the graph's `scatter` nodes hand it their elements, and the results come
//! back to it. A control dataflow, fed by worker 0 alone, tells the others when to stop: when
//! worker 0 closes its input, every worker sees that input's frontier empty and finishes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use streamz_core::panic_message;
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::{Hooks, WorkerGuards};
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Probe};
use timely::worker::Worker;

use crate::error::ClusterError;

/// How long an idle worker sleeps before it looks again for new dataflows, a stop, or a lost
/// connection (new elements wake worker 0 at once).
const PARK: Duration = Duration::from_millis(20);

/// Opens every connection of a cluster: what is sent first on each, to tell a streamz-timely
/// peer of the same cluster from anything else on the port.
const MAGIC: &[u8; 8] = b"STRMZTLY";

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How to start a [`Cluster`]: its processes' addresses, which one this is, and the worker
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
    addresses: Vec<String>,
    process: usize,
    workers: usize,
    connect_timeout: Duration,
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

    fn check(&self) -> Result<(), ClusterError> {
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

/// A dataflow for every worker to build: registered by `gather`.
pub(crate) trait Plan: Send + Sync {
    /// Builds the dataflow on `worker`; on global worker 0, returns what feeds it.
    fn build(&self, worker: &mut Worker, feeds: bool) -> Option<Box<dyn Feed>>;
}

/// Moves a dataflow's waiting elements into it, on global worker 0.
pub(crate) trait Feed {
    /// Whether it moved any.
    fn pump(&mut self) -> bool;
}

/// The elements a dataflow is waiting on, to fail when the cluster does.
pub(crate) trait Pending: Send + Sync {
    fn cancel(&self);
    fn is_empty(&self) -> bool;
}

pub(crate) struct Shared {
    pub(crate) process: usize,
    pub(crate) processes: usize,
    workers: usize,
    args: Vec<String>,
    plans: Mutex<Vec<Arc<dyn Plan>>>,
    pending: Mutex<Vec<Weak<dyn Pending>>>,
    /// This process's worker threads, to wake.
    threads: Mutex<Vec<Thread>>,
    /// Global worker 0's thread (on process 0 only).
    leader: OnceLock<Thread>,
    /// Whether global worker 0 may be about to park: only then does a new element wake it.
    leader_idle: AtomicBool,
    stopping: AtomicBool,
    failure: OnceLock<ClusterError>,
    running: AtomicUsize,
    /// Signalled when a worker ends or the cluster fails; waiters also look again every
    /// `PARK` (an element completing does not signal, to keep that path free of it).
    changed: Condvar,
    changes: Mutex<()>,
    guards: Mutex<Option<WorkerGuards<()>>>,
}

impl Shared {
    pub(crate) fn is_leader(&self) -> bool {
        self.process == 0
    }

    pub(crate) fn failure(&self) -> Option<ClusterError> {
        self.failure.get().cloned()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The cluster cannot go on: every element waiting on it fails with `err`.
    pub(crate) fn fail(&self, err: ClusterError) {
        if self.failure.set(err).is_err() {
            return;
        }
        self.cancel_pending();
        self.notify();
    }

    /// Fails every element still waiting on the cluster (their tickets see a cancellation).
    fn cancel_pending(&self) {
        let pending: Vec<_> = lock(&self.pending)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for p in pending {
            p.cancel();
        }
    }

    pub(crate) fn notify(&self) {
        let _guard = lock(&self.changes);
        self.changed.notify_all();
        for thread in lock(&self.threads).iter() {
            thread.unpark();
        }
    }

    /// After an element is queued: wakes global worker 0 if it may be parking. (It marks
    /// itself idle before its last look at the queues, so either it sees the element or this
    /// sees the mark; an unpark before its park makes the park return at once.)
    pub(crate) fn wake_leader(&self) {
        if self.leader_idle.load(Ordering::SeqCst)
            && let Some(thread) = self.leader.get()
        {
            thread.unpark();
        }
    }

    pub(crate) fn register(&self, plan: Arc<dyn Plan>, pending: Weak<dyn Pending>) {
        lock(&self.plans).push(plan);
        lock(&self.pending).push(pending);
        self.notify();
    }

    fn all_pending_empty(&self) -> bool {
        lock(&self.pending)
            .iter()
            .filter_map(Weak::upgrade)
            .all(|p| p.is_empty())
    }

    /// Waits, a little at a time, until `done`.
    fn wait_until(&self, mut done: impl FnMut() -> bool) {
        let mut guard = lock(&self.changes);
        while !done() {
            guard = self
                .changed
                .wait_timeout(guard, PARK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The clusters of this process, for the panic hook that notices lost connections.
static LIVE: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// timely's network threads (`timely:recv-N`, `timely:send-N`) panic when the connection to
/// process N breaks; this hook turns that into the cluster's failure, naming N, before the
/// default hook prints it.
fn watch_connections() {
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
        watch_connections();
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
                let sockets = connect(&config)?;
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
        lock(&LIVE).retain(|w| w.strong_count() > 0);
        lock(&LIVE).push(Arc::downgrade(&shared));
        let worker_shared = shared.clone();
        let guards = timely::execute::execute_from(
            builders,
            others,
            timely::WorkerConfig::default(),
            move |worker| run_worker(worker, &worker_shared),
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

impl Shared {
    /// Joins timely's worker and network threads, catching the panics with which timely's
    /// guards report a thread that panicked (as its network threads do when a peer is lost).
    /// `None` when they were joined already, or when called on one of those threads.
    fn join_threads(&self) -> Option<std::thread::Result<Vec<Result<(), String>>>> {
        let mut slot = lock(&self.guards);
        let me = std::thread::current().id();
        if slot
            .as_ref()?
            .guards()
            .iter()
            .any(|g| g.thread().id() == me)
        {
            return None; // a worker cannot join itself; the guards stay for another thread
        }
        let guards = slot.take()?;
        drop(slot);
        Some(catch_unwind(AssertUnwindSafe(|| guards.join())))
    }
}

impl Drop for Shared {
    /// The last handle gone without `finish`, or after it failed: timely's guards would
    /// join in their own destructors, where a lost peer's panic aborts the process.
    fn drop(&mut self) {
        if self.join_threads().is_none()
            && let Some(guards) = lock(&self.guards).take()
        {
            // dropped on a worker thread: its siblings end on their own
            std::mem::forget(guards);
        }
    }
}

/// A worker thread's life: build the registered dataflows, feed them (global worker 0),
/// until the cluster stops.
fn run_worker(worker: &mut Worker, shared: &Arc<Shared>) {
    lock(&shared.threads).push(std::thread::current());
    let feeds = worker.index() == 0;
    if feeds {
        let _ = shared.leader.set(std::thread::current());
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| serve(worker, shared, feeds)));
    if let Err(panic) = outcome {
        // timely's queues panic once a connection is gone; the hook has usually named the
        // process already
        shared.fail(ClusterError::lost(
            None,
            format!(
                "process {}: a worker stopped: {}",
                shared.process,
                panic_message(&*panic)
            ),
        ));
        let _ = catch_unwind(AssertUnwindSafe(|| {
            for id in worker.installed_dataflows() {
                worker.drop_dataflow(id);
            }
        }));
    }
    shared.running.fetch_sub(1, Ordering::AcqRel);
    shared.notify();
}

fn serve(worker: &mut Worker, shared: &Shared, feeds: bool) {
    let mut control = InputHandle::new();
    let probe = worker.dataflow::<u64, _, _>(|scope| {
        scope
            .input_from(&mut control)
            .container::<Vec<()>>()
            .probe()
            .0
    });
    let mut control = feeds.then_some(control);
    let mut built = 0;
    let mut inputs: Vec<Box<dyn Feed>> = Vec::new();
    loop {
        let plans: Vec<Arc<dyn Plan>> = lock(&shared.plans)[built..].to_vec();
        for plan in plans {
            inputs.extend(plan.build(worker, feeds));
            built += 1;
        }
        let mut moved = false;
        for input in &mut inputs {
            moved |= input.pump();
        }
        if feeds && !moved {
            shared.leader_idle.store(true, Ordering::SeqCst);
            for input in &mut inputs {
                moved |= input.pump();
            }
        }
        if shared.failure.get().is_some() {
            break;
        }
        if feeds {
            if shared.is_stopping() && !moved {
                break;
            }
        } else if probe.done() {
            shared.stopping.store(true, Ordering::Release);
            break;
        }
        worker.step_or_park(Some(if moved { Duration::ZERO } else { PARK }));
        shared.leader_idle.store(false, Ordering::SeqCst);
    }
    // Closing the inputs completes every dataflow, on every worker.
    drop(inputs);
    control.take();
    while worker.has_dataflows() && shared.failure.get().is_none() {
        worker.step_or_park(Some(PARK));
    }
}

/// Connects this process to every other: it connects to those before it and accepts those
/// after it, as timely does, each connection opened with a handshake that names the process.
fn connect(config: &ClusterConfig) -> Result<Vec<Option<TcpStream>>, ClusterError> {
    let me = config.process;
    let n = config.addresses.len();
    let deadline = Instant::now() + config.connect_timeout;
    let address = &config.addresses[me];
    let listener = TcpListener::bind(address.as_str()).map_err(|e| {
        ClusterError::connect(
            me,
            format!("process {me} cannot listen on its address {address}: {e}"),
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ClusterError::connect(me, format!("process {me}: {e}")))?;
    let timeout = config.connect_timeout;
    let accepting = std::thread::spawn({
        let address = address.clone();
        let n_after = n - me - 1;
        move || accept(listener, me, n, n_after, deadline, timeout, &address)
    });
    let mut sockets: Vec<Option<TcpStream>> = Vec::with_capacity(n);
    for (peer, peer_address) in config.addresses.iter().enumerate().take(me) {
        sockets.push(Some(dial(me, n, peer, peer_address, deadline, timeout)?));
    }
    sockets.push(None);
    let after = accepting
        .join()
        .map_err(|p| ClusterError::connect(me, panic_message(&*p)))??;
    sockets.extend(after.into_iter().map(Some));
    Ok(sockets)
}

fn handshake(me: usize, n: usize) -> [u8; 24] {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..16].copy_from_slice(&(me as u64).to_le_bytes());
    bytes[16..].copy_from_slice(&(n as u64).to_le_bytes());
    bytes
}

fn dial(
    me: usize,
    n: usize,
    peer: usize,
    address: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, ClusterError> {
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        let attempt = resolve(address).and_then(|addr| {
            let left = deadline.saturating_duration_since(Instant::now());
            TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1)))
        });
        match attempt {
            Ok(mut stream) => {
                let sent = stream
                    .set_nodelay(true)
                    .and_then(|()| stream.write_all(&handshake(me, n)));
                match sent {
                    Ok(()) => return Ok(stream),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ClusterError::connect(
        peer,
        format!(
            "process {me} could not connect to process {peer} at {address} within {timeout:?} \
             ({last}): is it running, with the same -n and hostfile?"
        ),
    ))
}

fn resolve(address: &str) -> std::io::Result<SocketAddr> {
    address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the address resolves to nothing",
        )
    })
}

fn accept(
    listener: TcpListener,
    me: usize,
    n: usize,
    expected: usize,
    deadline: Instant,
    timeout: Duration,
    address: &str,
) -> Result<Vec<TcpStream>, ClusterError> {
    let mut peers: Vec<Option<TcpStream>> = (0..expected).map(|_| None).collect();
    while peers.iter().any(Option::is_none) {
        if Instant::now() >= deadline {
            let missing: Vec<String> = peers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_none())
                .map(|(i, _)| (me + 1 + i).to_string())
                .collect();
            let first = me + 1 + peers.iter().position(Option::is_none).unwrap_or(0);
            return Err(ClusterError::connect(
                first,
                format!(
                    "process {me} waited {timeout:?} at {address} for process{} {} to connect: \
                     are they running, with the same -n and hostfile?",
                    if missing.len() == 1 { "" } else { "es" },
                    missing.join(", ")
                ),
            ));
        }
        match listener.accept() {
            Ok((mut stream, from)) => {
                let mut hello = [0u8; 24];
                let read = stream
                    .set_nonblocking(false)
                    .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(5))))
                    .and_then(|()| stream.read_exact(&mut hello));
                let peer = u64::from_le_bytes(hello[8..16].try_into().unwrap_or_default());
                let size = u64::from_le_bytes(hello[16..].try_into().unwrap_or_default());
                if read.is_err() || &hello[..8] != MAGIC {
                    // something else on the port: not a peer of ours
                    continue;
                }
                if size != n as u64 {
                    return Err(ClusterError::config(
                        Some(peer as usize),
                        format!(
                            "process {peer} (from {from}) thinks the cluster has {size} \
                             processes, process {me} that it has {n}: start them with the same -n"
                        ),
                    ));
                }
                let slot = (peer as usize)
                    .checked_sub(me + 1)
                    .filter(|i| *i < expected)
                    .ok_or_else(|| {
                        ClusterError::config(
                            Some(peer as usize),
                            format!(
                                "process {me} was reached by a process calling itself {peer} \
                                 (from {from}): two processes have the same -p, or the \
                                 hostfiles differ"
                            ),
                        )
                    })?;
                let _ = stream.set_read_timeout(None);
                let _ = stream.set_nodelay(true);
                peers[slot] = Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(ClusterError::connect(
                    me,
                    format!("process {me} cannot accept connections at {address}: {e}"),
                ));
            }
        }
    }
    Ok(peers.into_iter().flatten().collect())
}
