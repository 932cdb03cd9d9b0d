//! Sinks: sink (stdout or null), sink_to_textfile, count.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use streamz_core::{Sink, Stream};

use super::args::{Kind::*, opt, pos, req};
use super::{Args, Build, OpSpec};
use crate::error::CliError;
use crate::graph::Graph;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "sink",
        params: &[pos("to", Text, "stdout")],
        about: "write each element as one line of compact JSON to stdout, or drop it (null)",
        build: Build::Sink(sink),
    },
    OpSpec {
        name: "sink_to_textfile",
        params: &[req("path", Text), opt("append", Bool, "false")],
        about: "write each element as one line of compact JSON to a file",
        build: Build::Sink(sink_to_textfile),
    },
    OpSpec {
        name: "count",
        params: &[],
        about: "print how many elements arrived, at the end",
        build: Build::Sink(count),
    },
];

fn sink(args: &Args<'_>, s: &Stream<Value>, graph: &mut Graph) -> Result<Sink, CliError> {
    match args.text("to").as_deref() {
        Some("stdout") | None => Ok(stdout_sink(s, &graph.stdout_closed)),
        Some("null") => Ok(s.sink(|_| {})),
        Some(other) => Err(CliError::at(
            format!("`sink {other}`: sink takes `stdout` or `null`"),
            args.stage().span.clone(),
        )
        .help("to write to a file, use `sink_to_textfile PATH`")),
    }
}

fn sink_to_textfile(
    args: &Args<'_>,
    s: &Stream<Value>,
    graph: &mut Graph,
) -> Result<Sink, CliError> {
    let path = args.text("path").unwrap_or_default();
    // a run resuming from a checkpoint goes on after what the run before wrote
    let append = args.flag("append")? || graph.resuming;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&path)
        .map_err(|e| {
            CliError::at(
                format!("cannot open `{path}` for writing: {e}"),
                args.stage().span.clone(),
            )
        })?;
    graph.file_sinks = true;
    let file = Mutex::new(std::io::LineWriter::new(file));
    Ok(s.try_sink(move |x: Value| {
        let mut file = streamz_core::lock(&file);
        writeln!(file, "{x}")
    }))
}

fn count(_: &Args<'_>, s: &Stream<Value>, graph: &mut Graph) -> Result<Sink, CliError> {
    let n = Arc::new(AtomicU64::new(0));
    graph.counts.push(n.clone());
    Ok(s.sink(move |_| {
        n.fetch_add(1, Ordering::Relaxed);
    }))
}

/// Each element as a line of JSON on stdout; a closed stdout (`| head`) sets `closed`, and
/// the run stops quietly.
pub(crate) fn stdout_sink(s: &Stream<Value>, closed: &Arc<AtomicBool>) -> Sink {
    let closed = closed.clone();
    s.sink(move |x: Value| {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{x}").and_then(|()| out.flush()).is_err() {
            closed.store(true, Ordering::Relaxed);
        }
    })
}
