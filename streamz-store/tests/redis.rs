//! `RedisStore` against a real redis-server (started by each test on 127.0.0.1; skipped when
//! there is none, unless `STREAMZ_REQUIRE_REDIS=1`, as in CI): checkpoints saved and loaded,
//! kept across a server killed and restarted, damage detected, a server away an error and then
//! not, and a pipeline restored from it.

use std::time::Duration;

use streamz_core::Executor;

use streamz_core::{Checkpoint, StateStore, Stream, VirtualExecutor};
use streamz_store::RedisStore;
use streamz_store::testing::RedisServer;

fn checkpoint(id: u64, entries: usize) -> Checkpoint {
    let mut c = Checkpoint::new(id);
    for i in 0..entries {
        c.insert(format!("node #{i}"), (0..i * 7).map(|b| b as u8).collect());
    }
    c
}

/// A plain connection to the server, to damage what the store wrote.
fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

#[test]
fn checkpoints_round_trip_and_outlive_a_killed_server() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::open(&server.url(), "pipeline-a").unwrap();
    assert_eq!(store.load().unwrap(), None);
    for id in 1..=20 {
        store.save(&checkpoint(id, 300)).unwrap();
    }
    let loaded = store.load().unwrap().unwrap();
    let saved = checkpoint(20, 300);
    assert_eq!(loaded.id, 20);
    assert!(loaded.entries().eq(saved.entries()));
    // another key is another store
    let other = RedisStore::open(&server.url(), "pipeline-b").unwrap();
    assert_eq!(other.load().unwrap(), None);

    // killed with SIGKILL and started again: what it acknowledged is there
    server.restart();
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.id, 20);
    assert_eq!(loaded.entries().count(), 300);
    assert_eq!(loaded.get("node #299").map(<[u8]>::len), Some(299 * 7));
}

#[test]
fn a_damaged_value_is_an_error_never_an_empty_store() {
    use redis::Commands;
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut raw = raw(&server.url());
    let store = RedisStore::open(&server.url(), "damaged").unwrap();
    store.save(&checkpoint(3, 10)).unwrap();
    let () = raw.set("damaged", "something else").unwrap();
    let err = store.load().unwrap_err().to_string();
    assert!(
        err.contains("under `damaged` is damaged (it is not a checkpoint streamz wrote)"),
        "{err}"
    );
    // cut short, or one byte changed, anywhere: an error, or (the time only) the same
    store.save(&checkpoint(4, 50)).unwrap();
    let whole: Vec<u8> = raw.get("damaged").unwrap();
    for cut in [whole.len() / 2, whole.len() - 1, 9, 40] {
        let () = raw.set("damaged", &whole[..cut]).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(
            err.contains("is damaged (it is cut short)"),
            "cut at {cut}: {err}"
        );
    }
    for i in (48..whole.len()).step_by(97) {
        let mut changed = whole.clone();
        changed[i] ^= 0x10;
        let () = raw.set("damaged", changed).unwrap();
        assert!(
            store.load().is_err(),
            "a byte changed at {i} was not caught"
        );
    }
}

#[test]
fn a_server_away_is_an_error_until_it_is_back() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::open(&server.url(), "away").unwrap();
    store.save(&checkpoint(1, 3)).unwrap();
    server.stop();
    let err = store.save(&checkpoint(2, 3)).unwrap_err().to_string();
    assert!(
        err.contains(&server.url()) && err.contains("writing"),
        "{err}"
    );
    assert!(RedisStore::open(&server.url(), "away").is_err());
    server.start_again();
    // the store connects again by itself; the failed save left the one before
    assert_eq!(store.load().unwrap().unwrap().id, 1);
    store.save(&checkpoint(2, 3)).unwrap();
    assert_eq!(store.load().unwrap().unwrap().id, 2);
    let err = RedisStore::open("http://nowhere", "k")
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a Redis URL"), "{err}");
}

#[test]
fn a_pipeline_resumes_from_its_checkpoint_in_redis() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let run = |url: &str, upto: u64| {
        let executor = VirtualExecutor::new();
        let source = Stream::<u64>::with_executor(executor.clone());
        let totals = source
            .durable()
            .accumulate(|a: &u64, x| a + x)
            .sink_to_vec();
        let windows = source.durable().sliding_window(3, true).sink_to_vec();
        let store = RedisStore::open(url, "totals").unwrap();
        let (checkpoints, feed) = source.checkpoint::<u64>(store, "1s").unwrap();
        let from = feed.position().unwrap_or(0);
        executor.block_on(async {
            for x in from..upto {
                feed.emit(x, x + 1).await.unwrap();
                executor.clock().sleep(Duration::from_millis(100)).await;
            }
            checkpoints.finish().await.unwrap();
        });
        (totals.to_vec(), windows.to_vec())
    };
    let (totals, _) = run(&server.url(), 30);
    assert_eq!(totals.last(), Some(&435));
    server.restart();
    let (totals, windows) = run(&server.url(), 33);
    assert_eq!(totals, vec![465, 496, 528]);
    assert_eq!(windows[0], vec![28, 29, 30]);
}
