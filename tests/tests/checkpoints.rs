//! Checkpoints and restore, on virtual time: a run stopped at any moment after a checkpoint
//! and restarted from it ends with the same outputs as a run that was never stopped (the
//! outputs after the checkpoint come twice, never missing), for every durable operator; a
//! checkpoint waits for what is moving and not for what is at rest; a changed pipeline is
//! a clear error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use streamz_core::{
    Checkpoint, Checkpoints, EventTime, Executor, Keep, StateStore, StoreError, Stream, VecSink,
    VirtualExecutor, Watermarks, Window,
};

/// A store in memory, shared by the runs of one test.
#[derive(Default, Clone)]
struct Memory(Arc<Mutex<Option<Checkpoint>>>);

impl StateStore for Memory {
    fn load(&self) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.0.lock().unwrap().clone())
    }
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        *self.0.lock().unwrap() = Some(checkpoint.clone());
        Ok(())
    }
}

/// Every durable synchronous operator, each into a sink of its outputs as text.
fn pipeline(source: &Stream<u64>) -> Vec<VecSink<String>> {
    fn show<T: std::fmt::Debug + Clone + Send + 'static>(s: Stream<T>) -> VecSink<String> {
        s.map(|x| format!("{x:?}")).sink_to_vec()
    }
    let d = source.durable();
    // event time: 2 s an element, up to 10 s early; some come later than the watermark allows
    let at = |x: &u64| EventTime::from_secs(2 * *x as i64 - (*x * 37 % 11) as i64);
    let timed = d.watermarks(at, Watermarks::bounded("1s"));
    let (tumbling, tumbling_late) = timed
        .durable()
        .window(Window::tumbling("10s"), at)
        .key(|x| x % 3)
        .lateness(Duration::from_secs(1))
        .fold(0u64, |s, x| *s += x);
    let (sliding, sliding_late) = timed
        .durable()
        .window(Window::sliding("20s", "5s"), at)
        .early_every("5s")
        .fold(Vec::new(), |v: &mut Vec<u64>, x| v.push(*x));
    let (sessions, sessions_late) = timed
        .durable()
        .window(Window::session("5s"), at)
        .key(|x| x % 4)
        .fold(Vec::new(), |v: &mut Vec<u64>, x| v.push(*x));
    vec![
        show(tumbling),
        show(tumbling_late),
        show(sliding),
        show(sliding_late),
        show(sessions),
        show(sessions_late),
        show(d.accumulate(|a: &u64, x| a + x)),
        show(d.accumulate_from(7u64, |a: &u64, x| a * 3 % 1_000_003 + x)),
        show(d.scan((0u64, 0u32), |(s, n): &mut (u64, u32), x| {
            *s += x;
            *n += 1;
            *s / u64::from(*n)
        })),
        show(d.sliding_window(3, true)),
        show(d.partition(4)),
        show(d.partition_by(3, |x: &u64| x % 2)),
        show(d.partition_unique(3, Keep::Last)),
        show(source.map(|x| x % 9).durable().unique(Some(4))),
        show(d.unique_by(None, |x: &u64| x % 11)),
        show(d.slice(1, None, 3)),
        show(d.zip(&[&source.map(|x| x * 2)], 10)),
        show(
            source
                .filter(|x| x % 3 == 0)
                .durable()
                .combine_latest(&[&source.filter(|x| x % 2 == 0)], None),
        ),
        show(
            source
                .filter(|x| x % 4 == 1)
                .durable()
                .zip_latest(&[&source.filter(|x| x % 5 == 0)]),
        ),
        show(source.map(|x| x % 5).durable().frequencies().map(|f| {
            let mut f: Vec<_> = f.into_iter().collect();
            f.sort();
            f
        })),
    ]
}

fn outputs(sinks: &[VecSink<String>]) -> Vec<Vec<String>> {
    sinks.iter().map(VecSink::to_vec).collect()
}

/// The outputs of a run of `0..n` that was never stopped.
fn uninterrupted(n: u64) -> Vec<Vec<String>> {
    let source = Stream::new();
    let sinks = pipeline(&source);
    for x in 0..n {
        source.emit_blocking(x).unwrap();
    }
    source.close().wait().unwrap();
    outputs(&sinks)
}

/// What one run of a test's graph does: `build` makes its sinks on the source, `read` reads
/// them, and `pace` is the virtual time between two elements.
struct Graph<S, K> {
    build: fn(&Stream<u64>) -> S,
    read: fn(&S) -> K,
    pace: Option<Duration>,
}

/// One run of `0..n` against `store`: resumes from its checkpoint, takes one after each
/// element in `checkpoint_after`, and stops (as if killed) after `stop_after` elements of its
/// own, or ends the stream. Returns what its sinks had at its last checkpoint, and whether it
/// reached the end.
fn run_with<S, K>(
    graph: &Graph<S, K>,
    store: &Memory,
    n: u64,
    checkpoint_after: &[u64],
    stop_after: Option<u64>,
) -> (Option<K>, bool) {
    let executor = VirtualExecutor::new();
    let source = Stream::with_executor(executor.clone());
    let sinks = (graph.build)(&source);
    let (checkpoints, feed) = source.checkpoint::<u64>(store.clone(), "1h").unwrap();
    let from = feed.position().unwrap_or(0);
    let mut kept = None;
    let ended = executor.block_on(async {
        for x in from..n {
            if stop_after.is_some_and(|k| x >= from + k) {
                return false;
            }
            feed.emit(x, x + 1).await.unwrap();
            if let Some(pace) = graph.pace {
                executor.clock().sleep(pace).await;
            }
            if checkpoint_after.contains(&x) {
                checkpoints.checkpoint_now().await.unwrap();
                kept = Some((graph.read)(&sinks));
            }
        }
        feed.stream().close().await.unwrap();
        checkpoints.checkpoint_now().await.unwrap();
        true
    });
    if ended {
        kept = Some((graph.read)(&sinks));
    }
    (kept, ended)
}

/// Runs `graph` over `0..n` once for each `(checkpoints, stop)` of `runs`, each stopped, then
/// to the end: what every run kept, in order; `None` if the runs never reached the end.
fn runs_of<S, K>(graph: &Graph<S, K>, n: u64, runs: &[(Vec<u64>, u64)]) -> Option<Vec<K>> {
    let store = Memory::default();
    let mut kept = Vec::new();
    let last = [(Vec::new(), None)];
    for (checkpoints, stop) in runs.iter().map(|(c, s)| (c.clone(), Some(*s))).chain(last) {
        let (k, ended) = run_with(graph, &store, n, &checkpoints, stop);
        kept.extend(k);
        if ended {
            return Some(kept);
        }
    }
    None
}

/// The synchronous durable operators.
const SYNC: Graph<Vec<VecSink<String>>, Vec<Vec<String>>> = Graph {
    build: pipeline,
    read: |sinks| outputs(sinks),
    pace: None,
};

/// Each output of the runs `kept`, end to end.
fn joined(kept: Vec<Vec<Vec<String>>>) -> Vec<Vec<String>> {
    let mut all: Vec<Vec<String>> = Vec::new();
    for run in kept {
        all.resize(run.len(), Vec::new());
        for (a, r) in all.iter_mut().zip(run) {
            a.extend(r);
        }
    }
    all
}

fn run(
    store: &Memory,
    n: u64,
    checkpoint_after: &[u64],
    stop_after: Option<u64>,
) -> (Vec<Vec<String>>, bool) {
    let (kept, ended) = run_with(&SYNC, store, n, checkpoint_after, stop_after);
    (kept.unwrap_or_default(), ended)
}

#[test]
fn a_restored_run_ends_as_the_uninterrupted_one() {
    let store = Memory::default();
    // killed after 60 elements, 25 after its checkpoint at element 34
    let (first, ended) = run(&store, 200, &[10, 34], Some(60));
    assert!(!ended);
    let (second, ended) = run(&store, 200, &[120], None);
    assert!(ended);
    let expected = uninterrupted(200);
    for (i, want) in expected.iter().enumerate() {
        let got: Vec<String> = first[i].iter().chain(&second[i]).cloned().collect();
        assert_eq!(&got, want, "output {i}");
    }
}

#[test]
fn a_run_that_ended_stays_ended() {
    let store = Memory::default();
    let (_, ended) = run(&store, 50, &[], None);
    assert!(ended);
    let (again, ended) = run(&store, 50, &[], None);
    assert!(ended);
    assert!(
        !again.is_empty() && again.iter().all(Vec::is_empty),
        "{again:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Stopped any number of times, each after a random number of elements and with
    /// checkpoints at random moments, the runs together give the uninterrupted run's outputs.
    #[test]
    fn any_sequence_of_stops_gives_the_uninterrupted_outputs(
        n in 1u64..150,
        runs in proptest::collection::vec(
            (proptest::collection::vec(0u64..150, 0..4), 0u64..60),
            0..6,
        ),
    ) {
        let kept = runs_of(&SYNC, n, &runs);
        prop_assert!(kept.is_some());
        let got = joined(kept.unwrap_or_default());
        prop_assert_eq!(got, uninterrupted(n));
    }

    /// On virtual time: a timed window's elements, a total behind a buffer and a delay, and a
    /// partition with a timeout's elements, stopped and restored at random moments, come out
    /// as from a run never stopped, each element once (a window's boundaries move at a
    /// restart: its schedule starts again, and so does a restored batch's timeout).
    #[test]
    fn timed_windows_and_buffers_restored_at_random_moments_lose_and_double_nothing(
        n in 1u64..80,
        runs in proptest::collection::vec(
            (proptest::collection::vec(0u64..80, 0..4), 0u64..40),
            0..5,
        ),
    ) {
        let kept = runs_of(&TIMED, n, &runs);
        prop_assert!(kept.is_some());
        let (mut elements, mut totals, mut batched) = (Vec::new(), Vec::new(), Vec::new());
        for (w, t, b) in kept.unwrap_or_default() {
            elements.extend(w);
            totals.extend(t);
            batched.extend(b);
        }
        prop_assert_eq!(&batched, &(0..n).collect::<Vec<_>>());
        prop_assert_eq!(elements, (0..n).collect::<Vec<_>>());
        let expected: Vec<u64> = (0..n).scan(0, |a, x| { *a += x; Some(*a) }).collect();
        prop_assert_eq!(totals, expected);
    }
}

#[test]
fn a_checkpoint_waits_for_a_buffer_to_drain_but_not_for_a_timed_window() {
    let store = Memory::default();
    let build = || {
        let executor = VirtualExecutor::new();
        let source = Stream::<u64>::with_executor(executor.clone());
        // the buffer's elements are moving: the cut waits until the total has them
        let totals = source
            .buffer(100)
            .rate_limit("10ms")
            .durable()
            .accumulate(|a: &u64, x| a + x)
            .sink_to_vec();
        // the window's are at rest: the cut saves them without waiting for its tick
        let windows = source.durable().timed_window("1h").sink_to_vec();
        let (checkpoints, feed) = source.checkpoint::<u64>(store.clone(), "1h").unwrap();
        (executor, totals, windows, checkpoints, feed)
    };
    let (executor, totals, windows, checkpoints, feed) = build();
    executor.block_on(async {
        for x in 1..=20 {
            feed.emit(x, x).await.unwrap();
        }
        let started = executor.clock().now();
        let info = checkpoints.checkpoint_now().await.unwrap();
        // the rate limit let the twenty out over 190 ms, and the window did not close
        let waited = executor.clock().now() - started;
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        assert!(waited < Duration::from_secs(1), "{waited:?}");
        assert_eq!(info.entries, 3);
    });
    assert!(checkpoints.not_durable().is_empty());
    assert_eq!(totals.to_vec().last(), Some(&210));
    assert!(windows.to_vec().is_empty());
    drop((checkpoints, feed));

    // restored: the window holds the twenty, and emits them with the next element at its tick
    let (executor, totals, windows, checkpoints, feed) = build();
    assert_eq!(checkpoints.restored().map(|c| c.id), Some(1));
    assert_eq!(feed.position(), Some(20));
    executor.block_on(async {
        feed.emit(21, 21).await.unwrap();
    });
    executor.advance(Duration::from_secs(3600));
    assert_eq!(totals.to_vec(), vec![231]);
    assert_eq!(windows.to_vec()[0], (1..=21).collect::<Vec<u64>>());
}

#[test]
fn checkpoints_are_taken_every_interval() {
    let store = Memory::default();
    let executor = VirtualExecutor::new();
    let source = Stream::<u64>::with_executor(executor.clone());
    let _totals = source
        .durable()
        .accumulate(|a: &u64, x| a + x)
        .sink_to_vec();
    let (checkpoints, feed) = source.checkpoint::<u64>(store.clone(), "1s").unwrap();
    executor.block_on(async {
        for x in 0..50 {
            feed.emit(x, x + 1).await.unwrap();
            executor.clock().sleep(Duration::from_millis(100)).await;
        }
    });
    // 5 s of virtual time: a checkpoint each second
    let last = checkpoints.last().unwrap();
    assert_eq!(last.id, 5);
    let saved = store.load().unwrap().unwrap();
    assert_eq!(saved.id, 5);
    assert!(saved.get("source #1").is_some() && saved.get("accumulate #1").is_some());
}

/// The error `start` gives for `store` with `build`'s graph.
fn restore_error(store: &Memory, build: impl Fn(&Stream<u64>), fresh: &[&str]) -> String {
    let executor = VirtualExecutor::new();
    let source = Stream::<u64>::with_executor(executor.clone());
    build(&source);
    let mut builder = Checkpoints::builder(store.clone());
    for key in fresh {
        builder = builder.fresh(key);
    }
    let _feed = builder.feed::<u64, u64>(&source);
    match builder.start() {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_changed_pipeline_is_an_error_naming_each_node_unless_started_fresh() {
    let store = Memory::default();
    {
        let executor = VirtualExecutor::new();
        let source = Stream::<u64>::with_executor(executor.clone());
        source
            .durable()
            .accumulate(|a: &u64, x| a + x)
            .named("total");
        source.durable().sliding_window(2, true);
        let (checkpoints, feed) = source.checkpoint::<u64>(store.clone(), "1h").unwrap();
        executor.block_on(async {
            feed.emit(1, 1).await.unwrap();
            checkpoints.checkpoint_now().await.unwrap();
        });
    }
    let same = |s: &Stream<u64>| {
        s.durable().accumulate(|a: &u64, x| a + x).named("total");
        s.durable().sliding_window(2, true);
    };
    assert_eq!(restore_error(&store, same, &[]), "");

    // the window became a partition, and a unique was added
    let changed = |s: &Stream<u64>| {
        s.durable().accumulate(|a: &u64, x| a + x).named("total");
        s.durable().partition(2);
        s.durable().unique(None);
    };
    let err = restore_error(&store, changed, &[]);
    for part in [
        "the last checkpoint (#1) does not fit this graph",
        "`partition #1` is new, or was renamed",
        "`unique #1` is new",
        "`sliding_window #1` has a state in it, and is not in this graph",
        "start those nodes fresh: `partition #1`, `unique #1`, `sliding_window #1`",
    ] {
        assert!(err.contains(part), "{part:?} not in: {err}");
    }
    let fresh = ["partition #1", "unique #1", "sliding_window #1"];
    assert_eq!(restore_error(&store, changed, &fresh), "");

    // the same name on another operator, and a state of another type
    let renamed = |s: &Stream<u64>| {
        s.durable().sliding_window(3, true).named("total");
        s.durable().sliding_window(2, true);
    };
    let err = restore_error(&store, renamed, &[]);
    assert!(
        err.contains("`total` was a `accumulate` and is now a `sliding_window`"),
        "{err}"
    );
    let retyped = |s: &Stream<u64>| {
        s.map(|x| x.to_string())
            .durable()
            .accumulate(|a: &String, x| a.clone() + &x)
            .named("total");
        s.durable().sliding_window(2, true);
    };
    let err = restore_error(&store, retyped, &[]);
    assert!(
        err.contains(
            "`total` has a state that does not read as alloc::string::String (it was saved as u64)"
        ),
        "{err}"
    );

    // two durable nodes with one name: the second is `total #2`
    let twice = |s: &Stream<u64>| {
        s.durable().accumulate(|a: &u64, x| a + x).named("total");
        s.durable().accumulate(|a: &u64, x| a * x).named("total");
        s.durable().sliding_window(2, true);
    };
    let err = restore_error(&store, twice, &[]);
    assert!(err.contains("`total #2` is new"), "{err}");
}

#[test]
fn a_store_that_fails_is_an_error_and_the_graph_without_executor_too() {
    struct Broken;
    impl StateStore for Broken {
        fn load(&self) -> Result<Option<Checkpoint>, StoreError> {
            Err(StoreError::new("state.db is damaged"))
        }
        fn save(&self, _: &Checkpoint) -> Result<(), StoreError> {
            Err(StoreError::new("disk full"))
        }
    }
    let executor = VirtualExecutor::new();
    let source = Stream::<u64>::with_executor(executor.clone());
    let err = source.checkpoint::<u64>(Broken, "1s").unwrap_err();
    assert_eq!(err.to_string(), "state.db is damaged");

    let source = Stream::<u64>::new();
    let err = source
        .checkpoint::<u64>(Memory::default(), "1s")
        .unwrap_err();
    assert!(err.to_string().contains("need an executor"), "{err}");
}

#[test]
fn a_failed_save_goes_to_the_error_stream_and_the_run_goes_on() {
    struct Full;
    impl StateStore for Full {
        fn load(&self) -> Result<Option<Checkpoint>, StoreError> {
            Ok(None)
        }
        fn save(&self, _: &Checkpoint) -> Result<(), StoreError> {
            Err(StoreError::new("state.db: disk full"))
        }
    }
    let executor = VirtualExecutor::new();
    let source = Stream::<u64>::with_executor(executor.clone());
    let errors = source.errors().sink_to_vec();
    let totals = source
        .durable()
        .accumulate(|a: &u64, x| a + x)
        .sink_to_vec();
    let (checkpoints, feed) = source.checkpoint::<u64>(Full, "1s").unwrap();
    executor.block_on(async {
        feed.emit(1, 1).await.unwrap();
        let err = checkpoints.checkpoint_now().await.unwrap_err();
        assert_eq!(err.to_string(), "state.db: disk full");
        executor.clock().sleep(Duration::from_millis(1500)).await;
        feed.emit(2, 2).await.unwrap();
    });
    assert_eq!(totals.to_vec(), vec![1, 3]);
    let errors = errors.to_vec();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), streamz_core::ErrorKind::Checkpoint);
    assert!(checkpoints.last().is_none());
}

/// A durable timed window's elements, a durable total behind a buffer and a delay, and a
/// durable partition with a timeout's elements.
type Timed = (VecSink<u64>, VecSink<u64>, VecSink<u64>);

/// What `Timed`'s sinks had.
type TimedOut = (Vec<u64>, Vec<u64>, Vec<u64>);

const TIMED: Graph<Timed, TimedOut> = Graph {
    build: |source| {
        let windows = source
            .durable()
            .timed_window("35ms")
            .flatten()
            .sink_to_vec();
        let totals = source
            .buffer(4)
            .delay("15ms")
            .durable()
            .accumulate(|a: &u64, x| a + x)
            .sink_to_vec();
        let batches = source
            .durable()
            .partition_timeout(3, "25ms")
            .flatten()
            .sink_to_vec();
        (windows, totals, batches)
    },
    read: |(windows, totals, batches)| (windows.to_vec(), totals.to_vec(), batches.to_vec()),
    pace: Some(Duration::from_millis(10)),
};

#[test]
fn a_graph_that_is_never_still_is_reported_naming_what_holds_it() {
    let executor = VirtualExecutor::new();
    let source = Stream::<u64>::with_executor(executor.clone());
    let errors = source.errors().sink_to_vec();
    let totals = source
        .delay("5s")
        .named("slow")
        .durable()
        .accumulate(|a: &u64, x| a + x)
        .sink_to_vec();
    let (checkpoints, feed) = source.checkpoint::<u64>(Memory::default(), "1s").unwrap();
    executor.block_on(async {
        // an element every 100 ms, each held 5 s: the delay always holds some
        for x in 0..150 {
            feed.emit(x, x + 1).await.unwrap();
            executor.clock().sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(checkpoints.last().is_none());
    let errors = errors.to_vec();
    assert!(!errors.is_empty());
    let message = errors[0].to_string();
    assert!(
        message.contains("no checkpoint for 10 intervals: the graph never came still")
            && message.contains("`slow` ("),
        "{message}"
    );
    assert!(!totals.to_vec().is_empty());
}

#[test]
fn checkpoints_started_once_elements_are_held_are_refused() {
    let executor = VirtualExecutor::new();
    let source = Stream::<u64>::with_executor(executor.clone());
    let _held = source.delay("1h").named("waiting").sink_to_vec();
    executor.block_on(async { source.emit(1).await.unwrap() });
    let err = source
        .checkpoint::<u64>(Memory::default(), "1s")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`waiting` already holds elements"), "{err}");
}

/// A broker-like source: it reads from `next`, and commits what `durable` is told.
#[derive(Default)]
struct Log {
    next: std::sync::atomic::AtomicU64,
    committed: Mutex<Vec<u64>>,
}

impl streamz_core::SourceState for Log {
    type Position = u64;
    fn position(&self) -> u64 {
        self.next.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn restore(&self, next: u64) {
        self.next.store(next, std::sync::atomic::Ordering::Relaxed);
    }
    fn durable(&self, next: &u64) {
        self.committed.lock().unwrap().push(*next);
    }
}

#[test]
fn a_source_with_its_own_position_commits_only_what_a_checkpoint_covers() {
    use std::sync::atomic::Ordering;
    let store = Memory::default();
    // a run killed after 8 records, with a checkpoint after the fifth
    let run = |upto: u64, checkpoint_at: Option<u64>| {
        let executor = VirtualExecutor::new();
        let source = Stream::<u64>::with_executor(executor.clone());
        let totals = source
            .durable()
            .accumulate(|a: &u64, x| a + x)
            .sink_to_vec();
        let log = Arc::new(Log::default());
        let mut builder = Checkpoints::builder(store.clone());
        let gate = builder.source(&source, log.clone());
        let checkpoints = builder.start().unwrap();
        executor.block_on(async {
            while log.next.load(Ordering::Relaxed) < upto {
                let offset = log.next.load(Ordering::Relaxed);
                let turn = gate.enter().await;
                source.emit(offset).await.unwrap();
                log.next.store(offset + 1, Ordering::Relaxed);
                drop(turn);
                if checkpoint_at == Some(offset + 1) {
                    checkpoints.checkpoint_now().await.unwrap();
                }
            }
        });
        let committed = log.committed.lock().unwrap().clone();
        (totals.to_vec(), committed)
    };
    let (totals, committed) = run(8, Some(5));
    assert_eq!(totals.last(), Some(&28));
    // only the checkpoint's position was committed, not the three records after it
    assert_eq!(committed, vec![5]);
    // restarted: resumes at 5, with the total of 0..5
    let (totals, committed) = run(10, Some(10));
    assert_eq!(totals, vec![15, 21, 28, 36, 45]);
    assert_eq!(committed, vec![10]);
}

/// The event-time windows of `pipeline` see what their checkpoints must carry: late
/// elements, updates within lateness, early results, merged sessions.
#[test]
fn the_event_time_windows_meet_every_case() {
    let out = uninterrupted(200);
    assert!(!out[1].is_empty(), "late elements");
    assert!(out[0].iter().any(|r| r.contains("Late")), "updates");
    assert!(out[2].iter().any(|r| r.contains("Early")), "early results");
    assert!(
        out[4].iter().any(|r| r.matches(',').count() > 2),
        "sessions of several"
    );
}
