//! `pluck`: take one field, index or key out of each element.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::emit::Cx;
use crate::error::{ErrorKind, StreamError};
use crate::node::{Kind, Operator, Outlet, Port, Shape};
use crate::stream::{Element, Stream};

const PLUCK: Kind = Kind::new("pluck", Shape::Ellipse);

/// Elements that [`pluck`](Stream::pluck) can take a part of with a key of type `K`.
///
/// | element | key | gives |
/// |---|---|---|
/// | `Vec<T>`, `[T; N]` | `usize` | the item at that index |
/// | `Vec<T>` | `Vec<usize>` | a `Vec` of the items at those indices |
/// | `(A, B, …)` | [`Idx<I>`](Idx) | field `I` |
/// | `HashMap<K, V>`, `BTreeMap<K, V>` | `K` | the value |
/// | `HashMap<String, V>`, `BTreeMap<String, V>` | `&'static str` | the value |
/// | `serde_json::Value` | `usize`, `&'static str`, `String`, or a `Value` holding an index, a key or an array of them | the value, or an array of values |
///
/// # Examples
///
/// Implementing it for a record type:
///
/// ```
/// use streamz_core::{Pluck, Stream};
///
/// #[derive(Clone)]
/// struct Trade { price: f64, size: u32 }
///
/// #[derive(Debug)]
/// struct Price;
///
/// impl Pluck<Price> for Trade {
///     type Output = f64;
///     fn pluck(self, _: &Price) -> Option<f64> {
///         Some(self.price)
///     }
/// }
///
/// let trades = Stream::new();
/// let prices = trades.pluck(Price).sink_to_vec();
/// trades.emit_blocking(Trade { price: 9.5, size: 3 }).unwrap();
/// assert_eq!(prices.to_vec(), vec![9.5]);
/// ```
pub trait Pluck<K>: Sized {
    /// The part taken out.
    type Output: Element;

    /// Takes the part at `key` out of the element; `None` if there is none.
    fn pluck(self, key: &K) -> Option<Self::Output>;
}

/// A tuple field index for [`pluck`](Stream::pluck): `Idx::<1>` is the second field.
///
/// # Examples
///
/// ```
/// use streamz_core::{Idx, Stream};
///
/// let pairs = Stream::new();
/// let keys = pairs.pluck(Idx::<0>).sink_to_vec();
/// pairs.emit_blocking(("k", 1.5)).unwrap();
/// assert_eq!(keys.to_vec(), vec!["k"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Idx<const I: usize>;

impl<T: Element> Pluck<usize> for Vec<T> {
    type Output = T;

    fn pluck(mut self, key: &usize) -> Option<T> {
        (*key < self.len()).then(|| self.swap_remove(*key))
    }
}

impl<T: Element> Pluck<Vec<usize>> for Vec<T> {
    type Output = Vec<T>;

    fn pluck(self, keys: &Vec<usize>) -> Option<Vec<T>> {
        keys.iter().map(|&i| self.get(i).cloned()).collect()
    }
}

impl<T: Element, const N: usize> Pluck<usize> for [T; N] {
    type Output = T;

    fn pluck(self, key: &usize) -> Option<T> {
        self.into_iter().nth(*key)
    }
}

impl<K: Hash + Eq, V: Element, S: BuildHasher> Pluck<K> for HashMap<K, V, S> {
    type Output = V;

    fn pluck(mut self, key: &K) -> Option<V> {
        self.remove(key)
    }
}

impl<V: Element, S: BuildHasher> Pluck<&'static str> for HashMap<String, V, S> {
    type Output = V;

    fn pluck(mut self, key: &&'static str) -> Option<V> {
        self.remove(*key)
    }
}

impl<K: Ord, V: Element> Pluck<K> for BTreeMap<K, V> {
    type Output = V;

    fn pluck(mut self, key: &K) -> Option<V> {
        self.remove(key)
    }
}

impl<V: Element> Pluck<&'static str> for BTreeMap<String, V> {
    type Output = V;

    fn pluck(mut self, key: &&'static str) -> Option<V> {
        self.remove(*key)
    }
}

macro_rules! pluck_tuple {
    ($index:tt => $out:ident; $($field:ident),+) => {
        impl<$($field: Element),+> Pluck<Idx<$index>> for ($($field,)+) {
            type Output = $out;

            fn pluck(self, _: &Idx<$index>) -> Option<$out> {
                Some(self.$index)
            }
        }
    };
}

pluck_tuple!(0 => A; A);
pluck_tuple!(0 => A; A, B);
pluck_tuple!(1 => B; A, B);
pluck_tuple!(0 => A; A, B, C);
pluck_tuple!(1 => B; A, B, C);
pluck_tuple!(2 => C; A, B, C);
pluck_tuple!(0 => A; A, B, C, D);
pluck_tuple!(1 => B; A, B, C, D);
pluck_tuple!(2 => C; A, B, C, D);
pluck_tuple!(3 => D; A, B, C, D);

#[cfg(feature = "json")]
mod json {
    use serde_json::Value;

    use super::Pluck;

    impl Pluck<usize> for Value {
        type Output = Value;

        fn pluck(self, key: &usize) -> Option<Value> {
            match self {
                Value::Array(mut items) if *key < items.len() => Some(items.swap_remove(*key)),
                _ => None,
            }
        }
    }

    impl Pluck<&'static str> for Value {
        type Output = Value;

        fn pluck(self, key: &&'static str) -> Option<Value> {
            match self {
                Value::Object(mut map) => map.remove(*key),
                _ => None,
            }
        }
    }

    impl Pluck<String> for Value {
        type Output = Value;

        fn pluck(self, key: &String) -> Option<Value> {
            match self {
                Value::Object(mut map) => map.remove(key),
                _ => None,
            }
        }
    }

    /// A key held in a `Value`: a number indexes an array, a string keys an object, and an
    /// array of keys takes several parts at once, giving an array.
    impl Pluck<Value> for Value {
        type Output = Value;

        fn pluck(self, key: &Value) -> Option<Value> {
            match key {
                Value::Array(keys) => keys
                    .iter()
                    .map(|k| pick(&self, k).cloned())
                    .collect::<Option<Vec<_>>>()
                    .map(Value::Array),
                key => pick(&self, key).cloned(),
            }
        }
    }

    fn pick<'a>(value: &'a Value, key: &Value) -> Option<&'a Value> {
        match key {
            Value::Number(n) => value.get(usize::try_from(n.as_u64()?).ok()?),
            Value::String(s) => value.get(s.as_str()),
            _ => None,
        }
    }
}

struct PluckOp<K>(K);

impl<T, K> Operator<T> for PluckOp<K>
where
    T: Pluck<K> + 'static,
    K: Debug + Send + Sync + 'static,
{
    type Out = T::Output;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T::Output>>, cx: &mut Cx<'_>) {
        match x.pluck(&self.0) {
            Some(y) => out.push(y, cx),
            None => cx.fail(StreamError::new(
                ErrorKind::MissingKey,
                Some(out.info.node_ref()),
                format!("the element has no {:?}", self.0),
            )),
        }
    }
}

impl<T: Element> Stream<T> {
    /// Emits one part of each element: an index of a `Vec`, a field of a tuple, a key of a
    /// map or of a JSON value, or several indices or keys at once (see [`Pluck`]). An element
    /// without that part is an [`ErrorKind::MissingKey`] error from its `emit`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamz_core::{Idx, Stream};
    ///
    /// let rows = Stream::new();
    /// let second = rows.pluck(1).sink_to_vec();
    /// let ends = rows.pluck(vec![0, 2]).sink_to_vec();
    /// rows.emit_blocking(vec![1, 2, 3]).unwrap();
    /// assert!(rows.emit_blocking(vec![1]).is_err());
    /// assert_eq!(second.to_vec(), vec![2]);
    /// assert_eq!(ends.to_vec(), vec![vec![1, 3]]);
    ///
    /// let pairs = Stream::new();
    /// let names = pairs.pluck(Idx::<1>).sink_to_vec();
    /// pairs.emit_blocking((7, "seven")).unwrap();
    /// assert_eq!(names.to_vec(), vec!["seven"]);
    ///
    /// let records = Stream::<serde_json::Value>::new();
    /// let xs = records.pluck("x").sink_to_vec();
    /// records.emit_blocking(serde_json::json!({"x": 1, "y": 2})).unwrap();
    /// assert_eq!(xs.to_vec(), vec![serde_json::json!(1)]);
    /// ```
    pub fn pluck<K>(&self, key: K) -> Stream<T::Output>
    where
        T: Pluck<K>,
        K: Debug + Send + Sync + 'static,
    {
        self.attach(&PLUCK, None, PluckOp(key))
    }
}
