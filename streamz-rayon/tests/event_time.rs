//! Watermarks across the pool: a window after `scatter … gather` closes when the watermark
//! passes, and never before the pool's results are in.

use streamz_core::{EventTime, Stream, Watermarks, Window};
use streamz_rayon::{Pool, ScatterExt};

#[test]
fn the_watermark_crosses_the_pool_behind_its_elements() {
    let pool = Pool::new(2).unwrap();
    let source: Stream<(u32, i64)> = Stream::with_executor(pool.clone());
    let at = |x: &(u32, i64)| EventTime::from_secs(x.1);
    let (windows, late) = source
        .watermarks(at, Watermarks::ascending())
        .scatter(&pool)
        .map(|(k, t): (u32, i64)| {
            // slow enough that a watermark passing the pool early would find them missing
            std::thread::sleep(std::time::Duration::from_millis(2));
            (k * 10, t)
        })
        .buffer(8)
        .gather()
        .window(Window::tumbling("10s"), at)
        .fold(0u32, |sum, x| *sum += x.0);
    let sums = windows
        .map(|w| (w.start.as_millis() / 1000, w.value))
        .sink_to_vec();
    let late = late.sink_to_vec();
    for t in 0..40i64 {
        source.emit_blocking((1, t)).unwrap();
    }
    futures_executor::block_on(source.flush());
    let before_close = sums.to_vec();
    source.emit_blocking((1, 45)).unwrap();
    source.close().wait().unwrap();
    assert!(late.to_vec().is_empty(), "{:?}", late.to_vec());
    // the watermark reached 39 s: [0, 10) … [20, 30) closed, each with its ten elements
    assert_eq!(before_close, vec![(0, 100), (10, 100), (20, 100)]);
    assert_eq!(sums.to_vec().len(), 5);
}
