//! Running a built graph: feeding its sources, stopping on Ctrl-C, reporting errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use streamz_core::{ErrorKind, Stream, StreamError};
use tokio::io::BufReader;
use tokio::sync::watch;

use crate::checkpoint::Checkpointing;
use crate::graph::Graph;
use crate::lines::{BadLine, Partial, read_into};
use crate::ops::show;
use crate::source::Input;

/// What to do when an element fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnError {
    /// Report it and go on with the next element.
    Skip,
    /// Report it, stop the sources, drain what was accepted, and exit with status 2.
    Fail,
}

/// Shared by the feeding tasks.
#[derive(Clone)]
pub(crate) struct Control {
    stop: watch::Receiver<bool>,
    stop_tx: Arc<watch::Sender<bool>>,
    on_error: OnError,
    failed: Arc<AtomicBool>,
    emitted: Arc<AtomicU64>,
    /// Emits whose `Emit` has resolved: `emitted - completed` are still being pushed.
    completed: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

impl Control {
    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// True once the run is failing (`--on-error fail`, a source's error): then the lines a
    /// source has read but not yet fed are not fed either; after a signal they are.
    pub(crate) fn failing(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.stop_tx.send_replace(true);
    }

    pub(crate) async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|s| *s).await;
    }

    /// Reports a failed element.
    /// Counts `n` elements a source emitted by itself (a broker's source, which emits with
    /// acknowledgements), for the summary.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn add_emitted(&self, n: u64) {
        self.emitted.fetch_add(n, Ordering::Relaxed);
        self.completed.fetch_add(n, Ordering::Relaxed);
    }

    /// True under `--on-error skip`.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn skips_errors(&self) -> bool {
        self.on_error == OnError::Skip
    }

    pub(crate) fn element_failed(&self, err: &StreamError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("error: {}", describe(err));
        if self.on_error == OnError::Fail {
            self.failed.store(true, Ordering::Relaxed);
            self.stop();
        }
    }

    /// Reports bad input (a line that is not JSON, a line too long).
    pub(crate) fn bad_input(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        match self.on_error {
            OnError::Skip => eprintln!("warning: {what} (skipped)"),
            OnError::Fail => {
                eprintln!("error: {what}");
                eprintln!("help: `--on-error skip` reports such input and goes on");
                self.failed.store(true, Ordering::Relaxed);
                self.stop();
            }
        }
    }

    pub(crate) async fn emit(&self, stream: &Stream<Value>, x: Value) {
        self.emitted.fetch_add(1, Ordering::Relaxed);
        let result = stream.emit(x).await;
        self.completed.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = result {
            self.element_failed(&err);
        }
    }

    /// Emits `x` from a source that can resume: it then stands at `position`, which a
    /// checkpoint saves (`Input::emit_at`).
    pub(crate) async fn emit_at(&self, input: &Input, x: Value, position: impl FnOnce() -> Value) {
        self.emitted.fetch_add(1, Ordering::Relaxed);
        let result = input.emit_at(x, position).await;
        self.completed.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = result {
            self.element_failed(&err);
        }
    }

    /// A checkpoint that could not be saved fails the run, whatever `--on-error` says: the
    /// state would no longer survive a crash.
    fn checkpoint_failed(&self, err: &StreamError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("error: {}", err.message());
        self.failed.store(true, Ordering::Relaxed);
        self.stop();
    }
}

/// A stream error as one line: the stage and what went wrong with which element.
fn describe(err: &StreamError) -> String {
    let mut s = match err.node() {
        Some(node) if err.message().starts_with(crate::QUIET) => {
            format!("stage `{}` failed {}", node.name(), err.message())
        }
        Some(node) => format!("stage `{}`: {}", node.name(), err.message()),
        None => err.to_string(),
    };
    for other in err.others() {
        s.push_str(&format!("; and {}", describe(other)));
    }
    s
}

/// What a run ended with.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) failed: bool,
    pub(crate) emitted: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
}

/// How a run may be stopped from outside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shutdown {
    /// After SIGINT or SIGTERM, how long the drain may take before the run stops anyway.
    pub(crate) drain_timeout: Option<Duration>,
}

/// Elements accepted and not yet through the graph: emits still being pushed, and what the
/// nodes hold (buffers, timers, windows, async calls).
fn in_flight(control: &Control, graphs: &[streamz_core::Graph]) -> u64 {
    let pushing = control
        .emitted
        .load(Ordering::Relaxed)
        .saturating_sub(control.completed.load(Ordering::Relaxed));
    let mut seen = std::collections::HashSet::new();
    let held: u64 = graphs
        .iter()
        .flat_map(|g| g.snapshot().nodes)
        .filter(|n| seen.insert(n.id))
        .map(|n| n.in_flight as u64)
        .sum();
    pushing + held
}

/// The stop signals: SIGINT and SIGTERM (systemd, docker and Kubernetes stop with SIGTERM).
/// Once these are installed, neither signal kills the process: each is seen here.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The next signal's name and number.
    async fn next(&mut self) -> (&'static str, i32) {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = recv(&mut self.int) => ("SIGINT", 2),
                () = recv(&mut self.term) => ("SIGTERM", 15),
            }
        }
        #[cfg(not(unix))]
        match tokio::signal::ctrl_c().await {
            Ok(()) => ("Ctrl-C", 2),
            Err(_) => std::future::pending().await,
        }
    }
}

/// The first SIGINT or SIGTERM closes the sources and lets the graph drain, saying so; a
/// second one, or the drain outliving `--drain-timeout`, stops the run at once, saying how
/// many accepted elements it abandoned, with the exit status of the signal that stopped it
/// (130 for SIGINT, 143 for SIGTERM; the first signal's after a drain timeout).
async fn watch_signals(
    mut signals: Signals,
    control: Control,
    graphs: Vec<streamz_core::Graph>,
    shutdown: Shutdown,
) {
    let (name, number) = signals.next().await;
    control.stop();
    let limit = match shutdown.drain_timeout {
        Some(t) => format!(", for at most {}", humantime::format_duration(t)),
        None => String::new(),
    };
    eprintln!(
        "streamz: {name}: the sources are closed; draining {} element(s) in flight{limit} \
         (send the signal again to stop now)",
        in_flight(&control, &graphs)
    );
    let (why, number) = tokio::select! {
        (second, number) = signals.next() => (format!("{second} again"), number),
        () = async {
            match shutdown.drain_timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        } => ("the drain timed out (--drain-timeout)".to_owned(), number),
    };
    eprintln!(
        "streamz: {why}: stopped before the drain finished; {} accepted element(s) abandoned",
        in_flight(&control, &graphs)
    );
    std::process::exit(128 + number);
}

/// Feeds every source until it ends, or until a signal or a fatal error, then closes the
/// sources and waits for the graph to drain.
pub(crate) async fn run(
    graph: Graph,
    on_error: OnError,
    stats: bool,
    shutdown: Shutdown,
    partitions: crate::graph::Partitions,
    checkpointing: Option<Checkpointing>,
) -> Outcome {
    let (stop_tx, stop) = watch::channel(false);
    let control = Control {
        stop,
        stop_tx: Arc::new(stop_tx),
        on_error,
        failed: Arc::default(),
        emitted: Arc::default(),
        completed: Arc::default(),
        errors: Arc::default(),
    };
    let start = Instant::now();
    let graphs: Vec<streamz_core::Graph> = graph.feeds.iter().map(|f| f.stream.graph()).collect();
    // SIGINT and SIGTERM close the sources: windows flush, nothing accepted is lost.
    tokio::spawn(watch_signals(
        Signals::install(),
        control.clone(),
        graphs,
        shutdown,
    ));
    // A closed stdout (`| head`): nothing more can be shown, so the run ends at once and
    // quietly, as Unix tools do, unless a file sink still wants the rest: then the sources
    // stop and the graph drains into it.
    {
        let control = control.clone();
        let closed = graph.stdout_closed.clone();
        let file_sinks = graph.file_sinks;
        tokio::spawn(async move {
            while !closed.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !file_sinks {
                std::process::exit(0);
            }
            control.stop();
        });
    }
    // Errors of elements whose emit did not wait for them (behind buffers and timers).
    for feed in &graph.feeds {
        let control = control.clone();
        feed.stream.errors().sink(move |err| {
            if err.kind() == ErrorKind::Checkpoint {
                control.checkpoint_failed(&err);
            } else {
                control.element_failed(&err);
            }
        });
    }
    let total: Option<u64> = graph.feeds.iter().map(|f| f.source.len).sum();
    let (checkpoints, mut feeds, store, after_last) = match checkpointing {
        Some(c) => (
            Some(c.checkpoints),
            c.feeds.into_iter(),
            Some(c.path),
            c.after_last,
        ),
        None => (None, Vec::new().into_iter(), None, Vec::new()),
    };
    let reporter = stats.then(|| {
        crate::stats::Reporter::start(
            graph.stages.clone(),
            graph.feeds.iter().map(|f| f.stream.clone()).collect(),
            control.emitted.clone(),
            control.errors.clone(),
            total,
            partitions,
            checkpoints.clone(),
        )
    });
    let mut tasks = Vec::new();
    for feed in graph.feeds {
        let control = control.clone();
        let (stream, source, name) = (feed.stream, feed.source, feed.name);
        let input = Input::new(stream.clone(), feeds.next().flatten());
        tasks.push(tokio::spawn(async move {
            // A panic in a source (a bug) still closes it, so the rest drains, and fails the run.
            let fed = AssertUnwindSafe(source.feed(input, control.clone()))
                .catch_unwind()
                .await;
            let failure = match fed {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(panic) => Some(format!(
                    "panicked (a bug in streamz): {}",
                    streamz_core::panic_message(&*panic)
                )),
            };
            if let Some(e) = failure {
                eprintln!("error: source `{name}`: {e}");
                control.failed.store(true, Ordering::Relaxed);
                control.stop();
            }
            if let Err(err) = stream.close().await {
                control.element_failed(&err);
            }
            stream.closed().await;
        }));
    }
    for task in tasks {
        if let Err(e) = task.await {
            eprintln!("error: a source's task ended abnormally (a bug in streamz): {e}");
            control.failed.store(true, Ordering::Relaxed);
        }
    }
    // The last checkpoint: a run that ended finds nothing left to do when started again; one
    // that failed resumes from the element after the last one taken.
    if let (Some(checkpoints), Some(store)) = (checkpoints, store)
        && let Err(e) = checkpoints.checkpoint_now().await
    {
        eprintln!(
            "error: --checkpoint {}: the last checkpoint was not saved: {e}",
            store.display()
        );
        control.failed.store(true, Ordering::Relaxed);
    }
    for after in after_last {
        after();
    }
    let outcome = Outcome {
        failed: control.failed.load(Ordering::Relaxed),
        emitted: control.emitted.load(Ordering::Relaxed),
        errors: control.errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    };
    if let Some(reporter) = reporter {
        reporter.finish(&crate::stats::Totals {
            emitted: outcome.emitted,
            errors: outcome.errors,
            elapsed: outcome.elapsed,
        });
    }
    for n in &graph.counts {
        println!("{}", n.load(Ordering::Relaxed));
    }
    outcome
}

/// Parses a line of input as JSON when asked to; otherwise it is a string.
fn line_value(
    line: String,
    json: bool,
    origin: &str,
    number: u64,
    control: &Control,
) -> Option<Value> {
    if !json {
        return Some(Value::String(line));
    }
    match serde_json::from_str(&line) {
        Ok(v) => Some(v),
        Err(e) => {
            control.bad_input(format!(
                "{origin}:{number}: invalid JSON: {e}: {}",
                show(&Value::String(line))
            ));
            None
        }
    }
}

/// Where a source of lines stands: the byte offset of the next line, and how many lines were
/// before it (for messages). A checkpoint saves it as `[offset, lines]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LinePosition {
    pub(crate) offset: u64,
    pub(crate) lines: u64,
}

impl LinePosition {
    pub(crate) fn to_value(self) -> Value {
        Value::Array(vec![self.offset.into(), self.lines.into()])
    }

    /// The position a checkpoint saved; `None` if it is not one.
    pub(crate) fn from_value(v: &Value) -> Option<Self> {
        match v.as_array()?.as_slice() {
            [offset, lines] => Some(LinePosition {
                offset: offset.as_u64()?,
                lines: lines.as_u64()?,
            }),
            _ => None,
        }
    }
}

/// Feeds each line of `reader` until its end (with `follow`, polling every so often for
/// more, as `tail -f`, a line still being written waiting for its newline) or until the run
/// stops; then the whole lines already read are still delivered (they were taken), and
/// nothing more is read.
///
/// `at` is the position of `reader`'s first byte (`LinePosition::default()` from the start).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn feed_lines<R: tokio::io::AsyncRead + Unpin>(
    input: &Input,
    mut reader: BufReader<R>,
    at: LinePosition,
    json: bool,
    max_line: usize,
    origin: &str,
    follow: Option<Duration>,
    control: &mut Control,
) -> Result<(), String> {
    let mut partial = Partial::default();
    let mut number = at.lines;
    let mut offset = at.offset;
    while let Some(read) = control.next_line(&mut reader, max_line, &mut partial).await {
        let whole = read.map_err(|e| format!("reading {origin}: {e}"))?;
        if let (false, Some(poll)) = (whole, follow) {
            tokio::select! {
                () = tokio::time::sleep(poll) => continue,
                () = control.stopped() => continue,
            }
        }
        if !whole && partial.is_empty() {
            break; // the end
        }
        number += 1;
        let (line, used) = partial.take_counted();
        offset += used;
        let after = LinePosition {
            offset,
            lines: number,
        };
        feed_line(input, line, json, max_line, origin, after, control).await;
        if !whole {
            break; // a last line without a newline
        }
    }
    Ok(())
}

/// One line read: an element, or its error reported as bad input.
async fn feed_line(
    input: &Input,
    line: Result<String, BadLine>,
    json: bool,
    max_line: usize,
    origin: &str,
    after: LinePosition,
    control: &Control,
) {
    let number = after.lines;
    match line {
        Ok(line) => {
            if let Some(x) = line_value(line, json, origin, number, control) {
                control.emit_at(input, x, || after.to_value()).await;
            }
        }
        Err(bad) => control.bad_input(bad.describe(origin, number, max_line)),
    }
}

impl Control {
    /// Reads the next line of `reader` into `partial` (`read_into`), until the run stops;
    /// after a stop, only the whole lines `reader` already holds, unless the run is failing.
    /// `None`: read no more. Cancel-safe: a line cut off by the stop stays in `partial`.
    pub(crate) async fn next_line<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        reader: &mut BufReader<R>,
        max_line: usize,
        partial: &mut Partial,
    ) -> Option<std::io::Result<bool>> {
        loop {
            if self.stopping() {
                if self.failing() || !reader.buffer().contains(&b'\n') {
                    return None;
                }
                // completes from what is buffered, without waiting for input
                return Some(read_into(reader, max_line, partial).await);
            }
            tokio::select! {
                read = read_into(reader, max_line, partial) => return Some(read),
                () = self.stopped() => continue,
            }
        }
    }

    pub(crate) async fn emit_for_client(
        &self,
        stream: &Stream<Value>,
        x: Value,
    ) -> Result<(), String> {
        self.emitted.fetch_add(1, Ordering::Relaxed);
        let result = stream.emit(x).await;
        self.completed.fetch_add(1, Ordering::Relaxed);
        result.map_err(|err| {
            self.element_failed(&err);
            describe(&err)
        })
    }
}
