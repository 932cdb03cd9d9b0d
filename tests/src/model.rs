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
