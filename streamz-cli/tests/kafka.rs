//! At-least-once through Kafka, shown with a real broker (tansu, on 127.0.0.1): `streamz run
//! 'from_kafka in | … | to_kafka out'` killed with SIGKILL at several moments and restarted
//! with the same group loses nothing, and reads again at most `max_in_flight` records per
//! kill; the same through `partition` and through `scatter … gather`; a poison record under
//! each error policy; a broker that goes away and comes back. Each test skips when there is
//! no `tansu`, unless `STREAMZ_REQUIRE_KAFKA=1` (CI).

#![cfg(all(unix, feature = "kafka"))]

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use streamz_kafka::testing::Broker;

mod common;

use common::{interrupt, kill_seed, next_random, signal, spawn_run, wait};

/// How many times each value appears in `topic`, reading until `want` distinct ones are
/// there or 60 s have passed.
fn counts(broker: &Broker, topic: &str, want: usize) -> BTreeMap<i64, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut counts = BTreeMap::new();
        for record in broker.read_all(topic, usize::MAX, Duration::from_millis(700)) {
            let v: i64 = record.value_str().unwrap().parse().unwrap();
            *counts.entry(v).or_insert(0) += 1;
        }
        if counts.len() >= want || Instant::now() > deadline {
            return counts;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `n` records into `in`, a pipeline `middle` between from_kafka and to_kafka killed with
/// SIGKILL at a random moment within 250 ms after the group has committed each of `kills` (a
/// fraction of `n`, in thousandths) and run to the end once more: every record reaches `out`, and the duplicates are at
/// most `max_in_flight` a kill. `middle` is slowed by a `rate_limit`, so each kill lands
/// while records are in flight.
fn survives_kills(middle: &str, n: usize, kills: &[usize]) {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("in", 3);
    broker.create_topic("out", 1);
    broker.produce("in", (0..n).map(|i| i.to_string()));
    let b = broker.address();
    let max_in_flight = 500;
    let pipeline = format!(
        "from_kafka in brokers={b} group=g json=true max_in_flight={max_in_flight} session_timeout=3s config=max.poll.interval.ms=20000 | rate_limit 500us | {middle} | to_kafka out brokers={b}"
    );
    let committed = || broker.committed("g", "in").values().sum::<i64>();
    let seed = kill_seed();
    let mut random = seed;
    let mut at = Vec::new();
    for &permille in kills {
        let target = (n * permille / 1000) as i64;
        let child = spawn_run(&pipeline, &["--stats"]);
        let deadline = Instant::now() + Duration::from_secs(90);
        while committed() < target {
            if Instant::now() > deadline {
                signal(&child, "KILL");
                let out = wait(child, Duration::from_secs(10));
                let log = broker.log();
                panic!(
                    "no progress to {target} (committed {}; kills so far at {at:?}; STREAMZ_KILL_SEED={seed}); streamz said: {}\nthe end of the broker's log: {}",
                    committed(),
                    String::from_utf8_lossy(&out.stderr),
                    &log[log.len().saturating_sub(4000)..]
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // then a random moment within the next 250 ms
        std::thread::sleep(Duration::from_millis(next_random(&mut random) % 250));
        signal(&child, "KILL");
        let out = wait(child, Duration::from_secs(10));
        assert!(!out.status.success(), "killed");
        at.push(committed());
    }
    assert!(
        at.iter().all(|&c| c < n as i64),
        "every kill landed before the end (committed at each: {at:?})"
    );
    // the last run: until everything is out, then SIGINT (drains, commits, exits 0)
    let child = spawn_run(&pipeline, &["--stats"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while committed() < n as i64 - 10 {
        assert!(Instant::now() < deadline, "the last run did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let stderr = interrupt(child);
    let seen = counts(&broker, "out", n);
    let missing: Vec<i64> = (0..n as i64)
        .filter(|v| !seen.contains_key(v))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "missing from out: {missing:?}…");
    assert_eq!(seen.len(), n, "nothing but the input");
    let duplicates: usize = seen.values().map(|&k| k - 1).sum();
    eprintln!(
        "`{middle}`: {n} records, {} kills (committed at each: {at:?}; STREAMZ_KILL_SEED={seed}), {duplicates} duplicates",
        kills.len()
    );
    assert!(
        duplicates <= kills.len() * max_in_flight,
        "{duplicates} duplicates after {} kills",
        kills.len()
    );
    // the group committed everything it read
    assert_eq!(committed(), n as i64);
    assert!(
        stderr.contains("committed"),
        "--stats shows the partitions: {stderr}"
    );
}

fn child_running(child: &Child) -> bool {
    Command::new("kill")
        .args(["-0", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn sigkill_and_restart_lose_nothing() {
    survives_kills("map \"x\"", 10_000, &[100, 300, 450, 600, 800]);
}

#[test]
fn sigkill_and_restart_lose_nothing_through_partition() {
    survives_kills("partition 7 | flatten", 10_000, &[200, 500, 750]);
}

#[cfg(feature = "rayon")]
#[test]
fn sigkill_and_restart_lose_nothing_through_scatter_and_gather() {
    survives_kills("scatter | map \"x\" | gather", 10_000, &[200, 500, 750]);
}

#[test]
fn a_poison_record_stops_the_run_uncommitted_or_is_skipped() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("in", 1);
    broker.create_topic("out", 1);
    let mut input: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    input[40] = "poison".into(); // not JSON
    broker.produce("in", &input);
    let b = broker.address();
    let pipeline = |group: &str| {
        format!(
            "from_kafka in brokers={b} group={group} json=true | map \"x\" | to_kafka out brokers={b}"
        )
    };
    // --on-error fail (the default): exit 2, the poison record and what follows uncommitted
    for _ in 0..2 {
        let out = wait(spawn_run(&pipeline("strict"), &[]), Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("offset 40 of in/0"), "{stderr}");
        assert!(stderr.contains("not JSON"), "{stderr}");
        // a restart reads it again, and fails again: nothing past it is committed
        assert_eq!(broker.committed("strict", "in").get(&0), Some(&40));
    }
    // --on-error skip: reported, committed past, the rest delivered
    let child = spawn_run(&pipeline("lenient"), &["--on-error", "skip"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.committed("lenient", "in").get(&0) != Some(&100) {
        assert!(Instant::now() < deadline, "lenient never committed 100");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stderr = interrupt(child);
    assert!(stderr.contains("offset 40 of in/0"), "{stderr}");
}

#[test]
fn a_broker_that_goes_away_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut broker) = Broker::start_persistent(dir.path()) else {
        return;
    };
    broker.create_topic("in", 2);
    broker.create_topic("out", 1);
    broker.produce("in", (0..1000).map(|i| i.to_string()));
    let b = broker.address();
    let child = spawn_run(
        &format!(
            "from_kafka in brokers={b} group=g json=true | map \"x\" | to_kafka out brokers={b}"
        ),
        &[],
    );
    assert_eq!(counts(&broker, "out", 1000).len(), 1000);
    broker.kill();
    std::thread::sleep(Duration::from_secs(2));
    assert!(child_running(&child), "streamz waits for the broker");
    broker.restart();
    broker.produce("in", (1000..2000).map(|i| i.to_string()));
    let seen = counts(&broker, "out", 2000);
    assert_eq!(
        seen.len(),
        2000,
        "what was produced after the broker came back is delivered"
    );
    interrupt(child);
}

/// `--checkpoint` through Kafka: `from_kafka → accumulate → partition → sliding_window →
/// to_kafka`, SIGKILLed twenty times at random moments and started again with the same
/// command, then stopped with SIGINT once the group has committed every record. What reaches
/// `out` is exactly the output of a run never killed (whose count reaches the number of
/// records: each counted once, the count restored after each kill), each window at least
/// once, the repeats counted; the group was committed only what checkpoints held, and
/// everything by the end.
#[test]
fn sigkill_and_restart_with_checkpoints_count_each_record_once() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    broker.create_topic("in", 3);
    broker.create_topic("out", 1);
    let n: u64 = 10_000;
    broker.produce("in", (0..n).map(|i| i.to_string()));
    let b = broker.address();
    let store = dir.path().join("state.db");
    let store = store.to_str().unwrap();
    let pipeline = format!(
        "from_kafka in brokers={b} group=g json=true session_timeout=3s config=max.poll.interval.ms=20000 \
         | rate_limit 200us | accumulate \"acc + 1\" start=0 | partition 4 | sliding_window 2 \
         | to_kafka out brokers={b}"
    );
    let args = ["--checkpoint", store, "--checkpoint-every", "100ms"];
    let committed = || broker.committed("g", "in").values().sum::<i64>() as u64;
    let seed = kill_seed();
    eprintln!("kill seed {seed} (STREAMZ_KILL_SEED={seed} repeats these moments)");
    let mut random = seed;
    let mut at = Vec::new();
    for kill in 0..20 {
        let mut child = spawn_run(&pipeline, &args);
        common::kill_at_progress(&mut child, kill, n, &mut random, committed);
        let out = wait(child, Duration::from_secs(10));
        assert!(!out.status.success(), "killed");
        at.push(committed());
    }
    assert!(
        at.iter().all(|&c| c < n),
        "every kill landed before the end (committed at each: {at:?})"
    );
    // the last run: until the group has committed everything, then SIGINT (the last
    // checkpoint, exit 0)
    let child = spawn_run(&pipeline, &args);
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed() < n {
        assert!(
            Instant::now() < deadline,
            "the last run did not finish (committed {})",
            committed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = interrupt(child);
    assert!(stderr.contains("resuming from checkpoint"), "{stderr}");

    let want = common::windows_of_counts(n as usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while seen.len() < want.len() && Instant::now() < deadline {
        seen.clear();
        for record in broker.read_all("out", usize::MAX, Duration::from_millis(700)) {
            *seen
                .entry(record.value_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let repeats = common::repeats_of_exactly(&want, &seen);
    eprintln!(
        "{n} records, 20 kills (the group committed at each: {at:?}; STREAMZ_KILL_SEED={seed}): \
         {} windows, all there, {repeats} repeated (those after a kill's last checkpoint)",
        want.len()
    );
    // a kill repeats what followed its last checkpoint: at most a few intervals' worth
    assert!(
        repeats <= 20 * 500,
        "{repeats} windows repeated after 20 kills"
    );
    assert_eq!(committed(), n, "every record committed at the end");
}
