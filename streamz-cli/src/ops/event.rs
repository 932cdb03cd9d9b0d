//! Operators on event time: watermarks, window.

use serde_json::Value;
use streamz_core::{EventTime, Firing, Stream, Watermarks, Window, Windowed};

use super::args::{Kind::*, opt, pos, req};
use super::{Args, Build, BuiltSplit, OpSpec, failure, key_of};
use crate::error::CliError;
use crate::script::Expr;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "watermarks",
        params: &[
            req("time", Expr),
            opt("delay", Duration, "0s"),
            opt("idle", Duration, ""),
            opt("skew", Duration, ""),
            opt("unit", Text, "s"),
        ],
        about: "the stream's watermark from each element's event time (time=, a number of unit= s|ms|us|ns or an RFC 3339 string): the newest time less delay=; idle= after which a quiet input no longer holds a join back, skew= the most one element moves it",
        build: Build::Local(watermarks),
    },
    OpSpec {
        name: "window",
        params: &[
            req("shape", Text),
            req("size", Duration),
            pos("slide", Duration, ""),
            req("time", Expr),
            opt("agg", AccExpr, "acc + 1"),
            opt("start", Json, "0"),
            opt("key", Expr, ""),
            opt("lateness", Duration, "0s"),
            opt("early", Duration, ""),
            opt("late", Text, ""),
            opt("unit", Text, "s"),
        ],
        about: "event-time windows (tumbling SIZE, sliding SIZE SLIDE, session GAP; per key= ) folding agg= from start= and emitted as {key, start, end, value, firing} when the watermark passes their end; lateness= keeps them for updates, early= emits partial results, late=NAME names the stream of elements too late for any window",
        build: Build::Split("late", window),
    },
];

/// How `unit=` reads a time: nanoseconds in one of its units.
fn unit_nanos(args: &Args<'_>) -> Result<i64, CliError> {
    let unit = args.text("unit").unwrap_or_default();
    match unit.as_str() {
        "s" => Ok(1_000_000_000),
        "ms" => Ok(1_000_000),
        "us" => Ok(1_000),
        "ns" => Ok(1),
        other => Err(CliError::at(
            format!("`{other}` is not a unit of time"),
            args.stage().span.clone(),
        )
        .help("unit= is s, ms, us or ns")),
    }
}

/// An element's event time by `expr`: a number of `unit` nanoseconds, or an RFC 3339 string.
/// A failure is a panic the node turns into the element's error.
fn event_time(expr: Expr, unit: i64) -> impl Fn(&Value) -> EventTime + Send + Sync + 'static {
    move |x: &Value| {
        let t = expr.eval(&[x]).unwrap_or_else(|e| fail(x, e));
        let time = match &t {
            Value::Number(n) => match n.as_i64() {
                Some(n) => Some(EventTime::from_nanos(n.saturating_mul(unit))),
                None => n
                    .as_f64()
                    .and_then(|f| EventTime::from_secs_f64(f * unit as f64 / 1e9)),
            },
            Value::String(s) => humantime::parse_rfc3339_weak(s)
                .ok()
                .map(EventTime::from_system_time),
            _ => None,
        };
        time.unwrap_or_else(|| {
            fail(
                x,
                format!(
                    "the time `{}` is {}, not a number or an RFC 3339 date",
                    expr.text,
                    super::show(&t)
                ),
            )
        })
    }
}

/// A user expression failed on `x`: a panic the node turns into the element's error (where
/// the operator's function cannot return one).
fn fail(x: &Value, why: String) -> ! {
    std::panic::panic_any(crate::quiet_panic(failure(x, why)))
}

/// A time as a number of `unit`: whole when it is.
fn in_unit(t: EventTime, unit: i64) -> Value {
    let n = t.as_nanos();
    if n % unit == 0 {
        Value::from(n / unit)
    } else {
        Value::from(n as f64 / unit as f64)
    }
}

fn watermarks(args: &Args<'_>, s: &Stream<Value>) -> Result<Stream<Value>, CliError> {
    let time = event_time(args.required_expr("time", &["x"])?, unit_nanos(args)?);
    let mut rules = Watermarks::bounded(args.duration("delay")?.unwrap_or_default());
    if let Some(idle) = args.interval("idle")? {
        rules = rules.idle_after(idle);
    }
    if let Some(skew) = args.interval("skew")? {
        rules = rules.max_skew(skew);
    }
    Ok(s.durable().watermarks(time, rules))
}

fn window(args: &Args<'_>, s: &Stream<Value>) -> BuiltSplit {
    let unit = unit_nanos(args)?;
    let time = event_time(args.required_expr("time", &["x"])?, unit);
    let size = args.required_interval("size")?;
    let slide = args.interval("slide")?;
    let shape = args.text("shape").unwrap_or_default();
    let window = match (shape.as_str(), slide) {
        ("tumbling", None) => Window::tumbling(size),
        ("sliding", Some(slide)) if slide <= size => Window::sliding(size, slide),
        ("sliding", Some(_)) => {
            return Err(CliError::at(
                "a sliding window's slide must not be longer than its size",
                args.stage().span.clone(),
            ));
        }
        ("sliding", None) => {
            return Err(CliError::at(
                "a sliding window needs a slide: `window sliding SIZE SLIDE`",
                args.stage().span.clone(),
            ));
        }
        ("session", None) => Window::session(size),
        ("tumbling" | "session", Some(_)) => {
            return Err(CliError::at(
                format!("a {shape} window takes one duration, not a slide"),
                args.stage().span.clone(),
            ));
        }
        (other, _) => {
            return Err(CliError::at(
                format!("`{other}` is not a window: tumbling, sliding or session"),
                args.stage().span.clone(),
            ));
        }
    };
    let agg = args.required_expr("agg", &["acc", "x"])?;
    let start = args.strict_json("start")?.unwrap_or(Value::from(0));
    let key = args.expr("key", &["x"])?;
    let mut builder = s
        .durable()
        .window(window, time)
        .key(move |x: &Value| match &key {
            Some(key) => key_of(&key.eval(&[x]).unwrap_or_else(|e| fail(x, e))),
            None => String::new(),
        })
        .lateness(args.duration("lateness")?.unwrap_or_default());
    if let Some(every) = args.interval("early")? {
        builder = builder.early_every(every);
    }
    let (windows, late) = builder.fold(start, move |acc: &mut Value, x: &Value| {
        *acc = agg.eval(&[acc, x]).unwrap_or_else(|e| fail(x, e));
    });
    let keyed = args.is_given("key");
    let windows = windows
        .map(move |w: Windowed<String, Value>| {
            let key = if keyed {
                serde_json::from_str(&w.key).unwrap_or(Value::String(w.key))
            } else {
                Value::Null
            };
            let firing = match w.firing {
                Firing::Early => "early",
                Firing::OnTime => "on_time",
                Firing::Late => "late",
            };
            serde_json::json!({
                "key": key,
                "start": in_unit(w.start, unit),
                "end": in_unit(w.end, unit),
                "value": w.value,
                "firing": firing,
            })
        })
        .part_of_upstream();
    Ok((windows, late))
}
