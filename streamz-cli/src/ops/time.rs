//! Operators of time and flow: rate_limit, delay, timed_window, buffer, latest.

use serde_json::Value;
use streamz_core::Stream;

use super::args::{Kind::*, req};
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
];

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
