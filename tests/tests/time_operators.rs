//! Every time-based operator, at exact virtual times, identical on every executor: the core's
//! virtual executor, tokio with paused time, smol and async-std on a manual clock.

use std::sync::{Arc, Mutex};

use streamz_core::{Emit, ErrorKind, Keep, Stream, ZipInput};
use streamz_tests::harness::{Harness, Runtime};
use streamz_tests::on_every_executor;

on_every_executor!(
    rate_limit_spaces_awaited_emits,
    rate_limit_queues_unawaited_emits_into_slots,
    rate_limit_passes_at_once_after_idle,
    delay_delays_every_element,
    timed_window_keeps_a_fixed_schedule_with_empty_windows,
    timed_window_waits_for_the_previous_window_downstream,
    timed_window_unique_keeps_first_or_last,
    timed_window_merges_windows_a_slow_downstream_overran,
    buffer_admits_n_plus_one_then_waits,
    latest_drops_but_keeps_the_newest,
    partition_timeout_per_key,
    partition_timeout_is_cancelled_when_the_batch_fills,
    zip_maxsize_waits_for_the_other_input,
    map_async_runs_in_parallel_and_keeps_order,
    async_sink_error_after_buffer_goes_to_the_error_stream,
    close_drains_buffers_delays_and_windows,
    debounce_passes_the_last_of_each_burst,
    throttle_leading_trailing_and_both,
    sample_passes_the_newest_on_a_fixed_schedule,
    debounce_throttle_and_sample_pass_on_what_they_hold_at_close,
);

/// Records `(time, value)` at a sink.
fn timed<T: Clone + Send + 'static>(
    rt: &Runtime,
    stream: &Stream<T>,
) -> streamz_core::VecSink<(u64, T)> {
    let now = rt.clock_ms();
    stream.map(move |x| (now(), x)).sink_to_vec()
}

fn rate_limit_spaces_awaited_emits<H: Harness>() {
    let (out, returned) = H::run(|rt| async move {
        let source = rt.source();
        let out = timed(&rt, &source.rate_limit("50ms"));
        let mut returned = Vec::new();
        for x in 0..4u32 {
            source.emit(x).await.unwrap();
            returned.push(rt.now_ms());
        }
        (out.to_vec(), returned)
    });
    assert_eq!(
        out,
        vec![(0, 0), (50, 1), (100, 2), (150, 3)],
        "on {}",
        H::NAME
    );
    assert_eq!(returned, vec![0, 50, 100, 150], "on {}", H::NAME);
}

fn rate_limit_queues_unawaited_emits_into_slots<H: Harness>() {
    let (out, returned) = H::run(|rt| async move {
        let source = rt.source();
        let out = timed(&rt, &source.rate_limit("50ms"));
        let emits: Vec<Emit> = (0..3u32).map(|x| source.emit(x)).collect();
        let mut returned = Vec::new();
        for emit in emits {
            emit.await.unwrap();
            returned.push(rt.now_ms());
        }
        (out.to_vec(), returned)
    });
    assert_eq!(out, vec![(0, 0), (50, 1), (100, 2)], "on {}", H::NAME);
    assert_eq!(returned, vec![0, 50, 100], "on {}", H::NAME);
}

fn rate_limit_passes_at_once_after_idle<H: Harness>() {
    let out = H::run(|rt| async move {
        let source = rt.source();
        let out = timed(&rt, &source.rate_limit("50ms"));
        source.emit('a').await.unwrap();
        rt.sleep_ms(200).await;
        source.emit('b').await.unwrap(); // nothing owed: no wait
        source.emit('c').await.unwrap();
        out.to_vec()
    });
    assert_eq!(
        out,
        vec![(0, 'a'), (200, 'b'), (250, 'c')],
        "on {}",
        H::NAME
    );
}

fn delay_delays_every_element<H: Harness>() {
    let (out, returned) = H::run(|rt| async move {
        let source = rt.source();
        let out = timed(&rt, &source.delay("200ms"));
        let mut returned = Vec::new();
        for (x, pause) in [(1u8, 30), (2, 70), (3, 0)] {
            source.emit(x).await.unwrap();
            returned.push(rt.now_ms());
            rt.sleep_ms(pause).await;
        }
        source.flush().await;
        (out.to_vec(), returned)
    });
    assert_eq!(out, vec![(200, 1), (230, 2), (300, 3)], "on {}", H::NAME);
    assert_eq!(returned, vec![0, 30, 100], "on {}", H::NAME);
}

fn timed_window_keeps_a_fixed_schedule_with_empty_windows<H: Harness>() {
    let out = H::run(|rt| async move {
        let source = rt.source();
        let out = timed(&rt, &source.timed_window("50ms"));
        for (pause, x) in [(5, 'a'), (10, 'b'), (45, 'c'), (10, 'd')] {
            rt.sleep_ms(pause).await;
            source.emit(x).await.unwrap();
        }
        rt.sleep_ms(140).await; // to 210 ms
        source.close().await.unwrap();
        source.closed().await;
        out.to_vec()
    });
    assert_eq!(
        out,
        vec![
            (50, vec!['a', 'b']),
            (100, vec!['c', 'd']),
            (150, vec![]),
            (200, vec![])
        ],
        "on {}",
        H::NAME
    );
}

fn timed_window_waits_for_the_previous_window_downstream<H: Harness>() {
    let (written, returned) = H::run(|rt| async move {
        let source = rt.source();
        let now = rt.clock_ms();
        let written = Arc::new(Mutex::new(Vec::new()));
        let log = written.clone();
        let slow = rt.clone();
        source
            .timed_window_nonempty("50ms")
            .sink_async(move |w: Vec<u8>| {
                let (log, slow, now) = (log.clone(), slow.clone(), now.clone());
                async move {
                    slow.sleep_ms(30).await; // a slow write: 50..80 ms
                    log.lock().unwrap().push((now(), w));
                }
            });
        let mut returned = Vec::new();
        rt.sleep_ms(5).await;
        source.emit(1).await.unwrap();
        returned.push(rt.now_ms());
        rt.sleep_ms(55).await; // 60 ms: the first window is being written
        source.emit(2).await.unwrap();
        returned.push(rt.now_ms());
        rt.sleep_ms(100).await;
        let written = written.lock().unwrap().clone();
        (written, returned)
    });
    assert_eq!(
        written,
        vec![(80, vec![1]), (130, vec![2])],
        "on {}",
        H::NAME
    );
    assert_eq!(returned, vec![5, 80], "on {}", H::NAME);
}

fn timed_window_merges_windows_a_slow_downstream_overran<H: Harness>() {
    // Found by the property tests: a downstream slower than the interval used to make the
    // window emit every missed tick at once, for ever, starving the emitter.
    let (written, returned) = H::run(|rt| async move {
        let source = rt.source();
        let now = rt.clock_ms();
        let written = Arc::new(Mutex::new(Vec::new()));
        let (log, slow) = (written.clone(), rt.clone());
        source.timed_window("10ms").sink_async(move |w: Vec<char>| {
            let (log, slow, now) = (log.clone(), slow.clone(), now.clone());
            async move {
                slow.sleep_ms(25).await; // longer than the interval
                log.lock().unwrap().push((now(), w));
            }
        });
        let mut returned = Vec::new();
        rt.sleep_ms(5).await;
        source.emit('a').await.unwrap();
        returned.push(rt.now_ms());
        rt.sleep_ms(7).await;
        source.emit('b').await.unwrap(); // waits for the first window's write
        returned.push(rt.now_ms());
        source.emit('c').await.unwrap();
        returned.push(rt.now_ms());
        rt.sleep_ms(31).await;
        source.close().await.unwrap();
        source.closed().await;
        let written = written.lock().unwrap().clone();
        (written, returned)
    });
    // windows close at 10 ms and, the 20 and 30 ms ones overrun, at 40 ms
    assert_eq!(
        written,
        vec![(35, vec!['a']), (65, vec!['b', 'c'])],
        "on {}",
        H::NAME
    );
    assert_eq!(returned, vec![5, 35, 35], "on {}", H::NAME);
}

fn timed_window_unique_keeps_first_or_last<H: Harness>() {
    let (first, last) = H::run(|rt| async move {
        let source = rt.source();
        let first = timed(
            &rt,
            &source.timed_window_unique("50ms", Keep::First, |s: &&str| s.len()),
        );
        let last = timed(
            &rt,
            &source.timed_window_unique("50ms", Keep::Last, |s: &&str| s.len()),
        );
        rt.sleep_ms(1).await;
        for s in ["f", "fo", "f", "foo", "f", "foo", "foo", "fo"] {
            source.emit(s).await.unwrap();
        }
        rt.sleep_ms(100).await; // to 101 ms
        (first.to_vec(), last.to_vec())
    });
    assert_eq!(
        first,
        vec![(50, vec!["f", "fo", "foo"]), (100, vec![])],
        "on {}",
        H::NAME
    );
    assert_eq!(
        last,
        vec![(50, vec!["f", "foo", "fo"]), (100, vec![])],
        "on {}",
        H::NAME
    );
}

fn buffer_admits_n_plus_one_then_waits<H: Harness>() {
    let (admitted, written) = H::run(|rt| async move {
        let source = rt.source();
        let now = rt.clock_ms();
        let written = Arc::new(Mutex::new(Vec::new()));
        let (log, slow) = (written.clone(), rt.clone());
        source.buffer(2).sink_async(move |x: u32| {
            let (log, slow, now) = (log.clone(), slow.clone(), now.clone());
            async move {
                slow.sleep_ms(10).await;
                log.lock().unwrap().push((now(), x));
            }
        });
        let mut admitted = Vec::new();
        for x in 0..6 {
            source.emit(x).await.unwrap();
            admitted.push(rt.now_ms());
        }
        source.flush().await;
        let written = written.lock().unwrap().clone();
        (admitted, written)
    });
    // two queued and one being written go in at once; then one per write
    assert_eq!(admitted, vec![0, 0, 0, 10, 20, 30], "on {}", H::NAME);
    assert_eq!(
        written,
        vec![(10, 0), (20, 1), (30, 2), (40, 3), (50, 4), (60, 5)],
        "on {}",
        H::NAME
    );
}

fn latest_drops_but_keeps_the_newest<H: Harness>() {
    let written = H::run(|rt| async move {
        let source = rt.source();
        let now = rt.clock_ms();
        let written = Arc::new(Mutex::new(Vec::new()));
        let (log, slow) = (written.clone(), rt.clone());
        source.map(|x: u32| x + 1).latest().sink_async(move |x| {
            let (log, slow, now) = (log.clone(), slow.clone(), now.clone());
            async move {
                slow.sleep_ms(50).await;
                log.lock().unwrap().push((now(), x));
            }
        });
        source.emit(1).await.unwrap();
        rt.sleep_ms(10).await;
        source.emit(2).await.unwrap();
        source.emit(3).await.unwrap();
        rt.sleep_ms(200).await;
        source.emit(9).await.unwrap();
        source.flush().await;
        written.lock().unwrap().clone()
    });
    // 3 is dropped while 2 is being written; 4, the newest, is written next; 10 after idle
    assert_eq!(
        written,
        vec![(50, 2), (100, 4), (260, 10)],
        "on {}",
        H::NAME
    );
}

fn partition_timeout_per_key<H: Harness>() {
    let out = H::run(|rt| async move {
        let source = rt.source();
        let out = timed(
            &rt,
            &source.partition_by_timeout(3, "50ms", |x: &u32| x % 2),
        );
        for x in 0..3 {
            source.emit(x).await.unwrap();
            rt.sleep_ms(10).await;
        }
        rt.sleep_ms(100).await;
        out.to_vec()
    });
    // key 0's batch started at 0 ms, key 1's at 10 ms
    assert_eq!(out, vec![(50, vec![0, 2]), (60, vec![1])], "on {}", H::NAME);
}

fn partition_timeout_is_cancelled_when_the_batch_fills<H: Harness>() {
    let (early, late) = H::run(|rt| async move {
        let source = rt.source();
        let out = timed(&rt, &source.partition_timeout(3, "100ms"));
        for x in 0..3 {
            source.emit(x).await.unwrap();
        }
        rt.sleep_ms(90).await;
        source.emit(3).await.unwrap();
        rt.sleep_ms(20).await; // 110 ms: the first batch's timer must not have fired
        let early = out.to_vec();
        rt.sleep_ms(90).await;
        (early, out.to_vec())
    });
    assert_eq!(early, vec![(0, vec![0, 1, 2])], "on {}", H::NAME);
    assert_eq!(
        late,
        vec![(0, vec![0, 1, 2]), (190, vec![3])],
        "on {}",
        H::NAME
    );
}

fn zip_maxsize_waits_for_the_other_input<H: Harness>() {
    let (out, returned) = H::run(|rt| async move {
        let (a, b) = (rt.source(), rt.source());
        let out = timed(
            &rt,
            &Stream::zip_all([ZipInput::from(&a), ZipInput::from(&b)], 2),
        );
        a.emit(1).await.unwrap();
        a.emit(2).await.unwrap();
        let third = async {
            a.emit(3).await.unwrap(); // a holds maxsize = 2: waits for b
            rt.now_ms()
        };
        let feed_b = async {
            rt.sleep_ms(30).await;
            b.emit(10).await.unwrap();
        };
        let (returned, ()) = futures_util::join!(third, feed_b);
        (out.to_vec(), returned)
    });
    assert_eq!(out, vec![(30, vec![1, 10])], "on {}", H::NAME);
    assert_eq!(returned, 30, "on {}", H::NAME);
}

fn map_async_runs_in_parallel_and_keeps_order<H: Harness>() {
    let (out, returned) = H::run(|rt| async move {
        let source = rt.source();
        let slow = rt.clone();
        let mapped = source.map_async(2, move |x: u64| {
            let slow = slow.clone();
            async move {
                slow.sleep_ms(40 - 10 * x).await; // later ones are quicker
                x * 100
            }
        });
        let out = timed(&rt, &mapped);
        let mut returned = Vec::new();
        for x in 0..4 {
            source.emit(x).await.unwrap();
            returned.push(rt.now_ms());
        }
        source.flush().await;
        (out.to_vec(), returned)
    });
    // two run at once: 0 and 1 start at 0 ms (done at 40 and 30); a slot frees when its
    // result is handed on, in order, so 2 and 3 start at 40 ms (done at 60 and 50); order is
    // kept
    assert_eq!(
        out,
        vec![(40, 0), (40, 100), (60, 200), (60, 300)],
        "on {}",
        H::NAME
    );
    assert_eq!(returned, vec![0, 0, 0, 0], "on {}", H::NAME);
}

fn async_sink_error_after_buffer_goes_to_the_error_stream<H: Harness>() {
    let (written, errors) = H::run(|rt| async move {
        let source = rt.source();
        let errors = source.errors().sink_to_vec();
        let written = Arc::new(Mutex::new(Vec::new()));
        let (log, slow) = (written.clone(), rt.clone());
        source.buffer(4).try_sink_async(move |x: u32| {
            let (log, slow) = (log.clone(), slow.clone());
            async move {
                slow.sleep_ms(5).await;
                if x == 2 {
                    return Err(format!("cannot write {x}"));
                }
                log.lock().unwrap().push(x);
                Ok(())
            }
        });
        for x in 0..6 {
            source.emit(x).await.unwrap();
        }
        source.flush().await;
        let written = written.lock().unwrap().clone();
        (written, errors.to_vec())
    });
    assert_eq!(written, vec![0, 1, 3, 4, 5], "on {}", H::NAME);
    assert_eq!(errors.len(), 1, "on {}", H::NAME);
    assert_eq!(errors[0].kind(), ErrorKind::Failed);
    assert_eq!(errors[0].node().unwrap().name(), "sink_async");
    assert!(
        errors[0].to_string().contains("cannot write 2"),
        "{}",
        errors[0]
    );
}

fn close_drains_buffers_delays_and_windows<H: Harness>() {
    let (buffered, delayed, windows, closed_at) = H::run(|rt| async move {
        let source = rt.source();
        let buffered = timed(&rt, &source.buffer(10).rate_limit("10ms"));
        let delayed = timed(&rt, &source.delay("100ms"));
        let windows = timed(&rt, &source.timed_window("1s"));
        for x in 0..3u8 {
            source.emit(x).await.unwrap();
        }
        source.close().await.unwrap();
        source.closed().await;
        (
            buffered.to_vec(),
            delayed.to_vec(),
            windows.to_vec(),
            rt.now_ms(),
        )
    });
    assert_eq!(buffered, vec![(0, 0), (10, 1), (20, 2)], "on {}", H::NAME);
    assert_eq!(
        delayed,
        vec![(100, 0), (100, 1), (100, 2)],
        "on {}",
        H::NAME
    );
    assert_eq!(windows, vec![(0, vec![0, 1, 2])], "on {}", H::NAME);
    assert_eq!(closed_at, 100, "on {}", H::NAME);
}

/// Emits `(at ms, x)` in order of time, then sleeps `tail` ms.
async fn emit_at<T: Clone + Send + 'static>(
    rt: &Runtime,
    source: &Stream<T>,
    xs: &[(u64, T)],
    tail: u64,
) {
    for (ms, x) in xs {
        rt.sleep_ms(ms - rt.now_ms()).await;
        source.emit(x.clone()).await.unwrap();
    }
    rt.sleep_ms(tail).await;
}

fn debounce_passes_the_last_of_each_burst<H: Harness>() {
    let out = H::run(|rt| async move {
        let source = rt.source();
        let out = timed(&rt, &source.debounce("50ms"));
        let xs = [
            (0, 'a'),
            (20, 'b'),
            (40, 'c'),
            (200, 'd'),
            (230, 'e'),
            (300, 'f'),
        ];
        emit_at(&rt, &source, &xs, 100).await;
        out.to_vec()
    });
    assert_eq!(
        out,
        vec![(90, 'c'), (280, 'e'), (350, 'f')],
        "on {}",
        H::NAME
    );
}

fn throttle_leading_trailing_and_both<H: Harness>() {
    let out = H::run(|rt| async move {
        let source = rt.source();
        let leading = timed(&rt, &source.throttle("100ms", true, false));
        let trailing = timed(&rt, &source.throttle("100ms", false, true));
        let both = timed(&rt, &source.throttle("100ms", true, true));
        let xs = [(0, 0u32), (30, 1), (60, 2), (100, 3), (130, 4), (400, 5)];
        emit_at(&rt, &source, &xs, 300).await;
        (leading.to_vec(), trailing.to_vec(), both.to_vec())
    });
    // leading: 0 starts [0, 100); 3 at 100 starts [100, 200); 5 at 400
    assert_eq!(
        out.0,
        vec![(0, 0), (100, 3), (400, 5)],
        "leading, on {}",
        H::NAME
    );
    // trailing: 0 starts [0, 100) and 2 ends it; 3 arrives as it ends, in [100, 200), which 4
    // ends; 5 starts [400, 500)
    assert_eq!(
        out.1,
        vec![(100, 2), (200, 4), (500, 5)],
        "trailing, on {}",
        H::NAME
    );
    // both: 0 at once, 2 at 100 (and a period to 200), which 4 ends; 5 at once
    assert_eq!(
        out.2,
        vec![(0, 0), (100, 2), (200, 4), (400, 5)],
        "both, on {}",
        H::NAME
    );
}

fn sample_passes_the_newest_on_a_fixed_schedule<H: Harness>() {
    let out = H::run(|rt| async move {
        let source = rt.source();
        let out = timed(&rt, &source.sample("100ms"));
        let xs = [(10, 'a'), (50, 'b'), (150, 'c'), (420, 'd'), (480, 'e')];
        emit_at(&rt, &source, &xs, 200).await;
        out.to_vec()
    });
    // ticks at 100, 200, …: nothing came between 200 and 400
    assert_eq!(
        out,
        vec![(100, 'b'), (200, 'c'), (500, 'e')],
        "on {}",
        H::NAME
    );
}

fn debounce_throttle_and_sample_pass_on_what_they_hold_at_close<H: Harness>() {
    let out = H::run(|rt| async move {
        let source = rt.source();
        let debounced = timed(&rt, &source.debounce("1s"));
        let throttled = timed(&rt, &source.throttle("1s", true, true));
        let sampled = timed(&rt, &source.sample("1s"));
        emit_at(&rt, &source, &[(0, 1u8), (10, 2), (20, 3)], 0).await;
        source.close().await.unwrap();
        (debounced.to_vec(), throttled.to_vec(), sampled.to_vec())
    });
    assert_eq!(out.0, vec![(20, 3)], "debounce, on {}", H::NAME);
    assert_eq!(out.1, vec![(0, 1), (20, 3)], "throttle, on {}", H::NAME);
    assert_eq!(out.2, vec![(20, 3)], "sample, on {}", H::NAME);
}
