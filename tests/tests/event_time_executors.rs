//! Event time at exact virtual times, identical on every executor: windows closed by the
//! watermark as elements arrive, the idle rule (on the graph's clock), the skew rule,
//! watermarks waiting behind what a buffer or a delay holds, and late elements.

use std::time::Duration;

use streamz_core::{ErrorKind, EventTime, Firing, Stream, Watermarks, Window, Windowed};
use streamz_tests::harness::{Harness, Runtime};
use streamz_tests::on_every_executor;

on_every_executor!(
    tumbling_windows_close_as_the_watermark_passes,
    sliding_and_session_windows_at_exact_times,
    an_idle_input_stops_holding_the_union_back,
    a_silent_input_holds_the_union_back_until_its_idle_timeout,
    one_element_far_ahead_moves_the_watermark_by_the_skew_only,
    the_watermark_waits_behind_a_delay,
    the_watermark_waits_behind_a_buffer_and_an_async_step,
    late_elements_go_to_the_late_stream_and_are_counted,
    late_elements_with_no_late_stream_are_errors,
    lateness_keeps_a_window_for_updates,
);

/// An event: (key, time in seconds, value).
type Event = (&'static str, i64, i64);

fn at(x: &Event) -> EventTime {
    EventTime::from_secs(x.1)
}

fn secs(t: EventTime) -> i64 {
    t.as_millis() / 1000
}

/// Records `(processing time in ms, key, start s, end s, value, firing)` at a sink.
type Seen = (u64, &'static str, i64, i64, i64, Firing);

fn record(
    rt: &Runtime,
    windows: &Stream<Windowed<&'static str, i64>>,
) -> streamz_core::VecSink<Seen> {
    let now = rt.clock_ms();
    windows
        .map(move |w| (now(), w.key, secs(w.start), secs(w.end), w.value, w.firing))
        .sink_to_vec()
}

fn sum(acc: &mut i64, x: &Event) {
    *acc += x.2;
}

fn tumbling_windows_close_as_the_watermark_passes<H: Harness>() {
    let seen = H::run(|rt| async move {
        let source = rt.source();
        let (windows, _late) = source
            .watermarks(at, Watermarks::bounded("1s"))
            .window(Window::tumbling("10s"), at)
            .key(|x| x.0)
            .fold(0, sum);
        let out = record(&rt, &windows);
        for (ms, x) in [
            (0, ("a", 1, 1)),
            (10, ("b", 2, 10)),
            (20, ("a", 9, 2)),
            (30, ("a", 8, 4)),   // out of order, on time
            (40, ("b", 12, 20)), // watermark 11 s: [0, 10) closes for a and b
            (50, ("a", 15, 8)),
            (60, ("a", 22, 16)), // watermark 21 s: [10, 20) closes
        ] {
            rt.sleep_ms(ms - rt.now_ms()).await;
            source.emit(x).await.unwrap();
        }
        rt.sleep_ms(10).await;
        source.close().await.unwrap();
        out.to_vec()
    });
    assert_eq!(
        seen,
        vec![
            (40, "a", 0, 10, 7, Firing::OnTime),
            (40, "b", 0, 10, 10, Firing::OnTime),
            (60, "b", 10, 20, 20, Firing::OnTime),
            (60, "a", 10, 20, 8, Firing::OnTime),
            (70, "a", 20, 30, 16, Firing::OnTime), // at end of stream
        ],
        "on {}",
        H::NAME
    );
}

fn sliding_and_session_windows_at_exact_times<H: Harness>() {
    let (sliding, sessions) = H::run(|rt| async move {
        let source: Stream<Event> = rt.source();
        let timed = source.watermarks(at, Watermarks::ascending());
        let (sliding, _) = timed.window(Window::sliding("10s", "5s"), at).fold(0, sum);
        let (sessions, _) = timed
            .window(Window::session("4s"), at)
            .key(|x| x.0)
            .fold(0, sum);
        let sliding = sliding.map(|w| (secs(w.start), w.value)).sink_to_vec();
        let sessions = sessions
            .map(|w| (w.key, secs(w.start), secs(w.end), w.value))
            .sink_to_vec();
        for x in [
            ("a", 1, 1),
            ("a", 4, 2),
            ("b", 6, 4),
            ("a", 11, 8),
            ("a", 12, 16),
        ] {
            rt.sleep_ms(5).await;
            source.emit(x).await.unwrap();
        }
        source.close().await.unwrap();
        (sliding.to_vec(), sessions.to_vec())
    });
    // windows [-5, 5), [0, 10), [5, 15), [10, 20)
    assert_eq!(
        sliding,
        vec![(-5, 3), (0, 7), (5, 28), (10, 24)],
        "on {}",
        H::NAME
    );
    // a: 1–8 (1 and 4), 11–16; b: 6–10
    assert_eq!(
        sessions,
        vec![("a", 1, 8, 3), ("b", 6, 10, 4), ("a", 11, 16, 24)],
        "on {}",
        H::NAME
    );
}

/// Two sources, each with its watermarks, unioned into one tumbling window.
fn two_inputs(
    rt: &Runtime,
    rules: Watermarks,
) -> (Stream<Event>, Stream<Event>, streamz_core::VecSink<Seen>) {
    let (a, b): (Stream<Event>, Stream<Event>) = (rt.source(), rt.source());
    let (windows, _late) = a
        .watermarks(at, rules)
        .union([&b.watermarks(at, rules)])
        .window(Window::tumbling("10s"), at)
        .key(|_| "all")
        .fold(0, sum);
    let out = record(rt, &windows);
    (a, b, out)
}

fn a_silent_input_holds_the_union_back_until_its_idle_timeout<H: Harness>() {
    let seen = H::run(|rt| async move {
        let (a, b, out) = two_inputs(&rt, Watermarks::ascending().idle_after("100ms"));
        b.emit(("b", 0, 1)).await.unwrap();
        a.emit(("a", 1, 2)).await.unwrap();
        a.emit(("a", 15, 4)).await.unwrap(); // b, at 0 s, holds [0, 10) open
        rt.sleep_ms(150).await; // b idle at 100 ms; a's own idle at 100 ms too
        a.emit(("a", 16, 8)).await.unwrap();
        let before_close = out.to_vec();
        a.close().await.unwrap();
        b.close().await.unwrap();
        (before_close, out.to_vec())
    });
    // at 100 ms both went idle: the union is idle, nothing moves; at 150 ms a is back at 16 s
    // and b is left out, so [0, 10) closes then
    assert_eq!(
        seen.0,
        vec![(150, "all", 0, 10, 3, Firing::OnTime)],
        "on {}",
        H::NAME
    );
    assert_eq!(seen.1.len(), 2, "on {}: {:?}", H::NAME, seen.1);
    assert_eq!(seen.1[1].4, 12, "on {}", H::NAME);
}

fn an_idle_input_stops_holding_the_union_back<H: Harness>() {
    let seen = H::run(|rt| async move {
        let (a, b, out) = two_inputs(&rt, Watermarks::ascending().idle_after("100ms"));
        b.emit(("b", 0, 1)).await.unwrap();
        for (ms, t) in [(0, 1), (60, 12), (120, 13), (180, 14)] {
            rt.sleep_ms(ms - rt.now_ms()).await;
            a.emit(("a", t, 10)).await.unwrap();
        }
        let seen = out.to_vec();
        a.close().await.unwrap();
        b.close().await.unwrap();
        seen
    });
    // b, silent since 0 ms, went idle at 100 ms: the union moved at once to a's 12 s
    assert_eq!(
        seen,
        vec![(100, "all", 0, 10, 11, Firing::OnTime)],
        "on {}",
        H::NAME
    );
}

fn one_element_far_ahead_moves_the_watermark_by_the_skew_only<H: Harness>() {
    let (seen, late) = H::run(|rt| async move {
        let source = rt.source();
        let (windows, late) = source
            .watermarks(at, Watermarks::ascending().max_skew("10s"))
            .window(Window::tumbling("10s"), at)
            .fold(0, sum);
        let out = windows.map(|w| (secs(w.start), w.value)).sink_to_vec();
        let late = late.map(|x| x.1).sink_to_vec();
        // a clock years ahead at 1,000,000 s: the watermark goes from 1 s to 11 s only
        for t in [1, 1_000_000, 5, 12, 25] {
            source.emit(("a", t, 1)).await.unwrap();
        }
        source.close().await.unwrap();
        (out.to_vec(), late.to_vec())
    });
    // 5 s came after the watermark reached 11 s: late; without the rule 12 and 25 would be too
    assert_eq!(late, vec![5], "on {}", H::NAME);
    assert_eq!(
        seen,
        vec![(0, 1), (10, 1), (20, 1), (1_000_000, 1)],
        "on {}",
        H::NAME
    );
}

fn the_watermark_waits_behind_a_delay<H: Harness>() {
    let (seen, late) = H::run(|rt| async move {
        let source = rt.source();
        let (windows, late) = source
            .watermarks(at, Watermarks::ascending())
            .delay("100ms")
            .window(Window::tumbling("10s"), at)
            .key(|x| x.0)
            .fold(0, sum);
        let out = record(&rt, &windows);
        let late = late.sink_to_vec();
        for (t, v) in [(1, 1), (5, 2), (12, 4), (25, 8)] {
            source.emit(("a", t, v)).await.unwrap();
            rt.sleep_ms(10).await;
        }
        rt.sleep_ms(200).await;
        (out.to_vec(), late.to_vec())
    });
    // every element arrives at the window 100 ms after it was emitted, before its watermark
    assert!(late.is_empty(), "on {}: {late:?}", H::NAME);
    assert_eq!(
        seen,
        vec![
            (120, "a", 0, 10, 3, Firing::OnTime),
            (130, "a", 10, 20, 4, Firing::OnTime)
        ],
        "on {}",
        H::NAME
    );
}

fn the_watermark_waits_behind_a_buffer_and_an_async_step<H: Harness>() {
    let (seen, late) = H::run(|rt| async move {
        let source = rt.source();
        let clock = rt.clone();
        let (windows, late) = source
            .watermarks(at, Watermarks::ascending())
            .buffer(8)
            .map_async(2, move |x: Event| {
                let sleep = clock.sleep_ms(30);
                async move {
                    sleep.await;
                    x
                }
            })
            .window(Window::tumbling("10s"), at)
            .fold(0, sum);
        let out = windows.map(|w| (secs(w.start), w.value)).sink_to_vec();
        let late = late.sink_to_vec();
        for (t, v) in [(1, 1), (5, 2), (12, 4), (25, 8), (31, 16)] {
            source.emit(("a", t, v)).await.unwrap();
        }
        source.flush().await;
        let seen = out.to_vec();
        source.close().await.unwrap();
        (seen, late.to_vec())
    });
    assert!(late.is_empty(), "on {}: {late:?}", H::NAME);
    assert_eq!(seen, vec![(0, 3), (10, 4), (20, 8)], "on {}", H::NAME);
}

fn late_elements_go_to_the_late_stream_and_are_counted<H: Harness>() {
    let (late, counted) = H::run(|rt| async move {
        let source = rt.source();
        let (windows, late) = source
            .watermarks(at, Watermarks::ascending())
            .window(Window::tumbling("10s"), at)
            .fold(0, sum);
        let windows = windows.named("counts");
        let _out = windows.sink_to_vec();
        let late = late.sink_to_vec();
        for t in [1, 15, 3, 9, 16, 2] {
            source.emit(("a", t, 1)).await.unwrap();
        }
        let snapshot = source.graph().snapshot();
        let counts = snapshot.nodes.iter().find(|n| n.name == "counts").unwrap();
        (late.to_vec(), counts.late)
    });
    assert_eq!(
        late,
        vec![("a", 3, 1), ("a", 9, 1), ("a", 2, 1)],
        "on {}",
        H::NAME
    );
    assert_eq!(counted, 3, "on {}", H::NAME);
}

fn late_elements_with_no_late_stream_are_errors<H: Harness>() {
    let (returned, errors) = H::run(|rt| async move {
        let source = rt.source();
        let errors = source.errors().sink_to_vec();
        let (windows, _late) = source
            .watermarks(at, Watermarks::ascending())
            .window(Window::tumbling("10s"), at)
            .fold(0, sum);
        let _out = windows.sink_to_vec();
        source.emit(("a", 15, 1)).await.unwrap();
        let returned = source.emit(("a", 3, 1)).await.map_err(|e| e.kind());
        (returned, errors.to_vec().len())
    });
    assert_eq!(returned, Err(ErrorKind::Late), "on {}", H::NAME);
    assert_eq!(errors, 0, "on {}: the emit got it", H::NAME);
}

fn lateness_keeps_a_window_for_updates<H: Harness>() {
    let (seen, late) = H::run(|rt| async move {
        let source = rt.source();
        let (windows, late) = source
            .watermarks(at, Watermarks::ascending())
            .window(Window::tumbling("10s"), at)
            .lateness(Duration::from_secs(5))
            .fold(0, sum);
        let out = windows
            .map(|w| (secs(w.start), w.value, w.firing))
            .sink_to_vec();
        let late = late.map(|x| x.1).sink_to_vec();
        for (t, v) in [(1, 1), (12, 2), (3, 4), (14, 8), (15, 16), (4, 32)] {
            source.emit(("a", t, v)).await.unwrap();
        }
        source.close().await.unwrap();
        (out.to_vec(), late.to_vec())
    });
    // 3 s came at watermark 12 s, within [0, 10) + 5 s: an update; 4 s at 15 s: too late
    assert_eq!(
        seen,
        vec![
            (0, 1, Firing::OnTime),
            (0, 5, Firing::Late),
            (10, 26, Firing::OnTime)
        ],
        "on {}",
        H::NAME
    );
    assert_eq!(late, vec![4], "on {}", H::NAME);
}
