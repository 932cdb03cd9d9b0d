//! The operator table: every stage the language knows, with its parameters, a line about it
//! and how it is built, side by side. One entry per operator, in the file of its family:
//!
//! - `sources.rs`: range, values, from_periodic, filenames;
//! - `lines.rs`: the line sources (stdin, from_textfile, from_process);
//! - `net.rs`: the network sources (from_tcp, from_http_server);
//! - `elementwise.rs`: map, filter, remove, pluck, flatten, json;
//! - `state.rs`: accumulate, sliding_window, partition, partition_unique, unique, slice,
//!   frequencies;
//! - `time.rs`: rate_limit, delay, timed_window, buffer, latest, debounce, throttle, sample;
//! - `event.rs`: watermarks, window (event time);
//! - `joins.rs`: union, zip, combine_latest, zip_latest;
//! - `pool.rs`: scatter, gather;
//! - `sinks.rs`: sink, sink_to_textfile, count;
//! - `kafka.rs`, `mqtt.rs`, `nats.rs`, `websocket.rs` (each behind its cargo feature): the
//!   connectors' sources and sinks, from_kafka, from_kafka_batched, to_kafka, from_mqtt,
//!   to_mqtt, from_nats, to_nats, from_websocket, to_websocket.
//!
//! Adding an operator is one entry in one of these files: `streamz ops`, the parser's
//! checks, the builder and the tests that build every entry all read it from [`all`].

mod args;
mod elementwise;
mod event;
mod joins;
#[cfg(feature = "kafka")]
mod kafka;
mod lines;
#[cfg(feature = "mqtt")]
mod mqtt;
#[cfg(feature = "nats")]
mod nats;
mod net;
mod pool;
mod sinks;
mod sources;
mod state;
mod time;
#[cfg(feature = "websocket")]
mod websocket;

use std::sync::LazyLock;

use serde_json::Value;
use streamz_core::Stream;

#[cfg(test)]
pub(crate) use args::Kind;
pub(crate) use args::{Args, Param, usage};
pub(crate) use sinks::stdout_sink;

use crate::error::{CliError, nearest};
use crate::flow::{Flow, Pooled};
use crate::graph::{Graph, Runtime};
use crate::parse::Stage;
use crate::script::Expr;
use crate::source::Source;

/// Where an operator may stand, as `streamz ops` groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// First in a line: makes elements.
    Source,
    /// Anywhere after a source.
    Transform,
    /// Only between `scatter` and `gather` (`gather` itself).
    Pooled,
    /// Last in a line: consumes elements.
    Sink,
}

/// A stage built: its last stream, or why it cannot be.
pub(crate) type Built = Result<Stream<Value>, CliError>;

/// A stage with a second output built: its stream and the side stream.
pub(crate) type BuiltSplit = Result<(Stream<Value>, Stream<Value>), CliError>;

/// How an operator's stage is built, which says where it may stand.
#[derive(Clone, Copy)]
pub(crate) enum Build {
    /// A source: what feeds the line's first stream.
    Source(fn(&Args<'_>, &Runtime) -> Result<Source, CliError>),
    /// A stage of the local graph.
    Local(fn(&Args<'_>, &Stream<Value>) -> Built),
    /// A stage that runs in the local graph or, between `scatter` and `gather`, on the pool.
    Anywhere(fn(&Args<'_>, Flow) -> Result<Flow, CliError>),
    /// `scatter`: from the local graph to the pool.
    Scatter(fn(&Args<'_>, &Stream<Value>, &Runtime) -> Result<Pooled, CliError>),
    /// `gather`: from the pool back to the local graph.
    Gather(fn(&Args<'_>, Pooled) -> Built),
    /// A join of this stream (or, first in a line, the first named one) with the named
    /// streams: its `Names` parameter.
    Join(fn(&Args<'_>, &Stream<Value>, &[Stream<Value>]) -> Built),
    /// A stage of the local graph with a second output, a stream named by the option given
    /// (`window`'s `late=`), which other lines can start from.
    Split(&'static str, fn(&Args<'_>, &Stream<Value>) -> BuiltSplit),
    /// A sink.
    Sink(fn(&Args<'_>, &Stream<Value>, &mut Graph) -> Result<streamz_core::Sink, CliError>),
}

impl std::fmt::Debug for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Build::Source(_) => "Source",
            Build::Local(_) => "Local",
            Build::Anywhere(_) => "Anywhere",
            Build::Scatter(_) => "Scatter",
            Build::Gather(_) => "Gather",
            Build::Join(_) => "Join",
            Build::Split(..) => "Split",
            Build::Sink(_) => "Sink",
        })
    }
}

/// One operator of the language.
#[derive(Debug)]
pub(crate) struct OpSpec {
    pub(crate) name: &'static str,
    pub(crate) params: &'static [Param],
    pub(crate) about: &'static str,
    pub(crate) build: Build,
}

impl OpSpec {
    pub(crate) fn role(&self) -> Role {
        match self.build {
            Build::Source(_) => Role::Source,
            Build::Local(_)
            | Build::Anywhere(_)
            | Build::Scatter(_)
            | Build::Join(_)
            | Build::Split(..) => Role::Transform,
            Build::Gather(_) => Role::Pooled,
            Build::Sink(_) => Role::Sink,
        }
    }

    /// Whether it may run between `scatter` and `gather`.
    #[cfg(test)]
    pub(crate) fn runs_pooled(&self) -> bool {
        matches!(self.build, Build::Anywhere(_) | Build::Gather(_))
    }
}

/// Every operator, family by family.
pub(crate) fn all() -> impl Iterator<Item = &'static OpSpec> {
    static ALL: LazyLock<Vec<&'static OpSpec>> = LazyLock::new(|| {
        [
            sources::OPS,
            lines::OPS,
            net::OPS,
            elementwise::OPS,
            state::OPS,
            time::OPS,
            event::OPS,
            joins::OPS,
            pool::OPS,
            sinks::OPS,
            #[cfg(feature = "kafka")]
            kafka::OPS,
            #[cfg(feature = "mqtt")]
            mqtt::OPS,
            #[cfg(feature = "nats")]
            nats::OPS,
            #[cfg(feature = "websocket")]
            websocket::OPS,
        ]
        .into_iter()
        .flatten()
        .collect()
    });
    ALL.iter().copied()
}

/// The operator named `name`.
pub(crate) fn find(name: &str) -> Option<&'static OpSpec> {
    all().find(|op| op.name == name)
}

/// The operator named by a stage, or an error suggesting the nearest name.
pub(crate) fn lookup(stage: &Stage) -> Result<&'static OpSpec, CliError> {
    let name = stage.op.text.as_str();
    find(name).ok_or_else(|| {
        let err = CliError::at(format!("unknown operator `{name}`"), stage.op.span.clone());
        match nearest(name, all().map(|op| op.name)) {
            Some(near) => err.help(format!(
                "did you mean `{near}`? `streamz ops` lists every operator"
            )),
            None => err.help("`streamz ops` lists every operator"),
        }
    })
}

/// The operators that may run between `scatter` and `gather`, as a list for messages.
pub(crate) fn pooled_list() -> String {
    let names: Vec<&str> = all()
        .filter(|op| matches!(op.build, Build::Anywhere(_)))
        .map(|op| op.name)
        .collect();
    names.join(", ")
}

/// `streamz ops`: every operator with its parameters and what it does.
pub(crate) fn listing() -> String {
    let mut out = String::new();
    for (role, title) in [
        (Role::Source, "Sources (first in a line)"),
        (Role::Transform, "Operators"),
        (Role::Pooled, "After scatter"),
        (
            Role::Sink,
            "Sinks (last in a line; `sink stdout` when a line has none)",
        ),
    ] {
        out.push_str(title);
        out.push('\n');
        for op in all().filter(|op| op.role() == role) {
            let usage = usage(op);
            let usage = usage.trim_start_matches("usage: ");
            out.push_str(&format!("  {usage}\n      {}\n", op.about));
            for p in op
                .params
                .iter()
                .filter(|p| p.default.is_some_and(|d| !d.is_empty()))
                .filter(|_| op.name != "range")
            {
                out.push_str(&format!(
                    "      {}: default {}\n",
                    p.name,
                    p.default.unwrap_or_default()
                ));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Between scatter and gather: {}.\n\
         Expressions are rhai over x (and acc): \"x + 1\", \"x % 2 == 0\", \"x.name\", \"[x, x * 2]\".\n\
         Durations: 500ms, 1s, 2m. Several streams: one `name = stages` line each (in a -f file, or\n\
         separated by `;`), then `zip a b`, `a | union b`, ….\n",
        pooled_list()
    ));
    out
}

/// Compact JSON for messages, cut short when long.
pub(crate) fn show(x: &Value) -> String {
    let mut s = x.to_string();
    if s.chars().count() > 120 {
        s = s.chars().take(117).collect::<String>() + "…";
    }
    s
}

/// An expression failure as the error of one element.
pub(crate) fn failure(x: &Value, e: String) -> String {
    format!("on the element {}: {e}", show(x))
}

/// A key for hashing a JSON value.
pub(crate) fn key_of(x: &Value) -> String {
    x.to_string()
}

/// Evaluates a key expression where the operator cannot take an error: a failure becomes a
/// panic, which the node turns into an error for the element (and the CLI's panic hook
/// keeps quiet).
pub(crate) fn key_fn(expr: Expr) -> impl Fn(&Value) -> String + Send + Sync + 'static {
    move |x: &Value| match expr.eval(&[x]) {
        Ok(k) => key_of(&k),
        Err(e) => std::panic::panic_any(crate::quiet_panic(failure(x, e))),
    }
}

/// A broker source's `option` (`topic`, `subject`): one or several, comma separated.
#[cfg(any(feature = "kafka", feature = "mqtt", feature = "nats"))]
fn names_given(args: &Args<'_>, option: &str) -> Result<Vec<String>, CliError> {
    let names: Vec<String> = args
        .text(option)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(CliError::at(
            format!("no {option} given"),
            args.stage().span.clone(),
        ));
    }
    Ok(names)
}

/// Builds a connector's source with `build`, off the runtime's threads (connecting blocks);
/// an error in words, `what` naming the stage.
#[cfg(any(
    feature = "kafka",
    feature = "mqtt",
    feature = "nats",
    feature = "websocket"
))]
async fn connect<S: Send + 'static>(
    what: &str,
    build: impl FnOnce() -> Result<S, streamz_core::StreamError> + Send + 'static,
) -> Result<S, String> {
    tokio::task::spawn_blocking(build)
        .await
        .map_err(|e| format!("{what}: {e}"))?
        .map_err(|e| e.message().to_owned())
}

/// A broker message's payload as an element: text, or (`json`) parsed; `None` is null.
#[cfg(any(
    feature = "kafka",
    feature = "mqtt",
    feature = "nats",
    feature = "websocket"
))]
fn payload_value(bytes: Option<&[u8]>, json: bool) -> Result<Value, String> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    let text = std::str::from_utf8(bytes).map_err(|_| "its value is not UTF-8".to_owned())?;
    if json {
        serde_json::from_str(text).map_err(|e| {
            format!(
                "its value is not JSON: {e}: {}",
                show(&Value::String(text.to_owned()))
            )
        })
    } else {
        Ok(Value::String(text.to_owned()))
    }
}

/// An element as a broker message's payload: a string as it is, anything else as compact
/// JSON.
#[cfg(any(
    feature = "kafka",
    feature = "mqtt",
    feature = "nats",
    feature = "websocket"
))]
fn payload_text(x: &Value) -> String {
    match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn bind(src: &str) -> Result<(), CliError> {
        let program = parse(src)?;
        let stage = &program.lines[0].stages[0];
        Args::bind(lookup(stage)?, stage).map(|_| ())
    }

    #[test]
    fn binding_checks_arguments() {
        assert!(bind("range 10").is_ok());
        assert!(bind("range 1 10 2").is_ok());
        assert!(
            bind("range 1 10 2 3")
                .unwrap_err()
                .message
                .contains("at most 3")
        );
        let err = bind("range").unwrap_err();
        assert_eq!(err.message, "`range` needs END (INT)");
        assert_eq!(err.help.unwrap(), "usage: range [START] END [STEP]");
        let err = bind("sliding_window 2 retrun_partial=false").unwrap_err();
        assert!(err.help.unwrap().contains("return_partial"));
        assert!(bind("zip a b c").is_ok());
        // found by the fuzz tests: names only by position
        let err = bind("union streams=a").unwrap_err();
        assert!(err.message.contains("by position"), "{err:?}");
        assert!(bind("mapp 1").unwrap_err().help.unwrap().contains("`map`"));
    }

    #[test]
    fn every_operator_is_listed_once() {
        let listing = listing();
        let mut names = std::collections::HashSet::new();
        for op in all() {
            assert!(listing.contains(op.about), "{}", op.name);
            assert!(names.insert(op.name), "`{}` is in the table twice", op.name);
        }
        assert!(listing.contains("Between scatter and gather: map, filter, remove"));
    }
}
