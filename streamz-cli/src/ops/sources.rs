//! Sources that make their elements: range, values, from_periodic, filenames.

use std::time::Duration;

use serde_json::Value;

use super::args::{Kind::*, opt, pos, req};
use super::{Args, Build, OpSpec};
use crate::error::CliError;
use crate::graph::Runtime;
use crate::source::Source;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "range",
        params: &[
            req("start", Int),
            pos("end", Int, ""),
            pos("step", Int, "1"),
        ],
        about: "the integers from START (default 0) up to, not including, END, by STEP: `range 10`, `range 1 10 2`",
        build: Build::Source(range),
    },
    OpSpec {
        name: "values",
        params: &[req("values", Json)],
        about: "the items of a JSON array: `values '[1, \"a\", {\"b\": 2}]'`",
        build: Build::Source(values),
    },
    OpSpec {
        name: "filenames",
        params: &[
            req("glob", Text),
            opt("follow", Bool, "false"),
            opt("poll_interval", Duration, "1s"),
        ],
        about: "the paths matching a glob pattern; with follow=true, new ones as they appear",
        build: Build::Source(filenames),
    },
    OpSpec {
        name: "from_periodic",
        params: &[
            req("expr", Expr),
            opt("interval", Duration, "1s"),
            opt("limit", Count, ""),
        ],
        about: "the expression's value every interval (x counts 0, 1, 2, …), LIMIT times or until Ctrl-C",
        build: Build::Source(from_periodic),
    },
];

fn range(args: &Args<'_>, _: &Runtime) -> Result<Source, CliError> {
    let a = args.int("start")?.unwrap_or(0);
    let (start, end) = match args.int("end")? {
        Some(end) => (a, end),
        None => (0, a),
    };
    let step = args.int("step")?.unwrap_or(1);
    if step == 0 {
        return Err(CliError::at("step cannot be 0", args.stage().span.clone()));
    }
    let len = {
        let (start, end, step) = (i128::from(start), i128::from(end), i128::from(step));
        let span = if step > 0 { end - start } else { start - end };
        if span <= 0 {
            0
        } else {
            (span as u128).div_ceil(step.unsigned_abs()) as u64
        }
    };
    Ok(Source::resumable(
        Some(len),
        move |input, control| async move {
            // Python's range: the last element is the last one before `end`; a step past
            // i64's limits ends the range rather than wrapping. A checkpoint saves the next one
            // (null past the end).
            let mut next = match input.resume() {
                Some(saved) => saved.as_i64(),
                None => Some(start),
            };
            while let Some(x) = next.filter(|&x| (step > 0 && x < end) || (step < 0 && x > end)) {
                if control.stopping() {
                    break;
                }
                next = x.checked_add(step);
                control
                    .emit_at(&input, Value::from(x), || {
                        next.map_or(Value::Null, Value::from)
                    })
                    .await;
            }
            Ok(())
        },
    ))
}

fn values(args: &Args<'_>, _: &Runtime) -> Result<Source, CliError> {
    let Some(Value::Array(items)) = args.strict_json("values")? else {
        return Err(CliError::at(
            "values takes a JSON array, such as '[1, 2, 3]'",
            args.stage().span.clone(),
        ));
    };
    let len = items.len() as u64;
    Ok(Source::resumable(
        Some(len),
        move |input, control| async move {
            // a checkpoint saves the index of the next item
            let from = input.resume().and_then(|v| v.as_u64()).unwrap_or(0);
            let from = usize::try_from(from).unwrap_or(usize::MAX);
            for (i, x) in items.into_iter().enumerate().skip(from) {
                if control.stopping() {
                    break;
                }
                control.emit_at(&input, x, || Value::from(i + 1)).await;
            }
            Ok(())
        },
    ))
}

fn filenames(args: &Args<'_>, _: &Runtime) -> Result<Source, CliError> {
    let glob = args.text("glob").unwrap_or_default();
    let follow = args.flag("follow")?;
    let poll = args
        .interval("poll_interval")?
        .unwrap_or(Duration::from_secs(1));
    Ok(Source::new(None, move |stream, mut control| async move {
        let mut seen = std::collections::HashSet::new();
        loop {
            let paths = glob::glob(&glob).map_err(|e| format!("bad pattern `{glob}`: {e}"))?;
            let mut new: Vec<String> = paths
                .filter_map(Result::ok)
                .map(|p| p.display().to_string())
                .filter(|p| !seen.contains(p))
                .collect();
            new.sort();
            for p in new {
                if control.stopping() {
                    return Ok(());
                }
                seen.insert(p.clone());
                control.emit(&stream, Value::String(p)).await;
            }
            if !follow {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = control.stopped() => return Ok(()),
            }
        }
    }))
}

fn from_periodic(args: &Args<'_>, _: &Runtime) -> Result<Source, CliError> {
    let expr = args.required_expr("expr", &["x"])?;
    let interval = args.interval("interval")?.unwrap_or(Duration::from_secs(1));
    let limit = args.count("limit")?;
    Ok(Source::resumable(
        limit.map(|l| l as u64),
        move |input, mut control| async move {
            let mut ticks = tokio::time::interval(interval);
            // a checkpoint saves the next x
            let mut i: u64 = input.resume().and_then(|v| v.as_u64()).unwrap_or(0);
            while limit.is_none_or(|l| i < l as u64) {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = control.stopped() => break,
                }
                let x = Value::from(i);
                match expr.eval(&[&x]) {
                    Ok(v) => control.emit_at(&input, v, || Value::from(i + 1)).await,
                    Err(e) => control.bad_input(format!(
                        "from_periodic: `{}` failed for x = {i}: {e}",
                        expr.text
                    )),
                }
                i += 1;
            }
            Ok(())
        },
    ))
}
