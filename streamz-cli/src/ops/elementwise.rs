//! One element in, at most one out (or its items): map, filter, remove, pluck, flatten, json.
//! Each may run in the local graph or between scatter and gather.

use serde_json::Value;

use super::args::{Kind::*, req};
use super::{Args, Build, OpSpec, failure};
use crate::error::CliError;
use crate::flow::Flow;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "map",
        params: &[req("func", Expr)],
        about: "the expression's value for each element",
        build: Build::Anywhere(map),
    },
    OpSpec {
        name: "filter",
        params: &[req("predicate", Expr)],
        about: "the elements for which the expression is true",
        build: Build::Anywhere(filter),
    },
    OpSpec {
        name: "remove",
        params: &[req("predicate", Expr)],
        about: "the elements for which the expression is false",
        build: Build::Anywhere(remove),
    },
    OpSpec {
        name: "pluck",
        params: &[req("key", Json)],
        about: "a field of each element: an index of an array or a key of an object",
        build: Build::Anywhere(pluck),
    },
    OpSpec {
        name: "flatten",
        params: &[],
        about: "the items of each array element, one by one",
        build: Build::Anywhere(flatten),
    },
    OpSpec {
        name: "json",
        params: &[],
        about: "strings parsed as JSON (other elements pass as they are)",
        build: Build::Anywhere(json),
    },
];

fn map(args: &Args<'_>, s: Flow) -> Result<Flow, CliError> {
    let f = args.required_expr("func", &["x"])?;
    Ok(s.try_map(move |x| f.eval(&[&x]).map_err(|e| failure(&x, e))))
}

fn filter(args: &Args<'_>, s: Flow) -> Result<Flow, CliError> {
    keep(args, s, true)
}

fn remove(args: &Args<'_>, s: Flow) -> Result<Flow, CliError> {
    keep(args, s, false)
}

/// The elements for which the predicate is `wanted`.
fn keep(args: &Args<'_>, s: Flow, wanted: bool) -> Result<Flow, CliError> {
    let f = args.required_expr("predicate", &["x"])?;
    Ok(s.try_filter(move |x| f.test(&[x]).map(|t| t == wanted).map_err(|e| failure(x, e))))
}

fn pluck(args: &Args<'_>, s: Flow) -> Result<Flow, CliError> {
    let key = args.json("key").unwrap_or_default();
    Ok(s.try_map(move |x| {
        let found = match (&key, &x) {
            (Value::Number(n), Value::Array(items)) => {
                n.as_u64().and_then(|i| items.get(usize::try_from(i).ok()?))
            }
            (Value::String(k), Value::Object(fields)) => fields.get(k),
            _ => None,
        };
        found
            .cloned()
            .ok_or_else(|| failure(&x, format!("it has no {key}")))
    }))
}

fn flatten(_: &Args<'_>, s: Flow) -> Result<Flow, CliError> {
    Ok(s.flat_map(|x| match x {
        Value::Array(items) => Ok(items),
        other => Err(failure(&other, "flatten needs arrays".into())),
    }))
}

fn json(_: &Args<'_>, s: Flow) -> Result<Flow, CliError> {
    Ok(s.try_map(|x| match x {
        Value::String(text) => serde_json::from_str(&text)
            .map_err(|e| failure(&Value::String(text.clone()), format!("not JSON: {e}"))),
        other => Ok(other),
    }))
}
