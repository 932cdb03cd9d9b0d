//! Helpers shared by the operator tests.
#![allow(dead_code)] // each test file uses some of them

use streamz_core::Stream;

/// Emits every item into `source`, each completely.
pub(crate) fn feed<T: Clone + Send + 'static>(
    source: &Stream<T>,
    items: impl IntoIterator<Item = T>,
) {
    for x in items {
        source.emit_blocking(x).unwrap();
    }
}

/// What the stream built from a new source by `build` emits for `items`.
pub(crate) fn run<T, U>(
    build: impl Fn(&Stream<T>) -> Stream<U>,
    items: impl IntoIterator<Item = T>,
) -> Vec<U>
where
    T: Clone + Send + 'static,
    U: Clone + Send + 'static,
{
    let source = Stream::new();
    let out = build(&source).sink_to_vec();
    feed(&source, items);
    out.to_vec()
}
