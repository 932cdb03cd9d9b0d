//! Joins of this stream with the streams named by position: union, zip, combine_latest,
//! zip_latest. First in a line, the first named stream is "this".

use serde_json::Value;
use streamz_core::Stream;

use super::args::{Kind::*, opt, req};
use super::{Args, Build, OpSpec};
use crate::error::CliError;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "union",
        params: &[req("streams", Names)],
        about: "the elements of this and the named streams, as they come",
        build: Build::Join(union),
    },
    OpSpec {
        name: "zip",
        params: &[req("streams", Names), opt("maxsize", Count, "10")],
        about: "arrays of one element from this and each named stream, in step",
        build: Build::Join(zip),
    },
    OpSpec {
        name: "combine_latest",
        params: &[req("streams", Names)],
        about: "arrays of the latest element of this and each named stream, on any new one",
        build: Build::Join(combine_latest),
    },
    OpSpec {
        name: "zip_latest",
        params: &[req("streams", Names)],
        about: "arrays of each element of this stream with the latest of the named ones",
        build: Build::Join(zip_latest),
    },
];

fn union(
    _: &Args<'_>,
    base: &Stream<Value>,
    rest: &[Stream<Value>],
) -> Result<Stream<Value>, CliError> {
    Ok(base.union(rest))
}

fn zip(
    args: &Args<'_>,
    base: &Stream<Value>,
    rest: &[Stream<Value>],
) -> Result<Stream<Value>, CliError> {
    let maxsize = args.positive("maxsize", 10)?;
    let rest: Vec<&Stream<Value>> = rest.iter().collect();
    Ok(base
        .durable()
        .zip(&rest, maxsize)
        .map(Value::Array)
        .part_of_upstream())
}

fn combine_latest(
    _: &Args<'_>,
    base: &Stream<Value>,
    rest: &[Stream<Value>],
) -> Result<Stream<Value>, CliError> {
    let rest: Vec<&Stream<Value>> = rest.iter().collect();
    Ok(base
        .durable()
        .combine_latest(&rest, None)
        .map(Value::Array)
        .part_of_upstream())
}

fn zip_latest(
    _: &Args<'_>,
    base: &Stream<Value>,
    rest: &[Stream<Value>],
) -> Result<Stream<Value>, CliError> {
    let rest: Vec<&Stream<Value>> = rest.iter().collect();
    Ok(base
        .durable()
        .zip_latest(&rest)
        .map(Value::Array)
        .part_of_upstream())
}
