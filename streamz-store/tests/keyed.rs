//! A keyed count over 100,000 keys, checkpointed into a redb file every 50 ms, in a process
//! killed with SIGKILL at twenty random moments and started again until it ends: its final
//! state is the uninterrupted run's (every key counted exactly as often), and its output has
//! every element, repeats only after a checkpoint.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamz_core::{StateStore, Stream};
use streamz_store::RedbStore;
use streamz_store::testing::{kill_at_progress, kill_seed};
use streamz_tokio::TokioExecutor;

const KEYS: u64 = 100_000;
const ELEMENTS: u64 = 1_000_000;

/// The child: counts `ELEMENTS` elements by key, resuming from the store at
/// `STREAMZ_KEYED_DB`, appending each element's `x count` to `STREAMZ_KEYED_OUT`.
#[test]
#[ignore = "a child of a_keyed_count_killed_twenty_times_ends_as_the_run_never_killed"]
fn keyed_counter() {
    let (Ok(db), Ok(out)) = (
        std::env::var("STREAMZ_KEYED_DB"),
        std::env::var("STREAMZ_KEYED_OUT"),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)
            .unwrap();
        let file = Arc::new(Mutex::new(std::io::LineWriter::new(file)));
        let source = Stream::<u64>::with_executor(TokioExecutor::current());
        source
            .durable()
            .scan(HashMap::<u64, u64>::new(), |counts, x: u64| {
                let n = counts.entry(x % KEYS).or_insert(0);
                *n += 1;
                (x, *n)
            })
            .sink(move |(x, n)| {
                writeln!(file.lock().unwrap(), "{x} {n}").unwrap();
            });
        let store = RedbStore::open(&db).unwrap();
        let (checkpoints, feed) = source.checkpoint::<u64>(store, "50ms").unwrap();
        let from = feed.position().unwrap_or(0);
        let input = futures_util::stream::iter((from..ELEMENTS).map(|x| (x, x + 1)));
        feed.run(input).await.unwrap();
        checkpoints.finish().await.unwrap();
    });
}

/// The counts a store's last checkpoint holds.
fn counts(db: &std::path::Path) -> HashMap<u64, u64> {
    let checkpoint = RedbStore::open(db).unwrap().load().unwrap().unwrap();
    let framed = checkpoint.get("accumulate #1").unwrap();
    // `op\ntype\nstate`
    let state = framed.splitn(3, |&b| b == b'\n').nth(2).unwrap();
    rmp_serde::from_slice(state).unwrap()
}

fn child(db: &std::path::Path, out: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "keyed_counter", "--ignored", "--test-threads=1"])
        .env("STREAMZ_KEYED_DB", db)
        .env("STREAMZ_KEYED_OUT", out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_keyed_count_killed_twenty_times_ends_as_the_run_never_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (db, out) = (dir.path().join("state.db"), dir.path().join("out.txt"));
    // the moments to kill at (`kill_at_progress`); STREAMZ_KILL_SEED repeats a run's
    let seed = kill_seed();
    eprintln!("kill seed {seed} (STREAMZ_KILL_SEED={seed} repeats these moments)");
    let mut random = seed;
    // how far the output has come: one past the furthest element among its last lines
    let progress = || -> u64 {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .lines()
            .rev()
            .take(64)
            .filter_map(|l| l.split_once(' ')?.0.parse::<u64>().ok())
            .max()
            .map_or(0, |x| x + 1)
    };
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "no end after {kills} kills");
        let mut child = child(&db, &out);
        if kills < 20 {
            // while counting, or writing a checkpoint
            kill_at_progress(&mut child, kills, ELEMENTS, &mut random, &progress);
            kills += 1;
            continue;
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        break;
    }
    assert_eq!(kills, 20, "the run ended before it was killed twenty times");

    // the state: every key counted ELEMENTS / KEYS times, as a run never killed counts it
    let counts = counts(&db);
    assert_eq!(counts.len() as u64, KEYS);
    assert!(counts.values().all(|&n| n == ELEMENTS / KEYS));

    // the output: each element at least once; the last count of each key right; an element
    // repeated only with the count it had the first time (the restored state replays it)
    let text = std::fs::read_to_string(&out).unwrap();
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut repeats = 0;
    for line in text.lines() {
        let (x, n) = line.split_once(' ').unwrap();
        let (x, n): (u64, u64) = (x.parse().unwrap(), n.parse().unwrap());
        assert_eq!(n, x / KEYS + 1, "element {x} counted as {n}");
        if seen.insert(x, n).is_some() {
            repeats += 1;
        }
    }
    assert_eq!(
        seen.len() as u64,
        ELEMENTS,
        "elements missing from the output"
    );
    eprintln!(
        "{kills} SIGKILLs: {} lines out, {repeats} repeats",
        text.lines().count()
    );
}
