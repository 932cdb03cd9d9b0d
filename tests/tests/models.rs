//! Every stateful operator against a plain model: a few lines over a `Vec` that say what the
//! operator means, checked on random inputs.

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;
use streamz_core::{Keep, Stream, ZipInput};

/// Runs `xs` through `build` on a fresh source, then closes it.
fn run<T, U>(xs: &[T], build: impl FnOnce(&Stream<T>) -> Stream<U>) -> Vec<U>
where
    T: Clone + Send + 'static,
    U: Clone + Send + 'static,
{
    let source = Stream::new();
    let out = build(&source).sink_to_vec();
    for x in xs {
        source.emit_blocking(x.clone()).unwrap();
    }
    source.close().wait().unwrap();
    out.to_vec()
}

fn small() -> impl Strategy<Value = Vec<i32>> {
    prop::collection::vec(-4i32..8, 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(128),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The offset tracker against the plain model: the same commit positions after every
    /// step, and the same bound on what is outstanding.
    #[test]
    fn offset_tracker(steps in prop::collection::vec((0u8..3, 0i64..3, 0i64..3, any::<bool>(), any::<prop::sample::Index>()), 0..120), max in 1usize..12) {
        let tracker = streamz_core::OffsetTracker::new(max);
        let mut model = streamz_tests::model::Offsets::default();
        for (partition, gap, len, begin, pick) in steps {
            let open = model.open();
            if begin || open.is_empty() {
                // single records (`try_begin`) and batches (`try_begin_range`)
                let first = model.next_offset(partition, gap);
                let room = model.outstanding() < max;
                let begun = if len == 0 {
                    tracker.try_begin(partition, first)
                } else {
                    tracker.try_begin_range(partition, first, first + len)
                };
                prop_assert_eq!(begun, room);
                if room {
                    model.begin(partition, first, first + len);
                }
            } else {
                let (p, o) = open[pick.index(open.len())];
                prop_assert_eq!(tracker.complete(&p, o), model.complete(p, o), "completing {} of {}", o, p);
                // completing it again does nothing
                prop_assert_eq!(tracker.complete(&p, o), None);
            }
            prop_assert_eq!(tracker.outstanding(), model.outstanding());
        }
    }

    #[test]
    fn accumulate(xs in small(), start in prop::option::of(-5i32..5)) {
        let model: Vec<i32> = match start {
            None => xs.iter().scan(None, |acc: &mut Option<i32>, &x| {
                let next = acc.map_or(x, |a| a.wrapping_mul(3).wrapping_add(x));
                *acc = Some(next);
                Some(next)
            }).collect(),
            Some(s) => xs.iter().scan(s, |acc, &x| {
                *acc = acc.wrapping_mul(3).wrapping_add(x);
                Some(*acc)
            }).collect(),
        };
        let f = |a: &i32, x: i32| a.wrapping_mul(3).wrapping_add(x);
        let got = match start {
            None => run(&xs, |s| s.accumulate(f)),
            Some(start) => run(&xs, |s| s.accumulate_from(start, f)),
        };
        prop_assert_eq!(got, model);
    }

    #[test]
    fn unique(xs in small(), maxsize in prop::option::of(1usize..5)) {
        let model = streamz_tests::model::unique(&xs, maxsize);
        prop_assert_eq!(run(&xs, |s| s.unique(maxsize)), model);
    }

    #[test]
    fn slice(xs in small(), start in 0usize..6, stop in prop::option::of(0usize..30), step in 1usize..4) {
        let model: Vec<i32> = xs.iter().copied().enumerate()
            .filter(|(i, _)| *i >= start && stop.is_none_or(|s| *i < s) && (*i - start) % step == 0)
            .map(|(_, x)| x)
            .collect();
        prop_assert_eq!(run(&xs, |s| s.slice(start, stop, step)), model);
    }

    #[test]
    fn sliding_window(xs in small(), n in 1usize..6, partial in any::<bool>()) {
        let model: Vec<Vec<i32>> = (0..xs.len())
            .map(|i| xs[(i + 1).saturating_sub(n)..=i].to_vec())
            .filter(|w| partial || w.len() == n)
            .collect();
        prop_assert_eq!(run(&xs, |s| s.sliding_window(n, partial)), model);
    }

    #[test]
    fn partition_with_remainder_at_close(xs in small(), n in 1usize..6) {
        let model: Vec<Vec<i32>> = xs.chunks(n).map(<[i32]>::to_vec).collect();
        prop_assert_eq!(run(&xs, |s| s.partition(n)), model);
    }

    #[test]
    fn partition_by_key(xs in small(), n in 1usize..4) {
        // batches per key, emitted as they fill; at close, the rest in the order they started
        let mut open: Vec<(i32, Vec<i32>)> = Vec::new();
        let mut model = Vec::new();
        for &x in &xs {
            let key = x.rem_euclid(3);
            let i = match open.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    open.push((key, Vec::new()));
                    open.len() - 1
                }
            };
            open[i].1.push(x);
            if open[i].1.len() == n {
                model.push(open.remove(i).1);
            }
        }
        model.extend(open.into_iter().map(|(_, b)| b));
        prop_assert_eq!(run(&xs, |s| s.partition_by(n, |x: &i32| x.rem_euclid(3))), model);
    }

    #[test]
    fn partition_unique(xs in small(), n in 1usize..5, last in any::<bool>()) {
        let mut batch: Vec<i32> = Vec::new();
        let mut model = Vec::new();
        for &x in &xs {
            match batch.iter().position(|&b| b == x) {
                Some(i) if last => {
                    batch.remove(i);
                    batch.push(x);
                }
                Some(_) => {}
                None => batch.push(x),
            }
            if batch.len() == n {
                model.push(std::mem::take(&mut batch));
            }
        }
        if !batch.is_empty() {
            model.push(batch);
        }
        let keep = if last { Keep::Last } else { Keep::First };
        prop_assert_eq!(run(&xs, |s| s.partition_unique(n, keep)), model);
    }

    #[test]
    fn frequencies(xs in small()) {
        let mut counts = HashMap::new();
        let model: Vec<HashMap<i32, usize>> = xs.iter().map(|&x| {
            *counts.entry(x).or_insert(0) += 1;
            counts.clone()
        }).collect();
        prop_assert_eq!(run(&xs, |s| s.frequencies()), model);
    }

    #[test]
    fn collect(events in prop::collection::vec(prop::option::of(-3i32..3), 0..30)) {
        // None flushes
        let mut held = Vec::new();
        let mut model = Vec::new();
        for e in &events {
            match e {
                Some(x) => held.push(*x),
                None => model.push(std::mem::take(&mut held)),
            }
        }
        if !held.is_empty() {
            model.push(held);
        }
        let source = Stream::new();
        let collector = source.collect();
        let out = collector.sink_to_vec();
        for e in &events {
            match e {
                Some(x) => source.emit_blocking(*x).unwrap(),
                None => collector.flush().wait().unwrap(),
            }
        }
        source.close().wait().unwrap();
        prop_assert_eq!(out.to_vec(), model);
    }

    #[test]
    fn zip(events in prop::collection::vec((0usize..3, -5i32..5), 0..40)) {
        // each input a queue; a tuple whenever all have an element
        let mut queues: Vec<VecDeque<i32>> = vec![VecDeque::new(); 3];
        let mut model = Vec::new();
        let (a, b, c) = (Stream::new(), Stream::new(), Stream::new());
        let out = Stream::zip_all([ZipInput::from(&a), ZipInput::Value(100), ZipInput::from(&b), ZipInput::from(&c)], 64)
            .sink_to_vec();
        for &(side, x) in &events {
            queues[side].push_back(x);
            if queues.iter().all(|q| !q.is_empty()) {
                let mut row: Vec<i32> = queues.iter_mut().map(|q| q.pop_front().unwrap_or_default()).collect();
                row.insert(1, 100);
                model.push(row);
            }
            [&a, &b, &c][side].emit_blocking(x).unwrap();
        }
        prop_assert_eq!(out.to_vec(), model);
    }

    #[test]
    fn combine_latest(events in prop::collection::vec((0usize..3, -5i32..5), 0..40), emit_on in prop::collection::vec(0usize..3, 1..3)) {
        let mut latest: [Option<i32>; 3] = [None; 3];
        let mut model = Vec::new();
        let streams = [Stream::new(), Stream::new(), Stream::new()];
        let inputs: Vec<&Stream<i32>> = streams.iter().collect();
        let out = Stream::combine_latest_all(&inputs, Some(&emit_on)).sink_to_vec();
        for &(side, x) in &events {
            latest[side] = Some(x);
            if emit_on.contains(&side) && latest.iter().all(Option::is_some) {
                model.push(latest.iter().map(|v| v.unwrap_or_default()).collect::<Vec<_>>());
            }
            streams[side].emit_blocking(x).unwrap();
        }
        prop_assert_eq!(out.to_vec(), model);
    }

    #[test]
    fn zip_latest(events in prop::collection::vec((0usize..3, -5i32..5), 0..40)) {
        // every element of input 0, once, with the latest of the others
        let mut latest: [Option<i32>; 3] = [None; 3];
        let mut waiting: VecDeque<i32> = VecDeque::new();
        let mut model = Vec::new();
        let streams = [Stream::new(), Stream::new(), Stream::new()];
        let out = Stream::zip_latest_all(&streams[0], &[&streams[1], &streams[2]]).sink_to_vec();
        for &(side, x) in &events {
            if side == 0 {
                waiting.push_back(x);
            } else {
                latest[side] = Some(x);
            }
            if latest[1].is_some() && latest[2].is_some() {
                while let Some(first) = waiting.pop_front() {
                    model.push(vec![first, latest[1].unwrap_or_default(), latest[2].unwrap_or_default()]);
                }
            }
            streams[side].emit_blocking(x).unwrap();
        }
        prop_assert_eq!(out.to_vec(), model);
    }
}
