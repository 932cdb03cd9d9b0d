//! Operators with state: accumulate, sliding_window, partition, partition_unique, unique,
//! slice, frequencies.

use std::collections::HashMap;

use serde_json::Value;
use streamz_core::{Keep, Stream};

use super::args::{Kind::*, opt, pos, req};
use super::{Args, Build, OpSpec, failure, key_fn, key_of, show};
use crate::error::CliError;
use crate::flow::Flow;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "accumulate",
        params: &[
            req("func", AccExpr),
            opt("start", Json, ""),
            opt("returns_state", Bool, "false"),
            opt("with_state", Bool, "false"),
        ],
        about: "a running fold: acc becomes the expression's value, which is emitted; with returns_state=true the expression gives [state, output]",
        build: Build::Anywhere(accumulate),
    },
    OpSpec {
        name: "sliding_window",
        params: &[req("n", Count), opt("return_partial", Bool, "true")],
        about: "the last N elements as an array, after each element",
        build: Build::Local(sliding_window),
    },
    OpSpec {
        name: "partition",
        params: &[
            req("n", Count),
            opt("timeout", Duration, ""),
            opt("key", Expr, ""),
        ],
        about: "arrays of N elements (per key, with key=); the remainder at end of stream or after timeout",
        build: Build::Local(partition),
    },
    OpSpec {
        name: "partition_unique",
        params: &[
            req("n", Count),
            opt("key", Expr, ""),
            opt("keep", Text, "first"),
        ],
        about: "arrays of N elements with distinct keys (key=, the element itself by default); a repeated key is ignored (keep=first) or replaces the one held, moving to the end (keep=last); the remainder at end of stream",
        build: Build::Local(partition_unique),
    },
    OpSpec {
        name: "unique",
        params: &[opt("maxsize", Count, ""), opt("key", Expr, "")],
        about: "elements not seen before (among the last maxsize, by key)",
        build: Build::Local(unique),
    },
    OpSpec {
        name: "slice",
        params: &[
            pos("start", Count, "0"),
            pos("stop", Count, ""),
            pos("step", Count, "1"),
        ],
        about: "elements START to STOP, every STEP-th, as Python's itertools.islice",
        build: Build::Local(slice),
    },
    OpSpec {
        name: "frequencies",
        params: &[],
        about: "after each element, an object counting each distinct element so far",
        build: Build::Local(frequencies),
    },
];

fn accumulate(args: &Args<'_>, s: Flow) -> Result<Flow, CliError> {
    let f = args.required_expr("func", &["acc", "x"])?;
    let start = args.strict_json("start")?;
    let returns_state = args.flag("returns_state")?;
    let with_state = args.flag("with_state")?;
    if !returns_state && !with_state {
        return Ok(s.fold(start, move |acc, x| {
            f.eval(&[acc, &x]).map_err(|e| failure(&x, e))
        }));
    }
    let Some(s) = s.into_local() else {
        return Err(CliError::at(
            "accumulate with returns_state or with_state cannot run between scatter and gather",
            args.stage().span.clone(),
        )
        .help("gather first, then accumulate"));
    };
    Ok(Flow::Local(s.durable().try_accumulate_returns_state(
        start,
        move |acc: &Value, x: Value| {
            let out = f.eval(&[acc, &x]).map_err(|e| failure(&x, e))?;
            let (state, y) = if returns_state {
                match out {
                    Value::Array(mut pair) if pair.len() == 2 => {
                        let y = pair.pop().unwrap_or_default();
                        (pair.pop().unwrap_or_default(), y)
                    }
                    other => {
                        return Err(failure(
                            &x,
                            format!(
                                "with returns_state=true the expression must give [state, output], not {}",
                                show(&other)
                            ),
                        ));
                    }
                }
            } else {
                (out.clone(), out)
            };
            let y = if with_state {
                Value::Array(vec![state.clone(), y])
            } else {
                y
            };
            Ok::<_, String>((state, y))
        },
    )))
}

fn sliding_window(args: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    let n = args.required_positive("n")?;
    Ok(s.durable()
        .sliding_window(n, args.flag_or("return_partial", true)?)
        .map(Value::Array)
        .part_of_upstream())
}

fn partition(args: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    let n = args.required_positive("n")?;
    let key = args.expr("key", &["x"])?;
    let out = match (args.duration("timeout")?, key) {
        (None, None) => s.durable().partition(n),
        (None, Some(key)) => s.durable().partition_by(n, key_fn(key)),
        (Some(t), None) => s.durable().partition_timeout(n, t),
        (Some(t), Some(key)) => s.durable().partition_by_timeout(n, t, key_fn(key)),
    };
    Ok(out.map(Value::Array).part_of_upstream())
}

fn partition_unique(args: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    let n = args.required_positive("n")?;
    let keep = match args.text("keep").as_deref() {
        Some("first") | None => Keep::First,
        Some("last") => Keep::Last,
        Some(other) => {
            return Err(CliError::at(
                format!("keep={other}: keep is `first` or `last`"),
                args.stage().span.clone(),
            ));
        }
    };
    let out = match args.expr("key", &["x"])? {
        Some(key) => s.durable().partition_unique_by(n, keep, key_fn(key)),
        None => s.durable().partition_unique_by(n, keep, key_of),
    };
    Ok(out.map(Value::Array).part_of_upstream())
}

fn unique(args: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    let maxsize = match args.count("maxsize")? {
        Some(_) => Some(args.required_positive("maxsize")?),
        None => None,
    };
    Ok(match args.expr("key", &["x"])? {
        Some(key) => s.durable().unique_by(maxsize, key_fn(key)),
        None => s.durable().unique_by(maxsize, key_of),
    })
}

fn slice(args: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    let step = args.positive("step", 1)?;
    let start = args.count("start")?.unwrap_or(0);
    Ok(s.durable().slice(start, args.count("stop")?, step))
}

/// One node: the counts are the fold's state, and each output is them as an object.
fn frequencies(_: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    Ok(s.durable()
        .scan(HashMap::<String, u64>::new(), |counts, x: Value| {
            *counts.entry(key_of(&x)).or_insert(0) += 1;
            let mut keys: Vec<_> = counts.iter().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|(k, n)| (k.clone(), Value::from(*n)))
                    .collect(),
            )
        }))
}
