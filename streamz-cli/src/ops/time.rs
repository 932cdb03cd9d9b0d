//! Operators of time and flow: rate_limit, delay, timed_window, buffer, latest, debounce,
//! throttle, sample.

use serde_json::Value;
use streamz_core::Stream;

use super::args::{Kind::*, opt, req};
use super::{Args, Build, OpSpec};
use crate::error::CliError;
use crate::flow::Flow;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "rate_limit",
        params: &[req("interval", Duration)],
        about: "elements at least INTERVAL apart",
        build: Build::Anywhere(rate_limit),
    },
    OpSpec {
        name: "delay",
        params: &[req("interval", Duration)],
        about: "every element, INTERVAL later",
        build: Build::Anywhere(delay),
    },
    OpSpec {
        name: "timed_window",
        params: &[req("interval", Duration)],
        about: "every INTERVAL, an array of the elements that came in it",
        build: Build::Local(timed_window),
    },
    OpSpec {
        name: "buffer",
        params: &[req("n", Count)],
        about: "up to N elements queued before emit waits (backpressure)",
        build: Build::Anywhere(buffer),
    },
    OpSpec {
        name: "latest",
        params: &[],
        about: "the newest element whenever downstream is ready, dropping older ones",
        build: Build::Local(latest),
    },
    OpSpec {
        name: "debounce",
        params: &[req("interval", Duration)],
        about: "an element once INTERVAL has passed without another (the last of each burst)",
        build: Build::Local(debounce),
    },
    OpSpec {
        name: "throttle",
        params: &[
            req("interval", Duration),
            opt("leading", Bool, "true"),
            opt("trailing", Bool, "false"),
        ],
        about: "at most one element per INTERVAL: the first of a quiet stream at once (leading=), the last of each period as it ends (trailing=)",
        build: Build::Local(throttle),
    },
    OpSpec {
        name: "sample",
        params: &[req("interval", Duration)],
        about: "every INTERVAL, the newest element since the last, if one came",
        build: Build::Local(sample),
    },
];

fn debounce(args: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    Ok(s.debounce(args.required_interval("interval")?))
}

fn throttle(args: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    let (leading, trailing) = (args.flag("leading")?, args.flag("trailing")?);
    if !leading && !trailing {
        return Err(CliError::at(
            "throttle with neither leading nor trailing passes nothing on",
            args.stage().span.clone(),
        )
        .help("leading=true passes the first of each period, trailing=true the last"));
    }
    Ok(s.throttle(args.required_interval("interval")?, leading, trailing))
}

fn sample(args: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    Ok(s.sample(args.required_interval("interval")?))
}

fn rate_limit(args: &Args<'_>, s: Flow) -> Result<Flow, CliError> {
    Ok(s.rate_limit(args.required_duration("interval")?))
}

fn delay(args: &Args<'_>, s: Flow) -> Result<Flow, CliError> {
    Ok(s.delay(args.required_duration("interval")?))
}

fn timed_window(args: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    Ok(s.durable()
        .timed_window(args.required_interval("interval")?)
        .map(Value::Array)
        .part_of_upstream())
}

fn buffer(args: &Args<'_>, s: Flow) -> Result<Flow, CliError> {
    Ok(s.buffer(args.required_positive("n")?))
}

fn latest(_: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    Ok(s.latest())
}
