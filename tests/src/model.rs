//! Plain models of the operators, over a `Vec`: what an operator means, for the property
//! tests to hold the graph to.

use std::collections::VecDeque;

/// `unique(maxsize)`: an element is passed on unless it is among the last `maxsize` distinct
/// elements seen (all of them with `None`); seeing one again makes it the most recent.
pub fn unique<T: PartialEq + Clone>(xs: &[T], maxsize: Option<usize>) -> Vec<T> {
    let mut recent: VecDeque<T> = VecDeque::new();
    let mut out = Vec::new();
    for x in xs {
        if let Some(i) = recent.iter().position(|r| r == x) {
            recent.remove(i);
            recent.push_back(x.clone());
            continue;
        }
        out.push(x.clone());
        recent.push_back(x.clone());
        if maxsize.is_some_and(|m| recent.len() > m) {
            recent.pop_front();
        }
    }
    out
}

/// A broker source's commit positions, plainly: per partition the offsets begun and whether
/// each is done. The position is the oldest offset not done, or one past the newest begun.
#[derive(Debug, Default, Clone)]
pub struct Offsets {
    /// Each partition's entries: first offset, last offset, done.
    begun: std::collections::HashMap<u8, Vec<(i64, i64, bool)>>,
    reported: std::collections::HashMap<u8, i64>,
}

impl Offsets {
    /// The next offset `partition` reads, after a gap of `gap`.
    pub fn next_offset(&self, partition: u8, gap: i64) -> i64 {
        self.begun
            .get(&partition)
            .and_then(|b| b.last())
            .map_or(gap, |&(_, last, _)| last + 1 + gap)
    }

    /// How many are begun and not done.
    pub fn outstanding(&self) -> usize {
        self.begun
            .values()
            .flatten()
            .filter(|(_, _, done)| !done)
            .count()
    }

    /// Begins the records `first..=last` of `partition`, as one entry.
    pub fn begin(&mut self, partition: u8, first: i64, last: i64) {
        self.reported.entry(partition).or_insert(first);
        self.begun
            .entry(partition)
            .or_default()
            .push((first, last, false));
    }

    /// The outstanding entries (their first offsets), in a fixed order.
    pub fn open(&self) -> Vec<(u8, i64)> {
        let mut open: Vec<(u8, i64)> = self
            .begun
            .iter()
            .flat_map(|(&p, b)| {
                b.iter()
                    .filter(|(_, _, d)| !d)
                    .map(move |&(o, _, _)| (p, o))
            })
            .collect();
        open.sort_unstable();
        open
    }

    /// Marks it done; the new position if it moved past the last one reported.
    pub fn complete(&mut self, partition: u8, offset: i64) -> Option<i64> {
        let begun = self.begun.get_mut(&partition)?;
        let record = begun.iter_mut().find(|(o, _, d)| *o == offset && !d)?;
        record.2 = true;
        let position = begun
            .iter()
            .find(|(_, _, d)| !d)
            .map_or(begun.last().map(|&(_, last, _)| last + 1)?, |&(o, _, _)| o);
        let reported = self.reported.get_mut(&partition)?;
        (position > *reported).then(|| {
            *reported = position;
            position
        })
    }
}

/// Event-time windows, plainly: every window of every key in a list in order of creation,
/// each with its elements; a result is the fold of a window's elements from scratch, and
/// what is due at a watermark is found by looking at every window. Times and durations in
/// nanoseconds; `shape` is `(size, slide)` for aligned windows (`slide == size`: tumbling) or
/// `gap` for sessions. Results are `(key, start, end, elements in arrival order, firing)` with
/// firing 0 early, 1 on time, 2 late.
#[derive(Debug)]
pub struct EventWindows {
    /// `(size, slide)` of aligned windows; `None` for sessions.
    pub aligned: Option<(i64, i64)>,
    /// A session's gap.
    pub gap: i64,
    /// How long after its end a window takes late elements.
    pub lateness: i64,
    /// Early firings every so much, if any.
    pub early: Option<i64>,
    /// The watermark.
    pub watermark: i64,
    windows: Vec<ModelWindow>,
    arrivals: u64,
    /// The results, in order.
    pub out: Vec<(u8, i64, i64, Vec<i32>, u8)>,
    /// The late elements, in order.
    pub late: Vec<(u8, i64, i32)>,
}

#[derive(Debug)]
struct ModelWindow {
    key: u8,
    start: i64,
    end: i64,
    items: Vec<(u64, i32)>,
    emitted: bool,
    alive: bool,
    fire_pending: bool,
    early_at: Option<i64>,
}

impl ModelWindow {
    fn values(&self) -> Vec<i32> {
        let mut items = self.items.clone();
        items.sort();
        items.into_iter().map(|(_, v)| v).collect()
    }
}

/// The first point `start + k·every` (k ≥ 1) after `watermark`, if it is before `end`.
fn model_early(every: Option<i64>, start: i64, end: i64, watermark: i64) -> Option<i64> {
    let every = every?;
    let mut at = start + every;
    while at <= watermark {
        at += every;
    }
    (at < end).then_some(at)
}

impl EventWindows {
    /// No windows yet, and no watermark.
    pub fn new(aligned: Option<(i64, i64)>, gap: i64, lateness: i64, early: Option<i64>) -> Self {
        EventWindows {
            aligned,
            gap,
            lateness,
            early,
            watermark: i64::MIN,
            windows: Vec::new(),
            arrivals: 0,
            out: Vec::new(),
            late: Vec::new(),
        }
    }

    /// An element of `key` at `t`.
    pub fn element(&mut self, key: u8, t: i64, v: i32) {
        let w = self.watermark;
        let arrival = self.arrivals;
        match self.aligned {
            Some((size, slide)) => {
                // every start k·slide whose window holds t, earliest first
                let mut starts = Vec::new();
                let mut s = t.div_euclid(slide) * slide;
                while s + size > t {
                    starts.push(s);
                    s -= slide;
                }
                starts.reverse();
                let mut accepted = false;
                for s in starts {
                    if s + size + self.lateness <= w {
                        continue;
                    }
                    accepted = true;
                    let i = match self
                        .windows
                        .iter()
                        .position(|x| x.alive && x.key == key && x.start == s)
                    {
                        Some(i) => i,
                        None => {
                            self.windows.push(ModelWindow {
                                key,
                                start: s,
                                end: s + size,
                                items: Vec::new(),
                                emitted: false,
                                alive: true,
                                fire_pending: s + size > w,
                                early_at: model_early(self.early, s, s + size, w),
                            });
                            self.windows.len() - 1
                        }
                    };
                    let x = &mut self.windows[i];
                    x.items.push((arrival, v));
                    if x.end <= w {
                        x.emitted = true;
                        self.out.push((key, x.start, x.end, x.values(), 2));
                    }
                }
                if !accepted {
                    self.late.push((key, t, v));
                    return;
                }
            }
            None => {
                let (mut start, mut end) = (t, t + self.gap);
                let touching: Vec<usize> = (0..self.windows.len())
                    .filter(|&i| {
                        let x = &self.windows[i];
                        x.alive && x.key == key && x.start <= t + self.gap && t <= x.end
                    })
                    .collect();
                for &i in &touching {
                    start = start.min(self.windows[i].start);
                    end = end.max(self.windows[i].end);
                }
                if end + self.lateness <= w {
                    self.late.push((key, t, v));
                    return;
                }
                let keep = match touching.first() {
                    Some(&i) => i,
                    None => {
                        self.windows.push(ModelWindow {
                            key,
                            start,
                            end,
                            items: Vec::new(),
                            emitted: false,
                            alive: true,
                            fire_pending: false,
                            early_at: None,
                        });
                        self.windows.len() - 1
                    }
                };
                for &i in touching.iter().skip(1) {
                    let items = std::mem::take(&mut self.windows[i].items);
                    let emitted = self.windows[i].emitted;
                    self.windows[i].alive = false;
                    self.windows[keep].items.extend(items);
                    self.windows[keep].emitted |= emitted;
                }
                let x = &mut self.windows[keep];
                x.items.push((arrival, v));
                x.start = start;
                x.end = end;
                x.fire_pending = end > w;
                x.early_at = if x.emitted {
                    None
                } else {
                    model_early(self.early, start, end, w)
                };
                if end <= w {
                    x.emitted = true;
                    self.out.push((key, start, end, x.values(), 2));
                }
            }
        }
        self.arrivals += 1;
    }

    /// The watermark moves to `to`.
    pub fn advance(&mut self, to: i64) {
        if to <= self.watermark {
            return;
        }
        self.watermark = to;
        loop {
            // the next thing due, in order of time, then of the window's start, then of
            // creation: (time, start, window, 0 early / 1 fire / 2 drop)
            let mut next: Option<(i64, i64, usize, u8)> = None;
            for (i, x) in self.windows.iter().enumerate().filter(|(_, x)| x.alive) {
                let mut due = Vec::new();
                if let Some(at) = x.early_at {
                    due.push((at, x.start, i, 0));
                }
                if x.fire_pending {
                    due.push((x.end, x.start, i, 1));
                }
                if self.lateness > 0 {
                    due.push((x.end + self.lateness, x.start, i, 2));
                }
                for d in due {
                    if d.0 <= to && next.is_none_or(|n| d < n) {
                        next = Some(d);
                    }
                }
            }
            let Some((_, _, i, what)) = next else { break };
            let early = self.early;
            let lateness = self.lateness;
            let x = &mut self.windows[i];
            match what {
                0 => {
                    if x.end > to {
                        self.out.push((x.key, x.start, x.end, x.values(), 0));
                        x.early_at = model_early(early, x.start, x.end, to);
                    } else {
                        x.early_at = None;
                    }
                }
                1 => {
                    let firing = if x.emitted { 2 } else { 1 };
                    x.emitted = true;
                    x.fire_pending = false;
                    self.out.push((x.key, x.start, x.end, x.values(), firing));
                    if lateness == 0 {
                        x.alive = false;
                    }
                }
                _ => x.alive = false,
            }
        }
    }

    /// End of stream.
    pub fn finish(&mut self) {
        self.advance(i64::MAX);
    }
}
