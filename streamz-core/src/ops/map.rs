//! Element-wise operators: `map`, `try_map`, `filter`, `try_filter`, `remove`, `starmap`,
//! `flatten`.

use std::sync::Arc;

use crate::emit::Cx;
use crate::error::BoxError;
use crate::node::{Kind, Operator, Outlet, Port, Shape, fn_name, guard, guard_try};
use crate::stream::{Element, Stream};

const MAP: Kind = Kind::new("map", Shape::Ellipse);
const FILTER: Kind = Kind::new("filter", Shape::Ellipse);
const REMOVE: Kind = Kind::new("remove", Shape::Ellipse);
const STARMAP: Kind = Kind::new("starmap", Shape::Ellipse);
const FLATTEN: Kind = Kind::new("flatten", Shape::Ellipse);

struct Map<F>(F);

impl<T, U, F> Operator<T> for Map<F>
where
    T: 'static,
    U: Element,
    F: Fn(T) -> U + Send + Sync + 'static,
{
    type Out = U;

    #[inline]
    fn push(&self, _: Port, x: T, out: &Arc<Outlet<U>>, cx: &mut Cx<'_>) {
        if let Some(y) = guard(&out.info, cx, || (self.0)(x)) {
            out.push(y, cx);
        }
    }
}

struct TryMap<F>(F);

impl<T, U, E, F> Operator<T> for TryMap<F>
where
    T: 'static,
    U: Element,
    E: Into<BoxError>,
    F: Fn(T) -> Result<U, E> + Send + Sync + 'static,
{
    type Out = U;

    #[inline]
    fn push(&self, _: Port, x: T, out: &Arc<Outlet<U>>, cx: &mut Cx<'_>) {
        if let Some(y) = guard_try(&out.info, cx, || (self.0)(x)) {
            out.push(y, cx);
        }
    }
}

/// Keeps the elements for which the predicate's answer equals `keep`.
struct Filter<F> {
    predicate: F,
    keep: bool,
}

impl<T, F> Operator<T> for Filter<F>
where
    T: Element,
    F: Fn(&T) -> bool + Send + Sync + 'static,
{
    type Out = T;

    #[inline]
    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        if guard(&out.info, cx, || (self.predicate)(&x)) == Some(self.keep) {
            out.push(x, cx);
        }
    }
}

struct TryFilter<F>(F);

impl<T, E, F> Operator<T> for TryFilter<F>
where
    T: Element,
    E: Into<BoxError>,
    F: Fn(&T) -> Result<bool, E> + Send + Sync + 'static,
{
    type Out = T;

    #[inline]
    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T>>, cx: &mut Cx<'_>) {
        if guard_try(&out.info, cx, || (self.0)(&x)) == Some(true) {
            out.push(x, cx);
        }
    }
}

/// A function that takes a tuple's fields as separate arguments, for
/// [`starmap`](Stream::starmap): `Fn(A, B) -> R` is an `ApplyTuple<(A, B)>`. Implemented for
/// tuples of one to six fields.
///
/// # Examples
///
/// ```
/// use streamz_core::ApplyTuple;
///
/// let add = |a: i32, b: i32| a + b;
/// assert_eq!(add.apply((2, 3)), 5);
/// ```
pub trait ApplyTuple<Args>: Send + Sync + 'static {
    /// What the function returns.
    type Output;

    /// Calls the function with the tuple's fields.
    fn apply(&self, args: Args) -> Self::Output;
}

macro_rules! apply_tuple {
    ($($arg:ident),+) => {
        impl<Func, Ret, $($arg),+> ApplyTuple<($($arg,)+)> for Func
        where
            Func: Fn($($arg),+) -> Ret + Send + Sync + 'static,
        {
            type Output = Ret;

            #[inline]
            #[allow(non_snake_case)]
            fn apply(&self, ($($arg,)+): ($($arg,)+)) -> Ret {
                self($($arg),+)
            }
        }
    };
}

apply_tuple!(A);
apply_tuple!(A, B);
apply_tuple!(A, B, C);
apply_tuple!(A, B, C, D);
apply_tuple!(A, B, C, D, E);
apply_tuple!(A, B, C, D, E, G);

struct StarMap<F>(F);

impl<T, F> Operator<T> for StarMap<F>
where
    T: 'static,
    F: ApplyTuple<T>,
    F::Output: Element,
{
    type Out = F::Output;

    #[inline]
    fn push(&self, _: Port, x: T, out: &Arc<Outlet<F::Output>>, cx: &mut Cx<'_>) {
        if let Some(y) = guard(&out.info, cx, || self.0.apply(x)) {
            out.push(y, cx);
        }
    }
}

struct Flatten;

impl<T> Operator<T> for Flatten
where
    T: IntoIterator + 'static,
    T::Item: Element,
{
    type Out = T::Item;

    fn push(&self, _: Port, x: T, out: &Arc<Outlet<T::Item>>, cx: &mut Cx<'_>) {
        for item in x {
            out.push(item, cx);
        }
    }
}

impl<T: Element> Stream<T> {
    /// Emits `f(x)` for every element `x`.
    ///
    /// A panic in `f` becomes an error from the `emit` of that element, naming this node; the
    /// element goes no further on this branch.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.map(|x: i32| x * 2).sink_to_vec();
    /// source.emit_blocking(21).unwrap();
    /// assert_eq!(out.to_vec(), vec![42]);
    /// ```
    pub fn map<U, F>(&self, f: F) -> Stream<U>
    where
        U: Element,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.attach(&MAP, fn_name::<F>(), Map(f))
    }

    /// Emits `y` for every element whose `f(x)` is `Ok(y)`; an `Err` is an error from the
    /// `emit` of that element, naming this node.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::<&str>::new();
    /// let out = source.try_map(|s| s.parse::<i32>()).sink_to_vec();
    /// source.emit_blocking("12").unwrap();
    /// let err = source.emit_blocking("twelve").unwrap_err();
    /// assert!(err.to_string().contains("invalid digit"));
    /// assert_eq!(out.to_vec(), vec![12]);
    /// ```
    pub fn try_map<U, E, F>(&self, f: F) -> Stream<U>
    where
        U: Element,
        E: Into<BoxError>,
        F: Fn(T) -> Result<U, E> + Send + Sync + 'static,
    {
        self.attach(&MAP, fn_name::<F>(), TryMap(f))
    }

    /// Emits the elements for which `predicate` is true.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.filter(|x: &i32| x % 2 == 0).sink_to_vec();
    /// for x in 0..10 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![0, 2, 4, 6, 8]);
    /// ```
    pub fn filter<F>(&self, predicate: F) -> Stream<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.attach(
            &FILTER,
            fn_name::<F>(),
            Filter {
                predicate,
                keep: true,
            },
        )
    }

    /// Emits the elements for which `predicate` is `Ok(true)`; an `Err` is an error from the
    /// `emit` of that element.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::<&str>::new();
    /// let out = source
    ///     .try_filter(|s| s.parse::<i32>().map(|n| n > 0))
    ///     .sink_to_vec();
    /// source.emit_blocking("5").unwrap();
    /// source.emit_blocking("-5").unwrap();
    /// assert!(source.emit_blocking("five").is_err());
    /// assert_eq!(out.to_vec(), vec!["5"]);
    /// ```
    pub fn try_filter<E, F>(&self, predicate: F) -> Stream<T>
    where
        E: Into<BoxError>,
        F: Fn(&T) -> Result<bool, E> + Send + Sync + 'static,
    {
        self.attach(&FILTER, fn_name::<F>(), TryFilter(predicate))
    }

    /// Emits the elements for which `predicate` is false: the opposite of
    /// [`filter`](Stream::filter).
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.remove(|x: &i32| x % 2 == 0).sink_to_vec();
    /// for x in 0..10 {
    ///     source.emit_blocking(x).unwrap();
    /// }
    /// assert_eq!(out.to_vec(), vec![1, 3, 5, 7, 9]);
    /// ```
    pub fn remove<F>(&self, predicate: F) -> Stream<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.attach(
            &REMOVE,
            fn_name::<F>(),
            Filter {
                predicate,
                keep: false,
            },
        )
    }

    /// For a stream of tuples, emits `f(a, b, …)`: the tuple's fields become the function's
    /// arguments.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.starmap(|a: i32, b: i32| a + b).sink_to_vec();
    /// source.emit_blocking((1, 10)).unwrap();
    /// assert_eq!(out.to_vec(), vec![11]);
    /// ```
    pub fn starmap<F>(&self, f: F) -> Stream<F::Output>
    where
        F: ApplyTuple<T>,
        F::Output: Element,
    {
        self.attach(&STARMAP, fn_name::<F>(), StarMap(f))
    }

    /// For a stream of collections, emits each item of each collection, in order (one level
    /// only). An empty collection emits nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = streamz_core::Stream::new();
    /// let out = source.flatten().sink_to_vec();
    /// source.emit_blocking(vec![1, 2, 3]).unwrap();
    /// source.emit_blocking(vec![]).unwrap();
    /// source.emit_blocking(vec![4]).unwrap();
    /// assert_eq!(out.to_vec(), vec![1, 2, 3, 4]);
    /// ```
    pub fn flatten(&self) -> Stream<T::Item>
    where
        T: IntoIterator,
        T::Item: Element,
    {
        self.attach(&FLATTEN, None, Flatten)
    }
}
