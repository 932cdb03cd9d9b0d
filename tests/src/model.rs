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
