//! Rewiring a graph while other threads emit through it: nothing is lost, duplicated or torn.
//! (The lock-free list this exercises is model-checked with loom in `streamz-core`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use streamz_core::Stream;

#[test]
fn connecting_and_disconnecting_while_emitting() {
    let source = Stream::<u64>::new();
    let steady = Arc::new(AtomicU64::new(0));
    let count = steady.clone();
    source.map(|x| x + 1).sink(move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    let flickering = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    std::thread::scope(|scope| {
        let rewire = {
            let (source, flickering, stop) = (source.clone(), flickering.clone(), stop.clone());
            scope.spawn(move || {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let down = Stream::new();
                    let seen = flickering.clone();
                    down.sink(move |_: u64| {
                        seen.fetch_add(1, Ordering::Relaxed);
                    });
                    source.connect(&down);
                    std::thread::yield_now();
                    assert!(source.disconnect(&down));
                    rounds += 1;
                }
                rounds
            })
        };
        let emitters: Vec<_> = (0..2)
            .map(|t| {
                let source = source.clone();
                scope.spawn(move || {
                    for x in 0..20_000 {
                        source.emit_blocking(t * 100_000 + x).unwrap();
                    }
                })
            })
            .collect();
        for e in emitters {
            e.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(rewire.join().unwrap() > 0);
    });
    // the steady branch saw every element exactly once; the flickering ones at most that
    assert_eq!(steady.load(Ordering::Relaxed), 40_000);
    assert!(flickering.load(Ordering::Relaxed) <= 40_000);
}
