//! The thread pool: `scatter` sends elements to it, and the stages up to `gather` run there
//! (the ones whose entry is `Build::Anywhere`). Needs the `rayon` feature.

use serde_json::Value;
use streamz_core::Stream;

use super::args::{Kind::*, opt};
use super::{Args, Build, OpSpec};
use crate::error::CliError;
use crate::flow::Pooled;
use crate::graph::Runtime;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "scatter",
        params: &[],
        about: "send elements to the thread pool: the stages up to `gather` run there, in parallel (needs the rayon feature)",
        build: Build::Scatter(scatter),
    },
    OpSpec {
        name: "gather",
        params: &[opt("ordered", Bool, "true")],
        about: "back from the pool, in input order (ordered=false: as they finish)",
        build: Build::Gather(gather),
    },
];

#[cfg(feature = "rayon")]
fn scatter(args: &Args<'_>, s: &Stream<Value>, rt: &Runtime) -> Result<Pooled, CliError> {
    use streamz_rayon::ScatterExt;
    match &rt.pool {
        Some(pool) => Ok(s.scatter(pool)),
        None => Err(CliError::at(
            "scatter needs a thread pool",
            args.stage().span.clone(),
        )),
    }
}

#[cfg(not(feature = "rayon"))]
fn scatter(args: &Args<'_>, _: &Stream<Value>, _: &Runtime) -> Result<Pooled, CliError> {
    Err(CliError::at(
        "scatter needs the thread pool, and this streamz was built without the `rayon` feature",
        args.stage().span.clone(),
    )
    .help("build it with `cargo install streamz-cli --features rayon`"))
}

#[cfg(feature = "rayon")]
fn gather(args: &Args<'_>, s: Pooled) -> Result<Stream<Value>, CliError> {
    Ok(if args.flag_or("ordered", true)? {
        s.gather()
    } else {
        s.gather_unordered()
    })
}

#[cfg(not(feature = "rayon"))]
fn gather(_: &Args<'_>, s: Pooled) -> Result<Stream<Value>, CliError> {
    match s {}
}
