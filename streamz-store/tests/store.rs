//! RedbStore against real files: damaged and truncated files are errors, never an empty
//! store; a process killed while it saves leaves a whole checkpoint; a file another store
//! has open is refused; any sequence of saves loads as its last.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use streamz_core::{Checkpoint, StateStore};
use streamz_store::RedbStore;

/// A checkpoint whose every entry says which checkpoint it belongs to.
fn numbered(id: u64, entries: usize, size: usize) -> Checkpoint {
    let mut checkpoint = Checkpoint::new(id);
    for i in 0..entries {
        let mut state = id.to_le_bytes().to_vec();
        state.resize(size.max(8), (id % 251) as u8);
        checkpoint.insert(format!("node-{i}"), state);
    }
    checkpoint
}

/// Whether every entry of `checkpoint` is of its own number (none left from another).
fn whole(checkpoint: &Checkpoint, entries: usize) -> bool {
    checkpoint.len() == entries
        && checkpoint
            .entries()
            .all(|(_, state)| state[..8] == checkpoint.id.to_le_bytes())
}

fn saved(path: &Path, checkpoint: &Checkpoint) {
    RedbStore::open(path).unwrap().save(checkpoint).unwrap();
}

#[test]
fn a_file_that_is_not_a_store_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "these are my notes, not a checkpoint store\n".repeat(200),
    )
    .unwrap();
    let e = RedbStore::open(&path).unwrap_err();
    assert!(e.message().contains(&path.display().to_string()), "{e}");
    assert!(e.message().contains("damaged"), "{e}");
}

#[test]
fn a_truncated_store_is_an_error_never_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    saved(&path, &numbered(3, 2000, 200));
    let len = std::fs::metadata(&path).unwrap().len();
    for keep in [len / 2, len / 8, 100] {
        let copy = dir.path().join(format!("cut-{keep}.db"));
        std::fs::copy(&path, &copy).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(keep)
            .unwrap();
        let loaded = RedbStore::open(&copy).and_then(|s| s.load());
        match loaded {
            Err(e) => assert!(e.message().contains(&copy.display().to_string()), "{e}"),
            Ok(got) => panic!(
                "a store cut to {keep} of {len} bytes loaded, as checkpoint {:?}",
                got.map(|c| c.id)
            ),
        }
    }
}

#[test]
fn damaged_bytes_are_an_error_or_the_checkpoint_as_saved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let checkpoint = numbered(5, 500, 100);
    saved(&path, &checkpoint);
    let len = std::fs::metadata(&path).unwrap().len();
    let mut errors = 0;
    for k in 1..40u64 {
        let copy = dir.path().join(format!("flip-{k}.db"));
        std::fs::copy(&path, &copy).unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
        file.seek(SeekFrom::Start(len * k / 40)).unwrap();
        file.write_all(&[0xA5; 64]).unwrap();
        drop(file);
        match RedbStore::open(&copy).and_then(|s| s.load()) {
            Err(_) => errors += 1,
            // bytes of a page nothing uses: what was saved, whole
            Ok(got) => assert!(
                got.as_ref() == Some(&checkpoint),
                "damage at {k}/40 loaded as something else"
            ),
        }
    }
    assert!(errors > 0, "no damage was noticed");
}

#[test]
fn a_store_open_elsewhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let _open = RedbStore::open(&path).unwrap();
    let e = RedbStore::open(&path).unwrap_err();
    assert!(e.message().contains("in use"), "{e}");
}

/// Run as a child by the kill test: saves checkpoints 1, 2, 3, … until killed.
#[test]
#[ignore = "a child of a_process_killed_while_saving_leaves_a_whole_checkpoint"]
fn saver() {
    let Ok(path) = std::env::var("STREAMZ_STORE_SAVER") else {
        return;
    };
    let store = RedbStore::open(&path).unwrap();
    let first = store.load().unwrap().map_or(1, |c| c.id + 1);
    for id in first.. {
        store.save(&numbered(id, 300, 1000)).unwrap();
        println!("{id}");
    }
}

#[test]
fn a_process_killed_while_saving_leaves_a_whole_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut last = 0;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    for kill in 0..12 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "saver",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("STREAMZ_STORE_SAVER", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(50 + seed % 300));
        child.kill().unwrap();
        child.wait().unwrap();
        let started = Instant::now();
        let loaded = RedbStore::open(&path)
            .unwrap_or_else(|e| panic!("after kill {kill}: {e}"))
            .load()
            .unwrap_or_else(|e| panic!("after kill {kill}: {e}"));
        assert!(started.elapsed() < Duration::from_secs(30));
        if let Some(checkpoint) = loaded {
            assert!(
                whole(&checkpoint, 300),
                "after kill {kill}: checkpoint {} mixed",
                checkpoint.id
            );
            assert!(
                checkpoint.id >= last,
                "after kill {kill}: {} after {last}",
                checkpoint.id
            );
            last = checkpoint.id;
        }
    }
    assert!(last > 0, "no checkpoint was ever saved");
    eprintln!("12 kills while saving: the last whole checkpoint was number {last}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_saves_load_as_the_last(
        saves in prop::collection::vec(
            prop::collection::btree_map("[a-z]{1,8}", prop::collection::vec(any::<u8>(), 0..64), 0..20),
            1..6,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("s.db")).unwrap();
        let mut expected = None;
        for (id, entries) in saves.into_iter().enumerate() {
            let mut checkpoint = Checkpoint::new(id as u64 + 1);
            for (k, v) in entries {
                checkpoint.insert(k, v);
            }
            store.save(&checkpoint).unwrap();
            expected = Some(checkpoint);
        }
        let loaded = store.load().unwrap();
        let key = |c: &Option<Checkpoint>| {
            c.as_ref().map(|c| (c.id, c.entries().map(|(k, v)| (k.to_owned(), v.to_vec())).collect::<Vec<_>>()))
        };
        prop_assert_eq!(key(&loaded), key(&expected));
    }
}
