//! A stream being built: in the local graph, or between `scatter` and `gather` on the pool.
//! The operators that may stand in both places ([`Build::Anywhere`](crate::ops::Build)) are
//! written once, against [`Flow`]; its methods put them in the right graph.

use std::time::Duration;

use serde_json::Value;
use streamz_core::{BoxError, Stream};

/// The elements between `scatter` and `gather`.
#[cfg(feature = "rayon")]
pub(crate) type Pooled = streamz_rayon::Scattered<Value>;

/// Without the `rayon` feature there is no pool: nothing is ever between scatter and gather.
#[cfg(not(feature = "rayon"))]
#[derive(Debug)]
pub(crate) enum Pooled {}

/// A stream being built.
pub(crate) enum Flow {
    Local(Stream<Value>),
    #[cfg_attr(not(feature = "rayon"), allow(dead_code))]
    Pooled(Pooled),
}

impl Flow {
    /// The local stream, or `None` between scatter and gather.
    pub(crate) fn into_local(self) -> Option<Stream<Value>> {
        match self {
            Flow::Local(s) => Some(s),
            #[cfg(feature = "rayon")]
            Flow::Pooled(_) => None,
            #[cfg(not(feature = "rayon"))]
            Flow::Pooled(never) => match never {},
        }
    }

    /// `f` for each element; an `Err` fails it.
    pub(crate) fn try_map<F>(self, f: F) -> Flow
    where
        F: Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    {
        match self {
            Flow::Local(s) => Flow::Local(s.try_map(f)),
            #[cfg(feature = "rayon")]
            Flow::Pooled(s) => Flow::Pooled(s.try_map(f)),
            #[cfg(not(feature = "rayon"))]
            Flow::Pooled(never) => match never {},
        }
    }

    /// The elements for which `f` is `Ok(true)`; an `Err` fails the element.
    pub(crate) fn try_filter<F>(self, f: F) -> Flow
    where
        F: Fn(&Value) -> Result<bool, String> + Send + Sync + 'static,
    {
        match self {
            Flow::Local(s) => Flow::Local(s.try_filter(f)),
            #[cfg(feature = "rayon")]
            Flow::Pooled(s) => Flow::Pooled(s.try_filter(f)),
            #[cfg(not(feature = "rayon"))]
            Flow::Pooled(never) => match never {},
        }
    }

    /// The items of each element, which `items` gives (or fails).
    pub(crate) fn flat_map<F>(self, items: F) -> Flow
    where
        F: Fn(Value) -> Result<Vec<Value>, String> + Send + Sync + 'static,
    {
        match self {
            Flow::Local(s) => Flow::Local(s.try_map(items).flatten().part_of_upstream()),
            #[cfg(feature = "rayon")]
            Flow::Pooled(s) => Flow::Pooled(s.try_map(items).flatten()),
            #[cfg(not(feature = "rayon"))]
            Flow::Pooled(never) => match never {},
        }
    }

    /// A plain running fold (`accumulate` without `returns_state` or `with_state`).
    pub(crate) fn fold<F>(self, start: Option<Value>, step: F) -> Flow
    where
        F: Fn(&Value, Value) -> Result<Value, String> + Send + Sync + 'static,
    {
        match self {
            Flow::Local(s) => Flow::Local(s.durable().try_accumulate_returns_state(
                start,
                move |acc: &Value, x: Value| {
                    let next = step(acc, x)?;
                    Ok::<_, BoxError>((next.clone(), next))
                },
            )),
            #[cfg(feature = "rayon")]
            Flow::Pooled(s) => {
                // the pool's accumulate takes no error: a failure is a (quiet) panic, which
                // fails the element at this stage all the same
                let step = move |acc: &Value, x: Value| {
                    step(acc, x).unwrap_or_else(|e| std::panic::panic_any(crate::quiet_panic(e)))
                };
                Flow::Pooled(match start {
                    Some(start) => s.durable().accumulate_from(start, step),
                    None => s.durable().accumulate(step),
                })
            }
            #[cfg(not(feature = "rayon"))]
            Flow::Pooled(never) => match never {},
        }
    }

    pub(crate) fn buffer(self, n: usize) -> Flow {
        match self {
            Flow::Local(s) => Flow::Local(s.buffer(n)),
            #[cfg(feature = "rayon")]
            Flow::Pooled(s) => Flow::Pooled(s.buffer(n)),
            #[cfg(not(feature = "rayon"))]
            Flow::Pooled(never) => match never {},
        }
    }

    pub(crate) fn rate_limit(self, interval: Duration) -> Flow {
        match self {
            Flow::Local(s) => Flow::Local(s.rate_limit(interval)),
            #[cfg(feature = "rayon")]
            Flow::Pooled(s) => Flow::Pooled(s.rate_limit(interval)),
            #[cfg(not(feature = "rayon"))]
            Flow::Pooled(never) => match never {},
        }
    }

    pub(crate) fn delay(self, interval: Duration) -> Flow {
        match self {
            Flow::Local(s) => Flow::Local(s.delay(interval)),
            #[cfg(feature = "rayon")]
            Flow::Pooled(s) => Flow::Pooled(s.delay(interval)),
            #[cfg(not(feature = "rayon"))]
            Flow::Pooled(never) => match never {},
        }
    }

    /// Names the stage's last node.
    pub(crate) fn named(self, name: &str) -> Flow {
        match self {
            Flow::Local(s) => Flow::Local(s.named(name)),
            #[cfg(feature = "rayon")]
            Flow::Pooled(s) => Flow::Pooled(s.named(name)),
            #[cfg(not(feature = "rayon"))]
            Flow::Pooled(never) => match never {},
        }
    }
}
