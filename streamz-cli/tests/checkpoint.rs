//! `streamz run --checkpoint`: a run killed with SIGKILL at random moments and started again
//! with the same command ends with the output and the state of a run that was never
//! killed; a pipeline that changed, a damaged store and a source that cannot resume are
//! errors.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use streamz_core::StateStore;
use streamz_store::RedbStore;

const PIPELINE: &str = "from_textfile in.txt follow=false json=true \
    | accumulate \"acc + x\" start=0 | partition 3 | sliding_window 2 \
    | sink_to_textfile out.txt";

fn streamz(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("streamz"));
    command
        .current_dir(dir)
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let out = streamz(dir, args).output().unwrap();
    assert!(out.status.code().is_some(), "killed: {out:?}");
    out
}

/// The entries of a store's checkpoint (its number and time aside).
fn state(path: &Path) -> Vec<(String, Vec<u8>)> {
    let checkpoint = RedbStore::open(path).unwrap().load().unwrap().unwrap();
    checkpoint
        .entries()
        .map(|(k, v)| (k.to_owned(), v.to_vec()))
        .collect()
}

#[test]
fn a_file_pipeline_killed_twenty_times_ends_as_the_run_never_killed() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    std::fs::write(dir.path().join("in.txt"), lines).unwrap();

    // the run never killed, checkpointed too, for its final state
    let out = run(dir.path(), &["--checkpoint", "whole.db", PIPELINE]);
    assert!(out.status.success(), "{out:?}");
    let reference = std::fs::read_to_string(dir.path().join("out.txt")).unwrap();
    let reference: Vec<&str> = reference.lines().collect();
    assert_eq!(reference.len(), 33_334);
    let index: HashMap<&str, usize> = reference.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    assert_eq!(
        index.len(),
        reference.len(),
        "each line of this output is unique"
    );
    std::fs::remove_file(dir.path().join("out.txt")).unwrap();

    let args = [
        "--checkpoint",
        "state.db",
        "--checkpoint-every",
        "50ms",
        PIPELINE,
    ];
    // the moments to kill at (`kill_at_progress`); STREAMZ_KILL_SEED repeats a run's
    let seed = common::kill_seed();
    eprintln!("kill seed {seed} (STREAMZ_KILL_SEED={seed} repeats these moments)");
    let mut random = seed;
    let out_path = dir.path().join("out.txt");
    // how far the output has come: the furthest line of the reference among its last ones
    let progress = || -> u64 {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .lines()
            .rev()
            .take(64)
            .filter_map(|l| index.get(l))
            .max()
            .map_or(0, |i| *i as u64 + 1)
    };
    let mut kills = 0;
    let mut runs = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < deadline, "no end after {runs} runs");
        runs += 1;
        let mut child = streamz(dir.path(), &args).spawn().unwrap();
        if kills < 20 {
            let len = reference.len() as u64;
            common::kill_at_progress(&mut child, kills, len, &mut random, progress);
            kills += 1;
            continue;
        }
        let out = common::wait(child, Duration::from_secs(120));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        break;
    }
    assert_eq!(kills, 20, "the run ended before it was killed twenty times");

    // the output: every line of the reference, in order; after each kill the run goes back
    // to its last checkpoint and repeats what followed it, so a line may come again, never
    // missing
    let output = std::fs::read_to_string(dir.path().join("out.txt")).unwrap();
    let mut next = 0;
    let mut repeated = 0;
    for line in output.lines() {
        let i = *index
            .get(line)
            .unwrap_or_else(|| panic!("a line that is not in the reference: {line:?}"));
        assert!(i <= next, "a gap: line {next} missing, {i} came");
        if i < next {
            repeated += 1;
        }
        next = next.max(i + 1);
    }
    assert_eq!(next, reference.len(), "the output stops short");
    assert_eq!(output.lines().last(), reference.last().copied());
    eprintln!(
        "{runs} runs, {kills} SIGKILLs: {} lines out, {} of them repeats",
        output.lines().count(),
        repeated
    );
    // the state: the same as the run never killed, entry by entry
    assert_eq!(
        state(&dir.path().join("state.db")),
        state(&dir.path().join("whole.db"))
    );
}

#[test]
fn a_run_that_ended_is_not_run_again_and_a_changed_pipeline_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "1\n2\n3\n4\n5\n").unwrap();
    let out = run(dir.path(), &["--checkpoint", "state.db", PIPELINE]);
    assert!(out.status.success(), "{out:?}");
    let first = std::fs::read_to_string(dir.path().join("out.txt")).unwrap();
    assert_eq!(first, "[[1,3,6]]\n[[1,3,6],[10,15]]\n");

    // the same command again: it resumes at the end, and has nothing to add
    let out = run(dir.path(), &["--checkpoint", "state.db", PIPELINE]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming from checkpoint #"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        first
    );

    // a stage changed: refused, naming it
    let changed = PIPELINE.replace("acc + x", "acc + 2 * x");
    let out = run(dir.path(), &["--checkpoint", "state.db", &changed]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not fit this graph")
            && stderr.contains(
                "`accumulate \"acc + x\" start=0` has a state in it, and is not in this graph"
            )
            && stderr.contains("`accumulate \"acc + 2 * x\" start=0` is new"),
        "{stderr}"
    );
    assert!(stderr.contains("--checkpoint-fresh"), "{stderr}");
    // started afresh on purpose
    let out = run(
        dir.path(),
        &[
            "--checkpoint",
            "state.db",
            "--checkpoint-fresh",
            "accumulate \"acc + x\" start=0",
            "--checkpoint-fresh",
            "accumulate \"acc + 2 * x\" start=0",
            &changed,
        ],
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_damaged_store_is_an_error_never_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "1\n2\n3\n").unwrap();
    let out = run(dir.path(), &["--checkpoint", "state.db", PIPELINE]);
    assert!(out.status.success(), "{out:?}");
    let path = dir.path().join("state.db");
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let out = run(dir.path(), &["--checkpoint", "state.db", PIPELINE]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--checkpoint") && stderr.contains("state.db"),
        "{stderr}"
    );

    // not a store at all
    std::fs::write(&path, "not a database").unwrap();
    let out = run(dir.path(), &["--checkpoint", "state.db", PIPELINE]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn sources_that_cannot_resume_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["--checkpoint", "state.db", "stdin | accumulate \"acc + x\""],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the source `stdin` cannot resume"),
        "{stderr}"
    );

    // MQTT's messages say nothing a checkpoint could know them again by; core NATS keeps none
    #[cfg(all(feature = "mqtt", feature = "nats"))]
    for source in [
        "from_mqtt readings port=1",
        "from_nats readings server=127.0.0.1:1",
    ] {
        let pipeline = format!("{source} | accumulate \"acc + x\"");
        let out = run(dir.path(), &["--checkpoint", "broker.db", &pipeline]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot resume"), "{source}: {stderr}");
    }

    let out = run(dir.path(), &["--checkpoint-every", "1s", "range 3"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// The sums of `range 400`, slowed down, checkpointed into `store` (a file or a Redis URL,
/// with `extra` options): run, killed after 700 ms, then run again to the end. Checks that
/// the killed run had got somewhere and the last sum is right; the second run's stderr.
fn sums_killed_and_resumed(dir: &Path, store: &str, extra: &[&str]) -> String {
    let pipeline =
        "range 400 | rate_limit 5ms | accumulate \"acc + x\" start=0 | sink_to_textfile out.txt";
    sums_of(dir, store, extra, pipeline)
}

/// As `sums_killed_and_resumed`, through `pipeline` (the sums of `range 400` into out.txt).
fn sums_of(dir: &Path, store: &str, extra: &[&str], pipeline: &str) -> String {
    let mut args = vec!["--checkpoint", store, "--checkpoint-every", "100ms"];
    args.extend_from_slice(extra);
    args.push(pipeline);
    let child = streamz(dir, &args).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    common::signal(&child, "KILL");
    let _ = common::wait(child, Duration::from_secs(10));
    let partial = std::fs::read_to_string(dir.join("out.txt")).unwrap();
    assert!(partial.lines().count() > 20, "{partial}");
    let out = run(dir, &args);
    assert!(out.status.success(), "{out:?}");
    let output = std::fs::read_to_string(dir.join("out.txt")).unwrap();
    // every number once in the last sum, whatever was repeated
    assert_eq!(output.lines().last(), Some("79800"));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn range_and_values_resume_after_the_last_element_taken() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = sums_killed_and_resumed(dir.path(), "state.db", &[]);
    assert!(stderr.contains("resuming from checkpoint #"), "{stderr}");
    std::fs::remove_file(dir.path().join("out.txt")).unwrap();
    let pipeline = "values '[1, 2, 3]' | accumulate \"acc + x\" | sink_to_textfile out.txt";
    let out = run(dir.path(), &["--checkpoint", "values.db", pipeline]);
    assert!(out.status.success(), "{out:?}");
    let out = run(dir.path(), &["--checkpoint", "values.db", pipeline]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "1\n3\n6\n"
    );
}

#[test]
fn a_run_checkpointed_in_redis_resumes_after_a_kill() {
    let Some(server) = streamz_store::testing::RedisServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let stderr = sums_killed_and_resumed(dir.path(), &url, &["--checkpoint-key", "sums"]);
    assert!(stderr.contains("resuming from checkpoint #"), "{stderr}");
    // no server there: an error naming it
    drop(server);
    let out = run(dir.path(), &["--checkpoint", &url, "range 3"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&url) && stderr.contains("is the server running"),
        "{stderr}"
    );
}

#[test]
fn stats_and_the_dashboard_show_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = "range 100000 | rate_limit 2ms | accumulate \"acc + x\" start=0 | sink null";
    let state = dir.path().join("state.db");
    let state = state.to_str().unwrap();
    let (mut child, url, stderr) = common::spawn_announcing(
        &[
            "run",
            "--stats",
            "--dashboard=127.0.0.1:0",
            "--checkpoint",
            state,
            "--checkpoint-every",
            "200ms",
            pipeline,
        ],
        "dashboard: http://",
    );
    let addr = url.strip_suffix("/status").unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(1500));
    let figures = common::get(&addr, "/api/graph");
    assert!(figures.contains("\"checkpoint\":{"), "{figures}");
    let metrics = common::get(&addr, "/metrics");
    assert!(metrics.contains("streamz_checkpoint_id "), "{metrics}");
    assert!(
        metrics.contains("streamz_checkpoint_pause_seconds "),
        "{metrics}"
    );
    common::signal(&child, "INT");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut { stderr }, &mut rest).unwrap();
    // a line a second, and the summary's last line
    assert!(rest.contains(", checkpoint #"), "{rest}");
    assert!(rest.contains("last checkpoint #"), "{rest}");
}

#[cfg(feature = "rayon")]
#[test]
fn the_pools_accumulate_resumes_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = "range 400 | rate_limit 5ms | scatter | buffer 4 \
        | accumulate \"acc + x\" start=0 | gather | sink_to_textfile out.txt";
    let stderr = sums_of(dir.path(), "pool.db", &[], pipeline);
    assert!(stderr.contains("resuming from checkpoint #"), "{stderr}");
}
